//! Durable file writes shared by the vault, the PKI and the renderers: write-if-changed, atomic
//! replace (temp file in the same directory, fsync, rename, fsync the directory), create-once.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::report::Outcome;

#[derive(Debug, Error)]
pub enum WriteError {
    #[error("cannot write {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} already exists; it was left untouched")]
    AlreadyExists { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a fresh temp file next to `path` with `mode`, synced to disk.
fn staged(path: &Path, bytes: &[u8], mode: u32) -> Result<tempfile::NamedTempFile, WriteError> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".cityd-tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io(path))?;
    // The umask may have narrowed the mode at creation; set it exactly.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    tmp.write_all(bytes).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    Ok(tmp)
}

fn sync_dir(path: &Path) -> Result<(), WriteError> {
    let dir = parent_of(path);
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// The permission bits of `path` (setuid, setgid and sticky included; the file type left out).
pub fn mode_of(path: &Path) -> std::io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

/// Replaces `path` atomically unless it already holds exactly `bytes` with `mode`; then nothing is touched
/// (not even the mtime), which is what makes re-runs provably idempotent.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<Outcome, WriteError> {
    match difference(path, bytes, mode)? {
        Difference::None => Ok(Outcome::Unchanged),
        Difference::ModeOnly => {
            set_mode_no_follow(path, mode)?;
            Ok(Outcome::Updated)
        }
        found @ (Difference::Missing | Difference::Content) => {
            let tmp = staged(path, bytes, mode)?;
            tmp.persist(path).map_err(|e| io(path)(e.error))?;
            sync_dir(path)?;
            Ok(if found == Difference::Missing {
                Outcome::Created
            } else {
                Outcome::Updated
            })
        }
    }
}

/// Sets `path`'s mode through a descriptor opened with `O_NOFOLLOW`: a link in its place is an
/// error naming it, never a change to the file it points at (issue 12: the vault's mode repair
/// `chmod`ed a link's target outside the vault).
fn set_mode_no_follow(path: &Path, mode: u32) -> Result<(), WriteError> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .and_then(|file| file.set_permissions(std::fs::Permissions::from_mode(mode)))
        .map_err(io(path))
}

/// What `write_if_changed` would do, without doing it: the would-be outcome for a dry run.
pub fn planned_write(path: &Path, bytes: &[u8], mode: u32) -> Result<Outcome, WriteError> {
    Ok(match difference(path, bytes, mode)? {
        Difference::None => Outcome::Unchanged,
        Difference::Missing => Outcome::WouldCreate,
        Difference::Content | Difference::ModeOnly => Outcome::WouldUpdate,
    })
}

/// How a file differs from the wanted bytes and mode: the one comparison behind a write and its
/// dry run, so the two never disagree.
#[derive(PartialEq, Eq)]
enum Difference {
    Missing,
    Content,
    ModeOnly,
    None,
}

fn difference(path: &Path, bytes: &[u8], mode: u32) -> Result<Difference, WriteError> {
    match std::fs::read(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Difference::Missing),
        Err(e) => Err(io(path)(e)),
        Ok(existing) if existing != bytes => Ok(Difference::Content),
        Ok(_) if mode_of(path).map_err(io(path))? != mode => Ok(Difference::ModeOnly),
        Ok(_) => Ok(Difference::None),
    }
}

/// Creates `path` with `bytes` only if it does not exist. The file appears complete or not at all:
/// a crash leaves at most a stray temp file, never a torn secret.
pub fn create_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), WriteError> {
    let tmp = staged(path, bytes, mode)?;
    match tmp.persist_noclobber(path) {
        Ok(_) => sync_dir(path),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(WriteError::AlreadyExists {
                path: path.to_path_buf(),
            })
        }
        Err(e) => Err(io(path)(e.error)),
    }
}

/// Removes temp files a killed run left behind in `dir` and returns how many. They never hold a
/// finished value. Call it only while holding the lock that serialises writers of `dir`.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".cityd-tmp-")
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn the_dry_run_predicts_what_the_write_does_mode_included() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert_eq!(
            planned_write(&p, b"a", 0o600).unwrap(),
            Outcome::WouldCreate
        );
        assert_eq!(write_if_changed(&p, b"a", 0o600).unwrap(), Outcome::Created);
        assert_eq!(planned_write(&p, b"a", 0o600).unwrap(), Outcome::Unchanged);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(
            planned_write(&p, b"a", 0o600).unwrap(),
            Outcome::WouldUpdate
        );
        assert_eq!(mode_of(&p).unwrap(), 0o644, "a dry run changes nothing");
        assert_eq!(write_if_changed(&p, b"a", 0o600).unwrap(), Outcome::Updated);
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        assert_eq!(
            planned_write(&p, b"b", 0o600).unwrap(),
            Outcome::WouldUpdate
        );
    }

    #[test]
    fn unchanged_content_keeps_bytes_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        assert_eq!(write_if_changed(&p, b"a", 0o600).unwrap(), Outcome::Created);
        let before = std::fs::metadata(&p).unwrap();
        assert_eq!(
            write_if_changed(&p, b"a", 0o600).unwrap(),
            Outcome::Unchanged
        );
        let after = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (before.mtime(), before.mtime_nsec(), before.ino()),
            (after.mtime(), after.mtime_nsec(), after.ino())
        );
        assert_eq!(write_if_changed(&p, b"b", 0o600).unwrap(), Outcome::Updated);
        assert_eq!(std::fs::read(&p).unwrap(), b"b");
        assert_eq!(after.mode() & 0o777, 0o600);
    }

    #[test]
    fn create_new_never_clobbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        create_new(&p, b"one", 0o600).unwrap();
        assert!(matches!(
            create_new(&p, b"two", 0o600),
            Err(WriteError::AlreadyExists { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }
}
