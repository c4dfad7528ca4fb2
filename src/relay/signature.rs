//! SonarQube's webhook signature: `X-Sonar-Webhook-HMAC-SHA256` is the lowercase hex
//! HMAC-SHA256 of the raw body keyed with the webhook secret. Verified over the bytes received
//! (never re-serialised JSON), compared in constant time.

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
    #[error("X-Sonar-Webhook-HMAC-SHA256 is not 64 hex digits")]
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
        let header = header.ok_or(SignatureError::Missing)?;
        let header = header.trim_ascii();
        if header.len() != 64 {
            return Err(SignatureError::Malformed);
        }
        let mut expected = [0u8; 32];
        hex::decode_to_slice(header, &mut expected).map_err(|_| SignatureError::Malformed)?;
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
        let mut flipped = good.clone().into_bytes();
        flipped[10] = if flipped[10] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            v.verify(Some(&flipped), b"body"),
            Err(SignatureError::Mismatch)
        );
    }
}
