//! Identifiers and clocks in Mattermost's formats: 26-character ids and millisecond timestamps.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The base32 alphabet Mattermost's `model.NewId` encodes a random UUID with.
const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A fresh id: 26 lowercase alphanumeric characters, like `model.NewId()`.
///
/// Randomness comes from the standard library's per-process random hasher keys (no extra crate):
/// ids and tokens only need to be unique and unguessable across one test run.
pub fn new_id() -> String {
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let keys = KEYS.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bits: u128 = 0;
    for half in 0..2u64 {
        let mut h = keys.build_hasher();
        h.write_u64(n);
        h.write_u64(half);
        bits = (bits << 64) | u128::from(h.finish());
    }
    (0..26)
        .map(|i| {
            // 26 * 5 = 130 bits: the two high symbols reuse low bits, which only lowers entropy a little.
            let shift = (i * 5) % 128;
            ALPHABET[((bits >> shift) & 0x1f) as usize] as char
        })
        .collect()
}

/// Whether `s` has the shape of a Mattermost id (26 lowercase alphanumeric characters).
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Milliseconds since the Unix epoch, strictly increasing across calls so that "newest first"
/// orderings are stable even when two objects are created within the same millisecond.
pub fn now_millis() -> i64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = wall.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next as i64,
            Err(seen) => prev = seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_mattermost_shape_and_differ() {
        let a = new_id();
        let b = new_id();
        assert!(is_valid_id(&a), "{a}");
        assert!(is_valid_id(&b), "{b}");
        assert_ne!(a, b);
    }

    #[test]
    fn id_shape_check_rejects_other_strings() {
        assert!(!is_valid_id("short"));
        assert!(!is_valid_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
        assert!(!is_valid_id("abcdefghijklmnopqrstuvwxy-"));
    }

    #[test]
    fn clock_is_strictly_increasing() {
        let a = now_millis();
        let b = now_millis();
        assert!(b > a);
    }
}
