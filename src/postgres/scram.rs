//! SCRAM-SHA-256 password verifiers in PostgreSQL's stored form: the only shape in which a tenant's
//! password reaches the server.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::secrets::Secret;

/// PostgreSQL's default iteration count.
pub const ITERATIONS: u32 = 4096;

/// A SCRAM-SHA-256 verifier in PostgreSQL's stored form, for `password` with `salt`.
pub fn verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    type H = Hmac<Sha256>;
    let mac = |key: &[u8], data: &[u8]| -> [u8; 32] {
        let mut m = <H as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(data);
        m.finalize().into_bytes().into()
    };
    // PBKDF2-HMAC-SHA256, one block (RFC 5802 "Hi"). Vault passwords are ASCII letters and digits,
    // so SASLprep leaves them unchanged.
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = mac(password.as_bytes(), &block);
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = mac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

/// A fresh random salt for a new verifier.
pub fn random_salt() -> [u8; 16] {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
    salt
}

/// Whether a stored `rolpassword` is a SCRAM verifier of `password`. Anything unparsable is "no".
pub fn matches(stored: &str, password: &Secret) -> bool {
    let parse = || -> Option<bool> {
        let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
        let (params, _) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (1..=10_000_000).contains(i))?;
        let salt = B64.decode(salt).ok()?;
        Some(verifier(password.expose(), &salt, iterations) == stored)
    };
    parse().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_matches_an_independent_computation() {
        // RFC 7677's example inputs (password "pencil", this salt, 4096 rounds); the expected keys
        // were computed independently with Python's hashlib.pbkdf2_hmac and hmac.
        let secret = Secret::new("pencil".into());
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier(secret.expose(), &salt, 4096);
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert!(matches(&v, &secret));
        assert!(!matches(&v, &Secret::new("pencil2".into())));
        for junk in [
            "",
            "md5abc",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$x:y$z",
            "SCRAM-SHA-256$99999999999:AA==$a:b",
        ] {
            assert!(!matches(junk, &secret), "{junk:?}");
        }
    }
}
