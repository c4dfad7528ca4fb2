//! Opening the files cityd keeps its secrets and keys in (the vault, the PKI) without trusting what
//! it does not own: no symbolic link is followed, only regular files owned by the running user (or
//! root) are read, a FIFO or device is refused without blocking, and a directory is trusted only
//! when its owner is the running user (or root) and no one else can write to it.
//!
//! Why: a link in the vault made `secrets get` print another file and the mode repair `chmod` the
//! link's target; a FIFO hung `ensure` while it held the lock; a state directory owned by another
//! user let that user swap the TURN secret (issue 12, defect 6).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Why a file or directory was not trusted. Every variant names the path and the fix.
#[derive(Debug, Error)]
pub enum Refusal {
    #[error(
        "{path} is a symbolic link; cityd never follows links in its state directory (a link could point at any file): remove it and put the file itself there"
    )]
    Link { path: PathBuf },
    #[error(
        "{path} is a {kind}, not a regular file; cityd reads only regular files here: remove it (rm {path})"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path} is a {kind}, not a directory; move it away so cityd can create the directory there, or pass another --state-dir"
    )]
    NotADirectory { path: PathBuf, kind: &'static str },
    #[error(
        "{path} is owned by uid {owner}, not by the user running cityd (uid {me}) or root, so another user could have written it: check its content, then `chown {me} {path}` or remove it"
    )]
    Foreign { path: PathBuf, owner: u32, me: u32 },
    #[error(
        "directory {path} has mode {mode:04o}: users other than its owner can replace the files in it; run `chmod go-w {path}`"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error(
        "{path} is larger than {limit} bytes, more than cityd ever writes there; check the file"
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error(
        "cannot open {path}; the user running cityd must own it and be able to search its directory"
    )]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Refusal {
    /// True for everything but an I/O failure other than a permission problem: the state on disk
    /// (or its owner) is at fault and the user must fix it, exit 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            Refusal::Io { source, .. } => source.kind() == std::io::ErrorKind::PermissionDenied,
            _ => true,
        }
    }
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The owner may be this user or root (root's files are trusted: root could change anything anyway).
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`: a link fails with ELOOP, a FIFO opens at once.
fn no_follow_flags() -> i32 {
    use rustix::fs::OFlags;
    (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32
}

/// Opens `path` for reading if it exists: never through a link, never blocking on a FIFO, and only
/// when it is a regular file owned by this user or root. `None` when it does not exist.
pub fn open_file(path: &Path) -> Result<Option<File>, Refusal> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(no_follow_flags())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(Refusal::Link {
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(Refusal::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    check_open(path, &file)?;
    Ok(Some(file))
}

/// A file or directory owned by someone else than the running user (or root) is not trusted.
fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), Refusal> {
    if trusted_owner(meta.uid()) {
        return Ok(());
    }
    Err(Refusal::Foreign {
        path: path.to_path_buf(),
        owner: meta.uid(),
        me: euid(),
    })
}

/// The checks on an already opened file: a regular file with a trusted owner.
pub fn check_open(path: &Path, file: &File) -> Result<std::fs::Metadata, Refusal> {
    let meta = file.metadata().map_err(|source| Refusal::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    check_owner(path, &meta)?;
    Ok(meta)
}

/// Reads a trusted file (see [`open_file`]) of at most `limit` bytes; `None` when it does not exist.
pub fn read_file(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Refusal> {
    let Some(file) = open_file(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| Refusal::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(Refusal::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(Some(bytes))
}

/// Reads a file the user names on the command line (an env file to import): links are followed
/// (it is the user's own path) but only a regular file is read, a FIFO or a device is refused
/// without blocking, and at most `limit` bytes are read. Absent is an error here.
pub fn read_input(path: &Path, limit: u64) -> Result<Vec<u8>, Refusal> {
    use rustix::fs::OFlags;
    let io = |source| Refusal::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(Refusal::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(Refusal::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// Opens (creating it 0600 if missing) a lock file without following a link. Fails with the I/O
/// error when the file cannot be opened for writing (a read-only vault), so the caller can fall
/// back to [`open_file`] and a shared lock.
pub fn open_lock(path: &Path, mode: u32) -> Result<File, Refusal> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(mode)
        .custom_flags(no_follow_flags())
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                Refusal::Link {
                    path: path.to_path_buf(),
                }
            } else {
                Refusal::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
    check_open(path, &file)?;
    Ok(file)
}

/// Sets the mode of a file through a descriptor opened without following links, so a link can
/// never redirect the change to a file outside the directory.
pub fn set_mode(path: &Path, mode: u32) -> Result<(), Refusal> {
    let Some(file) = open_file(path)? else {
        return Err(Refusal::Io {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|source| Refusal::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Checks a directory cityd keeps secrets or keys in before trusting what is inside: owned by this
/// user or root, and not writable by group or others (unless only the sticky bit makes it safe,
/// which cityd's directories never need). A missing directory is fine (`false`): it is created
/// 0700 when needed. The directory itself may be reached through a link (a state directory moved
/// to another disk); what counts is the directory it leads to.
pub fn check_dir(path: &Path) -> Result<bool, Refusal> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        // Missing, or below a file: creating it later fails with the state directory's own error.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(false);
        }
        Err(source) => {
            return Err(Refusal::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if !meta.is_dir() {
        return Err(Refusal::NotADirectory {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    check_owner(path, &meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Refusal::Writable {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_fifos_and_devices_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "outside\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_file(&link, 64), Err(Refusal::Link { .. })));
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let err = read_file(&fifo, 64).unwrap_err();
        assert!(matches!(err, Refusal::NotRegular { .. }), "{err}");
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(matches!(
            read_file(Path::new("/dev/zero"), 64),
            Err(Refusal::NotRegular { .. })
        ));
        assert_eq!(read_file(&target, 64).unwrap().unwrap(), b"outside\n");
        assert!(read_file(&dir.path().join("absent"), 64).unwrap().is_none());
        assert!(matches!(
            read_file(&target, 3),
            Err(Refusal::TooLarge { .. })
        ));
    }

    #[test]
    fn a_mode_change_never_goes_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(set_mode(&link, 0o600), Err(Refusal::Link { .. })));
        assert_eq!(
            std::fs::metadata(&target).unwrap().mode() & 0o777,
            0o644,
            "the link's target kept its mode"
        );
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_dir(dir.path()).unwrap());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod go-w") && err.contains("0777"), "{err}");
        assert!(!check_dir(&dir.path().join("absent")).unwrap());
    }
}
