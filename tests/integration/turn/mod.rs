//! TURN: the codec against the upstream vectors (in `conformance`), its tolerance of coturn's
//! deviations, `cityd turn creds`, and `cityd turn probe` against a real coturn on loopback:
//! success over UDP and TCP, each failure verdict, and turnutils_uclient as an independent
//! cross-check.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};

use cityd::turn::attr::Attribute;
use cityd::turn::creds::{self, RestCredential};
use cityd::turn::integrity;
use cityd::turn::{
    ChannelData, Class, Frame, IntegrityCheck, Message, Method, StreamDeframer, decode,
    decode_frame,
};

use crate::common::require_tool;
use crate::turn_harness::{Coturn, Lab, addr_of, echo_peer, steps};

// the codec against the upstream vectors in ../shared/reference/turn-vectors (skipped without it)
mod conformance;

// ---------------------------------------------------------------------------------------------
// Codec tolerance of what coturn sends (the vectors themselves are checked in `conformance`)

#[test]
fn coturn_deviations_are_tolerated() {
    // NUL-padded reason phrase.
    let stale = Message::new(
        Method::REFRESH,
        Class::Error,
        cityd::turn::TransactionId::random(),
    )
    .with(Attribute::ErrorCode(cityd::turn::ErrorCode {
        code: 438,
        reason: "Stale nonce\0".into(),
    }))
    .with(Attribute::Nonce(b"47805d8b5e6a7440".to_vec()))
    .encode(None, true)
    .unwrap();
    let d = decode(&stale).unwrap();
    assert_eq!(d.message.error_code().unwrap().reason, "Stale nonce");
    // A 437 without MESSAGE-INTEGRITY still decodes (the probe reports it as unauthenticated).
    let unsigned = Message::new(
        Method::ALLOCATE,
        Class::Error,
        cityd::turn::TransactionId::random(),
    )
    .with(Attribute::ErrorCode(cityd::turn::ErrorCode {
        code: 437,
        reason: "Mismatched allocation: wrong transaction ID".into(),
    }))
    .encode(None, false)
    .unwrap();
    let d = decode(&unsigned).unwrap();
    assert_eq!(d.verify_integrity(b"k"), IntegrityCheck::Absent);
    assert_eq!(d.message.error_code().unwrap().code, 437);
    // ChannelData with garbage pad bytes (00 00 05 was seen) on a wide channel (uclient's 0x6566).
    let mut stream = StreamDeframer::new();
    stream.push(&[
        0x65, 0x66, 0x00, 0x05, b'h', b'e', b'l', b'l', b'o', 0x00, 0x00, 0x05,
    ]);
    let frame = stream.next_frame().unwrap().unwrap();
    assert_eq!(
        decode_frame(&frame).unwrap(),
        Frame::ChannelData(ChannelData {
            channel: 0x6566,
            data: b"hello".to_vec()
        })
    );
}

// ---------------------------------------------------------------------------------------------
// cityd turn creds

