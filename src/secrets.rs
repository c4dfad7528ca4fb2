//! The vault: one 0600 file per secret under `<state>/secrets/`, generated once from the OS random
//! source, validated by shape, never rotated, written atomically and serialised by a lock file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use thiserror::Error;

use crate::fsx::{self, WriteError};
use crate::state::{StateDir, StateError};

#[derive(Debug, Error)]
pub enum VaultError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "secret file {path} does not match its shape: {rule}. cityd never replaces an existing secret; fix or remove the file yourself (removing it rotates the secret)"
    )]
    WrongShape { path: PathBuf, rule: &'static str },
    #[error("secret {name} is missing at {path}; run `cityd secrets ensure`")]
    Missing { name: String, path: PathBuf },
    #[error(
        "cannot read secret file {path}: {source}; check its owner and mode (cityd writes 0600 files)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock the vault at {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unknown secret name {name:?}; known names: {known}")]
    UnknownName { name: String, known: String },
    #[error("value for {name} is not acceptable: {rule}")]
    BadValue { name: String, rule: &'static str },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// A secret value. It has no `Display`, and its `Debug` shows only the length, so it cannot leak
/// into logs or error messages by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The value itself; call only where it goes to its one destination (a 0600 file, a config, a MAC).
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<redacted>, {} bytes)", self.0.len())
    }
}

/// The rule a secret's value must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Exactly this many lowercase hex digits.
    Hex(usize),
    /// Exactly this many letters and digits (an AES key of that many bytes).
    Exactly(usize),
    /// At least this many letters and digits.
    AtLeast(usize),
    /// Stored, not generated (webhook URLs, tokens): non-empty, one line, no spaces.
    Opaque,
}

impl Shape {
    pub fn rule(self) -> &'static str {
        match self {
            Shape::Hex(64) => "exactly 64 lowercase hex digits",
            Shape::Exactly(32) => {
                "exactly 32 letters or digits (a 32-byte AES-256 key; anything else fails when the plugin uses it)"
            }
            Shape::AtLeast(32) => {
                "at least 32 letters or digits (Mattermost refuses to start below 32)"
            }
            Shape::Opaque => "one non-empty line without spaces",
            _ => "the documented shape",
        }
    }

    pub fn accepts(self, value: &str) -> bool {
        let alnum = |v: &str| v.bytes().all(|b| b.is_ascii_alphanumeric());
        match self {
            Shape::Hex(n) => {
                value.len() == n
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
            Shape::Exactly(n) => value.len() == n && alnum(value),
            Shape::AtLeast(n) => value.len() >= n && alnum(value),
            Shape::Opaque => {
                !value.is_empty()
                    && !value
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            }
        }
    }

    /// A fresh value of this shape from the OS random source.
    pub fn generate(self) -> Option<Secret> {
        let mut rng = rand::rng();
        match self {
            Shape::Hex(n) => {
                let mut bytes = vec![0u8; n.div_ceil(2)];
                rand::Rng::fill_bytes(&mut rng, &mut bytes);
                let mut s = hex::encode(bytes);
                s.truncate(n);
                Some(Secret(s))
            }
            Shape::Exactly(n) | Shape::AtLeast(n) => {
                Some(Secret(Alphanumeric.sample_string(&mut rng, n)))
            }
            Shape::Opaque => None,
        }
    }
}

/// Every secret cityd generates: file name, shape, and what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretName {
    TurnStaticAuthSecret,
    MattermostAtRestEncryptKey,
    MattermostPublicLinkSalt,
    GitlabPluginEncryptionKey,
    JenkinsPluginEncryptionKey,
    GitlabPluginWebhookSecret,
    SonarqubeWebhookSecret,
    MattermostDbPassword,
}

