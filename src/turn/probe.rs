//! The TURN probe: Binding, Allocate through the 401 challenge, CreatePermission, a Send/Data round
//! trip and a ChannelBind/ChannelData round trip through the relay to a peer, then Refresh(0).
//! Requests are retransmitted over UDP as RFC 8489 §6.2.1 says, under one overall deadline; each
//! step is timed, and the first failure picks the verdict and its diagnosis.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::{Instant, timeout_at};

use super::attr::{AddressFamily, Attribute, TRANSPORT_UDP};
use super::channel::{CHANNEL_MIN, ChannelData, Frame, decode_frame};
use super::codec::{Class, IntegrityCheck, Message, Method};
use super::diagnosis::{self, Facts, Verdict};
use super::integrity;
use super::link::{Link, LinkError, Transport};
use super::peer::EchoPeer;
use crate::secrets::Secret;

/// Retransmission and waiting rules. The defaults are RFC 8489's; tests on loopback may shorten them.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Initial retransmission timeout (RTO), doubled after each send.
    pub rto: Duration,
    /// Sends per UDP request (Rc).
    pub max_sends: u32,
    /// After the last send, wait this many RTOs (Rm).
    pub final_wait_factor: u32,
    /// A TCP transaction's timeout (Ti).
    pub tcp_timeout: Duration,
    /// How long to wait for relayed data to come back, per attempt.
    pub data_wait: Duration,
    /// Relayed-data attempts before concluding that nothing comes back.
    pub data_attempts: u32,
    /// Bound on the whole probe.
    pub deadline: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(500),
            max_sends: 7,
            final_wait_factor: 16,
            tcp_timeout: Duration::from_millis(39_500),
            data_wait: Duration::from_secs(1),
            data_attempts: 3,
            deadline: Duration::from_secs(60),
        }
    }
}

/// Who answers the relayed data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSpec {
    /// A UDP echo socket the probe opens on the local address it uses toward the server.
    Own,
    /// An external peer that echoes every datagram (e.g. turnutils_peer, or a published port).
    Given(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub server: SocketAddr,
    pub transport: Transport,
    pub peer: PeerSpec,
    pub username: String,
    pub password: Secret,
    pub timing: Timing,
    pub software: String,
}

/// Receives progress lines (for waits longer than a second).
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    Ok,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: &'static str,
    pub status: StepStatus,
    /// Time from the first send to the answer (or to giving up).
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub server: SocketAddr,
    pub transport: Transport,
    pub username: String,
    pub local: Option<SocketAddr>,
    /// The client's address as the server sees it (XOR-MAPPED-ADDRESS).
    pub mapped: Option<SocketAddr>,
    /// The relay's address for peers (XOR-RELAYED-ADDRESS).
    pub relayed: Option<SocketAddr>,
    pub peer: Option<SocketAddr>,
    pub own_peer: bool,
    /// For the probe's own peer: where relayed datagrams came from (the relayed address when
    /// all is well; empty when the relay never reached the peer).
    pub peer_heard_from: Vec<SocketAddr>,
    pub realm: Option<String>,
    pub server_software: Option<String>,
    pub lifetime_seconds: Option<u32>,
    pub channel: Option<u16>,
    pub steps: Vec<Step>,
    pub verdict: Verdict,
    pub summary: &'static str,
    pub exit_code: u8,
    pub diagnosis: String,
    pub warnings: Vec<String>,
    pub total_ms: f64,
}

