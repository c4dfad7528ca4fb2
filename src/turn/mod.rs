//! Our own STUN/TURN client: the codec (RFC 8489 messages and attributes, RFC 8656 TURN methods,
//! ChannelData), long-term credentials and REST credentials, and the probe that proves a relay
//! works end to end, with its verdicts and its inputs (the static secret, the server, the
//! credentials a WebRTC page takes).

pub mod attr;
pub mod channel;
pub mod codec;
pub mod creds;
pub mod diagnosis;
pub mod ice;
pub mod integrity;
pub mod link;
pub mod peer;
pub mod probe;
pub mod probe_setup;
pub mod secret;

pub use attr::{AddressFamily, Attribute, ErrorCode};
pub use channel::{ChannelData, Frame, StreamDeframer, decode_frame};
pub use codec::{Class, Decoded, IntegrityCheck, Message, Method, TransactionId, decode};
