//! Flags of `cityd backup` and `cityd restore`: the key files (never a key or passphrase on the
//! command line) and where `pg_dump`/`pg_restore` run (the PostgreSQL container, or a bin
//! directory of the server's own major version, as the NixOS module passes it).

use std::path::PathBuf;

use crate::backup::KeyFiles;
use crate::backup::database::{Tool, default_container};
use crate::city::City;

/// How a new backup is protected: exactly one of these.
#[derive(Debug, Clone, clap::Args)]
pub struct SealArgs {
    /// File of age public keys (age1..., one a line) the backup is encrypted to.
    #[arg(long, env = "CITYD_BACKUP_RECIPIENT_FILE", value_name = "FILE")]
    pub recipient_file: Option<PathBuf>,
    /// age identity file (AGE-SECRET-KEY-1...); the backup is encrypted to its public key.
    #[arg(long, env = "CITYD_BACKUP_IDENTITY_FILE", value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// File whose first line is the passphrase (age scrypt).
    #[arg(long, env = "CITYD_BACKUP_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write a plain tar (mode 0600, with a warning): the vault and the CA key in clear.
    #[arg(long)]
    pub unencrypted: bool,
}

impl SealArgs {
    pub fn keys(&self) -> KeyFiles {
        KeyFiles {
            recipient_file: self.recipient_file.clone(),
            identity_file: self.identity_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
            unencrypted: self.unencrypted,
        }
    }
}

/// How an existing backup is opened.
#[derive(Debug, Clone, clap::Args)]
pub struct OpenArgs {
    /// age identity file (AGE-SECRET-KEY-1...) the backup was encrypted to.
    #[arg(long, env = "CITYD_BACKUP_IDENTITY_FILE", value_name = "FILE")]
    pub identity_file: Option<PathBuf>,
    /// File whose first line is the backup's passphrase.
    #[arg(
        long,
        env = "CITYD_BACKUP_PASSPHRASE_FILE",
        value_name = "FILE",
        conflicts_with = "identity_file"
    )]
    pub passphrase_file: Option<PathBuf>,
}

impl OpenArgs {
    pub fn keys(&self) -> KeyFiles {
        KeyFiles {
            identity_file: self.identity_file.clone(),
            passphrase_file: self.passphrase_file.clone(),
            ..Default::default()
        }
    }
}

/// Where the PostgreSQL tools run.
#[derive(Debug, Clone, clap::Args)]
pub struct ToolArgs {
    /// The container that runs PostgreSQL; its own pg_dump/pg_restore are used through the Docker
    /// exec API. Default: <docker.prefix>postgres.
    #[arg(long, env = "CITYD_DB_CONTAINER", value_name = "NAME")]
    pub db_container: Option<String>,
    /// Use pg_dump/pg_restore from this directory instead (e.g. the NixOS server's package); its
    /// major version must be the server's.
    #[arg(
        long,
        env = "CITYD_PG_BIN",
        value_name = "DIR",
        conflicts_with = "db_container"
    )]
    pub pg_bin: Option<PathBuf>,
}

impl ToolArgs {
    pub fn tool(&self, city: &City) -> Tool {
        match (&self.pg_bin, &self.db_container) {
            (Some(dir), _) => Tool::Local(dir.clone()),
            (None, Some(c)) => Tool::Container(c.clone()),
            (None, None) => Tool::Container(default_container(city)),
        }
    }
}