/// Runs the probe to the end; every failure is a verdict in the report, never a panic or an `Err`.
pub async fn run(cfg: &ProbeConfig, progress: Progress) -> ProbeReport {
    let started = Instant::now();
    let mut probe = Probe {
        cfg,
        progress,
        deadline: started + cfg.timing.deadline,
        link: None,
        queued: VecDeque::new(),
        auth: None,
        own_peer: None,
        steps: Vec::new(),
        warnings: Vec::new(),
        facts: Facts {
            server: Some(cfg.server),
            transport: cfg.transport.name(),
            username: cfg.username.clone(),
            own_peer: cfg.peer == PeerSpec::Own,
            ..Facts::default()
        },
        local: None,
        mapped: None,
        server_software: None,
        lifetime: None,
        channel: None,
    };
    let verdict = match probe.drive().await {
        Ok(()) => Verdict::RelayWorks,
        Err(v) => v,
    };
    if let Some(peer) = &probe.own_peer {
        probe.facts.peer_heard_from = peer.heard_from();
    }
    ProbeReport {
        server: cfg.server,
        transport: cfg.transport,
        username: cfg.username.clone(),
        local: probe.local,
        mapped: probe.mapped,
        relayed: probe.facts.relayed,
        peer: probe.facts.peer,
        own_peer: cfg.peer == PeerSpec::Own,
        peer_heard_from: probe.facts.peer_heard_from.clone(),
        realm: probe.facts.realm.clone(),
        server_software: probe.server_software.clone(),
        lifetime_seconds: probe.lifetime,
        channel: probe.channel,
        steps: probe.steps,
        verdict,
        summary: verdict.summary(),
        exit_code: verdict.exit_code(),
        diagnosis: diagnosis::explain(verdict, &probe.facts),
        warnings: probe.warnings,
        total_ms: ms(started.elapsed()),
    }
}

struct Auth {
    realm: String,
    nonce: Vec<u8>,
    key: [u8; 16],
}

/// Why a transaction produced no usable answer.
enum TxError {
    Timeout { sends: u32, waited: Duration },
    Link(LinkError),
    Unusable(String),
}

struct Answer {
    message: Message,
    latency: Duration,
    signed: bool,
}

struct Probe<'a> {
    cfg: &'a ProbeConfig,
    progress: Progress,
    deadline: Instant,
    link: Option<Link>,
    /// Frames that arrived while waiting for something else (e.g. data before a ChannelBind answer).
    queued: VecDeque<Frame>,
    auth: Option<Auth>,
    own_peer: Option<EchoPeer>,
    steps: Vec<Step>,
    warnings: Vec<String>,
    facts: Facts,
    local: Option<SocketAddr>,
    mapped: Option<SocketAddr>,
    server_software: Option<String>,
    lifetime: Option<u32>,
    channel: Option<u16>,
}

