//! The host side of the containers' mounts, under the state directory: Mattermost's config and
//! socket directories (owned by UID 2000), copies of the leaf certificate, its key and the city CA
//! that only UID 2000 can read, the host CA bundle with the city CA added, and coturn's
//! configuration readable by coturn's user only. The CA's private key is never copied.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::DockerError;
use super::spec::{COTURN_UID, HostPaths, MATTERMOST_UID};
use crate::fsx;
use crate::pki::files as pki_files;
use crate::state::StateDir;

/// Debian's (and most distributions') bundle of trusted roots.
pub const HOST_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// One thing a container mounts from the host.
pub enum Item {
    Dir {
        path: PathBuf,
        mode: u32,
        uid: u32,
    },
    /// File contents may be secret (the TLS key, the TURN secret): no `Debug`.
    File {
        path: PathBuf,
        bytes: Vec<u8>,
        mode: u32,
        uid: u32,
    },
}

impl Item {
    pub fn path(&self) -> &Path {
        match self {
            Item::Dir { path, .. } | Item::File { path, .. } => path,
        }
    }

    /// The owner (user and group alike) and the mode the item must have.
    fn owner_and_mode(&self) -> (u32, u32) {
        match self {
            Item::Dir { uid, mode, .. } | Item::File { uid, mode, .. } => (*uid, *mode),
        }
    }
}

/// The desired host side of one container, plus the digests that go into its spec.
pub struct Prepared {
    pub container: &'static str,
    pub items: Vec<Item>,
}

impl Prepared {
    /// SHA-256 of every file's contents, keyed by file name.
    pub fn digests(&self) -> BTreeMap<String, String> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::File { path, bytes, .. } => Some((
                    path.file_name()?.to_string_lossy().into_owned(),
                    hex::encode(Sha256::digest(bytes)),
                )),
                Item::Dir { .. } => None,
            })
            .collect()
    }

    /// Creates or corrects every item. Returns the paths that changed (content, mode or owner).
    pub fn apply(&self) -> Result<Vec<PathBuf>, DockerError> {
        let mut changed = Vec::new();
        for item in &self.items {
            if apply_item(item).map_err(|source| DockerError::HostFile {
                path: item.path().to_path_buf(),
                container: self.container,
                source,
            })? {
                changed.push(item.path().to_path_buf());
            }
        }
        Ok(changed)
    }

    /// The paths `apply` would change, without touching anything.
    pub fn pending(&self) -> Vec<PathBuf> {
        self.items
            .iter()
            .filter(|i| !is_current(i))
            .map(|i| i.path().to_path_buf())
            .collect()
    }
}

fn owner_and_mode(path: &Path) -> Option<(u32, u32, u32)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.uid(), m.gid(), m.permissions().mode() & 0o7777))
}

fn is_current(item: &Item) -> bool {
    let (uid, mode) = item.owner_and_mode();
    let content_is_current = match item {
        Item::Dir { path, .. } => path.is_dir(),
        Item::File { path, bytes, .. } => std::fs::read(path).is_ok_and(|b| &b == bytes),
    };
    content_is_current && owner_and_mode(item.path()) == Some((uid, uid, mode))
}

