//! ChannelData messages (RFC 8656 §12.4–§12.6) and the demultiplexing of what a TURN server sends:
//! a UDP datagram or a frame cut from a TCP stream is either STUN (first bits 00) or ChannelData
//! (first bits 01). Over TCP ChannelData is padded to 4 bytes; received pad bytes may hold anything.

use thiserror::Error;

use super::codec::{self, DecodeError, Decoded, HEADER_LEN};

/// Channel numbers a sender may use (RFC 8656 §12).
pub const CHANNEL_MIN: u16 = 0x4000;
pub const CHANNEL_MAX: u16 = 0x4FFF;
/// RFC 5766 allowed up to 0x7FFF and coturn 4.6.1 still does, so received numbers up to here are
/// accepted.
pub const CHANNEL_MAX_TOLERATED: u16 = 0x7FFF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelData {
    pub channel: u16,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChannelError {
    #[error(
        "channel number 0x{channel:04x} is outside 0x4000-0x4fff, the range RFC 8656 lets a client use"
    )]
    ChannelOutOfRange { channel: u16 },
    #[error("ChannelData carries {len} bytes; at most 65535 fit its length field")]
    TooLong { len: usize },
    #[error("{len} bytes is shorter than the 4-byte ChannelData header")]
    TooShort { len: usize },
    #[error("ChannelData length field says {declared} bytes but only {available} follow")]
    Truncated { declared: usize, available: usize },
    #[error("channel number 0x{channel:04x} is not a TURN channel (0x4000-0x7fff)")]
    NotAChannel { channel: u16 },
}

impl ChannelData {
    /// Serialises the message; `padded` rounds it up to a multiple of 4 with zero bytes, which
    /// TCP and TLS require (§12.5). Only channels 0x4000–0x4FFF are sent.
    pub fn encode(&self, padded: bool) -> Result<Vec<u8>, ChannelError> {
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&self.channel) {
            return Err(ChannelError::ChannelOutOfRange {
                channel: self.channel,
            });
        }
        let len = u16::try_from(self.data.len()).map_err(|_| ChannelError::TooLong {
            len: self.data.len(),
        })?;
        let mut buf = Vec::with_capacity(4 + self.data.len() + 3);
        buf.extend_from_slice(&self.channel.to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&self.data);
        if padded {
            buf.resize(buf.len() + codec::padding(self.data.len()), 0);
        }
        Ok(buf)
    }

    /// Reads ChannelData from a datagram or a TCP frame; bytes after the data (padding) are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelError> {
        if bytes.len() < 4 {
            return Err(ChannelError::TooShort { len: bytes.len() });
        }
        let channel = u16::from_be_bytes([bytes[0], bytes[1]]);
        if !(CHANNEL_MIN..=CHANNEL_MAX_TOLERATED).contains(&channel) {
            return Err(ChannelError::NotAChannel { channel });
        }
        let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        let available = bytes.len() - 4;
        if declared > available {
            return Err(ChannelError::Truncated {
                declared,
                available,
            });
        }
        Ok(Self {
            channel,
            data: bytes[4..4 + declared].to_vec(),
        })
    }
}

/// Anything a TURN server sends a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stun(Box<Decoded>),
    ChannelData(ChannelData),
}

/// A frame that does not decode. The part's own error is part of this message rather than a
/// `source`: the probe prints a frame error on one line (`{}`), so its detail must be in it, once.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("STUN: {0}")]
    Stun(DecodeError),
    #[error("ChannelData: {0}")]
    Channel(ChannelError),
    #[error(
        "first byte 0x{first:02x} starts neither STUN (00) nor ChannelData (01); over TCP the stream is out of step"
    )]
    Unrecognised { first: u8 },
}

impl From<DecodeError> for FrameError {
    fn from(e: DecodeError) -> Self {
        FrameError::Stun(e)
    }
}

impl From<ChannelError> for FrameError {
    fn from(e: ChannelError) -> Self {
        FrameError::Channel(e)
    }
}

/// Decodes one datagram or one TCP frame by its first two bits (RFC 8656 §12, RFC 7983).
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, FrameError> {
    match bytes.first().map(|b| b >> 6) {
        None => Err(ChannelError::TooShort { len: 0 }.into()),
        Some(0) => Ok(Frame::Stun(Box::new(codec::decode(bytes)?))),
        Some(1) => Ok(Frame::ChannelData(ChannelData::decode(bytes)?)),
        Some(_) => Err(FrameError::Unrecognised { first: bytes[0] }),
    }
}

