//! The vault: one 0600 file per secret under `<state>/secrets/`, generated once from the OS random
//! source, validated by shape, never rotated, written atomically and serialised by a lock file.
//!
//! Import of the blog's `cicd.env` lives in [`import_env`].

pub mod import_env;

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rand::TryRng;
use serde::Serialize;
use thiserror::Error;

use crate::fsx::{self, WriteError};
use crate::state::{StateDir, StateError};

/// Where the vault keeps its lock; a dot file so `list` and `get` never see it.
const LOCK_FILE: &str = ".lock";
/// A value longer than this is not a secret cityd wrote; refusing it keeps `list` from reading huge files.
const MAX_VALUE_BYTES: u64 = 4096;

#[derive(Debug, Error)]
pub enum VaultError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{}", shape_problems_message(.0))]
    WrongShape(Vec<ShapeProblem>),
    #[error(
        "secret {name} has not been generated yet (no file {path}); run `cityd secrets ensure`"
    )]
    Missing { name: String, path: PathBuf },
    #[error(
        "cannot read secret file {path}: {source}; the user running cityd must own it and be able to search its directory and the parents (cityd writes 0600 files in a 0700 directory), or pass another --state-dir"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot read the vault directory {path}: {source}; the user running cityd needs read, write and search permission on it and its parents (cityd creates it 0700), or pass another --state-dir"
    )]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file; move it away so the vault can use the name")]
    NotAFile { path: PathBuf },
    #[error(
        "cannot lock the vault at {path}: {source}; the user running cityd must be able to write the vault directory"
    )]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name:?} is not a secret name: names are plain file names in {dir} (no '/', not starting with '.'); `cityd secrets list` shows them"
    )]
    BadName { name: String, dir: PathBuf },
    #[error(
        "no secret named {name:?} in {dir}; the generated ones are {known}, and `cityd secrets list` shows every file the vault holds"
    )]
    UnknownName {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("the value given for {name} is not acceptable: {problem}; the rule is {rule}")]
    BadValue {
        name: String,
        problem: String,
        rule: String,
    },
    #[error(
        "{path} already holds a different value; cityd never replaces a generated secret (rotating it destroys what it protected). Remove the file yourself if you really mean to rotate it"
    )]
    Conflict { path: PathBuf },
    #[error(
        "the operating system's random source failed: {0}; cityd does not generate secrets without it"
    )]
    Random(String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl VaultError {
    /// True when the error is about what the user gave or has on disk (exit 2), not a failed operation.
    pub fn is_bad_input(&self) -> bool {
        match self {
            VaultError::State(_)
            | VaultError::WrongShape(_)
            | VaultError::Missing { .. }
            | VaultError::NotAFile { .. }
            | VaultError::BadName { .. }
            | VaultError::UnknownName { .. }
            | VaultError::BadValue { .. }
            | VaultError::Conflict { .. } => true,
            VaultError::Read { source, .. }
            | VaultError::ReadDir { source, .. }
            | VaultError::Lock { source, .. } => {
                source.kind() == std::io::ErrorKind::PermissionDenied
            }
            VaultError::Random(_) | VaultError::Write(_) => false,
        }
    }
}

/// One existing secret file that breaks its rule. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeProblem {
    pub path: PathBuf,
    /// What is wrong, described without the value (a length, a position).
    pub problem: String,
    pub rule: String,
}

