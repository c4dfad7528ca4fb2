//! TURN: the codec against every vector in turn-vectors/ (RFC 5769, RFC 8489 B.1, coturn 4.6.1
//! captures, credential derivations), `cityd turn creds`, and `cityd turn probe` against a real
//! coturn on loopback: success over UDP and TCP, each failure verdict, and turnutils_uclient as an
//! independent cross-check.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};

use cityd::turn::attr::{Attribute, kind};
use cityd::turn::codec::DecodeError;
use cityd::turn::creds::{self, RestCredential};
use cityd::turn::integrity;
use cityd::turn::{
    ChannelData, Class, Frame, IntegrityCheck, Message, Method, StreamDeframer, decode,
    decode_frame,
};

use crate::common::{reference, require_tool};
use crate::turn_harness::{Coturn, Lab, addr_of, echo_peer, steps};

// ---------------------------------------------------------------------------------------------
// Vectors

fn hex_vector(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(reference(&format!("turn-vectors/{name}")))
        .expect("read a hex vector");
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).expect("vector is hex")
}

fn json_vector(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference(&format!("turn-vectors/{name}")))
        .expect("read a JSON vector");
    serde_json::from_str(&text).expect("vector is JSON")
}

const SHORT_TERM_KEY: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";
const RFC5769_TID: &str = "b7e7a701bc34d686fa87dfae";

/// The vector with every attribute's pad bytes set to zero (walked independently of the codec).
fn zero_padding(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 20;
    while at + 4 <= out.len() {
        let len = usize::from(u16::from_be_bytes([out[at + 2], out[at + 3]]));
        let end = at + 4 + len;
        let padded = end + (4 - len % 4) % 4;
        for b in &mut out[end..padded] {
            *b = 0;
        }
        at = padded;
    }
    out
}

