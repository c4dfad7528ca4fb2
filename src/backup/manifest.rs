//! The manifest: what a backup holds and how to prove it (versions, per-table row counts, the CA
//! fingerprint, and the size and SHA-256 of every part and every file). It is the archive's last
//! entry, so it can carry the hashes of everything streamed before it, and an archive without it
//! is incomplete by construction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Name of the manifest entry inside the archive.
pub const MANIFEST: &str = "manifest.json";
/// Bumped when the archive layout changes incompatibly.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub cityd_version: String,
    /// RFC 3339, UTC: when the database snapshot was taken.
    pub created: String,
    /// Seconds since the epoch of `created`, for age computations.
    pub created_unix: i64,
    pub mattermost: MattermostInfo,
    pub postgres: PostgresInfo,
    /// SHA-256 fingerprint (colon hex) of the city CA certificate, when the PKI existed.
    pub ca_fingerprint: Option<String>,
    /// Parts streamed in chunks (the database dump), by name.
    pub parts: BTreeMap<String, Part>,
    /// Every other entry (state files, volume contents), by archive path.
    pub entries: BTreeMap<String, Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MattermostInfo {
    pub image: String,
    /// The version the image tag names (`11.8.5`), if it names one.
    pub version: Option<String>,
    /// Volumes saved, by base name (`mattermost-data`), with where they are mounted.
    pub volumes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostgresInfo {
    /// `server_version` as the server reports it.
    pub server_version: String,
    pub server_major: u32,
    /// `pg_dump --version` of the tool that made the dump.
    pub dump_tool: String,
    pub database: String,
    pub role: String,
    /// Highest applied Mattermost migration (`db_migrations`), when that table exists.
    pub schema_version: Option<i64>,
    /// `schema.table` -> rows, counted in the very snapshot the dump was taken from.
    pub row_counts: BTreeMap<String, i64>,
}

/// A part streamed as numbered chunks (`db/dump.000000`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub size: u64,
    pub sha256: String,
    pub chunks: u32,
    /// SHA-256 of each chunk, in order: a bad chunk is named, not just "the dump".
    pub chunk_sha256: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One file, directory or link of the state directory or a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub size: u64,
    /// Files only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link: Option<String>,
}

impl Manifest {
    /// Total bytes of parts and files.
    pub fn total_bytes(&self) -> u64 {
        self.parts.values().map(|p| p.size).sum::<u64>()
            + self.entries.values().map(|e| e.size).sum::<u64>()
    }

    /// Files (not directories) under `prefix` (`state/`, `volumes/mattermost-data/`).
    pub fn files_under<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> {
        self.entries
            .iter()
            .filter(move |(p, e)| p.starts_with(prefix) && e.kind == Kind::File)
            .map(|(p, e)| (p.as_str(), e))
    }
}

/// The version an image tag names: `repo/name:11.8.5` -> `11.8.5`; digests and words -> None.
pub fn image_version(image: &str) -> Option<String> {
    let (_, tag) = image.rsplit_once(':')?;
    if tag.contains('/') {
        return None;
    }
    let core = tag.split(['-', '+']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    (parts.len() >= 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.parse::<u64>().is_ok()))
    .then(|| core.to_string())
}

/// Compares dotted versions numerically (`11.10.0` > `11.8.5`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let nums = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (mut x, mut y) = (nums(a), nums(b));
    let n = x.len().max(y.len());
    x.resize(n, 0);
    y.resize(n, 0);
    x.cmp(&y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn image_tags_name_versions_and_others_do_not() {
        assert_eq!(
            image_version("mattermost/mattermost-enterprise-edition:11.8.5").as_deref(),
            Some("11.8.5")
        );
        assert_eq!(
            image_version("localhost:5000/mm:10.11.2-rc1").as_deref(),
            Some("10.11.2")
        );
        assert_eq!(image_version("localhost:5000/mm").as_deref(), None);
        assert_eq!(image_version("mm:latest"), None);
        assert_eq!(image_version("mm@sha256:abcd"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("11.10.0", "11.8.5"), Ordering::Greater);
        assert_eq!(compare_versions("11.8", "11.8.0"), Ordering::Equal);
        assert_eq!(compare_versions("10.11.17", "11.7.2"), Ordering::Less);
    }
}
