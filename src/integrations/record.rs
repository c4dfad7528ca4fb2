//! What cityd remembers of the settings it pushed to products whose APIs never show them again
//! (SonarQube's `hasSecret`, GitLab's write-only webhook field): small JSON records under
//! `<state>/integrations/` (directory 0700, files 0600) holding fingerprints, never values.
//!
//! A fingerprint is SHA-256 over a purpose label and the value. Every value fingerprinted here is
//! a 256-bit random secret or a URL carrying a 26-character random hook id, so the digest reveals
//! nothing guessable; the vault next door holds the values themselves anyway.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::fsx;
use crate::report::Outcome;
use crate::secrets::Secret;
use crate::state::{StateDir, StateError};

#[derive(Debug, Error)]
pub enum RecordError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Write(#[from] fsx::WriteError),
    #[error("cannot encode the record {name}: {reason}")]
    Encode { name: String, reason: String },
}

/// The fingerprint of `value` for `purpose` (e.g. `sonarqube-webhook-secret`): lowercase hex.
pub fn fingerprint(purpose: &str, value: &Secret) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"cityd-fingerprint-v1\0");
    hasher.update(purpose.as_bytes());
    hasher.update(b"\0");
    hasher.update(value.expose().as_bytes());
    hex::encode(hasher.finalize())
}

/// The records directory of a state dir.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn new(state: &StateDir) -> Self {
        Self {
            dir: state.integrations_dir(),
        }
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// The record, or `None` when it is absent or unreadable: an unknown record only means cityd
    /// cannot prove a remote setting is current, so it sets it again.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let bytes = std::fs::read(self.path_of(name)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                tracing::warn!(record = name, error = %e, "ignoring an unreadable record");
                None
            }
        }
    }

    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> Result<Outcome, RecordError> {
        StateDir::create_private_dir(&self.dir)?;
        let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| RecordError::Encode {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        Ok(fsx::write_if_changed(&self.path_of(name), &bytes, 0o600)?)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path_of(name).is_file()
    }

    /// Removes a record; an absent one is fine.
    pub fn remove(&self, name: &str) -> Result<(), RecordError> {
        match std::fs::remove_file(self.path_of(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RecordError::Write(fsx::WriteError::Io {
                path: self.path_of(name),
                source,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_depend_on_purpose_and_value_and_hide_the_value() {
        let a = fingerprint("x", &Secret::new("secret-value".into()));
        assert_eq!(a.len(), 64);
        assert!(!a.contains("secret"));
        assert_ne!(a, fingerprint("y", &Secret::new("secret-value".into())));
        assert_ne!(a, fingerprint("x", &Secret::new("secret-valuf".into())));
        assert_eq!(a, fingerprint("x", &Secret::new("secret-value".into())));
    }

    #[test]
    fn records_round_trip_with_private_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().join("state")).unwrap();
        let records = Records::new(&state);
        assert_eq!(records.load::<Vec<u8>>("r"), None);
        assert_eq!(records.save("r", &vec![1u8, 2]).unwrap(), Outcome::Created);
        assert_eq!(
            records.save("r", &vec![1u8, 2]).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(records.load::<Vec<u8>>("r"), Some(vec![1, 2]));
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(records.path_of("r")), 0o600);
        assert_eq!(mode(dir.path().join("state/integrations")), 0o700);
        records.remove("r").unwrap();
        records.remove("r").unwrap();
        assert!(!records.exists("r"));
    }
}