/// Size of the frame at the start of a TCP stream buffer, once its 4-byte header is there.
/// STUN is 20 + length; ChannelData is 4 + length rounded up to 4 (§12.5).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    match buf[0] >> 6 {
        0 => Ok(Some(HEADER_LEN + len)),
        1 => Ok(Some(4 + len + codec::padding(len))),
        _ => Err(FrameError::Unrecognised { first: buf[0] }),
    }
}

/// Cuts a TCP byte stream into frames: push what the socket gave, then take whole frames.
#[derive(Debug, Default)]
pub struct StreamDeframer {
    buf: Vec<u8>,
}

impl StreamDeframer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` when more bytes are needed. An error means the stream
    /// is out of step and the connection must be dropped.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        match frame_len(&self.buf)? {
            Some(n) if self.buf.len() >= n => Ok(Some(self.buf.drain(..n).collect())),
            _ => Ok(None),
        }
    }

    /// Bytes held that do not yet form a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_added_only_when_asked() {
        let cd = ChannelData {
            channel: 0x4000,
            data: b"hello-chan-odd".to_vec(),
        };
        assert_eq!(
            hex::encode(cd.encode(false).unwrap()),
            "4000000e68656c6c6f2d6368616e2d6f6464"
        );
        assert_eq!(
            hex::encode(cd.encode(true).unwrap()),
            "4000000e68656c6c6f2d6368616e2d6f64640000"
        );
    }

    #[test]
    fn wide_channels_and_garbage_padding_are_tolerated_on_receipt() {
        let got = ChannelData::decode(&[0x65, 0x66, 0, 1, b'x', 0, 0, 5]).unwrap();
        assert_eq!(got.channel, 0x6566);
        assert_eq!(got.data, b"x");
        assert!(
            ChannelData {
                channel: 0x6566,
                data: vec![]
            }
            .encode(true)
            .is_err()
        );
    }

    #[test]
    fn deframer_splits_mixed_stream_and_waits_for_partial_frames() {
        let stun = codec::Message::request(codec::Method::BINDING)
            .encode(None, true)
            .unwrap();
        let chan = ChannelData {
            channel: 0x4001,
            data: b"abcde".to_vec(),
        }
        .encode(true)
        .unwrap();
        let mut stream = stun.clone();
        stream.extend_from_slice(&chan);
        let mut d = StreamDeframer::new();
        d.push(&stream[..3]);
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&stream[3..stun.len() + 6]);
        assert_eq!(d.next_frame().unwrap(), Some(stun.clone()));
        assert_eq!(d.next_frame().unwrap(), None);
        d.push(&stream[stun.len() + 6..]);
        assert_eq!(d.next_frame().unwrap(), Some(chan));
        assert_eq!(d.pending(), 0);
        d.push(&[0x80, 0, 0, 0]);
        assert!(d.next_frame().is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn channel_data_round_trips_padded_and_unpadded(
                channel in CHANNEL_MIN..=CHANNEL_MAX,
                data in proptest::collection::vec(any::<u8>(), 0..700),
                padded in any::<bool>(),
            ) {
                let cd = ChannelData { channel, data };
                let bytes = cd.encode(padded).unwrap();
                if padded {
                    prop_assert_eq!(bytes.len() % 4, 0);
                    prop_assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
                }
                prop_assert_eq!(ChannelData::decode(&bytes).unwrap(), cd.clone());
                prop_assert_eq!(decode_frame(&bytes).unwrap(), Frame::ChannelData(cd));
            }

            #[test]
            fn deframer_yields_the_same_frames_however_the_stream_is_cut(
                payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..90), 1..6),
                cuts in proptest::collection::vec(1usize..40, 1..30),
            ) {
                let mut frames = Vec::new();
                for (i, p) in payloads.iter().enumerate() {
                    let frame = if i % 2 == 0 {
                        ChannelData { channel: CHANNEL_MIN + i as u16, data: p.clone() }.encode(true).unwrap()
                    } else {
                        codec::Message::indication(codec::Method::DATA)
                            .with(crate::turn::attr::Attribute::Data(p.clone()))
                            .encode(None, true)
                            .unwrap()
                    };
                    frames.push(frame);
                }
                let stream: Vec<u8> = frames.concat();
                let mut d = StreamDeframer::new();
                let mut out = Vec::new();
                let mut at = 0;
                let mut c = cuts.iter().cycle();
                while at < stream.len() {
                    let n = (*c.next().unwrap()).min(stream.len() - at);
                    d.push(&stream[at..at + n]);
                    at += n;
                    while let Some(f) = d.next_frame().unwrap() {
                        out.push(f);
                    }
                }
                prop_assert_eq!(out, frames);
            }

            #[test]
            fn deframing_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
                let mut d = StreamDeframer::new();
                d.push(&data);
                while let Ok(Some(frame)) = d.next_frame() {
                    let _ = decode_frame(&frame);
                }
            }
        }
    }
}
