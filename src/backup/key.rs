//! The backup's key material, always read from files (never argv): recipients (age public keys)
//! or an identity file to encrypt, an identity file or a passphrase file to decrypt, or an
//! explicit `--unencrypted`. Also makes a new identity file (`cityd backup key`).

use std::io::BufRead;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};

use super::BackupError;

/// How a new backup is protected.
pub enum Seal {
    /// To one or more age X25519 recipients.
    Recipients(Vec<age::x25519::Recipient>),
    /// With a passphrase (scrypt).
    Passphrase(SecretString),
    /// Plain tar: said explicitly, file mode 0600, a warning.
    Unencrypted,
}

/// How an existing backup is opened.
pub enum Opener {
    Identities(Vec<Box<dyn age::Identity + Send + Sync>>),
    Passphrase(SecretString),
    /// No key given: only an unencrypted backup can be read.
    None,
}

fn unreadable(path: &Path, e: std::io::Error) -> BackupError {
    BackupError::Key {
        path: path.to_path_buf(),
        reason: format!("cannot read it: {e}"),
    }
}

fn bad_key(path: &Path, reason: impl Into<String>) -> BackupError {
    BackupError::Key {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The meaningful lines of a key file (comments and blanks left out).
fn key_lines(path: &Path) -> Result<Vec<String>, BackupError> {
    let file = std::fs::File::open(path).map_err(|e| unreadable(path, e))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| unreadable(path, e))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// A passphrase file's first line (trailing newline dropped).
fn passphrase(path: &Path) -> Result<SecretString, BackupError> {
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(path, e))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        return Err(bad_key(
            path,
            "it is empty; its first line must be the passphrase",
        ));
    }
    Ok(SecretString::from(line.to_string()))
}

/// X25519 identities of an identity file (`AGE-SECRET-KEY-1...` lines).
fn x25519_identities(path: &Path) -> Result<Vec<age::x25519::Identity>, BackupError> {
    let lines = key_lines(path)?;
    if lines.is_empty() {
        return Err(bad_key(path, "it holds no AGE-SECRET-KEY-1... line"));
    }
    lines
        .iter()
        .map(|l| {
            age::x25519::Identity::from_str(l).map_err(|_| {
                bad_key(
                    path,
                    "a line is not an age identity (AGE-SECRET-KEY-1...); make one with `cityd backup key FILE`",
                )
            })
        })
        .collect()
}

/// Key options as the verbs take them.
#[derive(Debug, Clone, Default)]
pub struct KeyFiles {
    pub recipient_file: Option<PathBuf>,
    pub identity_file: Option<PathBuf>,
    pub passphrase_file: Option<PathBuf>,
    pub unencrypted: bool,
}

impl KeyFiles {
    /// What protects a new backup. Exactly one of the choices must be made.
    pub fn seal(&self) -> Result<Seal, BackupError> {
        let chosen = [
            self.recipient_file.is_some(),
            self.identity_file.is_some(),
            self.passphrase_file.is_some(),
            self.unencrypted,
        ]
        .iter()
        .filter(|c| **c)
        .count();
        if chosen != 1 {
            return Err(BackupError::Usage(
                "say how the backup is protected, once: --recipient-file FILE (age public keys), \
--identity-file FILE (its public key is used), --passphrase-file FILE, or --unencrypted"
                    .into(),
            ));
        }
        if let Some(path) = &self.recipient_file {
            let lines = key_lines(path)?;
            if lines.is_empty() {
                return Err(bad_key(path, "it holds no age1... recipient"));
            }
            let recipients = lines
                .iter()
                .map(|l| {
                    age::x25519::Recipient::from_str(l)
                        .map_err(|_| bad_key(path, "a line is not an age recipient (age1...)"))
                })
                .collect::<Result<_, _>>()?;
            return Ok(Seal::Recipients(recipients));
        }
        if let Some(path) = &self.identity_file {
            let ids = x25519_identities(path)?;
            return Ok(Seal::Recipients(
                ids.iter().map(|i| i.to_public()).collect(),
            ));
        }
        if let Some(path) = &self.passphrase_file {
            return Ok(Seal::Passphrase(passphrase(path)?));
        }
        Ok(Seal::Unencrypted)
    }

    /// What opens an existing backup.
    pub fn opener(&self) -> Result<Opener, BackupError> {
        if let Some(path) = &self.identity_file {
            let ids = x25519_identities(path)?;
            return Ok(Opener::Identities(
                ids.into_iter()
                    .map(|i| Box::new(i) as Box<dyn age::Identity + Send + Sync>)
                    .collect(),
            ));
        }
        if let Some(path) = &self.passphrase_file {
            return Ok(Opener::Passphrase(passphrase(path)?));
        }
        Ok(Opener::None)
    }
}

impl Seal {
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Seal::Unencrypted)
    }

    /// Wraps `out` in age encryption (or not).
    pub fn wrap<W: std::io::Write + 'static>(
        &self,
        out: W,
    ) -> std::io::Result<Box<dyn FinishWrite<W>>> {
        match self {
            Seal::Recipients(rs) => {
                let enc =
                    age::Encryptor::with_recipients(rs.iter().map(|r| r as &dyn age::Recipient))
                        .map_err(std::io::Error::other)?;
                Ok(Box::new(enc.wrap_output(out)?))
            }
            Seal::Passphrase(p) => {
                let enc = age::Encryptor::with_user_passphrase(SecretString::from(
                    p.expose_secret().to_string(),
                ));
                Ok(Box::new(enc.wrap_output(out)?))
            }
            Seal::Unencrypted => Ok(Box::new(Plain(out))),
        }
    }
}

/// A writer that must be finished (age writes its last chunk then).
pub trait FinishWrite<W>: std::io::Write {
    fn finish_box(self: Box<Self>) -> std::io::Result<W>;
}

impl<W: std::io::Write> FinishWrite<W> for age::stream::StreamWriter<W> {
    fn finish_box(self: Box<Self>) -> std::io::Result<W> {
        (*self).finish()
    }
}

struct Plain<W>(W);

impl<W: std::io::Write> std::io::Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: std::io::Write> FinishWrite<W> for Plain<W> {
    fn finish_box(self: Box<Self>) -> std::io::Result<W> {
        Ok(self.0)
    }
}

/// Writes a new identity file (0600, refusing to overwrite) and returns its public key.
pub fn generate(path: &Path) -> Result<String, BackupError> {
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    let text = format!(
        "# cityd backup key; public key: {public}\n{}\n",
        identity.to_string().expose_secret()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BackupError::Io {
            what: "create the key file (it must not exist yet)",
            path: path.to_path_buf(),
            source: e,
        })?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| BackupError::Io {
            what: "write the key file",
            path: path.to_path_buf(),
            source: e,
        })?;
    Ok(public)
}
