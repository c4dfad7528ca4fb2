//! `Vault`: one 0600 file per secret under `<state>/secrets/`, read and judged by shape, written
//! atomically (never replacing a generated secret), serialised by an exclusive lock file.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{Secret, SecretName, ShapeProblem, VaultError, rule_of, shape_of};
use crate::fsx;
use crate::state::StateDir;

/// Where the vault keeps its lock; a dot file so `list` and `get` never see it.
const LOCK_FILE: &str = ".lock";
/// A value longer than this is not a secret cityd wrote; refusing it keeps `list` from reading huge files.
const MAX_VALUE_BYTES: u64 = 4096;

/// What reading one vault file found. The value is only present when it has its shape.
pub(super) enum Found {
    Absent,
    Valid(Secret),
    Invalid { length: usize, problem: String },
}

pub struct Vault {
    pub(super) dir: PathBuf,
}

/// Holds the vault's lock file locked until dropped (the kernel releases it if the process dies).
pub struct VaultLock {
    _file: std::fs::File,
}

/// A name `get`, `read` and `store` accept: a plain file name inside the vault. The one rule; the
/// city description's check of vault names builds on it.
pub(crate) fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\0']) && name.len() <= 255
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

    pub(super) fn check_name(&self, name: &str) -> Result<(), VaultError> {
        if is_plain_file_name(name) {
            Ok(())
        } else {
            Err(VaultError::BadName {
                name: name.into(),
                dir: self.dir.clone(),
            })
        }
    }

    /// Creates the directory (0700) and takes the exclusive lock that serialises concurrent runs.
    /// The lock file is opened without following a link.
    pub fn lock(&self) -> Result<VaultLock, VaultError> {
        self.trusted_dirs()?;
        StateDir::create_private_dir(&self.dir)?;
        self.trusted_dirs()?;
        let path = self.dir.join(LOCK_FILE);
        let file = crate::owned::open_lock(&path, 0o600).map_err(|refusal| match refusal {
            crate::owned::Refusal::Io { path, source } => VaultError::Lock { path, source },
            other => VaultError::Untrusted(other),
        })?;
        file.lock()
            .map_err(|source| VaultError::Lock { path, source })?;
        Ok(VaultLock { _file: file })
    }

    /// A shared lock for a run that only reads (a no-op `ensure` on a read-only vault): it waits for
    /// a writer to finish, and needs no write access. `None` when the vault has no lock file yet.
    pub(super) fn lock_shared(&self) -> Result<Option<VaultLock>, VaultError> {
        let Some(file) = crate::owned::open_file(&self.dir.join(LOCK_FILE))? else {
            return Ok(None);
        };
        file.lock_shared().map_err(|source| VaultError::Lock {
            path: self.dir.join(LOCK_FILE),
            source,
        })?;
        Ok(Some(VaultLock { _file: file }))
    }

    /// Checks the state directory and the vault directory before anything in them is trusted: each
    /// must be owned by this user (or root) and writable by no one else.
    pub fn trusted_dirs(&self) -> Result<(), VaultError> {
        if let Some(state) = self.dir.parent() {
            crate::owned::check_dir(state)?;
        }
        crate::owned::check_dir(&self.dir)?;
        Ok(())
    }

    /// Reads one vault file without judging it yet.
    pub(super) fn find(&self, file_name: &str) -> Result<Found, VaultError> {
        let path = self.path_of(file_name);
        let read_err = |source| VaultError::Read {
            path: path.clone(),
            source,
        };
        // Never through a link, never blocking on a FIFO, only our own regular files.
        let Some(file) = crate::owned::open_file(&path)? else {
            return Ok(Found::Absent);
        };
        let meta = file.metadata().map_err(read_err)?;
        let shape = shape_of(file_name);
        let mut bytes = Vec::new();
        file.take(MAX_VALUE_BYTES + 2)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > MAX_VALUE_BYTES + 1 {
            return Ok(Found::Invalid {
                length: meta.len() as usize,
                problem: format!("it is longer than {MAX_VALUE_BYTES} bytes"),
            });
        }
        // cityd writes the value and one newline; a hand-written file without the newline is fine too.
        let value = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let Ok(value) = std::str::from_utf8(value) else {
            return Ok(Found::Invalid {
                length: value.len(),
                problem: "it is not UTF-8 text".into(),
            });
        };
        Ok(match shape.violation(value) {
            None => Found::Valid(Secret::new(value.to_string())),
            Some(problem) => Found::Invalid {
                length: value.len(),
                problem,
            },
        })
    }

    fn problem(&self, file_name: &str, problem: String) -> ShapeProblem {
        ShapeProblem {
            path: self.path_of(file_name),
            problem,
            rule: rule_of(file_name),
        }
    }

    /// Reads one file of the vault; `None` when absent, an error when it breaks its shape.
    pub fn read(&self, file_name: &str) -> Result<Option<Secret>, VaultError> {
        self.check_name(file_name)?;
        self.trusted_dirs()?;
        match self.find(file_name)? {
            Found::Absent => Ok(None),
            Found::Valid(s) => Ok(Some(s)),
            Found::Invalid { problem, .. } => Err(VaultError::WrongShape(vec![
                self.problem(file_name, problem),
            ])),
        }
    }

    /// Reads a generated secret, failing with the fix when it is missing.
    pub fn get(&self, name: SecretName) -> Result<Secret, VaultError> {
        self.read(name.file_name())?
            .ok_or_else(|| VaultError::Missing {
                name: name.file_name().into(),
                path: self.path_of(name.file_name()),
            })
    }

    /// Reads any vault file by name for `cityd secrets get`: unknown names get the list of known ones.
    pub fn get_by_name(&self, name: &str) -> Result<Secret, VaultError> {
        match self.read(name)? {
            Some(secret) => Ok(secret),
            None => match SecretName::from_file_name(name) {
                Some(known) => Err(VaultError::Missing {
                    name: known.file_name().into(),
                    path: self.path_of(name),
                }),
                None => Err(VaultError::UnknownName {
                    name: name.into(),
                    dir: self.dir.clone(),
                    known: SecretName::ALL.map(SecretName::file_name).join(", "),
                }),
            },
        }
    }

    /// Reads every generated secret; all wrong shapes are reported together.
    pub(super) fn survey(&self) -> Result<Vec<(SecretName, Option<Secret>)>, VaultError> {
        self.trusted_dirs()?;
        let mut found = Vec::new();
        let mut problems = Vec::new();
        for name in SecretName::ALL {
            match self.find(name.file_name())? {
                Found::Absent => found.push((name, None)),
                Found::Valid(s) => found.push((name, Some(s))),
                Found::Invalid { problem, .. } => {
                    problems.push(self.problem(name.file_name(), problem))
                }
            }
        }
        if problems.is_empty() {
            Ok(found)
        } else {
            Err(VaultError::WrongShape(problems))
        }
    }

    /// Modes that let someone else read a secret; reported, never changed behind the user's back.
    pub(super) fn permission_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let loose = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| m.mode() & 0o7777)
                .filter(|mode| mode & 0o077 != 0)
        };
        if let Some(mode) = loose(&self.dir) {
            warnings.push(format!(
                "{} has mode {mode:04o}; others can list the vault: chmod 700 {}",
                self.dir.display(),
                self.dir.display()
            ));
        }
        for name in SecretName::ALL {
            let p = self.path_of(name.file_name());
            if let Some(mode) = loose(&p) {
                warnings.push(format!(
                    "{} has mode {mode:04o}; others can read the secret: chmod 600 {}",
                    p.display(),
                    p.display()
                ));
            }
        }
        warnings
    }

    /// Stores a value cityd learned rather than generated (a webhook URL, a token). Idempotent: the
    /// same value changes nothing; a different value replaces a stored file atomically. A generated
    /// secret's name is never replaced: a different value is a [`VaultError::Conflict`].
    pub fn store(
        &self,
        file_name: &str,
        value: &Secret,
    ) -> Result<crate::report::Outcome, VaultError> {
        self.check_name(file_name)?;
        if let Some(problem) = shape_of(file_name).violation(value.expose()) {
            return Err(VaultError::BadValue {
                name: file_name.into(),
                problem,
                rule: rule_of(file_name),
            });
        }
        let _lock = self.lock()?;
        if SecretName::from_file_name(file_name).is_some() {
            return match self.read(file_name)? {
                Some(existing) if existing == *value => Ok(crate::report::Outcome::Unchanged),
                Some(_) => Err(VaultError::Conflict {
                    path: self.path_of(file_name),
                }),
                None => self
                    .create(file_name, value)
                    .map(|()| crate::report::Outcome::Created),
            };
        }
        // Refuses a link, a FIFO or another user's file in its place before anything is compared.
        self.find(file_name)?;
        Ok(fsx::write_if_changed(
            &self.path_of(file_name),
            &file_bytes(value),
            0o600,
        )?)
    }

    /// Writes a new secret file atomically; it must not exist yet. Callers hold the lock.
    pub fn create(&self, file_name: &str, value: &Secret) -> Result<(), VaultError> {
        self.check_name(file_name)?;
        StateDir::create_private_dir(&self.dir)?;
        fsx::create_new(&self.path_of(file_name), &file_bytes(value), 0o600)?;
        Ok(())
    }
}

