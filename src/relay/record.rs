//! The spool's on-disk format: a file header, then records framed as `len u32 LE | crc32 u32 LE |
//! payload`. Decoding stops at the first short, oversized or corrupt frame (a torn tail after a
//! crash) and never panics on any input.

use sha2::{Digest, Sha256};

/// First bytes of every spool file; a file without them is not ours.
pub const FILE_MAGIC: &[u8; 16] = b"cityd-spool-v1\n\0";

/// Largest payload a frame may declare. Bodies are capped far below this at admission, so a larger
/// length can only come from corruption.
pub const MAX_PAYLOAD: u32 = 8 * 1024 * 1024;

const FRAME_HEADER: usize = 8;

/// A fixed-size digest of an event's dedup key: what the dedup window remembers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 16]);

impl KeyId {
    pub fn of(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        Self(id)
    }
}

/// How an event left the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Mattermost answered 2xx to our post.
    Posted = 0,
    /// A post from an earlier attempt was found in the channel; nothing was reposted.
    FoundInChannel = 1,
    /// Nothing to post (a passed gate while the city does not post passes).
    Skipped = 2,
    /// The stored body no longer parses (a spool written by another version); logged and dropped.
    Unreadable = 3,
}

impl Outcome {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0 => Outcome::Posted,
            1 => Outcome::FoundInChannel,
            2 => Outcome::Skipped,
            3 => Outcome::Unreadable,
            _ => return None,
        })
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record<'a> {
    /// An accepted webhook delivery, with its raw body.
    Accepted {
        seq: u64,
        received_ms: u64,
        key: &'a str,
        body: &'a [u8],
    },
    /// A post of `seq` is about to be sent (written and synced before the request leaves).
    InFlight { seq: u64, at_ms: u64 },
    /// `seq` needs nothing more.
    Done { seq: u64, outcome: Outcome },
    /// A key seen earlier whose event was compacted away: still a duplicate if it comes again.
    Seen { key_id: KeyId, at_ms: u64 },
}

const KIND_ACCEPTED: u8 = 1;
const KIND_IN_FLIGHT: u8 = 2;
const KIND_DONE: u8 = 3;
const KIND_SEEN: u8 = 4;

/// Appends one framed record to `out`. For `Accepted`, returns where the body starts relative to the
/// start of the frame, so the spool can read it back later without keeping it in memory.
pub fn encode(record: &Record<'_>, out: &mut Vec<u8>) -> Option<u64> {
    let frame_start = out.len();
    out.extend_from_slice(&[0u8; FRAME_HEADER]);
    let mut body_at = None;
    match record {
        Record::Accepted {
            seq,
            received_ms,
            key,
            body,
        } => {
            out.push(KIND_ACCEPTED);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&received_ms.to_le_bytes());
            let key = &key.as_bytes()[..key.len().min(u16::MAX as usize)];
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            body_at = Some((out.len() - frame_start) as u64);
            out.extend_from_slice(body);
        }
        Record::InFlight { seq, at_ms } => {
            out.push(KIND_IN_FLIGHT);
            out.extend_from_slice(&seq.to_le_bytes());
            out.extend_from_slice(&at_ms.to_le_bytes());
        }
        Record::Done { seq, outcome } => {
            out.push(KIND_DONE);
            out.extend_from_slice(&seq.to_le_bytes());
            out.push(*outcome as u8);
        }
        Record::Seen { key_id, at_ms } => {
            out.push(KIND_SEEN);
            out.extend_from_slice(&key_id.0);
            out.extend_from_slice(&at_ms.to_le_bytes());
        }
    }
    let payload_len = (out.len() - frame_start - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&out[frame_start + FRAME_HEADER..]);
    out[frame_start..frame_start + 4].copy_from_slice(&payload_len.to_le_bytes());
    out[frame_start + 4..frame_start + 8].copy_from_slice(&crc.to_le_bytes());
    body_at
}

/// A decoded record with where it sits in the file.
#[derive(Debug)]
pub struct Located<'a> {
    pub record: Record<'a>,
    /// Offset of the frame in the buffer.
    pub offset: u64,
    /// Offset of the body in the buffer (`Accepted` only).
    pub body_at: Option<u64>,
}