fn hmac_sha1_base64(secret: &str, message: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[test]
fn creds_derive_a_rest_credential_from_the_vault_and_never_print_the_secret() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let secret = lab.secret();
    let before = creds::unix_now();
    let out = crate::common::run_ok(&mut lab.cityd(
        None,
        &["turn", "creds", "--user", "alice", "--ttl", "2h", "--json"],
    ));
    let after = creds::unix_now();
    assert!(
        !out.contains(&secret),
        "the static secret leaked into the output"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let username = v["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let expiry: u64 = expiry.parse().unwrap();
    assert!((before + 7200..=after + 7200).contains(&expiry));
    assert_eq!(v["expires_at"], expiry);
    assert_eq!(v["ttl_seconds"], 7200);
    // Independent derivation: base64(HMAC-SHA1(secret, whole username)).
    assert_eq!(v["password"], hmac_sha1_base64(&secret, username));
    assert_eq!(
        v["urls"],
        serde_json::json!([
            "turn:192.0.2.10:3478?transport=udp",
            "turn:192.0.2.10:3478?transport=tcp"
        ])
    );
    assert_eq!(v["ice_server"]["username"], username);
    assert_eq!(v["ice_server"]["credential"], v["password"]);

    let text = crate::common::run_ok(&mut lab.cityd(None, &["turn", "creds"]));
    assert!(!text.contains(&secret));
    assert!(
        text.contains("turn:192.0.2.10:3478?transport=udp"),
        "{text}"
    );
    assert!(
        text.contains("turn:192.0.2.10:3478?transport=tcp"),
        "{text}"
    );
    assert!(text.contains(":cityd\n"), "default user is cityd: {text}");
}

#[test]
fn creds_refuse_bad_input_with_exit_2() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    for args in [
        &["turn", "creds", "--ttl", "soon"][..],
        &["turn", "creds", "--ttl", "0"][..],
        // Under a second: the expiry counts whole seconds, so it would already have passed.
        &["turn", "creds", "--ttl", "500ms"][..],
        &["turn", "creds", "--user", "a:b"][..],
        &["turn", "probe", "--peer", "nowhere"][..],
        &["turn", "probe", "--server", "127.0.0.1:1", "--rto", "fast"][..],
    ] {
        let out = lab.cityd(None, args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// cityd turn probe against coturn on loopback

const PROBE_STEPS_UDP: [&str; 8] = [
    "binding",
    "allocate-challenge",
    "allocate",
    "create-permission",
    "send-data",
    "channel-bind",
    "channel-data",
    "refresh",
];

fn assert_relay_works(code: i32, report: &serde_json::Value, transport: &str) {
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "relay-works");
    assert_eq!(report["transport"], transport);
    let mut expected: Vec<&str> = PROBE_STEPS_UDP.to_vec();
    if transport == "tcp" {
        expected.insert(0, "connect");
    }
    let got = steps(report);
    assert_eq!(
        got.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        expected
    );
    assert!(got.iter().all(|(_, s)| s == "ok"), "{report:#}");
    assert!(
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["latency_ms"].as_f64().is_some())
    );
}

#[test]
fn probe_relays_data_over_udp_and_tcp_and_reports_both_addresses() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &[]);
    let server = coturn.addr().to_string();
    for transport in ["udp", "tcp"] {
        let (code, report) = lab.probe(None, &["--server", &server, "--transport", transport]);
        assert_relay_works(code, &report, transport);
        let local = addr_of(&report, "local");
        let mapped = addr_of(&report, "mapped");
        let relayed = addr_of(&report, "relayed");
        // No NAT on loopback: the server sees exactly our socket.
        assert_eq!(mapped, local);
        assert_eq!(relayed.ip(), coturn.addr().ip());
        assert_ne!(relayed.port(), coturn.port);
        assert_eq!(report["realm"], "cityd.test");
        assert_eq!(report["lifetime_seconds"], 600);
        assert!(
            report["server_software"]
                .as_str()
                .unwrap()
                .starts_with("Coturn-4.6.1")
        );
        let ch = report["channel"].as_u64().unwrap();
        assert!((0x4000..=0x4FFF).contains(&ch));
    }
    // coturn saw the allocation deleted by our Refresh(0).
    assert!(
        coturn.log_text().contains("refresh"),
        "{}",
        coturn.log_text()
    );
}

#[test]
fn human_output_names_steps_addresses_and_verdict() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &[]);
    let out = lab
        .cityd(
            None,
            &["turn", "probe", "--server", &coturn.addr().to_string()],
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for needle in [
        "binding",
        "allocate-challenge",
        "send-data",
        "channel-data",
        "mapped address:  127.0.0.1:",
        "relayed address: 127.0.0.1:",
        "verdict: relay works",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(!text.contains(&lab.secret()));
}

#[test]
fn wrong_secret_fails_with_the_401_diagnosis() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &[]);
    let wrong = lab.scratch.write("wrong-secret", "not-the-secret\n");
    let (code, report) = lab.probe(
        None,
        &[
            "--server",
            &coturn.addr().to_string(),
            "--secret-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 11, "{report:#}");
    assert_eq!(report["verdict"], "unauthorized");
    let failed = steps(&report).pop().unwrap();
    assert_eq!(failed, ("allocate".into(), "failed".into()));
    assert_eq!(report["steps"][2]["error_code"], 401);
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(diagnosis.contains("wrong secret and an expired credential look the same"));
    assert!(diagnosis.contains("the secret is the cause"), "{diagnosis}");
    assert!(report["relayed"].is_null());
}

#[test]
fn expired_credential_fails_with_the_401_diagnosis_and_says_it_expired() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &[]);
    let (code, report) = lab.probe(None, &["--server", &coturn.addr().to_string(), "--expired"]);
    assert_eq!(code, 11, "{report:#}");
    assert_eq!(report["verdict"], "unauthorized");
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(diagnosis.contains("wrong secret and an expired credential look the same"));
    assert!(
        diagnosis.contains("it is expired, so (b) is the cause"),
        "{diagnosis}"
    );
    let expiry = creds::username_expiry(report["username"].as_str().unwrap()).unwrap();
    assert!(expiry < creds::unix_now());
}

