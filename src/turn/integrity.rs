//! The cryptographic pieces of STUN: the long-term credential key (MD5 of `username:realm:password`,
//! RFC 8489 §9.2.2), MESSAGE-INTEGRITY (HMAC-SHA1, §14.5), MESSAGE-INTEGRITY-SHA256 (§14.6, verify
//! only) and FINGERPRINT (CRC-32 xor 0x5354554e, §14.7). Comparisons of MACs are constant-time.

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::Sha256;

/// XORed into the CRC-32 so FINGERPRINT differs from a CRC another protocol might carry.
pub const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Length of a MESSAGE-INTEGRITY value.
pub const HMAC_SHA1_LEN: usize = 20;

/// key = MD5(username ":" realm ":" password). The realm loses surrounding quotes and trailing
/// NULs first (§9.2.2). OpaqueString/SASLprep is the identity for the printable ASCII that REST
/// credentials consist of, so it is not applied.
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let realm = clean_realm(realm);
    let mut md5 = Md5::new();
    md5.update(username.as_bytes());
    md5.update(b":");
    md5.update(realm.as_bytes());
    md5.update(b":");
    md5.update(password.as_bytes());
    md5.finalize().into()
}

/// The SHA-256 variant of the long-term key (PASSWORD-ALGORITHM SHA-256, §18.5.1.2).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    let realm = clean_realm(realm);
    let mut sha = Sha256::new();
    sha.update(format!("{username}:{realm}:{password}").as_bytes());
    sha.finalize().into()
}

fn clean_realm(realm: &str) -> &str {
    let realm = realm.trim_end_matches('\0');
    realm
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(realm)
}

/// HMAC-SHA1 of `data` under `key`.
pub fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; HMAC_SHA1_LEN] {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA1 tag in constant time.
pub fn verify_hmac_sha1(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.verify_slice(tag).is_ok()
}

/// Checks an HMAC-SHA256 tag, which §14.6 allows to be truncated to 16–32 bytes (a multiple of 4).
pub fn verify_hmac_sha256(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    if !(16..=32).contains(&tag.len()) || tag.len() % 4 != 0 {
        return false;
    }
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.verify_truncated_left(tag).is_ok()
}

/// FINGERPRINT value for the bytes that precede the attribute.
pub fn fingerprint(data: &[u8]) -> u32 {
    crc32fast::hash(data) ^ FINGERPRINT_XOR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8489_worked_example_key() {
        assert_eq!(
            hex::encode(long_term_key("user", "realm", "pass")),
            "8493fbc53ba582fb4c044c456bdc40eb"
        );
    }

    #[test]
    fn quoted_or_nul_padded_realm_gives_the_same_key() {
        let plain = long_term_key("user", "realm", "pass");
        assert_eq!(long_term_key("user", "\"realm\"", "pass"), plain);
        assert_eq!(long_term_key("user", "realm\0\0", "pass"), plain);
    }

    #[test]
    fn crc32_is_the_zlib_one() {
        assert_eq!(fingerprint(b"123456789") ^ FINGERPRINT_XOR, 0xCBF4_3926);
    }

    #[test]
    fn hmac_verification_rejects_a_flipped_bit() {
        let tag = hmac_sha1(b"k", b"data");
        assert!(verify_hmac_sha1(b"k", b"data", &tag));
        let mut bad = tag;
        bad[7] ^= 1;
        assert!(!verify_hmac_sha1(b"k", b"data", &bad));
        assert!(!verify_hmac_sha1(b"k", b"data", &tag[..19]));
    }
}
