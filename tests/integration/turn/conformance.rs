//! The STUN/TURN codec against every upstream vector in the shared reference's turn-vectors/
//! (RFC 5769, RFC 8489 B.1, coturn 4.6.1 captures, credential derivations): decoded to the
//! documented fields, integrity verified, re-encoded byte for byte. Needs `../shared/reference`;
//! `scripts/test.sh` skips these by name when it is absent.

use std::net::SocketAddr;

use hmac::{Hmac, KeyInit, Mac};

use cityd::turn::attr::{Attribute, kind};
use cityd::turn::codec::DecodeError;
use cityd::turn::creds::{self, RestCredential};
use cityd::turn::integrity;
use cityd::turn::{
    Class, Frame, IntegrityCheck, Message, Method, StreamDeframer, decode, decode_frame,
};

use crate::common::conformance_reference;

fn hex_vector(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(conformance_reference(&format!("turn-vectors/{name}")))
        .expect("read a hex vector");
    let compact: String = text.split_whitespace().collect();
    hex::decode(compact).expect("vector is hex")
}

fn json_vector(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(conformance_reference(&format!("turn-vectors/{name}")))
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