#[test]
fn denied_peer_fails_with_the_403_diagnosis_and_receives_nothing() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &["--denied-peer-ip=127.0.0.2"]);
    let peer = UdpSocket::bind("127.0.0.2:0").expect("bind on 127.0.0.2");
    peer.set_nonblocking(true).unwrap();
    let peer_addr = peer.local_addr().unwrap().to_string();
    let (code, report) = lab.probe(
        None,
        &["--server", &coturn.addr().to_string(), "--peer", &peer_addr],
    );
    assert_eq!(code, 12, "{report:#}");
    assert_eq!(report["verdict"], "peer-forbidden");
    let names: Vec<String> = steps(&report).into_iter().map(|(n, _)| n).collect();
    assert!(!names.contains(&"send-data".to_string()), "{names:?}");
    assert_eq!(
        steps(&report)[3],
        ("create-permission".into(), "failed".into())
    );
    assert_eq!(report["steps"][3]["error_code"], 403);
    // The allocation was still released.
    assert_eq!(steps(&report).last().unwrap().0, "refresh");
    assert!(
        report["diagnosis"]
            .as_str()
            .unwrap()
            .contains("denied-peer-ip")
    );
    let mut buf = [0u8; 64];
    assert!(
        peer.recv_from(&mut buf).is_err(),
        "the denied peer got data"
    );
    assert!(
        coturn.log_text().contains("denied"),
        "{}",
        coturn.log_text()
    );
}

#[test]
fn silent_server_gets_the_no_answer_diagnosis_after_rfc_retransmissions() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    // Bound but silent: what a firewall that drops packets looks like from the client.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let (code, report) = lab.probe(
        None,
        &["--server", &server, "--rto", "40ms", "--timeout", "20s"],
    );
    assert_eq!(code, 10, "{report:#}");
    assert_eq!(report["verdict"], "no-answer");
    assert!(
        report["diagnosis"]
            .as_str()
            .unwrap()
            .contains("firewall drops UDP")
    );
    // RFC 8489 §6.2.1: Rc = 7 sends of the same request.
    silent
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut tids = Vec::new();
    let mut buf = [0u8; 1500];
    while let Ok(n) = silent.recv(&mut buf) {
        tids.push(decode(&buf[..n]).unwrap().message.transaction_id);
    }
    assert_eq!(tids.len(), 7, "sends seen by the silent server");
    assert!(tids.windows(2).all(|w| w[0] == w[1]));
    assert!(
        report["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("7 send(s)")
    );
}

#[test]
fn closed_port_gets_the_no_answer_diagnosis_at_once() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let port = crate::turn_harness::free_port(Ipv4Addr::LOCALHOST);
    for transport in ["udp", "tcp"] {
        let (code, report) = lab.probe(
            None,
            &[
                "--server",
                &format!("127.0.0.1:{port}"),
                "--transport",
                transport,
            ],
        );
        assert_eq!(code, 10, "{report:#}");
        assert!(
            report["diagnosis"]
                .as_str()
                .unwrap()
                .starts_with("Nothing listens on")
        );
    }
}

#[test]
fn peer_that_does_not_echo_gets_no_data_back_although_the_relay_delivered() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let coturn = Coturn::loopback(&lab.secret(), &[]);
    let mute = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let (code, report) = lab.probe(
        None,
        &[
            "--server",
            &coturn.addr().to_string(),
            "--peer",
            &mute.local_addr().unwrap().to_string(),
        ],
    );
    assert_eq!(code, 14, "{report:#}");
    assert_eq!(report["verdict"], "no-data-back");
    assert!(
        report["diagnosis"]
            .as_str()
            .unwrap()
            .contains("does not echo")
    );
    // The relay did deliver, from the relayed address: the data went through coturn.
    mute.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = mute.recv_from(&mut buf).expect("the relay delivered");
    assert_eq!(from, addr_of(&report, "relayed"));
    assert!(buf[..n].starts_with(b"cityd-probe send "));
    assert_eq!(steps(&report).last().unwrap().0, "refresh");
}

