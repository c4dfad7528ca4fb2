//! The state-directory parts of a backup: the vault, the PKI (CA key included), the relay spool,
//! Mattermost's config directory (and, on NixOS, its data and plugin directories) and the
//! integration records, as `state/<path>` entries with
//! their modes and owners; and writing them back under a (possibly scratch) state directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::BackupError;
use super::archive::Writer;
use super::manifest::{Entry, Kind};
use crate::state::StateDir;

/// Directories of the state directory a backup holds, relative to its root.
pub fn saved(state: &StateDir) -> Vec<PathBuf> {
    let root = state.root();
    [
        state.secrets_dir(),
        state.pki_dir(),
        state.relay_spool(),
        state.mattermost_dir().join("config"),
        // On NixOS Mattermost's data and plugins are host directories here (a Docker host keeps
        // them in named volumes, saved through the engine instead).
        state.mattermost_dir().join("data"),
        state.mattermost_dir().join("plugins"),
        state.mattermost_dir().join("client-plugins"),
        state.integrations_dir(),
    ]
    .into_iter()
    .map(|p| p.strip_prefix(root).expect("under the root").to_path_buf())
    .collect()
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BackupError + 'a {
    move |source| BackupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn entry_of(meta: &std::fs::Metadata, kind: Kind) -> Entry {
    Entry {
        kind,
        size: if kind == Kind::File { meta.len() } else { 0 },
        sha256: None,
        mode: meta.permissions().mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        link: None,
    }
}

/// Adds every saved directory that exists, recursively, in name order. Temporary files of
/// interrupted writes (`.cityd-tmp-*`) are left out.
pub fn add_all(state: &StateDir, writer: &mut Writer) -> Result<usize, BackupError> {
    let mut files = 0;
    for rel in saved(state) {
        let path = state.root().join(&rel);
        if path.is_dir() {
            files += add_dir(&path, &format!("state/{}", rel.display()), writer)?;
        }
    }
    Ok(files)
}

fn add_dir(path: &Path, name: &str, writer: &mut Writer) -> Result<usize, BackupError> {
    let meta = std::fs::symlink_metadata(path).map_err(io("read", path))?;
    writer.add_other(name, entry_of(&meta, Kind::Dir), meta.mtime().max(0) as u64)?;
    let mut children: Vec<_> = std::fs::read_dir(path)
        .map_err(io("read", path))?
        .collect::<Result<_, _>>()
        .map_err(io("read", path))?;
    children.sort_by_key(|e| e.file_name());
    let mut files = 0;
    for child in children {
        let file_name = child.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(".cityd-tmp-") {
            continue;
        }
        let child_path = child.path();
        let child_name = format!("{name}/{file_name}");
        let meta = std::fs::symlink_metadata(&child_path).map_err(io("read", &child_path))?;
        let mtime = meta.mtime().max(0) as u64;
        if meta.is_dir() {
            files += add_dir(&child_path, &child_name, writer)?;
        } else if meta.is_file() {
            let mut file = std::fs::File::open(&child_path).map_err(io("read", &child_path))?;
            writer.add_file(&child_name, entry_of(&meta, Kind::File), mtime, &mut file)?;
            files += 1;
        } else if meta.file_type().is_symlink() {
            let mut e = entry_of(&meta, Kind::Symlink);
            e.link = Some(
                std::fs::read_link(&child_path)
                    .map_err(io("read", &child_path))?
                    .to_string_lossy()
                    .into_owned(),
            );
            writer.add_other(&child_name, e, mtime)?;
        }
    }
    Ok(files)
}

/// Writes one `state/...` entry under `root` with its mode and owner. Parents are made 0700.
pub fn write_entry(
    root: &Path,
    rel: &str,
    entry: &Entry,
    data: &mut dyn Read,
) -> Result<(), BackupError> {
    if rel.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(BackupError::Corrupt {
            path: root.to_path_buf(),
            reason: format!("entry state/{rel} leaves the state directory"),
        });
    }
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        StateDir::create_private_dir(parent).map_err(|e| BackupError::Io {
            what: "create",
            path: parent.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    }
    match entry.kind {
        Kind::Dir => {
            if !path.is_dir() {
                std::fs::create_dir(&path).map_err(io("create", &path))?;
            }
        }
        Kind::File => {
            let _ = std::fs::remove_file(&path);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io("create", &path))?;
            std::io::copy(&mut data.take(entry.size), &mut f).map_err(io("write", &path))?;
            f.sync_all().map_err(io("sync", &path))?;
        }
        Kind::Symlink => {
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(entry.link.as_deref().unwrap_or(""), &path)
                .map_err(io("create", &path))?;
            return Ok(());
        }
    }
    std::os::unix::fs::chown(&path, Some(entry.uid as u32), Some(entry.gid as u32))
        .or_else(|e| {
            if crate::state::is_root() {
                Err(e)
            } else {
                Ok(())
            }
        })
        .map_err(io("chown", &path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(entry.mode))
        .map_err(io("chmod", &path))?;
    Ok(())
}

/// SHA-256 of every file under the saved directories of `root`, as `state/<path>`.
pub fn file_hashes(root: &Path, rels: &[PathBuf]) -> BTreeMap<String, String> {
    fn walk(dir: &Path, name: &str, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let n = format!("{name}/{}", e.file_name().to_string_lossy());
            let p = e.path();
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => walk(&p, &n, out),
                Ok(m) if m.is_file() => {
                    if let Ok(mut f) = std::fs::File::open(&p) {
                        let mut h = super::archive::Hashing::new(&mut f);
                        if std::io::copy(&mut h, &mut std::io::sink()).is_ok() {
                            out.insert(n, h.hex());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeMap::new();
    for rel in rels {
        walk(
            &root.join(rel),
            &format!("state/{}", rel.display()),
            &mut out,
        );
    }
    out
}
