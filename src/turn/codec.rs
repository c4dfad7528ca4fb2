//! STUN messages (RFC 8489 §5, §6.3, §14): the header with its method/class bits and transaction
//! ID, decoding a whole message into typed attributes (never panicking, whatever the bytes), and
//! encoding one with MESSAGE-INTEGRITY and FINGERPRINT placed and computed as §14.5/§14.7 require.

use thiserror::Error;

use super::attr::{Attribute, AttributeError, ErrorCode, kind};
use super::integrity;

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const HEADER_LEN: usize = 20;
/// The length field is 16 bits, so this is the largest message there is.
pub const MAX_MESSAGE_LEN: usize = HEADER_LEN + 0xFFFF;

/// A STUN method (12 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Method(pub u16);

impl Method {
    pub const BINDING: Method = Method(0x001);
    pub const ALLOCATE: Method = Method(0x003);
    pub const REFRESH: Method = Method(0x004);
    pub const SEND: Method = Method(0x006);
    pub const DATA: Method = Method(0x007);
    pub const CREATE_PERMISSION: Method = Method(0x008);
    pub const CHANNEL_BIND: Method = Method(0x009);

    pub fn name(self) -> String {
        match self {
            Self::BINDING => "Binding".into(),
            Self::ALLOCATE => "Allocate".into(),
            Self::REFRESH => "Refresh".into(),
            Self::SEND => "Send".into(),
            Self::DATA => "Data".into(),
            Self::CREATE_PERMISSION => "CreatePermission".into(),
            Self::CHANNEL_BIND => "ChannelBind".into(),
            Method(m) => format!("method 0x{m:03x}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Self::Request => 0,
            Self::Indication => 1,
            Self::Success => 2,
            Self::Error => 3,
        }
    }
    fn from_bits(bits: u16) -> Self {
        match bits & 3 {
            0 => Self::Request,
            1 => Self::Indication,
            2 => Self::Success,
            _ => Self::Error,
        }
    }
}

/// Method and class packed into the 14-bit message type (Figure 3 of RFC 8489 §5).
pub fn message_type(method: Method, class: Class) -> u16 {
    let m = method.0 & 0x0FFF;
    let c = class.bits();
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | ((c & 1) << 4) | ((c & 2) << 7)
}

/// The inverse of [`message_type`].
pub fn split_message_type(t: u16) -> (Method, Class) {
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    let class = ((t >> 4) & 1) | ((t >> 7) & 2);
    (Method(method), Class::from_bits(class))
}

/// The 96-bit transaction ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TransactionId(pub [u8; 12]);

impl TransactionId {
    /// A fresh ID from the OS-seeded generator: every request gets its own (RFC 8489 §6).
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl std::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A message: header fields plus its attributes in order, MESSAGE-INTEGRITY and FINGERPRINT
/// excluded (encoding adds them; decoding reports them in [`Decoded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub method: Method,
    pub class: Class,
    pub transaction_id: TransactionId,
    pub attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error(
        "{name} value is {len} bytes; a STUN attribute holds at most 65535 (send less data per message)"
    )]
    AttributeTooLong { name: String, len: usize },
    #[error(
        "the STUN message would be {len} bytes; the length field allows at most {MAX_MESSAGE_LEN} (send less data per message)"
    )]
    MessageTooLong { len: usize },
    #[error(
        "{name} cannot be given as an ordinary attribute; pass the key or the fingerprint flag to encode()"
    )]
    ReservedAttribute { name: String },
}

impl Message {
    pub fn new(method: Method, class: Class, transaction_id: TransactionId) -> Self {
        Self {
            method,
            class,
            transaction_id,
            attributes: Vec::new(),
        }
    }

    /// A request with a fresh random transaction ID.
    pub fn request(method: Method) -> Self {
        Self::new(method, Class::Request, TransactionId::random())
    }

    /// An indication with a fresh random transaction ID.
    pub fn indication(method: Method) -> Self {
        Self::new(method, Class::Indication, TransactionId::random())
    }

    pub fn with(mut self, attribute: Attribute) -> Self {
        self.attributes.push(attribute);
        self
    }

