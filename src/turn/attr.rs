//! STUN and TURN attributes (RFC 8489 §14, RFC 8656 §18): their type numbers, a typed value for
//! each one a TURN client uses, and the value encoding, including XOR addresses for IPv4 and IPv6.
//! MESSAGE-INTEGRITY and FINGERPRINT are not here: the message codec places and checks them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use super::codec::{MAGIC_COOKIE, TransactionId};

/// Attribute type numbers.
pub mod kind {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub const USERHASH: u16 = 0x001E;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const SOFTWARE: u16 = 0x8022;
    pub const ALTERNATE_SERVER: u16 = 0x8023;
    pub const FINGERPRINT: u16 = 0x8028;

    /// Types 0x0000–0x7FFF must be understood by the receiver (RFC 8489 §14).
    pub fn comprehension_required(kind: u16) -> bool {
        kind < 0x8000
    }

    /// A readable name for reports and error messages.
    pub fn name(kind: u16) -> String {
        let known = match kind {
            MAPPED_ADDRESS => "MAPPED-ADDRESS",
            USERNAME => "USERNAME",
            MESSAGE_INTEGRITY => "MESSAGE-INTEGRITY",
            ERROR_CODE => "ERROR-CODE",
            UNKNOWN_ATTRIBUTES => "UNKNOWN-ATTRIBUTES",
            CHANNEL_NUMBER => "CHANNEL-NUMBER",
            LIFETIME => "LIFETIME",
            XOR_PEER_ADDRESS => "XOR-PEER-ADDRESS",
            DATA => "DATA",
            REALM => "REALM",
            NONCE => "NONCE",
            XOR_RELAYED_ADDRESS => "XOR-RELAYED-ADDRESS",
            REQUESTED_ADDRESS_FAMILY => "REQUESTED-ADDRESS-FAMILY",
            EVEN_PORT => "EVEN-PORT",
            REQUESTED_TRANSPORT => "REQUESTED-TRANSPORT",
            DONT_FRAGMENT => "DONT-FRAGMENT",
            MESSAGE_INTEGRITY_SHA256 => "MESSAGE-INTEGRITY-SHA256",
            PASSWORD_ALGORITHM => "PASSWORD-ALGORITHM",
            USERHASH => "USERHASH",
            XOR_MAPPED_ADDRESS => "XOR-MAPPED-ADDRESS",
            RESERVATION_TOKEN => "RESERVATION-TOKEN",
            SOFTWARE => "SOFTWARE",
            ALTERNATE_SERVER => "ALTERNATE-SERVER",
            FINGERPRINT => "FINGERPRINT",
            _ => return format!("attribute 0x{kind:04x}"),
        };
        known.to_string()
    }
}

/// REQUESTED-TRANSPORT protocol number for UDP, the only relay transport RFC 8656 defines.
pub const TRANSPORT_UDP: u8 = 17;

/// An address family as STUN numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamily {
    V4,
    V6,
}

impl AddressFamily {
    pub fn of(addr: &SocketAddr) -> Self {
        if addr.is_ipv4() { Self::V4 } else { Self::V6 }
    }
    fn code(self) -> u8 {
        match self {
            Self::V4 => 0x01,
            Self::V6 => 0x02,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Self::V4),
            0x02 => Some(Self::V6),
            _ => None,
        }
    }
}

/// ERROR-CODE: the numeric code (300–699) and the reason phrase, NUL bytes trimmed (coturn 4.6.1
/// counts trailing NULs into the phrase's length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: u16,
    pub reason: String,
}

/// One attribute. Types a TURN client acts on are typed; anything else is kept as raw bytes so
/// that a decoded message re-encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    MappedAddress(SocketAddr),
    XorMappedAddress(SocketAddr),
    XorPeerAddress(SocketAddr),
    XorRelayedAddress(SocketAddr),
    AlternateServer(SocketAddr),
    Username(String),
    Realm(String),
    /// Echoed byte for byte, so kept as bytes.
    Nonce(Vec<u8>),
    Software(String),
    ErrorCode(ErrorCode),
    UnknownAttributes(Vec<u16>),
    ChannelNumber(u16),
    Lifetime(u32),
    Data(Vec<u8>),
    RequestedAddressFamily(AddressFamily),
    /// EVEN-PORT with its R bit (reserve the next port too).
    EvenPort(bool),
    RequestedTransport(u8),
    DontFragment,
    ReservationToken([u8; 8]),
    /// Any other type (PRIORITY, USERHASH, …): kept verbatim.
    Other {
        kind: u16,
        value: Vec<u8>,
    },
}