fn shape_problems_message(problems: &[ShapeProblem]) -> String {
    let mut out = String::new();
    if let [p] = problems {
        out.push_str(&format!(
            "secret file {} does not match its shape: {}; the rule is {}. ",
            p.path.display(),
            p.problem,
            p.rule
        ));
    } else {
        out.push_str(&format!(
            "{} secret files do not match their shapes:",
            problems.len()
        ));
        for p in problems {
            out.push_str(&format!(
                "\n  {}: {}; the rule is {}",
                p.path.display(),
                p.problem,
                p.rule
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "cityd never replaces an existing secret (rotating it destroys what it protected): \
fix the file, or remove it to have a new value generated",
    );
    out
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

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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

/// The letters and digits a generated secret is drawn from: safe in URLs, env files and shells.
const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

impl Shape {
    /// The rule in words, for errors and `list`.
    pub fn rule(self) -> String {
        match self {
            Shape::Hex(n) => format!("exactly {n} lowercase hex digits (0-9, a-f)"),
            Shape::Exactly(n) => format!("exactly {n} letters or digits"),
            Shape::AtLeast(n) => format!("at least {n} letters or digits"),
            Shape::Opaque => "one non-empty line without spaces or control characters".into(),
        }
    }

    pub fn accepts(self, value: &str) -> bool {
        self.violation(value).is_none()
    }

    /// What is wrong with `value`, in words that never contain the value or any of its characters.
    pub fn violation(self, value: &str) -> Option<String> {
        let (in_class, class): (fn(u8) -> bool, &str) = match self {
            Shape::Hex(_) => (
                |b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
                "a lowercase hex digit",
            ),
            Shape::Exactly(_) | Shape::AtLeast(_) => {
                (|b| b.is_ascii_alphanumeric(), "a letter or digit")
            }
            Shape::Opaque => (
                |b| !b.is_ascii_whitespace() && !b.is_ascii_control(),
                "printable",
            ),
        };
        let len = value.len();
        let length_problem = match self {
            Shape::Hex(n) | Shape::Exactly(n) if len != n => {
                Some(format!("it has {len} characters instead of {n}"))
            }
            Shape::AtLeast(n) if len < n => Some(format!("it has only {len} characters")),
            Shape::Opaque if len == 0 => Some("it is empty".to_string()),
            _ => None,
        };
        let bad: Vec<usize> = value
            .bytes()
            .enumerate()
            .filter(|&(_, b)| !in_class(b))
            .map(|(i, _)| i + 1)
            .collect();
        let class_problem = bad.first().map(|&first| {
            let kind = if value.as_bytes()[first - 1].is_ascii_whitespace()
                || value.as_bytes()[first - 1].is_ascii_control()
            {
                " (whitespace or a control character)"
            } else if value.as_bytes()[first - 1] == b'"' || value.as_bytes()[first - 1] == b'\'' {
                " (a quote)"
            } else {
                ""
            };
            match bad.len() {
                1 => format!("character {first} is not {class}{kind}"),
                n => format!("{n} characters are not {class}, the first at position {first}{kind}"),
            }
        });
        match (length_problem, class_problem) {
            (None, None) => None,
            (Some(l), None) => Some(l),
            (None, Some(c)) => Some(c),
            (Some(l), Some(c)) => Some(format!("{l} and {c}")),
        }
    }

    /// A fresh value of this shape from `fill` (the OS random source outside tests). Letters and
    /// digits come from rejection sampling, so every character is equally likely.
    pub fn generate_with<E: fmt::Display>(
        self,
        mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
    ) -> Result<Secret, VaultError> {
        let random = |e: E| VaultError::Random(e.to_string());
        match self {
            Shape::Hex(n) => {
                let mut bytes = vec![0u8; n.div_ceil(2)];
                fill(&mut bytes).map_err(random)?;
                let mut s = hex::encode(bytes);
                s.truncate(n);
                Ok(Secret(s))
            }
            Shape::Exactly(n) | Shape::AtLeast(n) => {
                let mut out = String::with_capacity(n);
                let mut buf = [0u8; 64];
                while out.len() < n {
                    fill(&mut buf).map_err(random)?;
                    // 248 = 4 * 62: bytes at or above it would favour the first letters.
                    for &b in buf.iter().filter(|&&b| b < 248) {
                        if out.len() == n {
                            break;
                        }
                        out.push(ALNUM[usize::from(b) % ALNUM.len()] as char);
                    }
                }
                Ok(Secret(out))
            }
            Shape::Opaque => Err(VaultError::Random(
                "opaque values are learned, not generated".into(),
            )),
        }
    }

    /// A fresh value of this shape from the operating system's random source (getrandom).
    pub fn generate(self) -> Result<Secret, VaultError> {
        self.generate_with(|buf| rand::rngs::SysRng.try_fill_bytes(buf))
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

    /// The shape values must have. Generated values have the minimum length of `AtLeast` shapes.
    ///
    /// The database password is "at least 32" rather than "exactly 32": cityd generates 32, but the
    /// blog's database script (`01-setup-database.sh`) generated 64 hex digits, and PostgreSQL
    /// already holds that password, so importing it must work.
    pub fn shape(self) -> Shape {
        match self {
            SecretName::TurnStaticAuthSecret
            | SecretName::GitlabPluginWebhookSecret
            | SecretName::SonarqubeWebhookSecret => Shape::Hex(64),
            SecretName::MattermostAtRestEncryptKey
            | SecretName::MattermostPublicLinkSalt
            | SecretName::MattermostDbPassword => Shape::AtLeast(32),
            SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                Shape::Exactly(32)
            }
        }
    }

    /// The shape and why it is that shape, for error messages.
    pub fn rule(self) -> String {
        let why = match self {
            SecretName::TurnStaticAuthSecret => "the shared secret of coturn and Calls",
            SecretName::MattermostAtRestEncryptKey | SecretName::MattermostPublicLinkSalt => {
                "Mattermost refuses to start below 32"
            }
            SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                "the plugin uses it as a 32-byte AES-256 key and fails on any other length when it encrypts"
            }
            SecretName::GitlabPluginWebhookSecret | SecretName::SonarqubeWebhookSecret => {
                "the token webhook senders present"
            }
            SecretName::MattermostDbPassword => {
                "it goes into the database URL, where other characters would need escaping"
            }
        };
        format!("{} ({why})", self.shape().rule())
    }

    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.file_name() == name)
    }

    /// A fresh value of this secret's shape from the OS random source.
    pub fn generate(self) -> Result<Secret, VaultError> {
        self.shape().generate()
    }
}

/// Shape of any file in the vault: generated secrets have theirs, stored ones (webhook URLs, tokens) are opaque.
pub fn shape_of(file_name: &str) -> Shape {
    SecretName::from_file_name(file_name).map_or(Shape::Opaque, SecretName::shape)
}

/// The rule for any file in the vault, with the reason for generated ones.
pub fn rule_of(file_name: &str) -> String {
    SecretName::from_file_name(file_name).map_or_else(|| Shape::Opaque.rule(), SecretName::rule)
}

/// What `ensure` did, or would do, to one secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsureAction {
    Created,
    WouldCreate,
    Kept,
}