#[test]
fn quota_reached_gets_the_486_diagnosis() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let secret = lab.secret();
    let coturn = Coturn::loopback(&secret, &["--user-quota=1"]);
    // Hold one allocation for user "quota", using the codec directly.
    let held = allocate_with_codec(coturn.addr(), &secret, "quota");
    let (code, report) = lab.probe(
        None,
        &["--server", &coturn.addr().to_string(), "--user", "quota"],
    );
    assert_eq!(code, 13, "{report:#}");
    assert_eq!(report["verdict"], "quota-reached");
    assert_eq!(report["steps"][2]["error_code"], 486);
    // Another user is unaffected.
    let (code, _) = lab.probe(
        None,
        &["--server", &coturn.addr().to_string(), "--user", "other"],
    );
    assert_eq!(code, 0);
    drop(held);
}

/// Allocates a relay with a plain socket and the codec; the allocation lives as long as the socket.
fn allocate_with_codec(server: SocketAddr, secret: &str, user: &str) -> UdpSocket {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let exchange = |m: &Message, key: Option<&[u8]>| {
        socket.send(&m.encode(key, true).unwrap()).unwrap();
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf).unwrap();
        decode(&buf[..n]).unwrap().message
    };
    let challenge = exchange(
        &Message::request(Method::ALLOCATE).with(Attribute::RequestedTransport(17)),
        None,
    );
    let cred = RestCredential::for_ttl(secret, user, Duration::from_secs(600)).unwrap();
    let realm = challenge.realm().unwrap().to_string();
    let key = integrity::long_term_key(&cred.username, &realm, &cred.password);
    let answer = exchange(
        &Message::request(Method::ALLOCATE)
            .with(Attribute::RequestedTransport(17))
            .with(Attribute::Username(cred.username.clone()))
            .with(Attribute::Realm(realm))
            .with(Attribute::Nonce(challenge.nonce().unwrap().to_vec())),
        Some(&key),
    );
    assert_eq!(answer.class, Class::Success, "{answer:?}");
    socket
}

// ---------------------------------------------------------------------------------------------
// Independent cross-check with coturn's own client

fn uclient(port: u16, peer_port: u16, auth: &[&str], transport_tcp: bool) -> (i32, String) {
    let bin = require_tool("turnutils_uclient", "coturn");
    let mut c = std::process::Command::new(bin);
    c.args(["-p", &port.to_string()])
        .args(auth)
        .args(["-e", "127.0.0.1", "-r", &peer_port.to_string()])
        .args(["-n", "5", "-m", "1", "-c"]);
    if transport_tcp {
        c.arg("-t");
    }
    c.arg("127.0.0.1");
    let out = c.output().expect("run turnutils_uclient");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn turnutils_uclient_agrees_with_the_probe_and_accepts_cityd_creds() {
    let lab = Lab::new("192.0.2.10", 3478, 49152, 65535);
    let secret = lab.secret();
    let coturn = Coturn::loopback(&secret, &[]);
    let peer_port = crate::turn_harness::free_port(Ipv4Addr::LOCALHOST);
    let _peer = echo_peer(None, "127.0.0.1", peer_port, lab.scratch.path());

    // Our probe, through the same echo peer.
    let (code, report) = lab.probe(
        None,
        &[
            "--server",
            &coturn.addr().to_string(),
            "--peer",
            &format!("127.0.0.1:{peer_port}"),
        ],
    );
    assert_relay_works(code, &report, "udp");

    // coturn's client with the same secret (-W: a test-only secret on its command line).
    let (code, text) = uclient(
        coturn.port,
        peer_port,
        &["-W", &secret, "-u", "uclient"],
        false,
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("tot_send_msgs=5, tot_recv_msgs=5"), "{text}");

    // coturn's client with credentials minted by `cityd turn creds`, over UDP and TCP.
    let out = crate::common::run_ok(&mut lab.cityd(None, &["turn", "creds", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let (user, pass) = (
        v["username"].as_str().unwrap(),
        v["password"].as_str().unwrap(),
    );
    for tcp in [false, true] {
        let (code, text) = uclient(coturn.port, peer_port, &["-u", user, "-w", pass], tcp);
        assert_eq!(code, 0, "tcp={tcp}: {text}");
        assert!(text.contains("tot_send_msgs=5, tot_recv_msgs=5"), "{text}");
    }

    // And both refuse a wrong secret.
    let (code, text) = uclient(coturn.port, peer_port, &["-W", "wrong", "-u", "x"], false);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("Cannot complete Allocation"), "{text}");
    let wrong = lab.scratch.write("wrong", "wrong\n");
    let (code, _) = lab.probe(
        None,
        &[
            "--server",
            &coturn.addr().to_string(),
            "--secret-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 11);
}