/// Why one attribute's value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{name} has a malformed value ({len} bytes): {problem}")]
pub struct AttributeError {
    pub name: String,
    pub len: usize,
    pub problem: &'static str,
}

impl Attribute {
    /// The attribute's type number.
    pub fn kind(&self) -> u16 {
        match self {
            Self::MappedAddress(_) => kind::MAPPED_ADDRESS,
            Self::XorMappedAddress(_) => kind::XOR_MAPPED_ADDRESS,
            Self::XorPeerAddress(_) => kind::XOR_PEER_ADDRESS,
            Self::XorRelayedAddress(_) => kind::XOR_RELAYED_ADDRESS,
            Self::AlternateServer(_) => kind::ALTERNATE_SERVER,
            Self::Username(_) => kind::USERNAME,
            Self::Realm(_) => kind::REALM,
            Self::Nonce(_) => kind::NONCE,
            Self::Software(_) => kind::SOFTWARE,
            Self::ErrorCode(_) => kind::ERROR_CODE,
            Self::UnknownAttributes(_) => kind::UNKNOWN_ATTRIBUTES,
            Self::ChannelNumber(_) => kind::CHANNEL_NUMBER,
            Self::Lifetime(_) => kind::LIFETIME,
            Self::Data(_) => kind::DATA,
            Self::RequestedAddressFamily(_) => kind::REQUESTED_ADDRESS_FAMILY,
            Self::EvenPort(_) => kind::EVEN_PORT,
            Self::RequestedTransport(_) => kind::REQUESTED_TRANSPORT,
            Self::DontFragment => kind::DONT_FRAGMENT,
            Self::ReservationToken(_) => kind::RESERVATION_TOKEN,
            Self::Other { kind, .. } => *kind,
        }
    }

    /// The value bytes, without the TLV header and without padding.
    pub fn encode_value(&self, tid: &TransactionId) -> Vec<u8> {
        match self {
            Self::MappedAddress(a) | Self::AlternateServer(a) => plain_address(a),
            Self::XorMappedAddress(a) | Self::XorPeerAddress(a) | Self::XorRelayedAddress(a) => {
                xor_address(a, tid)
            }
            Self::Username(s) | Self::Realm(s) | Self::Software(s) => s.as_bytes().to_vec(),
            Self::Nonce(b) | Self::Data(b) => b.clone(),
            Self::ErrorCode(e) => {
                let mut v = vec![0, 0, ((e.code / 100) & 0x07) as u8, (e.code % 100) as u8];
                v.extend_from_slice(e.reason.as_bytes());
                v
            }
            Self::UnknownAttributes(kinds) => kinds.iter().flat_map(|k| k.to_be_bytes()).collect(),
            Self::ChannelNumber(n) => {
                let [hi, lo] = n.to_be_bytes();
                vec![hi, lo, 0, 0]
            }
            Self::Lifetime(s) => s.to_be_bytes().to_vec(),
            Self::RequestedAddressFamily(f) => vec![f.code(), 0, 0, 0],
            Self::EvenPort(reserve) => vec![if *reserve { 0x80 } else { 0 }],
            Self::RequestedTransport(p) => vec![*p, 0, 0, 0],
            Self::DontFragment => Vec::new(),
            Self::ReservationToken(t) => t.to_vec(),
            Self::Other { value, .. } => value.clone(),
        }
    }