/// Reads records from a buffer that starts right after the file header. Iteration ends at the first
/// frame that is short, oversized, fails its CRC or does not decode; `valid_len()` then tells how
/// many bytes were good, which is where the file gets truncated.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Reader<'a> {
    /// `base` is the file offset of `buf[0]`, so reported offsets are file offsets.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Bytes of `buf` that decoded into whole records so far.
    pub fn valid_len(&self) -> usize {
        self.pos
    }

    /// True when every byte of `buf` was consumed by whole records.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Located<'a>;

    fn next(&mut self) -> Option<Located<'a>> {
        let rest = self.buf.get(self.pos..)?;
        let header = rest.get(..FRAME_HEADER)?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?);
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        if len == 0 || len > MAX_PAYLOAD {
            return None;
        }
        let payload = rest.get(FRAME_HEADER..FRAME_HEADER + len as usize)?;
        if crc32fast::hash(payload) != crc {
            return None;
        }
        let (record, body_in_payload) = decode_payload(payload)?;
        let offset = self.base + self.pos as u64;
        let body_at = body_in_payload.map(|b| offset + (FRAME_HEADER + b) as u64);
        self.pos += FRAME_HEADER + len as usize;
        Some(Located {
            record,
            offset,
            body_at,
        })
    }
}

/// Reads frames one at a time from a file (recovery reads spools larger than we want in memory).
/// `next_record` returns `None` at the end or at the first bad frame; `valid_end()` is then the file
/// offset up to which everything decoded.
pub struct StreamReader<R> {
    inner: R,
    pos: u64,
    payload: Vec<u8>,
}

impl<R: std::io::Read> StreamReader<R> {
    /// `start` is the file offset `inner` is positioned at.
    pub fn new(inner: R, start: u64) -> Self {
        Self {
            inner,
            pos: start,
            payload: Vec::new(),
        }
    }

    pub fn valid_end(&self) -> u64 {
        self.pos
    }

    pub fn next_record(&mut self) -> Option<Located<'_>> {
        let mut header = [0u8; FRAME_HEADER];
        self.inner.read_exact(&mut header).ok()?;
        let len = u32::from_le_bytes(header[..4].try_into().ok()?);
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        if len == 0 || len > MAX_PAYLOAD {
            return None;
        }
        self.payload.resize(len as usize, 0);
        self.inner.read_exact(&mut self.payload).ok()?;
        if crc32fast::hash(&self.payload) != crc {
            return None;
        }
        let offset = self.pos;
        let (record, body_in_payload) = decode_payload(&self.payload)?;
        self.pos += (FRAME_HEADER + len as usize) as u64;
        Some(Located {
            record,
            offset,
            body_at: body_in_payload.map(|b| offset + (FRAME_HEADER + b) as u64),
        })
    }
}

/// Splits `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if input.len() < n {
        return None;
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Some(head)
}

fn u64_of(input: &mut &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(take(input, 8)?.try_into().ok()?))
}

