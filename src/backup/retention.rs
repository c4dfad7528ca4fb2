//! The backup directory: which files are complete backups (only final names count; temporary
//! `.partial` files never do), the newest one's age (what `cityd status` shows), keeping the
//! newest N, and clearing what a killed run left behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::archive::{FILE_PREFIX, PARTIAL_SUFFIX, TEMP_PREFIX};

/// A complete backup in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: PathBuf,
    /// When it was taken (from its name), seconds since the epoch.
    pub created_unix: i64,
}

/// The time a backup's name carries: `cityd-backup-20261204T040300.123Z[-n].age`.
pub fn created_of(file_name: &str) -> Option<i64> {
    let rest = file_name.strip_prefix(FILE_PREFIX)?;
    let (stem, ext) = rest.rsplit_once('.')?;
    if ext != "age" && ext != "tar" {
        return None;
    }
    let stamp = stem.get(..20)?;
    let b = stamp.as_bytes();
    if b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| stamp.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(num(4..6)? as u8).ok()?;
    let date = time::Date::from_calendar_date(num(0..4)? as i32, month, num(6..8)? as u8).ok()?;
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// Complete backups in `dir`, newest first. A missing directory holds none.
pub fn list(dir: &Path) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(created_unix) = created_of(&name)
            && entry.file_type()?.is_file()
        {
            out.push(Listed {
                path: entry.path(),
                created_unix,
            });
        }
    }
    out.sort_by(|a, b| b.path.file_name().cmp(&a.path.file_name()));
    Ok(out)
}

/// The newest complete backup in `dir` and how old it is: what `cityd status` reports as
/// "last backup". `None` when there is none.
pub fn newest(dir: &Path) -> std::io::Result<Option<(Listed, Duration)>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(list(dir)?.into_iter().next().map(|l| {
        let age = Duration::from_secs(now.saturating_sub(l.created_unix).max(0) as u64);
        (l, age)
    }))
}

/// Removes all but the newest `keep` complete backups; returns what it removed.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for old in list(dir)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&old.path)?;
        removed.push(old.path);
    }
    if !removed.is_empty() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(removed)
}

/// Removes temporary files of runs that were killed (call with the directory's lock held).
pub fn clear_partials(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX)
            && name.ends_with(PARTIAL_SUFFIX)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_time_and_others_are_ignored() {
        let t = created_of("cityd-backup-20261204T040300.123Z.age").unwrap();
        assert_eq!(t, 1_796_356_980);
        assert_eq!(
            created_of("cityd-backup-20261204T040300.123Z-2.tar"),
            Some(t)
        );
        assert_eq!(
            created_of(".cityd-backup-20261204T040300.123Z.age.partial"),
            None
        );
        assert_eq!(
            created_of("cityd-backup-20261204T040300.123Z.age.partial"),
            None
        );
        assert_eq!(created_of("cityd-backup-garbage.age"), None);
        assert_eq!(created_of("notes.txt"), None);
    }

    #[test]
    fn prune_keeps_the_newest_complete_backups_only() {
        let dir = tempfile::tempdir().unwrap();
        for n in [
            "20260101T000000.000Z",
            "20260102T000000.000Z",
            "20260103T000000.000Z",
        ] {
            std::fs::write(dir.path().join(format!("cityd-backup-{n}.age")), b"x").unwrap();
        }
        std::fs::write(
            dir.path()
                .join(".cityd-backup-20260104T000000.000Z.age.partial"),
            b"x",
        )
        .unwrap();
        std::fs::write(dir.path().join("other"), b"x").unwrap();
        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(removed[0].ends_with("cityd-backup-20260101T000000.000Z.age"));
        let (newest, _) = newest(dir.path()).unwrap().unwrap();
        assert!(
            newest
                .path
                .ends_with("cityd-backup-20260103T000000.000Z.age")
        );
        assert_eq!(clear_partials(dir.path()), 1);
        assert!(dir.path().join("other").exists());
    }
}