    /// Reads one attribute value. Unknown types become `Other`; a known type with a value of the
    /// wrong shape is an error.
    pub fn decode(kind: u16, value: &[u8], tid: &TransactionId) -> Result<Self, AttributeError> {
        let bad = |problem| AttributeError {
            name: kind::name(kind),
            len: value.len(),
            problem,
        };
        let attr = match kind {
            kind::MAPPED_ADDRESS => Self::MappedAddress(read_address(value, None).map_err(bad)?),
            kind::ALTERNATE_SERVER => {
                Self::AlternateServer(read_address(value, None).map_err(bad)?)
            }
            kind::XOR_MAPPED_ADDRESS => {
                Self::XorMappedAddress(read_address(value, Some(tid)).map_err(bad)?)
            }
            kind::XOR_PEER_ADDRESS => {
                Self::XorPeerAddress(read_address(value, Some(tid)).map_err(bad)?)
            }
            kind::XOR_RELAYED_ADDRESS => {
                Self::XorRelayedAddress(read_address(value, Some(tid)).map_err(bad)?)
            }
            kind::USERNAME => Self::Username(
                String::from_utf8(value.to_vec()).map_err(|_| bad("USERNAME is not UTF-8"))?,
            ),
            kind::REALM => Self::Realm(
                String::from_utf8(value.to_vec()).map_err(|_| bad("REALM is not UTF-8"))?,
            ),
            kind::NONCE => Self::Nonce(value.to_vec()),
            // Informational text: decoded leniently rather than failing the message.
            kind::SOFTWARE => Self::Software(String::from_utf8_lossy(value).into_owned()),
            kind::ERROR_CODE => {
                if value.len() < 4 {
                    return Err(bad("shorter than the 4-byte class/number header"));
                }
                let class = u16::from(value[2] & 0x07);
                let number = u16::from(value[3]);
                if number > 99 {
                    return Err(bad("error number above 99"));
                }
                let reason = String::from_utf8_lossy(&value[4..])
                    .trim_end_matches('\0')
                    .to_string();
                Self::ErrorCode(ErrorCode {
                    code: class * 100 + number,
                    reason,
                })
            }
            kind::UNKNOWN_ATTRIBUTES => {
                if value.len() % 2 != 0 {
                    return Err(bad("odd length; it lists 16-bit types"));
                }
                Self::UnknownAttributes(
                    value
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                )
            }
            kind::CHANNEL_NUMBER => {
                if value.len() != 4 {
                    return Err(bad("must be 4 bytes"));
                }
                Self::ChannelNumber(u16::from_be_bytes([value[0], value[1]]))
            }
            kind::LIFETIME => Self::Lifetime(u32::from_be_bytes(
                value.try_into().map_err(|_| bad("must be 4 bytes"))?,
            )),
            kind::DATA => Self::Data(value.to_vec()),
            kind::REQUESTED_ADDRESS_FAMILY => {
                if value.len() != 4 {
                    return Err(bad("must be 4 bytes"));
                }
                Self::RequestedAddressFamily(
                    AddressFamily::from_code(value[0]).ok_or_else(|| bad("unknown family"))?,
                )
            }
            kind::EVEN_PORT => match value.first() {
                Some(b) if value.len() <= 4 => Self::EvenPort(b & 0x80 != 0),
                _ => return Err(bad("must be 1 byte")),
            },
            kind::REQUESTED_TRANSPORT => {
                if value.len() != 4 {
                    return Err(bad("must be 4 bytes"));
                }
                Self::RequestedTransport(value[0])
            }
            kind::DONT_FRAGMENT => {
                if !value.is_empty() {
                    return Err(bad("must be empty"));
                }
                Self::DontFragment
            }
            kind::RESERVATION_TOKEN => {
                Self::ReservationToken(value.try_into().map_err(|_| bad("must be 8 bytes"))?)
            }
            other => Self::Other {
                kind: other,
                value: value.to_vec(),
            },
        };
        Ok(attr)
    }
}

fn plain_address(addr: &SocketAddr) -> Vec<u8> {
    let mut v = vec![0, AddressFamily::of(addr).code()];
    v.extend_from_slice(&addr.port().to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => v.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => v.extend_from_slice(&ip.octets()),
    }
    v
}

/// The XOR mask for an address: the cookie, then (for IPv6) the transaction ID (RFC 8489 §14.2).
fn xor_mask(tid: &TransactionId) -> [u8; 16] {
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    mask[4..].copy_from_slice(&tid.0);
    mask
}

fn xor_address(addr: &SocketAddr, tid: &TransactionId) -> Vec<u8> {
    let mut v = plain_address(addr);
    apply_xor(&mut v[2..], tid);
    v
}