const QUEUE_LIMIT: usize = 64;

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Probe<'_> {
    async fn drive(&mut self) -> Result<(), Verdict> {
        self.connect().await?;
        self.binding().await?;
        self.allocate().await?;
        let relayed = self.relay_round_trips().await;
        let released = self.release().await;
        relayed?;
        released
    }

    fn step(
        &mut self,
        name: &'static str,
        status: StepStatus,
        latency: Option<Duration>,
        detail: String,
    ) {
        self.steps.push(Step {
            name,
            status,
            latency_ms: latency.map(ms),
            error_code: None,
            detail,
        });
    }

    fn fail(
        &mut self,
        name: &'static str,
        latency: Option<Duration>,
        verdict: Verdict,
        detail: String,
    ) -> Verdict {
        self.facts.detail = format!("{name}: {detail}");
        self.steps.push(Step {
            name,
            status: StepStatus::Failed,
            latency_ms: latency.map(ms),
            error_code: self.facts.error_code,
            detail,
        });
        verdict
    }

    fn link(&mut self) -> &mut Link {
        self.link.as_mut().expect("connect() ran first")
    }

    async fn connect(&mut self) -> Result<(), Verdict> {
        let started = Instant::now();
        let bound = (started + self.cfg.timing.tcp_timeout).min(self.deadline);
        let opened = timeout_at(bound, Link::open(self.cfg.server, self.cfg.transport)).await;
        let link = match opened {
            Ok(Ok(link)) => link,
            Ok(Err(LinkError::Refused(e))) => {
                self.facts.refused = true;
                return Err(self.fail(
                    "connect",
                    Some(started.elapsed()),
                    Verdict::NoAnswer,
                    e.to_string(),
                ));
            }
            Ok(Err(e)) => {
                let verdict = if self.cfg.transport == Transport::Tcp || e.is_unreachable() {
                    Verdict::NoAnswer
                } else {
                    Verdict::ProbeFailed
                };
                return Err(self.fail("connect", Some(started.elapsed()), verdict, e.to_string()));
            }
            Err(_) => {
                return Err(self.fail(
                    "connect",
                    Some(started.elapsed()),
                    Verdict::NoAnswer,
                    format!(
                        "TCP connection not established within {:.1} s",
                        started.elapsed().as_secs_f64()
                    ),
                ));
            }
        };
        self.local = link.local_addr().ok();
        if self.cfg.transport == Transport::Tcp {
            let local = self.local.map(|l| l.to_string()).unwrap_or_default();
            self.step(
                "connect",
                StepStatus::Ok,
                Some(started.elapsed()),
                format!("TCP connected from {local}"),
            );
        }
        self.link = Some(link);
        let peer = match self.cfg.peer {
            PeerSpec::Given(addr) => addr,
            PeerSpec::Own => {
                let ip = match self.local {
                    Some(l) => l.ip(),
                    None => {
                        return Err(self.fail(
                            "peer",
                            None,
                            Verdict::ProbeFailed,
                            "the local address toward the server is unknown".into(),
                        ));
                    }
                };
                match EchoPeer::start(ip).await {
                    Ok(p) => {
                        let addr = p.addr;
                        self.own_peer = Some(p);
                        addr
                    }
                    Err(e) => {
                        return Err(self.fail(
                            "peer",
                            None,
                            Verdict::ProbeFailed,
                            format!("cannot open the echo peer on {ip}: {e}"),
                        ));
                    }
                }
            }
        };
        self.facts.peer = Some(peer);
        Ok(())
    }

    /// Sends a request and waits for its answer, retransmitting over UDP (RFC 8489 §6.2.1).
    async fn transact(
        &mut self,
        request: &Message,
        key: Option<[u8; 16]>,
        label: &str,
    ) -> Result<Answer, TxError> {
        let bytes = request
            .encode(key.as_ref().map(|k| &k[..]), true)
            .map_err(|e| TxError::Unusable(e.to_string()))?;
        let udp = self.cfg.transport == Transport::Udp;
        let t = self.cfg.timing.clone();
        let start = Instant::now();
        let mut sends = 0u32;
        let mut interval = t.rto;
        let mut next_send = start;
        let mut give_up = if udp {
            self.deadline
        } else {
            start + t.tcp_timeout
        };
        let mut next_note = start + Duration::from_secs(1);
        loop {
            let now = Instant::now();
            if (udp && sends < t.max_sends && now >= next_send) || (!udp && sends == 0) {
                self.link().send(&bytes).await.map_err(TxError::Link)?;
                sends += 1;
                if udp && sends == t.max_sends {
                    give_up = now + t.rto * t.final_wait_factor;
                } else {
                    next_send = now + interval;
                    interval *= 2;
                }
            }
            if now >= give_up || now >= self.deadline {
                return Err(TxError::Timeout {
                    sends,
                    waited: now - start,
                });
            }
            if now >= next_note {
                (self.progress)(&format!(
                    "waiting for the {label} answer from {} over {}: {:.1} s, sent {sends} time(s)",
                    self.cfg.server,
                    self.cfg.transport.name(),
                    (now - start).as_secs_f64()
                ));
                next_note = now + Duration::from_secs(2);
            }
            let mut wake = give_up.min(self.deadline).min(next_note);
            if udp && sends < t.max_sends {
                wake = wake.min(next_send);
            }
            let received = match timeout_at(wake, self.link().recv()).await {
                Err(_) => continue,
                Ok(r) => r.map_err(TxError::Link)?,
            };
            let frame = match decode_frame(&received) {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!("discarded {} bytes from the server: {e}", received.len());
                    continue;
                }
            };
            let decoded = match frame {
                Frame::Stun(d)
                    if d.message.transaction_id == request.transaction_id
                        && d.message.method == request.method
                        && matches!(d.message.class, Class::Success | Class::Error) =>
                {
                    d
                }
                other => {
                    if self.queued.len() < QUEUE_LIMIT {
                        self.queued.push_back(other);
                    }
                    continue;
                }
            };
            let latency = start.elapsed();
            let Some(key) = key else {
                return Ok(Answer {
                    message: decoded.message,
                    latency,
                    signed: false,
                });
            };
            match decoded.verify_integrity(&key) {
                IntegrityCheck::Valid => {
                    return Ok(Answer {
                        message: decoded.message,
                        latency,
                        signed: true,
                    });
                }
                IntegrityCheck::Invalid if udp => {
                    // §9.2.5: over UDP a response that fails integrity is discarded, not believed.
                    self.warn(format!(
                        "discarded a {label} answer whose MESSAGE-INTEGRITY did not verify"
                    ));
                    continue;
                }
                IntegrityCheck::Invalid => {
                    return Err(TxError::Unusable(format!(
                        "the {label} answer's MESSAGE-INTEGRITY does not verify with our key"
                    )));
                }
                IntegrityCheck::Absent => match decoded.message.error_code() {
                    // Challenges are unsigned by design; other unsigned errors (coturn's 437) are
                    // taken as final rather than timing out, and flagged.
                    Some(_) => {
                        return Ok(Answer {
                            message: decoded.message,
                            latency,
                            signed: false,
                        });
                    }
                    None if udp => {
                        self.warn(format!("discarded an unsigned {label} success"));
                        continue;
                    }
                    None => {
                        return Err(TxError::Unusable(format!(
                            "the {label} success carries no MESSAGE-INTEGRITY"
                        )));
                    }
                },
            }
        }
    }

    fn warn(&mut self, text: String) {
        if !self.warnings.contains(&text) {
            self.warnings.push(text);
        }
    }

    /// Maps a transaction failure to a verdict and records the failed step.
    fn tx_failed(&mut self, name: &'static str, error: TxError) -> Verdict {
        match error {
            TxError::Timeout { sends, waited } => self.fail(
                name,
                Some(waited),
                if name == "binding" || name == "allocate-challenge" {
                    Verdict::NoAnswer
                } else {
                    Verdict::ProbeFailed
                },
                format!(
                    "no answer after {sends} send(s) in {:.1} s",
                    waited.as_secs_f64()
                ),
            ),
            TxError::Link(LinkError::Refused(e)) => {
                self.facts.refused = true;
                self.fail(name, None, Verdict::NoAnswer, e.to_string())
            }
            TxError::Link(LinkError::Closed) if self.steps.iter().all(|s| s.name == "connect") => {
                self.fail(
                    name,
                    None,
                    Verdict::NoAnswer,
                    "the server closed the TCP connection without answering".into(),
                )
            }
            TxError::Link(e) if e.is_unreachable() => {
                self.fail(name, None, Verdict::NoAnswer, e.to_string())
            }
            TxError::Link(e) => self.fail(name, None, Verdict::ProbeFailed, e.to_string()),
            TxError::Unusable(text) => self.fail(name, None, Verdict::ProbeFailed, text),
        }
    }

    /// An error answer: record its code and pick the verdict.
    fn error_answer(&mut self, name: &'static str, answer: &Answer, verdict: Verdict) -> Verdict {
        let (code, reason) = answer
            .message
            .error_code()
            .map(|e| (e.code, e.reason.clone()))
            .unwrap_or((0, "error response without ERROR-CODE".into()));
        self.facts.error_code = Some(code);
        self.facts.reason = Some(reason.clone());
        // Challenges are unsigned by design; any other unsigned error could be forged, so say so.
        let signed = if answer.signed || matches!(code, 401 | 438) {
            ""
        } else {
            " (unauthenticated error)"
        };
        self.fail(
            name,
            Some(answer.latency),
            verdict,
            format!("{code} {reason}{signed}"),
        )
    }

    async fn binding(&mut self) -> Result<(), Verdict> {
        let request = Message::request(Method::BINDING);
        let answer = match self.transact(&request, None, "Binding").await {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("binding", e)),
        };
        if answer.message.class == Class::Error {
            // A server may refuse plain STUN and still relay; note it and carry on.
            let code = answer.message.error_code().map_or(0, |e| e.code);
            self.warn(format!("Binding was answered with error {code}"));
            self.step(
                "binding",
                StepStatus::Ok,
                Some(answer.latency),
                format!("answered with error {code}"),
            );
            return Ok(());
        }
        self.mapped = answer.message.xor_mapped_address();
        self.server_software = answer.message.software().map(str::to_string);
        let detail = match self.mapped {
            Some(m) => format!("mapped address {m}"),
            None => "answered without XOR-MAPPED-ADDRESS".into(),
        };
        self.step("binding", StepStatus::Ok, Some(answer.latency), detail);
        Ok(())
    }

    fn allocate_request(&self) -> Message {
        let mut m =
            Message::request(Method::ALLOCATE).with(Attribute::RequestedTransport(TRANSPORT_UDP));
        // Without REQUESTED-ADDRESS-FAMILY the relay is IPv4 (RFC 8656 §7.1); an IPv6 peer needs an IPv6 relay.
        if let Some(peer) = self.facts.peer
            && AddressFamily::of(&peer) == AddressFamily::V6
        {
            m = m.with(Attribute::RequestedAddressFamily(AddressFamily::V6));
        }
        m.with(Attribute::Software(self.cfg.software.clone()))
    }

    /// Sends an authenticated request built by `build`, retrying once on 438 with the new nonce.
    async fn authed(
        &mut self,
        build: &dyn Fn(&Self) -> Message,
        label: &str,
    ) -> Result<Answer, TxError> {
        let mut stale_retried = false;
        loop {
            let auth = self
                .auth
                .as_ref()
                .expect("the 401 challenge was answered first");
            let key = auth.key;
            let request = build(self)
                .with(Attribute::Username(self.cfg.username.clone()))
                .with(Attribute::Realm(auth.realm.clone()))
                .with(Attribute::Nonce(auth.nonce.clone()));
            let answer = self.transact(&request, Some(key), label).await?;
            let stale = answer.message.error_code().is_some_and(|e| e.code == 438);
            if stale && !stale_retried {
                if let (Some(auth), Some(nonce)) = (self.auth.as_mut(), answer.message.nonce()) {
                    auth.nonce = nonce.to_vec();
                    if let Some(realm) = answer.message.realm() {
                        auth.realm = realm.to_string();
                    }
                    stale_retried = true;
                    continue;
                }
            }
            return Ok(answer);
        }
    }

    async fn allocate(&mut self) -> Result<(), Verdict> {
        let request = self.allocate_request();
        let challenge = match self.transact(&request, None, "Allocate").await {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("allocate-challenge", e)),
        };
        if challenge.message.class == Class::Success {
            self.warn("the server allocated a relay WITHOUT credentials: it is an open relay; set use-auth-secret".into());
            return self.allocated(challenge);
        }
        let code = challenge.message.error_code().map_or(0, |e| e.code);
        let (realm, nonce) = match (challenge.message.realm(), challenge.message.nonce()) {
            (Some(r), Some(n)) if code == 401 => (r.to_string(), n.to_vec()),
            _ => {
                let verdict = error_verdict(code, "allocate");
                return Err(self.error_answer("allocate-challenge", &challenge, verdict));
            }
        };
        self.facts.realm = Some(realm.clone());
        if self.server_software.is_none() {
            self.server_software = challenge.message.software().map(str::to_string);
        }
        let key = integrity::long_term_key(&self.cfg.username, &realm, self.cfg.password.expose());
        self.auth = Some(Auth {
            realm: realm.clone(),
            nonce,
            key,
        });
        self.step(
            "allocate-challenge",
            StepStatus::Ok,
            Some(challenge.latency),
            format!("401 challenge with realm {realm:?} and a nonce"),
        );
        let answer = match self
            .authed(&|p: &Self| p.allocate_request(), "Allocate")
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("allocate", e)),
        };
        if answer.message.class == Class::Error {
            let code = answer.message.error_code().map_or(0, |e| e.code);
            return Err(self.error_answer("allocate", &answer, error_verdict(code, "allocate")));
        }
        self.allocated(answer)
    }

    fn allocated(&mut self, answer: Answer) -> Result<(), Verdict> {
        let Some(relayed) = answer.message.xor_relayed_address() else {
            return Err(self.fail(
                "allocate",
                Some(answer.latency),
                Verdict::ProbeFailed,
                "success without XOR-RELAYED-ADDRESS".into(),
            ));
        };
        if let Some(unknown) = answer.message.unknown_required().first() {
            return Err(self.fail(
                "allocate",
                Some(answer.latency),
                Verdict::ProbeFailed,
                format!("success carries unknown comprehension-required attribute 0x{unknown:04x}"),
            ));
        }
        self.facts.relayed = Some(relayed);
        self.lifetime = answer.message.lifetime();
        if let Some(m) = answer.message.xor_mapped_address() {
            self.mapped = Some(m);
        }
        let lifetime = self
            .lifetime
            .map(|l| format!(", lifetime {l} s"))
            .unwrap_or_default();
        self.step(
            "allocate",
            StepStatus::Ok,
            Some(answer.latency),
            format!("relayed address {relayed}{lifetime}"),
        );
        Ok(())
    }

    /// CreatePermission, Send/Data, ChannelBind, ChannelData. The allocation is released afterwards
    /// whatever happens here.
    async fn relay_round_trips(&mut self) -> Result<(), Verdict> {
        let peer = self.facts.peer.expect("connect() chose the peer");
        let permission = match self
            .authed(
                &move |_: &Self| {
                    Message::request(Method::CREATE_PERMISSION)
                        .with(Attribute::XorPeerAddress(peer))
                },
                "CreatePermission",
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("create-permission", e)),
        };
        if permission.message.class == Class::Error {
            let code = permission.message.error_code().map_or(0, |e| e.code);
            return Err(self.error_answer(
                "create-permission",
                &permission,
                error_verdict(code, "permission"),
            ));
        }
        self.step(
            "create-permission",
            StepStatus::Ok,
            Some(permission.latency),
            format!("permission for {}", peer.ip()),
        );

        self.send_data_round_trip(peer).await?;

        let channel = CHANNEL_MIN + rand::random_range(0..0x1000u16);
        self.channel = Some(channel);
        let bind = match self
            .authed(
                &move |_: &Self| {
                    Message::request(Method::CHANNEL_BIND)
                        .with(Attribute::ChannelNumber(channel))
                        .with(Attribute::XorPeerAddress(peer))
                },
                "ChannelBind",
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("channel-bind", e)),
        };
        if bind.message.class == Class::Error {
            let code = bind.message.error_code().map_or(0, |e| e.code);
            return Err(self.error_answer(
                "channel-bind",
                &bind,
                error_verdict(code, "permission"),
            ));
        }
        self.step(
            "channel-bind",
            StepStatus::Ok,
            Some(bind.latency),
            format!("channel 0x{channel:04x} bound to {peer}"),
        );

        self.channel_round_trip(channel).await
    }

    async fn send_data_round_trip(&mut self, peer: SocketAddr) -> Result<(), Verdict> {
        let payload = format!("cityd-probe send {:016x}", rand::random::<u64>()).into_bytes();
        let indication = Message::indication(Method::SEND)
            .with(Attribute::XorPeerAddress(peer))
            .with(Attribute::Data(payload.clone()));
        let bytes = match indication.encode(None, true) {
            Ok(b) => b,
            Err(e) => {
                return Err(self.fail("send-data", None, Verdict::ProbeFailed, e.to_string()));
            }
        };
        let want = |f: &Frame| match f {
            Frame::Stun(d) => {
                d.message.method == Method::DATA
                    && d.message.class == Class::Indication
                    && d.message.data() == Some(&payload[..])
                    && d.message
                        .xor_peer_address()
                        .is_some_and(|p| p.ip() == peer.ip())
            }
            Frame::ChannelData(_) => false,
        };
        self.round_trip("send-data", &bytes, &want, payload.len())
            .await
    }

    async fn channel_round_trip(&mut self, channel: u16) -> Result<(), Verdict> {
        let payload = format!("cityd-probe channel {:016x}!", rand::random::<u64>()).into_bytes();
        let message = ChannelData {
            channel,
            data: payload.clone(),
        };
        let bytes = match message.encode(self.cfg.transport == Transport::Tcp) {
            Ok(b) => b,
            Err(e) => {
                return Err(self.fail("channel-data", None, Verdict::ProbeFailed, e.to_string()));
            }
        };
        let want = |f: &Frame| matches!(f, Frame::ChannelData(c) if c.channel == channel && c.data == payload);
        self.facts.channel_step = true;
        let result = self
            .round_trip("channel-data", &bytes, &want, payload.len())
            .await;
        if result.is_ok() {
            self.facts.channel_step = false;
        }
        result
    }

    /// Sends `bytes` (a Send indication or ChannelData) and waits for the echo, resending a few
    /// times because the relay-to-peer leg is UDP and may drop a datagram.
    async fn round_trip(
        &mut self,
        name: &'static str,
        bytes: &[u8],
        want: &dyn Fn(&Frame) -> bool,
        size: usize,
    ) -> Result<(), Verdict> {
        let start = Instant::now();
        let attempts = self.cfg.timing.data_attempts.max(1);
        for attempt in 1..=attempts {
            if let Err(e) = self.link().send(bytes).await {
                let verdict = if matches!(e, LinkError::Refused(_)) {
                    Verdict::NoAnswer
                } else {
                    Verdict::ProbeFailed
                };
                return Err(self.fail(name, Some(start.elapsed()), verdict, e.to_string()));
            }
            let until = (Instant::now() + self.cfg.timing.data_wait).min(self.deadline);
            match self.await_frame(until, want).await {
                Ok(true) => {
                    let detail =
                        format!("{size} bytes relayed to the peer and back (attempt {attempt})");
                    self.step(name, StepStatus::Ok, Some(start.elapsed()), detail);
                    return Ok(());
                }
                Ok(false) => {
                    if Instant::now() >= self.deadline {
                        break;
                    }
                    if start.elapsed() >= Duration::from_secs(1) && attempt < attempts {
                        (self.progress)(&format!(
                            "no echo through the relay after {:.1} s ({name}); sending again ({}/{attempts})",
                            start.elapsed().as_secs_f64(),
                            attempt + 1
                        ));
                    }
                }
                Err(e) => {
                    return Err(self.fail(
                        name,
                        Some(start.elapsed()),
                        Verdict::ProbeFailed,
                        e.to_string(),
                    ));
                }
            }
        }
        let waited = start.elapsed();
        if let Some(peer) = &self.own_peer {
            self.facts.peer_heard_from = peer.heard_from();
        }
        Err(self.fail(
            name,
            Some(waited),
            Verdict::NoDataBack,
            format!(
                "no echo after {attempts} attempt(s) in {:.1} s",
                waited.as_secs_f64()
            ),
        ))
    }

    /// Waits until `until` for a frame `want` accepts; queued frames are looked at first.
    async fn await_frame(
        &mut self,
        until: Instant,
        want: &dyn Fn(&Frame) -> bool,
    ) -> Result<bool, LinkError> {
        if let Some(pos) = self.queued.iter().position(want) {
            self.queued.remove(pos);
            return Ok(true);
        }
        loop {
            let received = match timeout_at(until.min(self.deadline), self.link().recv()).await {
                Err(_) => return Ok(false),
                Ok(r) => r?,
            };
            if let Ok(frame) = decode_frame(&received)
                && want(&frame)
            {
                return Ok(true);
            }
        }
    }

    /// Refresh with LIFETIME 0: deletes the allocation. A 437 means it is already gone (RFC 8656 §8.3).
    async fn release(&mut self) -> Result<(), Verdict> {
        if self.facts.relayed.is_none() || self.auth.is_none() {
            return Ok(());
        }
        let answer = match self
            .authed(
                &|_: &Self| Message::request(Method::REFRESH).with(Attribute::Lifetime(0)),
                "Refresh",
            )
            .await
        {
            Ok(a) => a,
            Err(e) => return Err(self.tx_failed("refresh", e)),
        };
        match answer.message.error_code().map(|e| e.code) {
            None => {
                self.step(
                    "refresh",
                    StepStatus::Ok,
                    Some(answer.latency),
                    "allocation released (lifetime 0)".into(),
                );
                Ok(())
            }
            Some(437) => {
                self.step(
                    "refresh",
                    StepStatus::Ok,
                    Some(answer.latency),
                    "allocation already gone (437)".into(),
                );
                Ok(())
            }
            Some(code) => {
                Err(self.error_answer("refresh", &answer, error_verdict(code, "refresh")))
            }
        }
    }
}

/// The verdict for an error code at a given stage.
fn error_verdict(code: u16, stage: &str) -> Verdict {
    match (code, stage) {
        (401, _) => Verdict::Unauthorized,
        (403, "permission") => Verdict::PeerForbidden,
        (486, _) => Verdict::QuotaReached,
        _ => Verdict::ServerRefused,
    }
}
