//! Plugins: the Jenkins bundle (a path or pinned URL, verified against its SRI hash before any
//! upload), the prepackaged GitLab plugin, their settings (written before enabling, as the whole
//! `PluginSettings.Plugins` map) and the check that an enabled plugin actually runs. In the
//! wiring's shape: desired (city + vault) → observe (the server's plugin list, the bundles) →
//! plan (pure) → apply; its plan joins the wiring plan as `Op::Plugin` items.

pub mod apply;
pub mod bundle;
pub mod desired;
pub mod observe;
pub mod plan;

use std::time::Duration;

use thiserror::Error;

use super::error::ApiError;
use crate::secrets::VaultError;

pub use apply::PluginApplier;
pub use bundle::{Bundle, load_verified};
pub use desired::{BundleSpec, PluginSpec, Setting, desired};
pub use observe::observe;
pub use plan::{PluginOp, PluginPlan, plan};

pub const JENKINS_ID: &str = "jenkins";
pub const GITLAB_ID: &str = "com.github.manland.mattermost-plugin-gitlab";

/// Vault files for the GitLab OAuth application (stored by whoever registers it in GitLab).
pub const GITLAB_OAUTH_ID: &str = "gitlab-oauth-client-id";
pub const GITLAB_OAUTH_SECRET: &str = "gitlab-oauth-client-secret";

#[derive(Debug, Error)]
pub enum PluginError {
    #[error(
        "plugin bundle {source_name} has hash {actual}, but the city pins {expected} (plugins.{plugin}.sri): refusing to upload it. Fetch the right file, or update the pin if you changed the version on purpose"
    )]
    HashMismatch {
        plugin: String,
        source_name: String,
        expected: String,
        actual: String,
    },
    #[error("plugins.{plugin}.sri: {error}")]
    BadSri {
        plugin: String,
        error: crate::nixhash::SriError,
    },
    #[error(
        "cannot read plugin bundle {path}: {error}; check plugins.{plugin}.source (an absolute path or an http(s) URL)"
    )]
    ReadBundle {
        plugin: String,
        path: String,
        error: std::io::Error,
    },
    #[error("cannot download plugin bundle {url}: {reason}; check plugins.{plugin}.source")]
    Download {
        plugin: String,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{doing} failed: {error}")]
    Api { doing: String, error: ApiError },
    #[error("{doing} failed: {error}; PluginSettings.EnableUploads was set back to false{restore}")]
    UploadFailed {
        doing: String,
        error: ApiError,
        restore: String,
    },
    #[error(
        "restoring PluginSettings.EnableUploads to false after uploading plugin {plugin} failed: {error}; uploads stay enabled: set it back yourself (System Console > Plugins > Plugin Management)"
    )]
    RestoreFailed { plugin: String, error: ApiError },
    #[error(
        "the bundle uploaded for plugin {plugin} holds plugin {id} version {version}, but the city says {plugin} {expected}: check plugins.{plugin}.source and .version"
    )]
    WrongBundle {
        plugin: String,
        id: String,
        version: String,
        expected: String,
    },
    #[error(
        "plugin {plugin} ({id}) was enabled but is not running after {}: it failed to start. The reason is in the server log (`docker logs <mattermost container> 2>&1 | grep -i {plugin}`){advice}",
        super::error::human(*timeout)
    )]
    NotRunning {
        plugin: String,
        id: String,
        timeout: Duration,
        advice: &'static str,
    },
}
