//! `[plugins]`: the Mattermost plugins `cityd wire` installs and configures (none unless a table is given).

use serde::{Deserialize, Serialize};

use super::rules::{Problems, http_url_rule};
use crate::nixhash::{Sri, StorePath};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plugins {
    /// The Jenkins plugin bundle: a path or a pinned URL, with its SRI sha256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jenkins: Option<PluginBundle>,
    /// The prepackaged GitLab plugin: configured, then enabled, when this table is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gitlab: Option<GitlabPlugin>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginBundle {
    pub source: String,
    pub sri: String,
    /// The Jenkins server the plugin talks to (`jenkinsurl`); v1.1.0 refuses to start without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jenkins_url: Option<String>,
    /// The bundle's plugin version (e.g. 1.1.0): an installed plugin of this version is not re-uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Settings of the prepackaged GitLab plugin (`com.github.manland.mattermost-plugin-gitlab`).
///
/// Its field defaults are serde's because the table is optional: the embedded default city cannot
/// state them without switching the plugin on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabPlugin {
    /// `gitlaburl`, e.g. https://gitlab.cicd.local
    pub url: String,
    /// `enableprivaterepo`
    #[serde(default)]
    pub enable_private_repo: bool,
    /// `enablecodepreview`: public | privateAndPublic | disable
    #[serde(default = "default_code_preview")]
    pub code_preview: String,
}

fn default_code_preview() -> String {
    "public".into()
}

/// The GitLab plugin's only valid `enablecodepreview` values (the blog's `public_private` is not one).
pub const GITLAB_CODE_PREVIEW: &[&str] = &["public", "privateAndPublic", "disable"];

impl Plugins {
    pub(super) fn check(&self, out: &mut Problems) {
        if let Some(j) = &self.jenkins {
            j.check(out);
        }
        if let Some(g) = &self.gitlab {
            g.check(out);
        }
    }
}

impl PluginBundle {
    fn check(&self, out: &mut Problems) {
        let source = self.source.as_str();
        if source.starts_with("http://") || source.starts_with("https://") {
            out.rule("plugins.jenkins.source", source, http_url_rule(source));
        } else if !source.starts_with('/') {
            out.bad(
                "plugins.jenkins.source",
                source,
                "must be an absolute path or an http(s) URL of the plugin bundle (.tar.gz)",
            );
        } else if StorePath::looks_like(source)
            && let Err(e) = StorePath::parse(source)
        {
            out.bad("plugins.jenkins.source", source, e.to_string());
        }
        if !self.sri.starts_with("sha256-") {
            out.bad(
                "plugins.jenkins.sri",
                &self.sri,
                "must be an SRI hash of the form sha256-<base64>",
            );
        } else if let Err(e) = Sri::parse(&self.sri) {
            out.bad("plugins.jenkins.sri", &self.sri, e.to_string());
        }
        if self.version.as_deref().is_none_or(str::is_empty) {
            out.bad(
                "plugins.jenkins.version",
                "(missing)",
                "set the bundle's plugin version (e.g. 1.1.0): `cityd wire` compares it with the installed plugin to decide whether to upload",
            );
        }
        match &self.jenkins_url {
            None => out.bad(
                "plugins.jenkins.jenkins_url",
                "(missing)",
                "the Jenkins plugin (v1.1.0) refuses to start without its Jenkins URL; set e.g. https://jenkins.cicd.local:8080",
            ),
            Some(url) => out.rule("plugins.jenkins.jenkins_url", url, http_url_rule(url)),
        }
    }
}

impl GitlabPlugin {
    fn check(&self, out: &mut Problems) {
        out.rule("plugins.gitlab.url", &self.url, http_url_rule(&self.url));
        if !GITLAB_CODE_PREVIEW.contains(&self.code_preview.as_str()) {
            out.bad(
                "plugins.gitlab.code_preview",
                &self.code_preview,
                "must be one of public, privateAndPublic, disable",
            );
        }
    }
}
