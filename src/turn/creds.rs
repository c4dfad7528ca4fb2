//! TURN REST API credentials (draft-uberti-behave-turn-rest-00 §2.2, as coturn's
//! `--use-auth-secret` checks them): username `<expiry>:<user>`, password
//! base64(HMAC-SHA1(secret, username)); plus the duration syntax of `--ttl`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::Serialize;
use thiserror::Error;

use super::integrity;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CredentialError {
    #[error(
        "user name {user:?} is not usable in a TURN REST username: use 1-64 characters from A-Z a-z 0-9 . _ - @ (no ':', the separator coturn splits on)"
    )]
    BadUser { user: String },
}

/// A credential error is always the input's fault (a flag): exit 2.
impl crate::exit::ExitCoded for CredentialError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// A time-limited username/password pair derived from the static auth secret.
/// The password is derived and expires; printing it is fine, printing the secret is not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestCredential {
    pub username: String,
    pub password: String,
    /// Unix time after which coturn answers 401.
    pub expires_at: u64,
}

/// Checks a user id for the `<expiry>:<user>` form.
pub fn validate_user(user: &str) -> Result<(), CredentialError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CredentialError::BadUser { user: user.into() })
    }
}

impl RestCredential {
    /// Derives the credential for `user`, valid until `expires_at` (Unix seconds).
    pub fn derive(secret: &str, user: &str, expires_at: u64) -> Result<Self, CredentialError> {
        validate_user(user)?;
        let username = format!("{expires_at}:{user}");
        let password = rest_password(secret, &username);
        Ok(Self {
            username,
            password,
            expires_at,
        })
    }

    /// Derives a credential valid for `ttl` from now.
    pub fn for_ttl(secret: &str, user: &str, ttl: Duration) -> Result<Self, CredentialError> {
        Self::derive(secret, user, unix_now() + ttl.as_secs())
    }
}

/// password = base64(HMAC-SHA1(secret, username)) over the whole username.
pub fn rest_password(secret: &str, username: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(integrity::hmac_sha1(secret.as_bytes(), username.as_bytes()))
}

/// The expiry coturn reads from a REST username: the part before the first `:` if it is all
/// digits, else the part after it (`userdb.c`); `None` when neither is a number.
pub fn username_expiry(username: &str) -> Option<u64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match username.split_once(':') {
        Some((head, _)) if digits(head) => head.parse().ok(),
        Some((_, tail)) if digits(tail) => tail.parse().ok(),
        Some(_) => None,
        None if digits(username) => username.parse().ok(),
        None => None,
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let rem = unix % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for every u64 second we can produce.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coturn_accepted_credential_is_reproduced() {
        let c = RestCredential::derive("s3cret", "alice", 1_795_804_850).unwrap();
        assert_eq!(c.username, "1795804850:alice");
        assert_eq!(c.password, "HwWwP0wiuU1lgsI+P32pNeK7MY4=");
    }

    #[test]
    fn expiry_is_read_the_way_coturn_reads_it() {
        assert_eq!(username_expiry("1795804850:alice"), Some(1_795_804_850));
        assert_eq!(username_expiry("alice:1795804850"), Some(1_795_804_850));
        assert_eq!(username_expiry("1795804850"), Some(1_795_804_850));
        assert_eq!(username_expiry("alice"), None);
        assert_eq!(username_expiry("alice:bob"), None);
    }

    #[test]
    fn users_with_separators_are_refused() {
        assert!(RestCredential::derive("s", "a:b", 1).is_err());
        assert!(RestCredential::derive("s", "", 1).is_err());
        assert!(RestCredential::derive("s", "al ice", 1).is_err());
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_795_804_850), "2026-11-27T18:40:50Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
