//! Backup, verification, restore and the restore drill of a whole city: the Mattermost database
//! (a `pg_dump` custom-format dump by the server's own major version, taken from an exported
//! snapshot that the row counts share), the volumes (through the Docker archive endpoint), and
//! the vault, PKI (CA key included), relay spool and Mattermost config from the state directory.
//! One file per backup: an age-encrypted tar stream ending in a manifest of versions, row counts
//! and the SHA-256 of every part and file (`archive`, `manifest`). The database is dumped before
//! the files: a file uploaded meanwhile is harmless, a post pointing at a missing file is not.
//!
//! Submodules: `key` (key files), `archive` (the file), `manifest`, `retention` (the directory),
//! `database` (dump/restore tools), `volumes` (archive endpoint), `state_files`, `take` (backup),
//! `check` (verify), `restore` (restore and drill), `progress`.

pub mod archive;
pub mod check;
pub mod database;
pub mod key;
pub mod manifest;
pub mod progress;
pub mod restore;
pub mod retention;
pub mod state_files;
pub mod take;
pub mod volumes;

use std::path::PathBuf;

use thiserror::Error;

pub use check::{Verified, verify};
pub use key::KeyFiles;
pub use manifest::Manifest;
pub use restore::{RestoreOptions, Restored, restore};
pub use retention::newest;
pub use take::{BackupOptions, Taken, backup};

/// What a backup reads and a restore writes: the city, its state, its database server.
pub struct Sources<'a> {
    pub city: &'a crate::city::City,
    pub state: &'a crate::state::StateDir,
    pub admin: &'a crate::postgres::Admin,
    pub tls: crate::postgres::Tls,
    pub tool: database::Tool,
}

#[derive(Debug, Error)]
pub enum BackupError {
    #[error("{0}")]
    Usage(String),
    #[error("key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is encrypted; give the key it was made for with --identity-file FILE or --passphrase-file FILE"
    )]
    NeedKey { path: PathBuf },
    #[error(
        "{path} does not open with the given key ({reason}); nothing was changed; give the identity or passphrase file the backup was made with"
    )]
    WrongKey { path: PathBuf, reason: String },
    #[error(
        "{path} is damaged or incomplete: {reason}; nothing was changed; use another backup (`cityd backup verify` checks one)"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the dump tool ({tool}) is {tool_version} but the server runs PostgreSQL {server_version}: \
a dump needs pg_dump of the server's own major version {server_major}; use the PostgreSQL \
container's own tools (--db-container NAME) or --pg-bin DIR of PostgreSQL {server_major}"
    )]
    ToolMismatch {
        tool: String,
        tool_version: String,
        server_version: String,
        server_major: String,
    },
    #[error("cannot {what}: {detail}")]
    Tool { what: String, detail: String },
    #[error(transparent)]
    Postgres(Box<crate::postgres::PgError>),
    #[error(transparent)]
    Docker(Box<crate::docker::DockerError>),
    #[error("refusing to restore: {reason}")]
    Refused { reason: String },
    #[error("the restored city differs from the backup: {detail}")]
    Proof { detail: String },
}

impl crate::exit::ExitCoded for BackupError {
    fn exit_code(&self) -> u8 {
        match self {
            BackupError::Usage(_)
            | BackupError::Key { .. }
            | BackupError::NeedKey { .. }
            | BackupError::WrongKey { .. }
            | BackupError::Corrupt { .. } => crate::exit::BAD_INPUT,
            BackupError::Postgres(e) => crate::exit::ExitCoded::exit_code(e.as_ref()),
            _ => crate::exit::FAILED,
        }
    }
}

impl From<crate::docker::DockerError> for BackupError {
    fn from(e: crate::docker::DockerError) -> Self {
        BackupError::Docker(Box::new(e))
    }
}

impl From<crate::postgres::PgError> for BackupError {
    fn from(e: crate::postgres::PgError) -> Self {
        BackupError::Postgres(Box::new(e))
    }
}

/// A short random hex tag for scratch names.
pub(crate) fn tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}
