//! `cityd backup verify FILE`: decrypts the whole file, checks every part and file against the
//! manifest, and reports what it holds and how old it is. Touches nothing but the file.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{BackupError, KeyFiles, Manifest, archive};

#[derive(Debug, Serialize)]
pub struct Verified {
    pub path: PathBuf,
    pub encrypted: bool,
    pub created: String,
    pub age_seconds: i64,
    pub cityd_version: String,
    pub mattermost_image: String,
    pub mattermost_version: Option<String>,
    pub postgres_version: String,
    pub schema_version: Option<i64>,
    pub tables: usize,
    pub rows: i64,
    pub database_bytes: u64,
    pub state_files: usize,
    pub volume_files: usize,
    pub volumes: Vec<String>,
    pub ca_fingerprint: Option<String>,
    /// Bytes read and hashed.
    pub bytes: u64,
    #[serde(skip)]
    pub manifest: Manifest,
}

/// Reads and checks the whole file.
pub fn verify(path: &Path, keys: &KeyFiles) -> Result<Verified, BackupError> {
    let opener = keys.opener()?;
    let scanned = archive::scan(path, &opener, &mut |_| Ok(()))?;
    Ok(summarize(
        path,
        archive::is_encrypted(path)?,
        scanned.manifest,
        scanned.bytes,
    ))
}

pub fn summarize(path: &Path, encrypted: bool, m: Manifest, bytes: u64) -> Verified {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let count = |prefix: &str| m.files_under(prefix).count();
    Verified {
        path: path.to_path_buf(),
        encrypted,
        created: m.created.clone(),
        age_seconds: now - m.created_unix,
        cityd_version: m.cityd_version.clone(),
        mattermost_image: m.mattermost.image.clone(),
        mattermost_version: m.mattermost.version.clone(),
        postgres_version: m.postgres.server_version.clone(),
        schema_version: m.postgres.schema_version,
        tables: m.postgres.row_counts.len(),
        rows: m.postgres.row_counts.values().sum(),
        database_bytes: m.parts.values().map(|p| p.size).sum(),
        state_files: count("state/"),
        volume_files: count("volumes/"),
        volumes: m.mattermost.volumes.keys().cloned().collect(),
        ca_fingerprint: m.ca_fingerprint.clone(),
        bytes,
        manifest: m,
    }
}

/// "3 h 12 min" for an age in seconds.
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}