impl SecretName {
    pub const ALL: [SecretName; 8] = [
        SecretName::TurnStaticAuthSecret,
        SecretName::MattermostAtRestEncryptKey,
        SecretName::MattermostPublicLinkSalt,
        SecretName::GitlabPluginEncryptionKey,
        SecretName::JenkinsPluginEncryptionKey,
        SecretName::GitlabPluginWebhookSecret,
        SecretName::SonarqubeWebhookSecret,
        SecretName::MattermostDbPassword,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            SecretName::TurnStaticAuthSecret => "turn-static-auth-secret",
            SecretName::MattermostAtRestEncryptKey => "mattermost-at-rest-encrypt-key",
            SecretName::MattermostPublicLinkSalt => "mattermost-public-link-salt",
            SecretName::GitlabPluginEncryptionKey => "gitlab-plugin-encryption-key",
            SecretName::JenkinsPluginEncryptionKey => "jenkins-plugin-encryption-key",
            SecretName::GitlabPluginWebhookSecret => "gitlab-plugin-webhook-secret",
            SecretName::SonarqubeWebhookSecret => "sonarqube-webhook-secret",
            SecretName::MattermostDbPassword => "mattermost-db-password",
        }
    }

    pub fn shape(self) -> Shape {
        match self {
            SecretName::TurnStaticAuthSecret
            | SecretName::GitlabPluginWebhookSecret
            | SecretName::SonarqubeWebhookSecret => Shape::Hex(64),
            SecretName::MattermostAtRestEncryptKey | SecretName::MattermostPublicLinkSalt => {
                Shape::AtLeast(32)
            }
            SecretName::GitlabPluginEncryptionKey
            | SecretName::JenkinsPluginEncryptionKey
            | SecretName::MattermostDbPassword => Shape::Exactly(32),
        }
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.file_name() == name)
    }
}

/// Shape of any file in the vault: generated secrets have theirs, stored ones (webhook URLs, tokens) are opaque.
pub fn shape_of(file_name: &str) -> Shape {
    SecretName::from_file_name(file_name).map_or(Shape::Opaque, SecretName::shape)
}

/// What `ensure` did to one secret.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureEntry {
    pub name: &'static str,
    pub path: PathBuf,
    /// `created` or `kept`.
    pub action: &'static str,
}

/// Metadata that `list` prints: never the value.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    pub name: String,
    pub length: usize,
    pub path: PathBuf,
    pub age_seconds: Option<u64>,
    pub valid: bool,
}

pub struct Vault {
    dir: PathBuf,
}

/// Holds the vault's lock file locked until dropped.
pub struct VaultLock {
    _file: std::fs::File,
}