    /// The first attribute of a type (§14: only the first occurrence needs processing).
    pub fn get(&self, kind: u16) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.kind() == kind)
    }

    pub fn error_code(&self) -> Option<&ErrorCode> {
        match self.get(kind::ERROR_CODE) {
            Some(Attribute::ErrorCode(e)) => Some(e),
            _ => None,
        }
    }

    pub fn xor_mapped_address(&self) -> Option<std::net::SocketAddr> {
        match self.get(kind::XOR_MAPPED_ADDRESS) {
            Some(Attribute::XorMappedAddress(a)) => Some(*a),
            _ => match self.get(kind::MAPPED_ADDRESS) {
                Some(Attribute::MappedAddress(a)) => Some(*a),
                _ => None,
            },
        }
    }

    pub fn xor_relayed_address(&self) -> Option<std::net::SocketAddr> {
        match self.get(kind::XOR_RELAYED_ADDRESS) {
            Some(Attribute::XorRelayedAddress(a)) => Some(*a),
            _ => None,
        }
    }

    pub fn xor_peer_address(&self) -> Option<std::net::SocketAddr> {
        match self.get(kind::XOR_PEER_ADDRESS) {
            Some(Attribute::XorPeerAddress(a)) => Some(*a),
            _ => None,
        }
    }

    pub fn lifetime(&self) -> Option<u32> {
        match self.get(kind::LIFETIME) {
            Some(Attribute::Lifetime(s)) => Some(*s),
            _ => None,
        }
    }

    pub fn realm(&self) -> Option<&str> {
        match self.get(kind::REALM) {
            Some(Attribute::Realm(r)) => Some(r),
            _ => None,
        }
    }

    pub fn nonce(&self) -> Option<&[u8]> {
        match self.get(kind::NONCE) {
            Some(Attribute::Nonce(n)) => Some(n),
            _ => None,
        }
    }

    pub fn data(&self) -> Option<&[u8]> {
        match self.get(kind::DATA) {
            Some(Attribute::Data(d)) => Some(d),
            _ => None,
        }
    }

    pub fn software(&self) -> Option<&str> {
        match self.get(kind::SOFTWARE) {
            Some(Attribute::Software(s)) => Some(s),
            _ => None,
        }
    }

    /// Comprehension-required attribute types this codec does not know (§6.3.3: such a
    /// success response means the transaction failed).
    pub fn unknown_required(&self) -> Vec<u16> {
        self.attributes
            .iter()
            .filter_map(|a| match a {
                Attribute::Other { kind, .. } if kind::comprehension_required(*kind) => Some(*kind),
                _ => None,
            })
            .collect()
    }

    /// Serialises the message. With `key`, MESSAGE-INTEGRITY (HMAC-SHA1) follows the attributes;
    /// with `fingerprint`, FINGERPRINT comes last. Pad bytes are zero.
    pub fn encode(&self, key: Option<&[u8]>, fingerprint: bool) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::with_capacity(HEADER_LEN + 64);
        buf.extend_from_slice(&message_type(self.method, self.class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&self.transaction_id.0);
        for attribute in &self.attributes {
            let k = attribute.kind();
            if matches!(k, kind::MESSAGE_INTEGRITY | kind::FINGERPRINT) {
                return Err(EncodeError::ReservedAttribute {
                    name: kind::name(k),
                });
            }
            let value = attribute.encode_value(&self.transaction_id);
            push_attribute(&mut buf, k, &value)?;
        }
        if let Some(key) = key {
            set_length(&mut buf, 4 + integrity::HMAC_SHA1_LEN)?;
            let mac = integrity::hmac_sha1(key, &buf);
            push_attribute(&mut buf, kind::MESSAGE_INTEGRITY, &mac)?;
        }
        if fingerprint {
            set_length(&mut buf, 8)?;
            let crc = integrity::fingerprint(&buf);
            push_attribute(&mut buf, kind::FINGERPRINT, &crc.to_be_bytes())?;
        }
        set_length(&mut buf, 0)?;
        Ok(buf)
    }
}

fn push_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(value.len()).map_err(|_| EncodeError::AttributeTooLong {
        name: kind::name(kind),
        len: value.len(),
    })?;
    buf.extend_from_slice(&kind.to_be_bytes());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + padding(value.len()), 0);
    Ok(())
}

/// Sets the header's length field to the attribute bytes so far plus `still_to_come`.
fn set_length(buf: &mut [u8], still_to_come: usize) -> Result<(), EncodeError> {
    let len = buf.len() - HEADER_LEN + still_to_come;
    let field = u16::try_from(len).map_err(|_| EncodeError::MessageTooLong {
        len: len + HEADER_LEN,
    })?;
    buf[2..4].copy_from_slice(&field.to_be_bytes());
    Ok(())
}