/// The bytes of a vault file: the value and one newline (what `echo` writes, what `head -n1` reads).
fn file_bytes(value: &Secret) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(value.len() + 1);
    bytes.extend_from_slice(value.expose().as_bytes());
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
pub(super) fn scratch_vault() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(&StateDir::at(dir.path().join("state")).unwrap());
    (dir, vault)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scratch_vault as vault;

    #[test]
    fn store_never_replaces_a_generated_secret() {
        let (_d, vault) = vault();
        vault.ensure().unwrap();
        let turn = vault.get(SecretName::TurnStaticAuthSecret).unwrap();
        assert_eq!(
            vault.store("turn-static-auth-secret", &turn).unwrap(),
            crate::report::Outcome::Unchanged
        );
        let other = Secret::new("ab".repeat(32));
        assert!(matches!(
            vault.store("turn-static-auth-secret", &other),
            Err(VaultError::Conflict { .. })
        ));
        assert_eq!(vault.get(SecretName::TurnStaticAuthSecret).unwrap(), turn);
        let url = Secret::new("https://mm.example/hooks/abc".into());
        assert_eq!(
            vault.store("jenkins-webhook-url", &url).unwrap(),
            crate::report::Outcome::Created
        );
        assert_eq!(vault.read("jenkins-webhook-url").unwrap(), Some(url));
        assert!(matches!(
            vault.store("../escape", &turn),
            Err(VaultError::BadName { .. })
        ));
    }

    #[test]
    fn names_outside_the_vault_are_refused() {
        let (_d, vault) = vault();
        for bad in ["", ".lock", "../x", "a/b", ".cityd-tmp-1"] {
            assert!(
                matches!(vault.read(bad), Err(VaultError::BadName { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            vault.get_by_name("nope"),
            Err(VaultError::UnknownName { .. })
        ));
        assert!(matches!(
            vault.get_by_name("turn-static-auth-secret"),
            Err(VaultError::Missing { .. })
        ));
    }
}