impl Vault {
    pub fn new(state: &StateDir) -> Self {
        Self {
            dir: state.secrets_dir(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, file_name: &str) -> PathBuf {
        self.dir.join(file_name)
    }

    /// Creates the directory (0700) and takes the exclusive lock that serialises concurrent runs.
    pub fn lock(&self) -> Result<VaultLock, VaultError> {
        StateDir::create_private_dir(&self.dir)?;
        let path = self.dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| VaultError::Lock {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| VaultError::Lock { path, source })?;
        Ok(VaultLock { _file: file })
    }

    /// Reads one file of the vault; `None` when absent.
    pub fn read(&self, file_name: &str) -> Result<Option<Secret>, VaultError> {
        let path = self.path_of(file_name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(VaultError::Read { path, source }),
        };
        let value = text.strip_suffix('\n').unwrap_or(&text);
        let shape = shape_of(file_name);
        if !shape.accepts(value) {
            return Err(VaultError::WrongShape {
                path,
                rule: shape.rule(),
            });
        }
        Ok(Some(Secret(value.to_string())))
    }

    /// Reads a generated secret, failing with the fix when it is missing.
    pub fn get(&self, name: SecretName) -> Result<Secret, VaultError> {
        self.read(name.file_name())?
            .ok_or_else(|| VaultError::Missing {
                name: name.file_name().into(),
                path: self.path_of(name.file_name()),
            })
    }

    /// Generates every missing secret; existing ones are validated and never rewritten.
    pub fn ensure(&self) -> Result<Vec<EnsureEntry>, VaultError> {
        let _lock = self.lock()?;
        fsx::remove_stale_temps(&self.dir);
        let mut report = Vec::new();
        for name in SecretName::ALL {
            let file = name.file_name();
            let action = if self.read(file)?.is_some() {
                "kept"
            } else {
                let value = name
                    .shape()
                    .generate()
                    .expect("generated shapes produce values");
                self.create(file, &value)?;
                "created"
            };
            report.push(EnsureEntry {
                name: file,
                path: self.path_of(file),
                action,
            });
        }
        Ok(report)
    }

    /// What `ensure` would do, without creating anything.
    pub fn plan(&self) -> Result<Vec<EnsureEntry>, VaultError> {
        SecretName::ALL
            .into_iter()
            .map(|name| {
                let file = name.file_name();
                let action = if self.read(file)?.is_some() {
                    "kept"
                } else {
                    "create"
                };
                Ok(EnsureEntry {
                    name: file,
                    path: self.path_of(file),
                    action,
                })
            })
            .collect()
    }

    /// Stores a value cityd learned rather than generated (a webhook URL, a token). Idempotent:
    /// the same value changes nothing; a different value replaces the file atomically.
    pub fn store(&self, file_name: &str, value: &Secret) -> Result<fsx::WriteOutcome, VaultError> {
        let shape = shape_of(file_name);
        if !shape.accepts(value.expose()) {
            return Err(VaultError::BadValue {
                name: file_name.into(),
                rule: shape.rule(),
            });
        }
        let _lock = self.lock()?;
        let mut bytes = value.expose().as_bytes().to_vec();
        bytes.push(b'\n');
        Ok(fsx::write_if_changed(
            &self.path_of(file_name),
            &bytes,
            0o600,
        )?)
    }

    /// Writes a new secret file; it must not exist yet.
    pub fn create(&self, file_name: &str, value: &Secret) -> Result<(), VaultError> {
        StateDir::create_private_dir(&self.dir)?;
        let mut bytes = value.expose().as_bytes().to_vec();
        bytes.push(b'\n');
        fsx::create_new(&self.path_of(file_name), &bytes, 0o600)?;
        Ok(())
    }

    /// Every file in the vault with its metadata, sorted by name.
    pub fn list(&self) -> Result<Vec<ListEntry>, VaultError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(VaultError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            let meta = entry.metadata().map_err(|source| VaultError::Read {
                path: path.clone(),
                source,
            })?;
            let (length, valid) = match self.read(&name) {
                Ok(Some(s)) => (s.len(), true),
                _ => (meta.len().saturating_sub(1) as usize, false),
            };
            let age_seconds = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .map(|d| d.as_secs());
            out.push(ListEntry {
                name,
                length,
                path,
                age_seconds,
                valid,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_fit_their_shapes() {
        for name in SecretName::ALL {
            let v = name.shape().generate().unwrap();
            assert!(name.shape().accepts(v.expose()), "{name:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>, 14 bytes)");
    }

    #[test]
    fn ensure_creates_then_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(&StateDir::at(dir.path().to_path_buf()).unwrap());
        let first = vault.ensure().unwrap();
        assert!(first.iter().all(|e| e.action == "created"));
        let before = vault.get(SecretName::TurnStaticAuthSecret).unwrap();
        let second = vault.ensure().unwrap();
        assert!(second.iter().all(|e| e.action == "kept"));
        assert_eq!(before, vault.get(SecretName::TurnStaticAuthSecret).unwrap());
    }

    #[test]
    fn wrong_shape_is_an_error_and_the_file_stays() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(&StateDir::at(dir.path().to_path_buf()).unwrap());
        std::fs::create_dir_all(vault.dir()).unwrap();
        let p = vault.path_of("jenkins-plugin-encryption-key");
        std::fs::write(&p, "tooshort\n").unwrap();
        let err = vault.ensure().unwrap_err().to_string();
        assert!(
            err.contains("jenkins-plugin-encryption-key") && err.contains("exactly 32"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "tooshort\n");
    }
}