/// Offset of the first attribute of type `kind` (independent TLV walk).
fn offset_of(bytes: &[u8], kind: u16) -> usize {
    let mut at = 20;
    while at + 4 <= bytes.len() {
        if u16::from_be_bytes([bytes[at], bytes[at + 1]]) == kind {
            return at;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        at += 4 + len + (4 - len % 4) % 4;
    }
    panic!("attribute 0x{kind:04x} not found");
}

/// Our encoding of a decoded RFC 5769 short-term message: identical to the vector up to
/// MESSAGE-INTEGRITY once the vector's space padding is zeroed (we pad with zeros, as RFC 8489
/// requires of senders), and self-consistent after it.
fn assert_reencodes_modulo_padding(vector: &[u8], message: &Message) {
    let ours = message.encode(Some(SHORT_TERM_KEY), true).unwrap();
    assert_eq!(ours.len(), vector.len());
    let mi = offset_of(vector, kind::MESSAGE_INTEGRITY);
    assert_eq!(
        hex::encode(&ours[..mi]),
        hex::encode(&zero_padding(vector)[..mi])
    );
    let again = decode(&ours).unwrap();
    assert_eq!(&again.message, message);
    assert_eq!(
        again.verify_integrity(SHORT_TERM_KEY),
        IntegrityCheck::Valid
    );
    assert!(again.has_fingerprint);
}

#[test]
fn rfc5769_sample_request_decodes_to_the_documented_fields() {
    let bytes = hex_vector("rfc5769-2.1-sample-request.hex");
    assert_eq!(bytes.len(), 108);
    let d = decode(&bytes).expect("the RFC 5769 sample request decodes");
    let m = &d.message;
    assert_eq!((m.method, m.class), (Method::BINDING, Class::Request));
    assert_eq!(hex::encode(m.transaction_id.0), RFC5769_TID);
    assert_eq!(
        m.attributes,
        vec![
            Attribute::Software("STUN test client".into()),
            Attribute::Other {
                kind: 0x0024,
                value: hex::decode("6e0001ff").unwrap()
            },
            Attribute::Other {
                kind: 0x8029,
                value: hex::decode("932ff9b151263b36").unwrap()
            },
            Attribute::Username("evtj:h6vY".into()),
        ]
    );
    // The vector pads USERNAME with spaces: tolerated on receipt and covered by the MAC and CRC.
    assert!(bytes.windows(12).any(|w| w == b"evtj:h6vY   "));
    assert!(d.has_fingerprint);
    assert_eq!(d.verify_integrity(SHORT_TERM_KEY), IntegrityCheck::Valid);
    assert_eq!(d.verify_integrity(b"wrong"), IntegrityCheck::Invalid);
    assert_reencodes_modulo_padding(&bytes, m);
}

#[test]
fn rfc5769_ipv4_response_decodes_to_192_0_2_1_port_32853() {
    let bytes = hex_vector("rfc5769-2.2-ipv4-response.hex");
    assert_eq!(bytes.len(), 80);
    let d = decode(&bytes).unwrap();
    let m = &d.message;
    assert_eq!((m.method, m.class), (Method::BINDING, Class::Success));
    assert_eq!(m.software(), Some("test vector"));
    assert_eq!(
        m.xor_mapped_address(),
        Some("192.0.2.1:32853".parse().unwrap())
    );
    assert_eq!(d.verify_integrity(SHORT_TERM_KEY), IntegrityCheck::Valid);
    assert!(d.has_fingerprint);
    assert_reencodes_modulo_padding(&bytes, m);
}

#[test]
fn rfc5769_ipv6_response_decodes_to_its_ipv6_address() {
    let bytes = hex_vector("rfc5769-2.3-ipv6-response.hex");
    assert_eq!(bytes.len(), 92);
    let d = decode(&bytes).unwrap();
    assert_eq!(
        d.message.xor_mapped_address(),
        Some(
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap()
        )
    );
    assert_eq!(d.verify_integrity(SHORT_TERM_KEY), IntegrityCheck::Valid);
    assert!(d.has_fingerprint);
    assert_reencodes_modulo_padding(&bytes, &d.message);
}

#[test]
fn rfc5769_long_term_request_verifies_and_reencodes_byte_for_byte() {
    let bytes = hex_vector("rfc5769-2.4-long-term-request.hex");
    assert_eq!(bytes.len(), 116);
    let d = decode(&bytes).unwrap();
    let m = &d.message;
    assert_eq!(hex::encode(m.transaction_id.0), "78ad3433c6ad72c029da412e");
    let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    assert_eq!(
        m.attributes,
        vec![
            Attribute::Username(user.into()),
            Attribute::Nonce(b"f//499k954d6OL34oL9FSTvy64sA".to_vec()),
            Attribute::Realm("example.org".into()),
        ]
    );
    assert!(!d.has_fingerprint);
    // The password after SASLprep, as the vector's README documents.
    let key = integrity::long_term_key(user, "example.org", "TheMatrIX");
    assert_eq!(hex::encode(key), "e8ca7ad59d5eb0518e312911d2dab2a9");
    assert_eq!(d.verify_integrity(&key), IntegrityCheck::Valid);
    assert_eq!(m.encode(Some(&key), false).unwrap(), bytes);
}

#[test]
fn rfc8489_b1_as_published_is_refused_for_its_inconsistent_length() {
    let bytes = hex_vector("rfc8489-B.1-as-published.hex");
    assert_eq!(
        decode(&bytes).unwrap_err(),
        DecodeError::LengthMismatch {
            declared: 156,
            actual: 136
        }
    );
    // The README's finding stays reproducible: the MAC covers the bytes as printed.
    let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    let key = integrity::long_term_key_sha256(user, "example.org", "TheMatrIX");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(&bytes[..bytes.len() - 36]);
    assert!(mac.verify_slice(&bytes[bytes.len() - 32..]).is_ok());
}

#[test]
fn rfc8489_b1_corrected_decodes_and_its_sha256_integrity_verifies() {
    let bytes = hex_vector("rfc8489-B.1-corrected.hex");
    let d = decode(&bytes).unwrap();
    let m = &d.message;
    let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    assert_eq!(
        m.get(kind::USERHASH),
        Some(&Attribute::Other {
            kind: kind::USERHASH,
            value: hex::decode("4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704")
                .unwrap()
        })
    );
    assert_eq!(
        m.nonce(),
        Some(&b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"[..])
    );
    assert_eq!(m.realm(), Some("example.org"));
    assert_eq!(
        m.get(kind::PASSWORD_ALGORITHM),
        Some(&Attribute::Other {
            kind: kind::PASSWORD_ALGORITHM,
            value: vec![0, 2, 0, 0]
        })
    );
    let key = integrity::long_term_key_sha256(user, "example.org", "TheMatrIX");
    assert_eq!(
        hex::encode(key),
        "dd295a613b9058c3c23d6dc7165bda072304d989c9d0af3a8c7e184b4f9bb4a1"
    );
    assert_eq!(d.verify_integrity_sha256(&key), IntegrityCheck::Valid);
    let md5_key = integrity::long_term_key(user, "example.org", "TheMatrIX");
    assert_eq!(d.verify_integrity_sha256(&md5_key), IntegrityCheck::Invalid);
    assert_eq!(d.verify_integrity(&key), IntegrityCheck::Absent);
}

#[test]
fn credentials_json_derivations_are_reproduced() {
    let v = json_vector("credentials.json");
    for e in v["long_term_md5"].as_array().unwrap() {
        let key = integrity::long_term_key(
            e["username"].as_str().unwrap(),
            e["realm"].as_str().unwrap(),
            e["password"].as_str().unwrap(),
        );
        assert_eq!(hex::encode(key), e["key_hex"].as_str().unwrap());
    }
    for e in v["long_term_sha256"].as_array().unwrap() {
        let key = integrity::long_term_key_sha256(
            e["username"].as_str().unwrap(),
            e["realm"].as_str().unwrap(),
            e["password"].as_str().unwrap(),
        );
        assert_eq!(hex::encode(key), e["key_hex"].as_str().unwrap());
    }
    for e in v["turn_rest_api"].as_array().unwrap() {
        let username = e["username"].as_str().unwrap();
        let (expiry, user) = username.split_once(':').unwrap();
        let c =
            RestCredential::derive(e["secret"].as_str().unwrap(), user, expiry.parse().unwrap())
                .unwrap();
        assert_eq!(c.username, username);
        assert_eq!(c.password, e["password"].as_str().unwrap());
        let key = integrity::long_term_key(&c.username, e["realm"].as_str().unwrap(), &c.password);
        assert_eq!(
            hex::encode(key),
            e["long_term_key_md5_hex"].as_str().unwrap()
        );
    }
}

/// What each message of a capture is, in order (type, or channel for ChannelData).
const CAPTURE_KINDS: [u16; 14] = [
    0x0003, 0x0113, 0x0003, 0x0103, 0x0008, 0x0108, 0x0016, 0x0017, 0x0009, 0x0109, 0x4000, 0x4000,
    0x0004, 0x0104,
];

fn check_capture(name: &str) {
    let cap = json_vector(name);
    let tcp = cap["transport"] == "tcp";
    let text = |k: &str| cap[k].as_str().unwrap().to_string();
    let key = hex::decode(text("long_term_key_md5_hex")).unwrap();
    assert_eq!(
        creds::rest_password(&text("rest_secret"), &text("username")),
        text("password")
    );
    assert_eq!(
        integrity::long_term_key(&text("username"), &text("realm"), &text("password")).to_vec(),
        key
    );
    let relayed: SocketAddr = text("relayed_address").parse().unwrap();
    let mapped: SocketAddr = text("client_mapped_address").parse().unwrap();
    let peer: SocketAddr = text("peer_address").parse().unwrap();

    let messages = cap["messages"].as_array().unwrap();
    assert_eq!(messages.len(), CAPTURE_KINDS.len());
    for (i, entry) in messages.iter().enumerate() {
        let raw = hex::decode(entry["hex"].as_str().unwrap()).unwrap();
        // Over TCP, cut the bytes with our stream deframer: each entry is exactly one frame.
        let frame_bytes = if tcp {
            let mut d = StreamDeframer::new();
            d.push(&raw);
            let f = d.next_frame().unwrap().expect("one whole frame");
            assert_eq!(d.pending(), 0, "{name} #{i}: bytes left after one frame");
            f
        } else {
            raw.clone()
        };
        let from_client = entry["dir"] == "client->server";
        match decode_frame(&frame_bytes).unwrap_or_else(|e| panic!("{name} #{i}: {e}")) {
            Frame::ChannelData(cd) => {
                assert_eq!(cd.channel, CAPTURE_KINDS[i], "{name} #{i}");
                let expected: &[u8] = if from_client {
                    b"hello-chan-odd"
                } else {
                    b"echo:hello-chan-odd"
                };
                assert_eq!(cd.data, expected);
                let ours = cd.encode(tcp).unwrap();
                if from_client || !tcp {
                    assert_eq!(ours, frame_bytes, "{name} #{i}: ChannelData re-encoding");
                } else {
                    // The server's pad byte value is not ours to reproduce; its length is.
                    assert_eq!(ours.len(), frame_bytes.len());
                    assert_eq!(ours[..4 + cd.data.len()], frame_bytes[..4 + cd.data.len()]);
                }
            }
            Frame::Stun(d) => {
                let m = &d.message;
                let t = cityd::turn::codec::message_type(m.method, m.class);
                assert_eq!(t, CAPTURE_KINDS[i], "{name} #{i}: message type");
                assert!(d.has_fingerprint, "{name} #{i}: FINGERPRINT verified");
                let signed = d.has_integrity();
                if signed {
                    assert_eq!(
                        d.verify_integrity(&key),
                        IntegrityCheck::Valid,
                        "{name} #{i}"
                    );
                }
                // Strict encoder: the same attributes give the same bytes, MAC and CRC included.
                let ours = m
                    .encode(signed.then_some(&key[..]), d.has_fingerprint)
                    .unwrap();
                assert_eq!(
                    hex::encode(&ours),
                    hex::encode(&frame_bytes),
                    "{name} #{i}: re-encoding"
                );
                check_capture_fields(i, m, &cap, relayed, mapped, peer);
            }
        }
    }
}

fn check_capture_fields(
    i: usize,
    m: &Message,
    cap: &serde_json::Value,
    relayed: SocketAddr,
    mapped: SocketAddr,
    peer: SocketAddr,
) {
    match i {
        0 => {
            assert_eq!(
                m.get(kind::REQUESTED_TRANSPORT),
                Some(&Attribute::RequestedTransport(17))
            );
            assert!(m.get(kind::USERNAME).is_none());
        }
        1 => {
            let e = m.error_code().unwrap();
            assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
            assert_eq!(m.realm(), cap["realm"].as_str());
            assert_eq!(m.nonce(), cap["nonce"].as_str().map(str::as_bytes));
            assert_eq!(m.software(), Some("Coturn-4.6.1 'Gorst'"));
        }
        2 => assert_eq!(
            m.get(kind::USERNAME),
            Some(&Attribute::Username(
                cap["username"].as_str().unwrap().into()
            ))
        ),
        3 => {
            assert_eq!(m.xor_relayed_address(), Some(relayed));
            assert_eq!(m.xor_mapped_address(), Some(mapped));
            assert_eq!(m.lifetime(), Some(600));
        }
        4 | 8 => assert_eq!(m.xor_peer_address(), Some(peer)),
        6 => {
            assert_eq!(m.data(), Some(&b"hello-send"[..]));
            assert_eq!(m.xor_peer_address(), Some(peer));
        }
        7 => {
            assert_eq!(m.data(), Some(&b"echo:hello-send"[..]));
            assert_eq!(m.xor_peer_address(), Some(peer));
        }
        12 | 13 => assert_eq!(m.lifetime(), Some(0)),
        _ => {}
    }
    if i == 8 {
        assert_eq!(
            m.get(kind::CHANNEL_NUMBER),
            Some(&Attribute::ChannelNumber(0x4000))
        );
    }
}

#[test]
fn coturn_udp_capture_decodes_verifies_and_reencodes_byte_for_byte() {
    check_capture("coturn-4.6.1-capture-udp.json");
}

#[test]
fn coturn_tcp_capture_decodes_verifies_and_reencodes_byte_for_byte() {
    check_capture("coturn-4.6.1-capture-tcp.json");
}

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