/// XORs `port ‖ address` in place: the port with the cookie's top 16 bits, the address with the
/// cookie (IPv4) or the cookie and transaction ID (IPv6).
fn apply_xor(port_and_address: &mut [u8], tid: &TransactionId) {
    let mask = xor_mask(tid);
    let (port, address) = port_and_address.split_at_mut(2);
    port[0] ^= mask[0];
    port[1] ^= mask[1];
    for (b, m) in address.iter_mut().zip(mask) {
        *b ^= m;
    }
}

/// Reads a (XOR-)address value; `tid` given means the value is XORed.
fn read_address(value: &[u8], tid: Option<&TransactionId>) -> Result<SocketAddr, &'static str> {
    if value.len() < 4 {
        return Err("shorter than the 4-byte family/port header");
    }
    let family = AddressFamily::from_code(value[1]).ok_or("unknown address family")?;
    let expected = match family {
        AddressFamily::V4 => 8,
        AddressFamily::V6 => 20,
    };
    if value.len() != expected {
        return Err("length does not match its address family");
    }
    let mut body = value[2..].to_vec();
    if let Some(tid) = tid {
        apply_xor(&mut body, tid);
    }
    let port = u16::from_be_bytes([body[0], body[1]]);
    let ip = match family {
        AddressFamily::V4 => {
            let o: [u8; 4] = body[2..6].try_into().map_err(|_| "truncated IPv4")?;
            IpAddr::V4(Ipv4Addr::from(o))
        }
        AddressFamily::V6 => {
            let o: [u8; 16] = body[2..18].try_into().map_err(|_| "truncated IPv6")?;
            IpAddr::V6(Ipv6Addr::from(o))
        }
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid() -> TransactionId {
        TransactionId(*b"\xb7\xe7\xa7\x01\xbc\x34\xd6\x86\xfa\x87\xdf\xae")
    }

    #[test]
    fn xor_ipv4_matches_rfc5769_2_2() {
        let addr: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let value = Attribute::XorMappedAddress(addr).encode_value(&tid());
        assert_eq!(hex::encode(&value), "0001a147e112a643");
        assert_eq!(
            Attribute::decode(kind::XOR_MAPPED_ADDRESS, &value, &tid()).unwrap(),
            Attribute::XorMappedAddress(addr)
        );
    }

    #[test]
    fn xor_ipv6_matches_rfc5769_2_3() {
        let addr: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let value = Attribute::XorMappedAddress(addr).encode_value(&tid());
        assert_eq!(
            hex::encode(&value),
            "0002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
        );
    }

    #[test]
    fn error_code_reason_nuls_are_trimmed() {
        let mut value = vec![0, 0, 4, 38];
        value.extend_from_slice(b"Stale nonce\0");
        let Attribute::ErrorCode(e) = Attribute::decode(kind::ERROR_CODE, &value, &tid()).unwrap()
        else {
            panic!("not an ERROR-CODE");
        };
        assert_eq!(e.code, 438);
        assert_eq!(e.reason, "Stale nonce");
    }

    #[test]
    fn malformed_known_attributes_are_errors_not_panics() {
        for (k, v) in [
            (kind::XOR_MAPPED_ADDRESS, &[0u8, 1, 2][..]),
            (kind::XOR_MAPPED_ADDRESS, &[0, 2, 0, 0, 1, 2, 3, 4][..]),
            (kind::XOR_PEER_ADDRESS, &[0, 9, 0, 0, 1, 2, 3, 4][..]),
            (kind::LIFETIME, &[0, 0, 1][..]),
            (kind::ERROR_CODE, &[0, 0, 4][..]),
            (kind::ERROR_CODE, &[0, 0, 4, 200][..]),
            (kind::CHANNEL_NUMBER, &[0x40][..]),
            (kind::UNKNOWN_ATTRIBUTES, &[0, 1, 2][..]),
            (kind::USERNAME, &[0xff, 0xfe][..]),
            (kind::EVEN_PORT, &[][..]),
            (kind::RESERVATION_TOKEN, &[1, 2, 3][..]),
            (kind::DONT_FRAGMENT, &[1][..]),
        ] {
            let err = Attribute::decode(k, v, &tid()).unwrap_err();
            assert_eq!(err.name, kind::name(k));
        }
    }
}
