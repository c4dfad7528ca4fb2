//! The probe's verdicts: one per way a TURN relay fails, each with its own exit code and a
//! diagnosis in plain words that names the likely cause and how to confirm or fix it.

use std::net::SocketAddr;

use serde::Serialize;

use super::creds;

/// How a probe ended. Exit codes are part of the CLI contract (`cityd turn probe --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Allocation, both relayed round trips and the release all worked.
    RelayWorks,
    /// The probe itself could not proceed: malformed or unverifiable answers, local socket errors.
    ProbeFailed,
    /// Nothing answered (firewall, wrong address, coturn not running).
    NoAnswer,
    /// 401 to the authenticated Allocate: wrong secret or expired credential.
    Unauthorized,
    /// 403 at CreatePermission/ChannelBind: the relay refuses this peer.
    PeerForbidden,
    /// 486: the user's allocation quota is used up.
    QuotaReached,
    /// Allocation granted, but relayed data never came back.
    NoDataBack,
    /// Another error response (437, 441, 442, 508, …).
    ServerRefused,
}

impl Verdict {
    pub const ALL: [Verdict; 8] = [
        Verdict::RelayWorks,
        Verdict::ProbeFailed,
        Verdict::NoAnswer,
        Verdict::Unauthorized,
        Verdict::PeerForbidden,
        Verdict::QuotaReached,
        Verdict::NoDataBack,
        Verdict::ServerRefused,
    ];

    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::RelayWorks => 0,
            Verdict::ProbeFailed => 1,
            Verdict::NoAnswer => 10,
            Verdict::Unauthorized => 11,
            Verdict::PeerForbidden => 12,
            Verdict::QuotaReached => 13,
            Verdict::NoDataBack => 14,
            Verdict::ServerRefused => 15,
        }
    }

    /// One line for the report and `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Verdict::RelayWorks => "relay works: allocated, data relayed both ways, released",
            Verdict::ProbeFailed => "probe failed: unusable answers or a local error",
            Verdict::NoAnswer => "no answer from the server (firewall or wrong address)",
            Verdict::Unauthorized => {
                "credentials refused (401): secret mismatch or expired credential"
            }
            Verdict::PeerForbidden => "relay refuses the peer (403 at CreatePermission)",
            Verdict::QuotaReached => "allocation quota reached (486)",
            Verdict::NoDataBack => "allocation granted but no data came back (relay ports blocked)",
            Verdict::ServerRefused => "the server refused with another error code",
        }
    }
}

/// What the probe learned, as the diagnosis needs it.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub server: Option<SocketAddr>,
    pub transport: &'static str,
    pub username: String,
    pub realm: Option<String>,
    pub peer: Option<SocketAddr>,
    pub own_peer: bool,
    pub relayed: Option<SocketAddr>,
    /// For the probe's own peer: sources it received relayed datagrams from.
    pub peer_heard_from: Vec<SocketAddr>,
    pub error_code: Option<u16>,
    pub reason: Option<String>,
    /// Which step failed and what happened, in a few words.
    pub detail: String,
    /// The port was closed (ICMP port unreachable or TCP reset) rather than silent.
    pub refused: bool,
    /// The failing round trip was the channel one (the Send/Data one had worked).
    pub channel_step: bool,
}

/// The diagnosis paragraph for a verdict.
pub fn explain(verdict: Verdict, f: &Facts) -> String {
    let server = f
        .server
        .map_or_else(|| "the server".to_string(), |s| s.to_string());
    let port = f.server.map_or(0, |s| s.port());
    match verdict {
        Verdict::RelayWorks => format!(
            "The TURN server at {server} ({}) allocated a relay{}, relayed data to the peer and back \
             through a permission and through a channel, and released the allocation. Phones \
             behind NAT can use it.",
            f.transport,
            f.relayed.map(|r| format!(" at {r}")).unwrap_or_default()
        ),
        Verdict::ProbeFailed => format!(
            "The probe could not finish: {}. This is not a verdict on the relay; rerun with -v for details.",
            f.detail
        ),
        Verdict::NoAnswer if f.refused => format!(
            "Nothing listens on {server} over {transport}: the host answered that the port is closed \
             ({detail}). coturn is not running there, or it listens on another address or port \
             (check `listening-port` and `listening-ip` in turnserver.conf and `ss -lnp | grep {port}` \
             on the server).",
            transport = f.transport,
            detail = f.detail
        ),
        Verdict::NoAnswer => format!(
            "No answer from {server} over {transport} ({detail}). Either a firewall drops {proto} \
             port {port} on the way (the host's firewall, a cloud security group, or a Docker port \
             mapping that does not publish {port}/{transport}), or the address is wrong (is coturn \
             listening on that IP? `ss -lnp | grep {port}` on the server).",
            transport = f.transport,
            proto = f.transport.to_uppercase(),
            detail = f.detail
        ),
        Verdict::Unauthorized => unauthorized(f),
        Verdict::PeerForbidden => format!(
            "The relay refuses to relay to {peer} ({code} {reason}). coturn's peer policy covers \
             that address: a denied-peer-ip range, or loopback/multicast peers switched off. That is \
             the protection against using the relay to reach internal services, so it is right for \
             private, loopback and metadata addresses. If {peer} is an address phones must reach \
             (the Calls media address on the LAN), it needs an allowed-peer-ip line: `cityd render \
             coturn` writes one for every LAN address of the city.",
            peer = f
                .peer
                .map_or_else(|| "the peer".into(), |p| p.ip().to_string()),
            code = f.error_code.unwrap_or(403),
            reason = f.reason.as_deref().unwrap_or("Forbidden"),
        ),
        Verdict::QuotaReached => format!(
            "486 Allocation Quota Reached: the user in {user:?} already holds as many allocations as \
             coturn's user-quota allows (counted per user id, with the timestamp stripped), or the \
             server's total-quota is used up. Old allocations expire after their lifetime (10 \
             minutes by default); release them or raise user-quota/total-quota.",
            user = f.username
        ),
        Verdict::NoDataBack => no_data_back(f),
        Verdict::ServerRefused => format!(
            "The server answered {} {} ({}). See RFC 8656 §19: 437 means an allocation already \
             exists on this 5-tuple (or none does), 441 that the credentials differ from the \
             allocation's, 440 that the server has no relay address of the peer's family (an \
             IPv6 peer needs an IPv6 relay), 442 that the relay transport is not allowed \
             (no-udp-relay), 508 that the server has no relay port left (min-port..max-port is \
             exhausted).",
            f.error_code
                .map_or_else(|| "an error".into(), |c| c.to_string()),
            f.reason.as_deref().unwrap_or(""),
            f.detail
        ),
    }
}