impl EnsureAction {
    pub fn as_str(self) -> &'static str {
        match self {
            EnsureAction::Created => "created",
            EnsureAction::WouldCreate => "would create",
            EnsureAction::Kept => "kept",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EnsureEntry {
    pub name: &'static str,
    pub path: PathBuf,
    pub action: EnsureAction,
    pub length: usize,
}

/// The result of `ensure` (or its dry run), plus what it noticed but does not change.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureReport {
    pub vault: PathBuf,
    pub dry_run: bool,
    pub changed: bool,
    pub secrets: Vec<EnsureEntry>,
    /// Temp files of killed runs that were removed (never finished values).
    pub removed_temp_files: usize,
    /// Files or the directory readable by others: reported, never silently re-moded.
    pub warnings: Vec<String>,
}

/// How a vault file looks to `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListStatus {
    Ok,
    WrongShape,
    Missing,
    Unreadable,
}

/// Metadata that `list` prints: never the value.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    pub name: String,
    /// `generated` for the secrets cityd makes, `stored` for values it learned.
    pub kind: &'static str,
    pub status: ListStatus,
    pub length: Option<usize>,
    pub path: PathBuf,
    pub age_seconds: Option<u64>,
    /// Octal permission bits, e.g. `0600`.
    pub mode: Option<String>,
    pub rule: String,
}

/// What reading one vault file found. The value is only present when it has its shape.
enum Found {
    Absent,
    Valid(Secret),
    Invalid { length: usize, problem: String },
}

pub struct Vault {
    dir: PathBuf,
}

/// Holds the vault's lock file locked until dropped (the kernel releases it if the process dies).
pub struct VaultLock {
    _file: std::fs::File,
}