fn apply_item(item: &Item) -> std::io::Result<bool> {
    if is_current(item) {
        return Ok(false);
    }
    let path = item.path();
    let (uid, mode) = item.owner_and_mode();
    if let Some(parent) = path.parent() {
        StateDir::create_private_dir(parent).map_err(std::io::Error::other)?;
    }
    match item {
        Item::Dir { .. } => {
            if !path.is_dir() {
                std::fs::create_dir(path)?;
            }
        }
        // An atomic replace makes a root-owned file; it is handed to the container's user right
        // after. A crash in between leaves it root-owned, and the next run fixes it.
        Item::File { bytes, .. } => {
            fsx::write_if_changed(path, bytes, mode).map_err(std::io::Error::other)?;
        }
    }
    std::os::unix::fs::chown(path, Some(uid), Some(uid))?;
    if let Item::Dir { .. } = item {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(true)
}

fn read_input(
    path: PathBuf,
    container: &'static str,
    fix: &'static str,
) -> Result<Vec<u8>, DockerError> {
    // The state's own files (keys among them): never through a link, never a FIFO, never another
    // user's file (`crate::owned`).
    match crate::owned::read_file(&path, 1 << 20) {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(DockerError::MissingInput {
            path,
            container,
            fix,
        }),
        Err(crate::owned::Refusal::Io { source, .. }) => Err(DockerError::HostFile {
            path,
            container,
            source,
        }),
        Err(refusal) => Err(DockerError::HostFile {
            path,
            container,
            source: std::io::Error::other(refusal),
        }),
    }
}

/// coturn's configuration: the rendered text, 0400 for coturn's user.
pub fn coturn(paths: &HostPaths, rendered: &str) -> Prepared {
    Prepared {
        container: "coturn",
        items: vec![Item::File {
            path: paths.coturn_config.clone(),
            bytes: rendered.as_bytes().to_vec(),
            mode: 0o400,
            uid: COTURN_UID,
        }],
    }
}

/// Mattermost's bind mounts. Reads `<state>/pki` (run `cityd pki ensure` first) and the host CA
/// bundle (a city CA alone when the host has none).
pub fn mattermost(paths: &HostPaths, pki_dir: &Path) -> Result<Prepared, DockerError> {
    const FIX: &str = "run `cityd pki ensure` (or `cityd up`, which does it first)";
    let cert = read_input(pki_dir.join(pki_files::SERVER_PEM), "mattermost", FIX)?;
    let key = read_input(pki_dir.join(pki_files::SERVER_KEY), "mattermost", FIX)?;
    let ca = read_input(pki_dir.join(pki_files::CA_PEM), "mattermost", FIX)?;
    let mut bundle = std::fs::read(HOST_CA_BUNDLE).unwrap_or_default();
    if !bundle.is_empty() && !bundle.ends_with(b"\n") {
        bundle.push(b'\n');
    }
    bundle.extend_from_slice(b"# cityd: the city CA\n");
    bundle.extend_from_slice(&ca);

    let dir = |path: &PathBuf| Item::Dir {
        path: path.clone(),
        mode: 0o700,
        uid: MATTERMOST_UID,
    };
    let file = |name: &str, bytes: Vec<u8>, mode: u32| Item::File {
        path: paths.mattermost_certs.join(name),
        bytes,
        mode,
        uid: MATTERMOST_UID,
    };
    Ok(Prepared {
        container: "mattermost",
        items: vec![
            dir(&paths.mattermost_config),
            dir(&paths.mattermost_run),
            dir(&paths.mattermost_certs),
            file(pki_files::SERVER_PEM, cert, 0o444),
            file(pki_files::SERVER_KEY, key, 0o400),
            file(pki_files::CA_PEM, ca, 0o444),
            Item::File {
                path: paths.mattermost_ca_bundle.clone(),
                bytes: bundle,
                mode: 0o444,
                uid: MATTERMOST_UID,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(root: &Path) -> HostPaths {
        HostPaths::new(&StateDir::at(root.to_path_buf()).unwrap())
    }

    #[test]
    fn mattermost_needs_the_pki_and_names_the_missing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let err = mattermost(&paths(tmp.path()), &tmp.path().join("pki"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("server.pem"), "{err}");
        assert!(err.contains("cityd pki ensure"), "{err}");
    }

    #[test]
    fn copies_never_include_the_ca_key_and_digests_follow_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let pki = tmp.path().join("pki");
        std::fs::create_dir(&pki).unwrap();
        for (name, text) in [
            ("server.pem", "LEAF"),
            ("server.key", "KEY"),
            ("ca.pem", "CA"),
            ("ca.key", "CAKEY"),
        ] {
            std::fs::write(pki.join(name), text).unwrap();
        }
        let p = paths(tmp.path());
        let prepared = mattermost(&p, &pki).unwrap();
        let digests = prepared.digests();
        assert!(!digests.contains_key("ca.key"));
        assert_eq!(
            digests["server.key"],
            hex::encode(Sha256::digest(b"KEY")),
            "the digest is of the copied bytes"
        );
        let bundle = prepared
            .items
            .iter()
            .find_map(|i| match i {
                Item::File { path, bytes, .. } if path == &p.mattermost_ca_bundle => Some(bytes),
                _ => None,
            })
            .unwrap();
        assert!(bundle.ends_with(b"CA"));
    }

    #[test]
    fn apply_is_idempotent_and_sets_owner_and_mode() {
        // Needs root (chown to another user), like the whole test command.
        let tmp = tempfile::tempdir().unwrap();
        let p = paths(tmp.path());
        let prepared = coturn(&p, "listening-port=3478\n");
        assert_eq!(prepared.pending(), vec![p.coturn_config.clone()]);
        assert_eq!(prepared.apply().unwrap(), vec![p.coturn_config.clone()]);
        let meta = std::fs::metadata(&p.coturn_config).unwrap();
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o777),
            (COTURN_UID, 0o400)
        );
        assert!(prepared.pending().is_empty());
        assert!(prepared.apply().unwrap().is_empty());
    }
}