/// Bytes of padding after a value of `len` bytes.
pub fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

/// Why bytes are not an acceptable STUN message. Over UDP such a datagram is discarded (§6.3).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("{len} bytes is shorter than the 20-byte STUN header")]
    TooShort { len: usize },
    #[error(
        "the first two bits are not 00 (first byte 0x{first:02x}), so this is not a STUN message"
    )]
    NotStun { first: u8 },
    #[error("magic cookie is 0x{found:08x}, not 0x2112a442: not an RFC 5389/8489 STUN message")]
    BadCookie { found: u32 },
    #[error("length field {declared} is not a multiple of 4")]
    UnalignedLength { declared: usize },
    #[error("length field says {declared} attribute bytes but {actual} follow the header")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("{name} at offset {offset} runs past the end of the message")]
    AttributeOverrun { name: String, offset: usize },
    #[error(transparent)]
    Attribute(#[from] AttributeError),
    #[error("MESSAGE-INTEGRITY is {len} bytes, not 20")]
    BadIntegrityLength { len: usize },
    #[error("FINGERPRINT is {len} bytes, not 4")]
    BadFingerprintLength { len: usize },
    #[error("FINGERPRINT is not the last attribute")]
    FingerprintNotLast,
    #[error(
        "FINGERPRINT 0x{found:08x} does not match the message (expected 0x{expected:08x}): corrupted or not STUN"
    )]
    FingerprintMismatch { found: u32, expected: u32 },
}

/// Where MESSAGE-INTEGRITY (or -SHA256) sits in the received bytes, for later verification.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IntegrityTag {
    offset: usize,
    tag: Vec<u8>,
}

/// Result of checking a received MESSAGE-INTEGRITY against a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    Absent,
    Valid,
    Invalid,
}

/// A decoded message plus what is needed to verify it: the bytes as received and the position of
/// MESSAGE-INTEGRITY. A FINGERPRINT, when present, was verified during decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub message: Message,
    pub has_fingerprint: bool,
    integrity: Option<IntegrityTag>,
    integrity_sha256: Option<IntegrityTag>,
    raw: Vec<u8>,
}

impl Decoded {
    pub fn has_integrity(&self) -> bool {
        self.integrity.is_some()
    }

    /// Checks MESSAGE-INTEGRITY: HMAC-SHA1 over the bytes before it, with the length field
    /// rewritten to end just after it (§14.5), compared in constant time.
    pub fn verify_integrity(&self, key: &[u8]) -> IntegrityCheck {
        match &self.integrity {
            None => IntegrityCheck::Absent,
            Some(t) => verdict(integrity::verify_hmac_sha1(
                key,
                &self.signed_prefix(t),
                &t.tag,
            )),
        }
    }

    /// Checks MESSAGE-INTEGRITY-SHA256 the same way (§14.6).
    pub fn verify_integrity_sha256(&self, key: &[u8]) -> IntegrityCheck {
        match &self.integrity_sha256 {
            None => IntegrityCheck::Absent,
            Some(t) => verdict(integrity::verify_hmac_sha256(
                key,
                &self.signed_prefix(t),
                &t.tag,
            )),
        }
    }

    /// The message bytes exactly as received.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    fn signed_prefix(&self, t: &IntegrityTag) -> Vec<u8> {
        let mut prefix = self.raw[..t.offset].to_vec();
        // Cannot overflow: offset and tag length both come from a message of at most 65555 bytes
        // whose attributes ended inside it.
        let len = (t.offset - HEADER_LEN + 4 + t.tag.len()) as u16;
        prefix[2..4].copy_from_slice(&len.to_be_bytes());
        prefix
    }
}

fn verdict(ok: bool) -> IntegrityCheck {
    if ok {
        IntegrityCheck::Valid
    } else {
        IntegrityCheck::Invalid
    }
}