fn decode_payload(payload: &[u8]) -> Option<(Record<'_>, Option<usize>)> {
    let total = payload.len();
    let mut input = payload;
    let kind = *take(&mut input, 1)?.first()?;
    let decoded = match kind {
        KIND_ACCEPTED => {
            let seq = u64_of(&mut input)?;
            let received_ms = u64_of(&mut input)?;
            let key_len = u16::from_le_bytes(take(&mut input, 2)?.try_into().ok()?) as usize;
            let key = std::str::from_utf8(take(&mut input, key_len)?).ok()?;
            let body_len = u32::from_le_bytes(take(&mut input, 4)?.try_into().ok()?) as usize;
            let body_start = total - input.len();
            let body = take(&mut input, body_len)?;
            (
                Record::Accepted {
                    seq,
                    received_ms,
                    key,
                    body,
                },
                Some(body_start),
            )
        }
        KIND_IN_FLIGHT => {
            let seq = u64_of(&mut input)?;
            let at_ms = u64_of(&mut input)?;
            (Record::InFlight { seq, at_ms }, None)
        }
        KIND_DONE => {
            let seq = u64_of(&mut input)?;
            let outcome = Outcome::from_byte(*take(&mut input, 1)?.first()?)?;
            (Record::Done { seq, outcome }, None)
        }
        KIND_SEEN => {
            let key_id = KeyId(take(&mut input, 16)?.try_into().ok()?);
            let at_ms = u64_of(&mut input)?;
            (Record::Seen { key_id, at_ms }, None)
        }
        _ => return None,
    };
    // Trailing bytes inside a frame mean the frame is not one we wrote.
    input.is_empty().then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Record<'static>> {
        vec![
            Record::Accepted {
                seq: 7,
                received_ms: 1_700_000_000_000,
                key: "AXgTFfXRZCzhMRNj54bo",
                body: b"{\"a\":1}",
            },
            Record::InFlight {
                seq: 7,
                at_ms: 1_700_000_000_123,
            },
            Record::Done {
                seq: 7,
                outcome: Outcome::FoundInChannel,
            },
            Record::Seen {
                key_id: KeyId::of("k"),
                at_ms: 5,
            },
        ]
    }

    #[test]
    fn records_round_trip_and_bodies_are_locatable() {
        let mut buf = Vec::new();
        let mut body_at = None;
        for r in sample() {
            if let Some(b) = encode(&r, &mut buf) {
                body_at = Some(b);
            }
        }
        let mut reader = Reader::new(&buf, 100);
        let decoded: Vec<_> = reader.by_ref().collect();
        assert!(reader.at_end());
        assert_eq!(
            decoded.iter().map(|l| l.record.clone()).collect::<Vec<_>>(),
            sample()
        );
        let at = decoded[0].body_at.unwrap();
        assert_eq!(at, 100 + body_at.unwrap());
        let local = (at - 100) as usize;
        assert_eq!(&buf[local..local + 7], b"{\"a\":1}");
    }

    #[test]
    fn a_torn_tail_stops_at_the_last_whole_record() {
        let mut buf = Vec::new();
        for r in sample() {
            encode(&r, &mut buf);
        }
        let whole = buf.len();
        encode(
            &Record::Done {
                seq: 9,
                outcome: Outcome::Posted,
            },
            &mut buf,
        );
        for cut in whole..buf.len() {
            let mut reader = Reader::new(&buf[..cut], 0);
            assert_eq!(reader.by_ref().count(), 4, "cut at {cut}");
            assert_eq!(reader.valid_len(), whole);
        }
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_crc() {
        let mut buf = Vec::new();
        for r in sample() {
            encode(&r, &mut buf);
        }
        buf[12] ^= 0x40;
        assert_eq!(Reader::new(&buf, 0).count(), 0);
    }

    #[test]
    fn the_stream_reader_agrees_with_the_slice_reader() {
        let mut buf = Vec::new();
        for r in sample() {
            encode(&r, &mut buf);
        }
        buf.extend_from_slice(&[1, 2, 3]);
        let mut stream = StreamReader::new(&buf[..], 0);
        let mut n = 0;
        while let Some(located) = stream.next_record() {
            assert_eq!(located.record, sample()[n]);
            n += 1;
        }
        assert_eq!(n, 4);
        assert_eq!(stream.valid_end() as usize, buf.len() - 3);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut reader = Reader::new(&bytes, 0);
            for located in reader.by_ref() {
                prop_assert!(located.offset < bytes.len() as u64);
            }
            prop_assert!(reader.valid_len() <= bytes.len());
            let mut stream = StreamReader::new(&bytes[..], 0);
            while stream.next_record().is_some() {}
            prop_assert_eq!(stream.valid_end() as usize, reader.valid_len());
        }

        #[test]
        fn accepted_records_round_trip(
            seq in any::<u64>(),
            ms in any::<u64>(),
            key in "[ -~]{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let record = Record::Accepted { seq, received_ms: ms, key: &key, body: &body };
            let mut buf = Vec::new();
            encode(&record, &mut buf);
            let decoded: Vec<_> = Reader::new(&buf, 0).collect();
            prop_assert_eq!(decoded.len(), 1);
            prop_assert_eq!(&decoded[0].record, &record);
        }
    }
}
