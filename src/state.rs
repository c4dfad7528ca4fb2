//! The state directory: where it is, every path and vault name under it (the one owner of the
//! layout), and the refusal to put secrets in the Nix store.
//!
//! Layout: `secrets/` (one 0600 file per secret), `pki/`, `render/`, `mattermost/` and `coturn/`
//! (what the containers mount), `relay-spool/`. Default `/var/lib/cityd` as root,
//! `$XDG_STATE_HOME/cityd` (or `~/.local/state/cityd`) otherwise.

use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StateError {
    #[error(
        "state directory {path} is under /nix/store, which every user can read; pick a directory such as /var/lib/cityd with --state-dir"
    )]
    InNixStore { path: PathBuf },
    #[error("state directory {path} is not absolute; give an absolute path with --state-dir")]
    NotAbsolute { path: PathBuf },
    #[error(
        "no state directory: HOME and XDG_STATE_HOME are unset and we are not root; pass --state-dir"
    )]
    NoDefault,
    #[error(
        "cannot create {path}; check that the parent exists and is writable, or pass another --state-dir"
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// File name of Mattermost's rendered env file under `render/`.
pub const RENDERED_MATTERMOST_ENV: &str = "mattermost.env";
/// File name of coturn's rendered configuration under `render/` (and `coturn/`).
pub const RENDERED_TURNSERVER_CONF: &str = "turnserver.conf";

/// The resolved state directory. Creating it is separate from resolving it so `--dry-run` and `show`
/// commands never create anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Resolves the state directory from an explicit choice or the defaults, refusing the Nix store.
    pub fn resolve(explicit: Option<&Path>) -> Result<Self, StateError> {
        let root = match explicit {
            Some(path) => path.to_path_buf(),
            None => default_root()?,
        };
        Self::at(root)
    }

    pub fn at(root: PathBuf) -> Result<Self, StateError> {
        if !root.is_absolute() {
            return Err(StateError::NotAbsolute { path: root });
        }
        if is_in_nix_store(&root) {
            return Err(StateError::InNixStore { path: root });
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.root.join("secrets")
    }
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub fn render_dir(&self) -> PathBuf {
        self.root.join("render")
    }

    /// `pki/ca.pem`: the city CA, the one root every client of ours trusts.
    pub fn ca_pem(&self) -> PathBuf {
        self.pki_dir().join(crate::pki::files::CA_PEM)
    }
    /// `render/mattermost.env`: Mattermost's rendered env file.
    pub fn rendered_mattermost_env(&self) -> PathBuf {
        self.render_dir().join(RENDERED_MATTERMOST_ENV)
    }
    /// `render/turnserver.conf`: coturn's rendered configuration.
    pub fn rendered_turnserver_conf(&self) -> PathBuf {
        self.render_dir().join(RENDERED_TURNSERVER_CONF)
    }
    /// `mattermost/`: what the Mattermost container mounts from the host.
    pub fn mattermost_dir(&self) -> PathBuf {
        self.root.join("mattermost")
    }
    /// `mattermost/run/`: bind-mounted at the container's local-mode socket directory.
    pub fn mattermost_run_dir(&self) -> PathBuf {
        self.mattermost_dir().join("run")
    }
    /// The host side of Mattermost's local-mode socket.
    pub fn mattermost_socket(&self) -> PathBuf {
        self.mattermost_run_dir()
            .join(crate::render::container::LOCAL_SOCKET_NAME)
    }
    /// `coturn/`: what the coturn container mounts from the host.
    pub fn coturn_dir(&self) -> PathBuf {
        self.root.join("coturn")
    }
    /// `coturn/turnserver.conf`: the copy the coturn container mounts.
    pub fn coturn_config(&self) -> PathBuf {
        self.coturn_dir().join(RENDERED_TURNSERVER_CONF)
    }
    /// `postgres/`: what the managed PostgreSQL container mounts (its leaf, key, superuser password).
    pub fn postgres_dir(&self) -> PathBuf {
        self.root.join("postgres")
    }
    /// `integrations/`: `cityd connect`'s records of what it pushed (fingerprints, pending reloads).
    pub fn integrations_dir(&self) -> PathBuf {
        self.root.join("integrations")
    }
    /// `backups/`: where `cityd backup` writes when no `--to` is given, and `status` looks.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }
    /// `relay-spool/`: the relay's durable queue of accepted events.
    pub fn relay_spool(&self) -> PathBuf {
        self.root.join("relay-spool")
    }

    /// Vault name of the incoming-webhook URL of `channel` (written by `cityd wire`).
    pub fn webhook_secret_name(channel: &str) -> String {
        format!("webhook-{channel}")
    }
    /// Vault name of a bot's access token.
    pub fn bot_token_secret_name(bot: &str) -> String {
        format!("mattermost-bot-token-{bot}")
    }
    /// Vault name of the id of a bot's token (not secret; it ties the vault to the server's list).
    pub fn bot_token_id_secret_name(bot: &str) -> String {
        format!("mattermost-bot-token-id-{bot}")
    }

    /// Creates `dir` (one of ours) with mode 0700 if it is missing. An existing directory keeps its mode.
    pub fn create_private_dir(dir: &Path) -> Result<(), StateError> {
        use std::os::unix::fs::DirBuilderExt;
        if dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::Create {
                path: dir.to_path_buf(),
                source,
            })
    }
}

fn is_in_nix_store(path: &Path) -> bool {
    // Compare components, not string prefixes: `/nix/storefoo` is not the store, `/nix//store/x` is.
    let mut components = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir));
    matches!(
        (components.next(), components.next(), components.next()),
        (Some(std::path::Component::RootDir), Some(a), Some(b)) if a.as_os_str() == "nix" && b.as_os_str() == "store"
    )
}

fn default_root() -> Result<PathBuf, StateError> {
    // SAFETY-free check: geteuid via the metadata of /proc/self is overkill; libc-free approach below.
    if is_root() {
        return Ok(PathBuf::from("/var/lib/cityd"));
    }
    if let Some(xdg) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("cityd"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/state/cityd"));
    }
    Err(StateError::NoDefault)
}

/// True when the process runs with effective UID 0.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the effective UID of the process.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_the_nix_store_in_every_spelling() {
        for p in [
            "/nix/store/abc-cityd",
            "/nix//store/x",
            "/nix/./store/y",
            "/nix/store",
        ] {
            let err = StateDir::at(PathBuf::from(p)).unwrap_err();
            assert!(matches!(err, StateError::InNixStore { .. }), "{p}: {err}");
        }
        assert!(StateDir::at(PathBuf::from("/nix/storefoo")).is_ok());
        assert!(StateDir::at(PathBuf::from("/var/lib/cityd")).is_ok());
    }

    #[test]
    fn relative_paths_are_refused_with_the_fix() {
        let err = StateDir::at(PathBuf::from("state")).unwrap_err();
        assert!(err.to_string().contains("--state-dir"));
    }
}