/// Decodes one whole STUN message (one UDP datagram, or one frame cut from a TCP stream).
/// Pad bytes may hold any value (RFC 5769 pads with spaces; coturn sometimes with garbage).
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort { len: bytes.len() });
    }
    if bytes[0] & 0xC0 != 0 {
        return Err(DecodeError::NotStun { first: bytes[0] });
    }
    let cookie = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if cookie != MAGIC_COOKIE {
        return Err(DecodeError::BadCookie { found: cookie });
    }
    let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if declared % 4 != 0 {
        return Err(DecodeError::UnalignedLength { declared });
    }
    let actual = bytes.len() - HEADER_LEN;
    if declared != actual {
        return Err(DecodeError::LengthMismatch { declared, actual });
    }
    let (method, class) = split_message_type(u16::from_be_bytes([bytes[0], bytes[1]]));
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&bytes[8..20]);
    let transaction_id = TransactionId(tid);

    let mut message = Message::new(method, class, transaction_id);
    let mut integrity = None;
    let mut integrity_sha256 = None;
    let mut has_fingerprint = false;
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        if has_fingerprint {
            return Err(DecodeError::FingerprintNotLast);
        }
        if bytes.len() - offset < 4 {
            return Err(DecodeError::AttributeOverrun {
                name: "attribute header".into(),
                offset,
            });
        }
        let k = u16::from_be_bytes([bytes[offset], bytes[offset + 1]]);
        let len = usize::from(u16::from_be_bytes([bytes[offset + 2], bytes[offset + 3]]));
        let value_start = offset + 4;
        let next = value_start + len + padding(len);
        if next > bytes.len() {
            return Err(DecodeError::AttributeOverrun {
                name: kind::name(k),
                offset,
            });
        }
        let value = &bytes[value_start..value_start + len];
        let sealed = integrity.is_some() || integrity_sha256.is_some();
        match k {
            kind::FINGERPRINT => {
                let found = u32::from_be_bytes(
                    value
                        .try_into()
                        .map_err(|_| DecodeError::BadFingerprintLength { len })?,
                );
                let expected = integrity::fingerprint(&bytes[..offset]);
                if found != expected {
                    return Err(DecodeError::FingerprintMismatch { found, expected });
                }
                has_fingerprint = true;
            }
            kind::MESSAGE_INTEGRITY if !sealed => {
                if len != integrity::HMAC_SHA1_LEN {
                    return Err(DecodeError::BadIntegrityLength { len });
                }
                integrity = Some(IntegrityTag {
                    offset,
                    tag: value.to_vec(),
                });
            }
            kind::MESSAGE_INTEGRITY_SHA256 if integrity_sha256.is_none() => {
                integrity_sha256 = Some(IntegrityTag {
                    offset,
                    tag: value.to_vec(),
                });
            }
            // §9: after MESSAGE-INTEGRITY everything but the two above is ignored.
            _ if sealed => {}
            _ => message
                .attributes
                .push(Attribute::decode(k, value, &transaction_id)?),
        }
        offset = next;
    }
    Ok(Decoded {
        message,
        has_fingerprint,
        integrity,
        integrity_sha256,
        raw: bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_types_match_the_table_in_turn_md() {
        for (method, class, t) in [
            (Method::BINDING, Class::Request, 0x0001),
            (Method::BINDING, Class::Success, 0x0101),
            (Method::BINDING, Class::Error, 0x0111),
            (Method::BINDING, Class::Indication, 0x0011),
            (Method::ALLOCATE, Class::Request, 0x0003),
            (Method::ALLOCATE, Class::Success, 0x0103),
            (Method::ALLOCATE, Class::Error, 0x0113),
            (Method::REFRESH, Class::Success, 0x0104),
            (Method::SEND, Class::Indication, 0x0016),
            (Method::DATA, Class::Indication, 0x0017),
            (Method::CREATE_PERMISSION, Class::Success, 0x0108),
            (Method::CHANNEL_BIND, Class::Error, 0x0119),
        ] {
            assert_eq!(message_type(method, class), t, "{}", method.name());
            assert_eq!(split_message_type(t), (method, class));
        }
    }

    #[test]
    fn every_method_and_class_survives_packing() {
        for m in 0..0x1000u16 {
            for class in [
                Class::Request,
                Class::Indication,
                Class::Success,
                Class::Error,
            ] {
                let t = message_type(Method(m), class);
                assert_eq!(t & 0xC000, 0);
                assert_eq!(split_message_type(t), (Method(m), class));
            }
        }
    }

    #[test]
    fn integrity_and_fingerprint_verify_and_detect_tampering() {
        let msg = Message::request(Method::ALLOCATE)
            .with(Attribute::RequestedTransport(17))
            .with(Attribute::Username("1:alice".into()));
        let bytes = msg.encode(Some(b"key"), true).unwrap();
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.message, msg);
        assert!(decoded.has_fingerprint);
        assert_eq!(decoded.verify_integrity(b"key"), IntegrityCheck::Valid);
        assert_eq!(decoded.verify_integrity(b"other"), IntegrityCheck::Invalid);

        let mut tampered = bytes.clone();
        tampered[HEADER_LEN + 5] ^= 0x01;
        assert!(matches!(
            decode(&tampered),
            Err(DecodeError::FingerprintMismatch { .. })
        ));
    }

    #[test]
    fn attributes_after_integrity_are_ignored() {
        let msg = Message::request(Method::REFRESH).with(Attribute::Lifetime(0));
        let mut bytes = msg.encode(Some(b"key"), false).unwrap();
        bytes.extend_from_slice(&[0x00, 0x0D, 0x00, 0x04, 0, 0, 2, 0x58]);
        let len = (bytes.len() - HEADER_LEN) as u16;
        bytes[2..4].copy_from_slice(&len.to_be_bytes());
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.message.lifetime(), Some(0));
        assert_eq!(decoded.message.attributes.len(), 1);
        assert_eq!(decoded.verify_integrity(b"key"), IntegrityCheck::Valid);
    }

    #[test]
    fn header_errors_are_reported() {
        assert_eq!(decode(&[0; 4]), Err(DecodeError::TooShort { len: 4 }));
        let good = Message::request(Method::BINDING)
            .encode(None, false)
            .unwrap();
        let mut b = good.clone();
        b[0] = 0x40;
        assert!(matches!(decode(&b), Err(DecodeError::NotStun { .. })));
        let mut b = good.clone();
        b[4] = 0;
        assert!(matches!(decode(&b), Err(DecodeError::BadCookie { .. })));
        let mut b = good.clone();
        b[3] = 4;
        assert!(matches!(
            decode(&b),
            Err(DecodeError::LengthMismatch { .. })
        ));
        let mut b = good;
        b[3] = 2;
        assert!(matches!(
            decode(&b),
            Err(DecodeError::UnalignedLength { .. })
        ));
    }

    #[test]
    fn encode_refuses_oversized_values() {
        let msg = Message::indication(Method::SEND).with(Attribute::Data(vec![0; 70_000]));
        assert!(matches!(
            msg.encode(None, false),
            Err(EncodeError::AttributeTooLong { .. })
        ));
        let msg = Message::indication(Method::SEND)
            .with(Attribute::Data(vec![0; 40_000]))
            .with(Attribute::Data(vec![0; 40_000]));
        assert!(matches!(
            msg.encode(None, false),
            Err(EncodeError::MessageTooLong { .. })
        ));
    }

    mod properties {
        use std::net::{IpAddr, SocketAddr};

        use proptest::prelude::*;

        use super::super::*;
        use crate::turn::attr::{AddressFamily, Attribute, ErrorCode, kind};

        const TYPED: &[u16] = &[
            kind::MAPPED_ADDRESS,
            kind::USERNAME,
            kind::MESSAGE_INTEGRITY,
            kind::ERROR_CODE,
            kind::UNKNOWN_ATTRIBUTES,
            kind::CHANNEL_NUMBER,
            kind::LIFETIME,
            kind::XOR_PEER_ADDRESS,
            kind::DATA,
            kind::REALM,
            kind::NONCE,
            kind::XOR_RELAYED_ADDRESS,
            kind::REQUESTED_ADDRESS_FAMILY,
            kind::EVEN_PORT,
            kind::REQUESTED_TRANSPORT,
            kind::DONT_FRAGMENT,
            kind::MESSAGE_INTEGRITY_SHA256,
            kind::XOR_MAPPED_ADDRESS,
            kind::RESERVATION_TOKEN,
            kind::SOFTWARE,
            kind::ALTERNATE_SERVER,
            kind::FINGERPRINT,
        ];

        fn socket_addr() -> impl Strategy<Value = SocketAddr> {
            prop_oneof![
                (any::<[u8; 4]>(), any::<u16>())
                    .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
                (any::<[u8; 16]>(), any::<u16>())
                    .prop_map(|(ip, port)| SocketAddr::new(IpAddr::from(ip), port)),
            ]
        }

        fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
            proptest::collection::vec(any::<u8>(), 0..max)
        }

        pub(crate) fn attribute() -> impl Strategy<Value = Attribute> {
            prop_oneof![
                socket_addr().prop_map(Attribute::MappedAddress),
                socket_addr().prop_map(Attribute::XorMappedAddress),
                socket_addr().prop_map(Attribute::XorPeerAddress),
                socket_addr().prop_map(Attribute::XorRelayedAddress),
                socket_addr().prop_map(Attribute::AlternateServer),
                "\\PC{0,40}".prop_map(Attribute::Username),
                "\\PC{0,40}".prop_map(Attribute::Realm),
                bytes(64).prop_map(Attribute::Nonce),
                "\\PC{0,40}".prop_map(Attribute::Software),
                (3u16..7, 0u16..100, "[ -~]{0,60}[!-~]?").prop_map(|(c, n, reason)| {
                    Attribute::ErrorCode(ErrorCode {
                        code: c * 100 + n,
                        reason,
                    })
                }),
                proptest::collection::vec(any::<u16>(), 0..8)
                    .prop_map(Attribute::UnknownAttributes),
                any::<u16>().prop_map(Attribute::ChannelNumber),
                any::<u32>().prop_map(Attribute::Lifetime),
                bytes(600).prop_map(Attribute::Data),
                prop_oneof![Just(AddressFamily::V4), Just(AddressFamily::V6)]
                    .prop_map(Attribute::RequestedAddressFamily),
                any::<bool>().prop_map(Attribute::EvenPort),
                any::<u8>().prop_map(Attribute::RequestedTransport),
                Just(Attribute::DontFragment),
                any::<[u8; 8]>().prop_map(Attribute::ReservationToken),
                (
                    any::<u16>().prop_filter("typed kinds", |k| !TYPED.contains(k)),
                    bytes(40)
                )
                    .prop_map(|(kind, value)| Attribute::Other { kind, value }),
            ]
        }

        pub(crate) fn message() -> impl Strategy<Value = Message> {
            let method = prop_oneof![
                Just(Method::BINDING),
                Just(Method::ALLOCATE),
                Just(Method::REFRESH),
                Just(Method::SEND),
                Just(Method::DATA),
                Just(Method::CREATE_PERMISSION),
                Just(Method::CHANNEL_BIND),
                (0u16..0x1000).prop_map(Method),
            ];
            let class = prop_oneof![
                Just(Class::Request),
                Just(Class::Indication),
                Just(Class::Success),
                Just(Class::Error),
            ];
            (
                method,
                class,
                any::<[u8; 12]>(),
                proptest::collection::vec(attribute(), 0..8),
            )
                .prop_map(|(method, class, tid, attributes)| Message {
                    method,
                    class,
                    transaction_id: TransactionId(tid),
                    attributes,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn encode_then_decode_gives_the_same_message(
                msg in message(),
                key in proptest::option::of(bytes(32)),
                fingerprint in any::<bool>(),
            ) {
                let bytes = msg.encode(key.as_deref(), fingerprint).unwrap();
                prop_assert_eq!(bytes.len() % 4, 0);
                let decoded = decode(&bytes).unwrap();
                prop_assert_eq!(&decoded.message, &msg);
                prop_assert_eq!(decoded.has_fingerprint, fingerprint);
                let expected = if key.is_some() { IntegrityCheck::Valid } else { IntegrityCheck::Absent };
                prop_assert_eq!(decoded.verify_integrity(key.as_deref().unwrap_or(b"")), expected);
                // Strict sender: the same message re-encodes to the same bytes.
                prop_assert_eq!(decoded.message.encode(key.as_deref(), fingerprint).unwrap(), bytes);
            }

            #[test]
            fn decoding_arbitrary_bytes_never_panics(data in bytes(1200)) {
                let _ = decode(&data);
                let _ = crate::turn::channel::decode_frame(&data);
            }

            #[test]
            fn decoding_corrupted_messages_never_panics(
                msg in message(),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let mut bytes = msg.encode(Some(b"k"), true).unwrap();
                for (at, value) in flips {
                    let i = at.index(bytes.len());
                    bytes[i] = value;
                }
                // Keep the header consistent often enough to reach the attribute walk.
                let len = (bytes.len() - HEADER_LEN) as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
                bytes[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                bytes[0] &= 0x3F;
                if let Ok(d) = decode(&bytes) {
                    let _ = d.verify_integrity(b"k");
                    let _ = d.verify_integrity_sha256(b"k");
                    let _ = d.message.encode(None, false);
                }
                let _ = decode(&bytes[..cut.index(bytes.len())]);
            }
        }
    }
}
