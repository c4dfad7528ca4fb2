//! SonarQube's webhook signature: `X-Sonar-Webhook-HMAC-SHA256` is the lowercase hex
//! HMAC-SHA256 of the raw body keyed with the webhook secret. Only that form is accepted (what
//! SonarQube sends, integrations.md §1.3), and its shape is checked before a byte of the body is
//! read; the MAC is verified over the bytes received (never re-serialised JSON), in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use thiserror::Error;

use crate::secrets::Secret;

/// The header SonarQube signs with.
pub const HEADER: &str = "x-sonar-webhook-hmac-sha256";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error(
        "the request has no X-Sonar-Webhook-HMAC-SHA256 header: set the webhook's secret in SonarQube (`cityd connect sonarqube` does it)"
    )]
    Missing,
    #[error(
        "X-Sonar-Webhook-HMAC-SHA256 is not 64 lowercase hex digits (the form SonarQube sends)"
    )]
    Malformed,
    #[error(
        "X-Sonar-Webhook-HMAC-SHA256 does not match the body: the webhook's secret in SonarQube differs from the vault's sonarqube-webhook-secret, or the body was altered"
    )]
    Mismatch,
}

/// The keyed MAC, prepared once; each request clones it.
#[derive(Clone)]
pub struct Verifier {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier(<keyed>)")
    }
}

impl Verifier {
    pub fn new(secret: &Secret) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        Self { mac }
    }

    /// Checks `header` (the header's raw value, if present) against `body`.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let expected = parse_header(header)?;
        let mut mac = self.mac.clone();
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)
    }

    /// The header value SonarQube would send for `body` (tests, benchmarks).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The MAC a header carries: exactly 64 lowercase hex digits (blanks around them ignored).
/// Needs no body, so a request is refused on it before its body is read. Never panics.
pub fn parse_header(header: Option<&[u8]>) -> Result<[u8; 32], SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?.trim_ascii();
    if header.len() != 64
        || !header
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(SignatureError::Malformed);
    }
    let mut mac = [0u8; 32];
    hex::decode_to_slice(header, &mut mac).map_err(|_| SignatureError::Malformed)?;
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(secret: &str) -> Verifier {
        Verifier::new(&Secret::new(secret.into()))
    }

    #[test]
    fn the_empty_object_vector_matches() {
        // From payloads/sonarqube-hmac-test-vectors.json (secret cityd-test-secret-0123456789).
        let v = verifier("cityd-test-secret-0123456789");
        let expected = "af8c6cae4b0abc027e1c42a1f3d3bc8ef2d855e86be867af15ada4ce3ac47bf2";
        assert_eq!(v.sign(b"{}"), expected);
        assert_eq!(v.verify(Some(expected.as_bytes()), b"{}"), Ok(()));
    }

    #[test]
    fn every_kind_of_wrong_header_is_refused() {
        let v = verifier("s3cret-s3cret-s3cret");
        let good = v.sign(b"body");
        assert_eq!(v.verify(None, b"body"), Err(SignatureError::Missing));
        assert_eq!(
            v.verify(Some(b"sha256=abc"), b"body"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(&[b'z'; 64]), b"body"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(Some(good.as_bytes()), b"bodY"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verifier("another-secret-xx").verify(Some(good.as_bytes()), b"body"),
            Err(SignatureError::Mismatch)
        );
        // Issue 12: uppercase hex was accepted while the docs said lowercase; SonarQube sends
        // lowercase, so that is the one form.
        assert_eq!(
            v.verify(Some(good.to_ascii_uppercase().as_bytes()), b"body"),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            parse_header(Some(format!(" {good}\t").as_bytes())).map(hex::encode),
            Ok(good.clone())
        );
        let mut flipped = good.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            v.verify(Some(&flipped), b"body"),
            Err(SignatureError::Mismatch)
        );
    }

    proptest::proptest! {
        /// The header is read from the network before anything else: any bytes give a verdict,
        /// never a panic, and only SonarQube's form is taken.
        #[test]
        fn any_header_bytes_are_judged_without_panic(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
        ) {
            let taken = parse_header(Some(&header)).is_ok();
            let trimmed = header.trim_ascii();
            let lowercase_hex = trimmed.len() == 64
                && trimmed.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
            proptest::prop_assert_eq!(taken, lowercase_hex);
        }
    }
}