/// A name `get`, `read` and `store` accept: a plain file name inside the vault.
fn is_plain_file_name(name: &str) -> bool {
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

    fn check_name(&self, name: &str) -> Result<(), VaultError> {
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
    pub fn lock(&self) -> Result<VaultLock, VaultError> {
        StateDir::create_private_dir(&self.dir)?;
        let path = self.dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| VaultError::Lock {
                path: path.clone(),
                source,
            })?;
        file.lock()
            .map_err(|source| VaultError::Lock { path, source })?;
        Ok(VaultLock { _file: file })
    }

    /// Reads one vault file without judging it yet.
    fn find(&self, file_name: &str) -> Result<Found, VaultError> {
        let path = self.path_of(file_name);
        let read_err = |source| VaultError::Read {
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(read_err(e)),
        };
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(VaultError::NotAFile { path });
        }
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
            None => Found::Valid(Secret(value.to_string())),
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
    fn survey(&self) -> Result<Vec<(SecretName, Option<Secret>)>, VaultError> {
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
    fn permission_warnings(&self) -> Vec<String> {
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

    /// Generates every missing secret; existing ones are validated and never rewritten. When any
    /// existing secret breaks its shape, nothing is created.
    pub fn ensure(&self) -> Result<EnsureReport, VaultError> {
        let _lock = self.lock()?;
        let removed_temp_files = fsx::remove_stale_temps(&self.dir);
        let survey = self.survey()?;
        let mut secrets = Vec::new();
        for (name, existing) in survey {
            let file = name.file_name();
            let (action, length) = match existing {
                Some(s) => (EnsureAction::Kept, s.len()),
                None => {
                    let value = name.generate()?;
                    self.create(file, &value)?;
                    tracing::info!(secret = file, "generated a new secret");
                    (EnsureAction::Created, value.len())
                }
            };
            secrets.push(EnsureEntry {
                name: file,
                path: self.path_of(file),
                action,
                length,
            });
        }
        Ok(EnsureReport {
            vault: self.dir.clone(),
            dry_run: false,
            changed: secrets.iter().any(|e| e.action == EnsureAction::Created),
            secrets,
            removed_temp_files,
            warnings: self.permission_warnings(),
        })
    }

    /// What `ensure` would do, without creating anything (not even the directory).
    pub fn plan(&self) -> Result<EnsureReport, VaultError> {
        let secrets: Vec<EnsureEntry> = self
            .survey()?
            .into_iter()
            .map(|(name, existing)| EnsureEntry {
                name: name.file_name(),
                path: self.path_of(name.file_name()),
                action: if existing.is_some() {
                    EnsureAction::Kept
                } else {
                    EnsureAction::WouldCreate
                },
                length: existing.map_or(name.shape().generated_length(), |s| s.len()),
            })
            .collect();
        Ok(EnsureReport {
            vault: self.dir.clone(),
            dry_run: true,
            changed: secrets.iter().any(|e| e.action != EnsureAction::Kept),
            secrets,
            removed_temp_files: 0,
            warnings: self.permission_warnings(),
        })
    }

    /// Stores a value cityd learned rather than generated (a webhook URL, a token). Idempotent: the
    /// same value changes nothing; a different value replaces a stored file atomically. A generated
    /// secret's name is never replaced: a different value is a [`VaultError::Conflict`].
    pub fn store(&self, file_name: &str, value: &Secret) -> Result<fsx::WriteOutcome, VaultError> {
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
                Some(existing) if existing == *value => Ok(fsx::WriteOutcome::Unchanged),
                Some(_) => Err(VaultError::Conflict {
                    path: self.path_of(file_name),
                }),
                None => self
                    .create(file_name, value)
                    .map(|()| fsx::WriteOutcome::Created),
            };
        }
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

    /// Every generated secret (present or not) and every other file in the vault, sorted by name.
    pub fn list(&self) -> Result<Vec<ListEntry>, VaultError> {
        let mut names: Vec<String> = SecretName::ALL
            .iter()
            .map(|n| n.file_name().to_string())
            .collect();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| VaultError::ReadDir {
                        path: self.dir.clone(),
                        source,
                    })?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VaultError::ReadDir {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        names.sort();
        Ok(names.into_iter().map(|name| self.describe(name)).collect())
    }

    fn describe(&self, name: String) -> ListEntry {
        let path = self.path_of(&name);
        let meta = std::fs::symlink_metadata(&path).ok();
        let (status, length) = match self.find(&name) {
            Ok(Found::Absent) => (ListStatus::Missing, None),
            Ok(Found::Valid(s)) => (ListStatus::Ok, Some(s.len())),
            Ok(Found::Invalid { length, .. }) => (ListStatus::WrongShape, Some(length)),
            Err(_) => (ListStatus::Unreadable, None),
        };
        ListEntry {
            kind: if SecretName::from_file_name(&name).is_some() {
                "generated"
            } else {
                "stored"
            },
            status,
            length,
            age_seconds: meta.as_ref().and_then(|m| m.modified().ok()).map(|m| {
                SystemTime::now()
                    .duration_since(m)
                    .map_or(0, |d| d.as_secs())
            }),
            mode: meta.map(|m| format!("{:04o}", m.mode() & 0o7777)),
            rule: rule_of(&name),
            path,
            name,
        }
    }
}

impl Shape {
    /// The length of the values `generate` makes.
    pub fn generated_length(self) -> usize {
        match self {
            Shape::Hex(n) | Shape::Exactly(n) | Shape::AtLeast(n) => n,
            Shape::Opaque => 0,
        }
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    fn vault() -> (tempfile::TempDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(&StateDir::at(dir.path().join("state")).unwrap());
        (dir, vault)
    }

    #[test]
    fn generated_values_fit_their_shapes_and_lengths() {
        for name in SecretName::ALL {
            let v = name.generate().unwrap();
            assert!(name.shape().accepts(v.expose()), "{name:?}");
            assert_eq!(v.len(), name.shape().generated_length(), "{name:?}");
        }
        assert_eq!(
            SecretName::MattermostDbPassword.generate().unwrap().len(),
            32
        );
    }

    #[test]
    fn blog_values_fit_the_shapes() {
        // What the blog's scripts generate: `openssl rand -hex 32` for secrets, salts and the database
        // password, `openssl rand -hex 16` for the plugin AES keys.
        let hex64 = "0123456789abcdef".repeat(4);
        let hex32 = "0123456789abcdef".repeat(2);
        for name in SecretName::ALL {
            let value = match name {
                SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
                    &hex32
                }
                _ => &hex64,
            };
            assert!(name.shape().accepts(value), "{name:?}");
        }
        assert!(
            !SecretName::GitlabPluginEncryptionKey
                .shape()
                .accepts(&hex64)
        );
    }

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new("hunter2hunter2".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>, 14 bytes)");
    }

    #[test]
    fn violations_describe_without_the_value() {
        let v = Shape::Exactly(32)
            .violation("\"abcdefghijklmnopqrstuvwxyz01234\"")
            .unwrap();
        assert!(v.contains("33 characters instead of 32"), "{v}");
        assert!(v.contains("first at position 1 (a quote)"), "{v}");
        assert!(!v.contains("abc"), "{v}");
        assert_eq!(
            Shape::Hex(4).violation("abcG").unwrap(),
            "character 4 is not a lowercase hex digit"
        );
        assert_eq!(
            Shape::AtLeast(32).violation("short").unwrap(),
            "it has only 5 characters"
        );
    }

    #[test]
    fn ensure_creates_then_keeps() {
        let (_d, vault) = vault();
        let first = vault.ensure().unwrap();
        assert!(first.changed);
        assert!(
            first
                .secrets
                .iter()
                .all(|e| e.action == EnsureAction::Created)
        );
        let before = vault.get(SecretName::TurnStaticAuthSecret).unwrap();
        let second = vault.ensure().unwrap();
        assert!(!second.changed);
        assert!(
            second
                .secrets
                .iter()
                .all(|e| e.action == EnsureAction::Kept)
        );
        assert_eq!(before, vault.get(SecretName::TurnStaticAuthSecret).unwrap());
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    }

    #[test]
    fn plan_creates_nothing() {
        let (d, vault) = vault();
        let plan = vault.plan().unwrap();
        assert!(plan.changed);
        assert!(
            plan.secrets
                .iter()
                .all(|e| e.action == EnsureAction::WouldCreate)
        );
        assert!(!d.path().join("state").exists());
    }

    #[test]
    fn wrong_shape_is_an_error_and_nothing_is_created() {
        let (_d, vault) = vault();
        std::fs::create_dir_all(vault.dir()).unwrap();
        let p = vault.path_of("jenkins-plugin-encryption-key");
        std::fs::write(&p, "tooshort\n").unwrap();
        let err = vault.ensure().unwrap_err();
        assert!(err.is_bad_input());
        let err = err.to_string();
        assert!(
            err.contains("jenkins-plugin-encryption-key")
                && err.contains("exactly 32")
                && err.contains("8 characters")
                && !err.contains("tooshort"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "tooshort\n");
        assert!(!vault.path_of("turn-static-auth-secret").exists());
    }

    #[test]
    fn store_never_replaces_a_generated_secret() {
        let (_d, vault) = vault();
        vault.ensure().unwrap();
        let turn = vault.get(SecretName::TurnStaticAuthSecret).unwrap();
        assert_eq!(
            vault.store("turn-static-auth-secret", &turn).unwrap(),
            fsx::WriteOutcome::Unchanged
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
            fsx::WriteOutcome::Created
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

    /// A character outside `shape`'s class, chosen by `pick`. The classes are written out here
    /// rather than taken from `accepts`, which is what is under test.
    fn outsider(shape: Shape, pick: usize) -> u8 {
        const POOL: &[u8] = b"ABCDEFZghijxyz!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x00\x7f";
        let in_class = |b: u8| match shape {
            Shape::Hex(_) => b"0123456789abcdef".contains(&b),
            _ => b.is_ascii_alphanumeric(),
        };
        let outside: Vec<u8> = POOL.iter().copied().filter(|&b| !in_class(b)).collect();
        outside[pick % outside.len()]
    }

    const GENERATED: [Shape; 3] = [Shape::Hex(64), Shape::Exactly(32), Shape::AtLeast(32)];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever bytes the random source yields, the value has the shape (Hex, Exactly, AtLeast).
        #[test]
        fn generated_values_always_have_their_shape(
            stream in proptest::collection::vec(any::<u8>(), 1..300),
            which in 0usize..3,
        ) {
            prop_assume!(stream.iter().any(|&b| b < 248));
            let shape = GENERATED[which];
            let mut pos = 0;
            let secret = shape.generate_with(|buf: &mut [u8]| {
                for b in buf.iter_mut() {
                    *b = stream[pos % stream.len()];
                    pos += 1;
                }
                Ok::<(), Infallible>(())
            }).unwrap();
            prop_assert!(shape.accepts(secret.expose()));
            prop_assert_eq!(secret.len(), shape.generated_length());
        }

        /// Generation from the real OS source always has the shape, and two values never coincide.
        #[test]
        fn os_generated_secrets_have_their_shape(which in 0usize..8) {
            let name = SecretName::ALL[which];
            let a = name.generate().unwrap();
            let b = name.generate().unwrap();
            prop_assert!(name.shape().accepts(a.expose()));
            prop_assert_ne!(a, b);
        }

        /// Replacing any single character of a valid value by one outside the class is rejected,
        /// and the violation names the position without echoing the value.
        #[test]
        fn every_single_character_corruption_is_rejected(
            which in 0usize..8,
            position in any::<proptest::sample::Index>(),
            pick in any::<usize>(),
        ) {
            let name = SecretName::ALL[which];
            let shape = name.shape();
            let valid = name.generate().unwrap();
            let mut bytes = valid.expose().as_bytes().to_vec();
            let i = position.index(bytes.len());
            bytes[i] = outsider(shape, pick);
            let corrupted = String::from_utf8(bytes).unwrap();
            prop_assert!(!shape.accepts(&corrupted));
            let why = shape.violation(&corrupted).unwrap();
            let expected = format!("character {} is not", i + 1);
            prop_assert!(why.contains(&expected), "{}", why);
            prop_assert!(!why.contains(valid.expose()));
        }

        /// Dropping or adding a character breaks exact lengths; dropping one breaks minimum lengths
        /// of a value at the minimum.
        #[test]
        fn length_changes_are_rejected(which in 0usize..8, position in any::<proptest::sample::Index>()) {
            let name = SecretName::ALL[which];
            let shape = name.shape();
            let valid = name.generate().unwrap().expose().to_string();
            let i = position.index(valid.len());
            let mut shorter = valid.clone();
            shorter.remove(i);
            prop_assert!(!shape.accepts(&shorter));
            let mut longer = valid.clone();
            longer.insert(i, valid.as_bytes()[i] as char);
            prop_assert_eq!(shape.accepts(&longer), matches!(shape, Shape::AtLeast(_)));
        }

        /// `accepts` agrees with a plain statement of each rule on arbitrary strings.
        #[test]
        fn accepts_matches_the_rule(
            value in prop_oneof![
                "[0-9a-f]{62,66}",
                "[0-9a-fA-G]{64}",
                "[0-9a-zA-Z]{30,34}",
                "[0-9a-zA-Z+/=_-]{32}",
                "[0-9a-zA-Z+/= \"'-]{0,70}",
            ],
            which in 0usize..3,
        ) {
            let shape = GENERATED[which];
            let alnum = value.bytes().all(|b| b.is_ascii_alphanumeric());
            let hex = value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            let expected = match shape {
                Shape::Hex(n) => hex && value.len() == n,
                Shape::Exactly(n) => alnum && value.len() == n,
                Shape::AtLeast(n) => alnum && value.len() >= n,
                Shape::Opaque => unreachable!(),
            };
            prop_assert_eq!(shape.accepts(&value), expected);
            prop_assert_eq!(shape.violation(&value).is_none(), expected);
        }
    }
}