fn unauthorized(f: &Facts) -> String {
    let now = creds::unix_now();
    let expiry = creds::username_expiry(&f.username);
    let clock = match expiry {
        Some(e) if e < now => format!(
            "This credential (username {user:?}) expired at {at}, {ago} s ago by this machine's \
             clock: it is expired, so (b) is the cause. Derive a fresh one (`cityd turn creds`).",
            user = f.username,
            at = creds::format_utc(e),
            ago = now - e
        ),
        Some(e) => format!(
            "This credential (username {user:?}) is valid until {at}, {left} s from now by this \
             machine's clock. So unless the server's clock is ahead by more than that (compare \
             `date -u` on both machines), the secret is the cause: coturn's static-auth-secret is \
             not the vault's turn-static-auth-secret. Re-render coturn's configuration from the \
             vault (`cityd render coturn`) and restart coturn, or probe with --secret-file \
             pointing at the secret coturn uses.",
            user = f.username,
            at = creds::format_utc(e),
            left = e - now
        ),
        None => format!(
            "The username {:?} carries no expiry timestamp, and coturn with use-auth-secret refuses \
             such usernames outright.",
            f.username
        ),
    };
    format!(
        "The server refused the credentials: 401 {reason} to the authenticated Allocate{realm}. A \
         wrong secret and an expired credential look the same on the wire (coturn answers both with \
         401), so it is one of: (a) the secret used to derive the password differs from coturn's \
         static-auth-secret; (b) the expiry in the username has passed by the server's clock. \
         {clock}",
        reason = f.reason.as_deref().unwrap_or("Unauthorized"),
        realm = f
            .realm
            .as_deref()
            .map(|r| format!(" in realm {r:?}"))
            .unwrap_or_default(),
    )
}

fn no_data_back(f: &Facts) -> String {
    let relayed = f
        .relayed
        .map_or_else(|| "the relayed address".into(), |r| r.to_string());
    let peer = f.peer.map_or_else(|| "the peer".into(), |p| p.to_string());
    let which = if f.channel_step {
        "The Send/Data round trip worked, but the ChannelData one did not"
    } else {
        "Data sent to the peer never came back"
    };
    let cause = if !f.own_peer {
        format!(
            "Either {peer} does not echo (it must send every datagram back to its source, as \
             turnutils_peer does), or it cannot be reached from the relay, or a firewall in front \
             of the TURN host drops UDP to the relay ports (min-port..max-port, here {relayed})."
        )
    } else if f.peer_heard_from.is_empty() {
        format!(
            "The probe's own peer at {peer} never received the datagram: the relay could not reach \
             it (routing from the TURN host to {peer}, or the host's firewall drops the relay's \
             outgoing UDP)."
        )
    } else {
        let from: Vec<String> = f.peer_heard_from.iter().map(|a| a.to_string()).collect();
        format!(
            "The probe's own peer at {peer} received the datagram from {} and answered, but the \
             answer never came back: a firewall in front of the TURN host drops inbound UDP to the \
             relay ports (min-port..max-port in turnserver.conf, here {relayed}). Open that UDP \
             range, or publish it in the Docker port mapping.",
            from.join(", ")
        )
    };
    format!(
        "The allocation was granted (relay {relayed}) and the permission accepted, but relayed data \
         did not come back. {which} ({detail}). {cause}",
        detail = f.detail
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let mut codes: Vec<u8> = Verdict::ALL.iter().map(|v| v.exit_code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Verdict::ALL.len());
        assert!(!codes.contains(&2), "2 is reserved for bad input");
    }

    #[test]
    fn unauthorized_names_both_causes_and_picks_expiry_when_past() {
        let facts = Facts {
            username: "1000:alice".into(),
            ..Facts::default()
        };
        let text = explain(Verdict::Unauthorized, &facts);
        assert!(text.contains("wrong secret and an expired credential"));
        assert!(text.contains("it is expired, so (b)"), "{text}");

        let facts = Facts {
            username: format!("{}:alice", creds::unix_now() + 3600),
            ..Facts::default()
        };
        let text = explain(Verdict::Unauthorized, &facts);
        assert!(text.contains("the secret is the cause"), "{text}");
    }

    #[test]
    fn no_data_back_tells_where_the_datagram_got_lost() {
        let mut facts = Facts {
            own_peer: true,
            peer: Some("127.0.0.1:5000".parse().unwrap()),
            relayed: Some("127.0.0.1:49200".parse().unwrap()),
            ..Facts::default()
        };
        assert!(explain(Verdict::NoDataBack, &facts).contains("never received"));
        facts.peer_heard_from = vec!["127.0.0.1:49200".parse().unwrap()];
        assert!(explain(Verdict::NoDataBack, &facts).contains("drops inbound UDP"));
    }
}
