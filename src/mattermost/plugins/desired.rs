//! What the city wants of each plugin: its bundle (Jenkins) or none (prepackaged GitLab), its
//! settings with secrets from the vault, and whether it can be enabled yet. Reads the vault only.

use serde_json::Value;

use super::{GITLAB_ID, GITLAB_OAUTH_ID, GITLAB_OAUTH_SECRET, JENKINS_ID};
use crate::city::City;
use crate::secrets::{Secret, SecretName, Vault, VaultError};

/// One setting's desired value; secrets stay wrapped until they are put into the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Text(String),
    Secret(Secret),
    Bool(bool),
}

impl Setting {
    pub(super) fn to_json(&self) -> Value {
        match self {
            Setting::Text(s) => Value::String(s.clone()),
            Setting::Secret(s) => Value::String(s.expose().to_string()),
            Setting::Bool(b) => Value::Bool(*b),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSpec {
    pub source: String,
    pub sri: String,
    pub version: Option<String>,
}

/// A plugin as the city wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    pub id: &'static str,
    /// Short name used in messages and the city (`jenkins`, `gitlab`).
    pub name: &'static str,
    pub bundle: Option<BundleSpec>,
    /// Setting keys (lower-case, as the System Console writes them) and values.
    pub settings: Vec<(&'static str, Setting)>,
    /// False when the plugin cannot start yet (GitLab without an OAuth application).
    pub enable: bool,
    /// Advice printed when the plugin does not start.
    pub advice: &'static str,
}

/// The plugins the city asks for, with secrets from the vault.
pub fn desired(city: &City, vault: &Vault) -> Result<(Vec<PluginSpec>, Vec<String>), VaultError> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    if let Some(j) = &city.plugins.jenkins {
        let mut settings = Vec::new();
        if let Some(url) = &j.jenkins_url {
            settings.push(("jenkinsurl", Setting::Text(url.clone())));
        }
        settings.push((
            "encryptionkey",
            Setting::Secret(vault.get(SecretName::JenkinsPluginEncryptionKey)?),
        ));
        out.push(PluginSpec {
            id: JENKINS_ID,
            name: "jenkins",
            bundle: Some(BundleSpec {
                source: j.source.clone(),
                sri: j.sri.clone(),
                version: j.version.clone(),
            }),
            settings,
            enable: true,
            advice: "; for Jenkins v1.1.0 check plugins.jenkins.jenkins_url and that the host is amd64 (the bundle has no arm64 server binary)",
        });
    }
    if let Some(g) = &city.plugins.gitlab {
        let mut settings = vec![("gitlaburl", Setting::Text(g.url.clone()))];
        let id = vault.read(GITLAB_OAUTH_ID)?;
        let secret = vault.read(GITLAB_OAUTH_SECRET)?;
        let oauth = id.is_some() && secret.is_some();
        if let (Some(id), Some(secret)) = (id, secret) {
            settings.push((
                "gitlaboauthclientid",
                Setting::Text(id.expose().to_string()),
            ));
            settings.push(("gitlaboauthclientsecret", Setting::Secret(secret)));
        } else {
            warnings.push(format!(
                "plugin gitlab: no OAuth application in the vault ({GITLAB_OAUTH_ID}, {GITLAB_OAUTH_SECRET}); its settings are written but it is not enabled, because it refuses to start without one. Register the application in GitLab (redirect URI {}/plugins/{GITLAB_ID}/oauth/complete), store both values in the vault, and rerun `cityd wire`",
                city.site_url()
            ));
        }
        settings.push((
            "webhooksecret",
            Setting::Secret(vault.get(SecretName::GitlabPluginWebhookSecret)?),
        ));
        settings.push((
            "encryptionkey",
            Setting::Secret(vault.get(SecretName::GitlabPluginEncryptionKey)?),
        ));
        settings.push(("enableprivaterepo", Setting::Bool(g.enable_private_repo)));
        settings.push(("enablecodepreview", Setting::Text(g.code_preview.clone())));
        out.push(PluginSpec {
            id: GITLAB_ID,
            name: "gitlab",
            bundle: None,
            settings,
            enable: oauth,
            advice: "; the GitLab plugin needs ServiceSettings.SiteURL, gitlaburl, the OAuth application and a 16/24/32-byte encryption key",
        });
    }
    Ok((out, warnings))
}
