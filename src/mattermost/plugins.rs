//! Plugins: the Jenkins bundle (a path or pinned URL, verified against its SRI hash before any
//! upload), the prepackaged GitLab plugin, their settings (written before enabling, as the whole
//! `PluginSettings.Plugins` map) and the check that an enabled plugin actually runs.
//! Touches the server (config patch, upload, enable), reads the vault and the bundle source.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use thiserror::Error;

use super::client::ApiClient;
use super::error::ApiError;
use super::model::Plugins;
use super::wiring::observe::ServerConfig;
use super::wiring::plan::{Change, Item, Kind, Plan, Step};
use crate::city::City;
use crate::nixhash::Sri;
use crate::secrets::{Secret, SecretName, Vault, VaultError};

pub const JENKINS_ID: &str = "jenkins";
pub const GITLAB_ID: &str = "com.github.manland.mattermost-plugin-gitlab";

/// Vault files for the GitLab OAuth application (stored by whoever registers it in GitLab).
pub const GITLAB_OAUTH_ID: &str = "gitlab-oauth-client-id";
pub const GITLAB_OAUTH_SECRET: &str = "gitlab-oauth-client-secret";

/// What the server shows instead of a secret setting over a session (not in local mode).
const MASKED: &str = "********************************";

/// Largest bundle cityd downloads (Mattermost's default upload limit).
const MAX_BUNDLE: usize = 100 * 1024 * 1024;

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

/// One setting's desired value; secrets stay wrapped until they are put into the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setting {
    Text(String),
    Secret(Secret),
    Bool(bool),
}

impl Setting {
    fn to_json(&self) -> Value {
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

/// What `apply` does for a plugin step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    WriteSettings { plugin: usize },
    Upload { plugin: usize },
    Enable { plugin: usize },
}

/// The plugin part of the plan (items carry `Step::Plugin(index into actions)`).
#[derive(Debug, Clone, Default)]
pub struct PluginPlan {
    pub plan: Plan,
    pub actions: Vec<Action>,
}

/// Compares the wanted plugins with the server's config and plugin list. Pure.
pub fn plan(
    specs: &[PluginSpec],
    config: &ServerConfig,
    installed: &Plugins,
    local: bool,
) -> PluginPlan {
    let mut out = PluginPlan::default();
    if specs.is_empty() {
        return out;
    }
    if config.bool("PluginSettings.Enable") == Some(false) {
        out.plan.blockers.push(
            "plugins are disabled on the server (PluginSettings.Enable = false): set MM_PLUGINSETTINGS_ENABLE=true and restart Mattermost".into(),
        );
        return out;
    }
    for (index, spec) in specs.iter().enumerate() {
        let present = installed.find(spec.id);
        let name = spec.name.to_string();

        // 1. Settings first: a plugin must never start with empty settings.
        let differing = differing_settings(spec, config, local);
        if differing.is_empty() {
            out.plan.push(
                Kind::PluginSettings,
                name.clone(),
                Change::Unchanged,
                "",
                None,
            );
        } else {
            let step = Some(Step::Plugin(out.actions.len()));
            out.actions.push(Action::WriteSettings { plugin: index });
            out.plan.push(
                Kind::PluginSettings,
                name.clone(),
                Change::Update,
                &differing.join(", "),
                step,
            );
        }

        // 2. The bundle.
        let mut will_upload = false;
        match (&spec.bundle, present) {
            (Some(b), Some((m, _))) if b.version.as_deref().is_none_or(|v| v == m.version) => {
                out.plan.push(
                    Kind::PluginBundle,
                    name.clone(),
                    Change::Unchanged,
                    &format!("version {} installed", m.version),
                    None,
                );
            }
            (Some(b), present) => {
                will_upload = true;
                let detail = match present {
                    Some((m, _)) => format!(
                        "installed {} → {} from {}",
                        m.version,
                        b.version.as_deref().unwrap_or("?"),
                        b.source
                    ),
                    None => format!(
                        "{} from {}",
                        b.version.as_deref().unwrap_or("bundle"),
                        b.source
                    ),
                };
                let change = if present.is_some() {
                    Change::Update
                } else {
                    Change::Create
                };
                let step = Some(Step::Plugin(out.actions.len()));
                out.actions.push(Action::Upload { plugin: index });
                out.plan
                    .push(Kind::PluginBundle, name.clone(), change, &detail, step);
                if config.bool("PluginSettings.RequirePluginSignature") == Some(true) {
                    out.plan.blockers.push(format!(
                        "plugin {name} must be uploaded, but PluginSettings.RequirePluginSignature is true and Mattermost refuses unsigned uploads: set it to false, or install the bundle with its .sig another way"
                    ));
                }
                if !local && config.bool("PluginSettings.EnableUploads") != Some(true) {
                    out.plan.blockers.push(format!(
                        "plugin {name} must be uploaded, but uploads are disabled and a token session cannot enable them (Mattermost refuses that setting over the API): run `cityd wire` in local mode (--socket)"
                    ));
                }
            }
            (None, None) => out.plan.blockers.push(format!(
                "plugin {name} ({}) is not installed on the server. It is prepackaged in the enterprise image but installed only when enabled at startup: add \"{}\":{{\"Enable\":true}} to PluginSettings.PluginStates (System Console > Plugins), restart, and rerun",
                spec.id, spec.id
            )),
            (None, Some(_)) => {}
        }

        // 3. Running.
        let active = present.is_some_and(|(_, active)| active) && !will_upload;
        if active {
            out.plan
                .push(Kind::Plugin, name, Change::Unchanged, "running", None);
        } else if !spec.enable {
            out.plan.push(
                Kind::Plugin,
                name,
                Change::Unchanged,
                "not enabled (see the warning)",
                None,
            );
        } else {
            let step = Some(Step::Plugin(out.actions.len()));
            out.actions.push(Action::Enable { plugin: index });
            out.plan.push(
                Kind::Plugin,
                name,
                Change::Create,
                "enable, then wait until it runs",
                step,
            );
        }
    }
    if specs.iter().any(|s| s.id == GITLAB_ID)
        && config
            .get("ServiceSettings.SiteURL")
            .and_then(Value::as_str)
            .is_some_and(str::is_empty)
    {
        out.plan.blockers.push(
            "the GitLab plugin refuses to start with an empty ServiceSettings.SiteURL: set MM_SERVICESETTINGS_SITEURL (cityd render mattermost-env does) and restart".into(),
        );
    }
    out
}

/// Setting keys whose server value differs from the city's. Over a session the server masks
/// secret settings; a masked value cannot be compared and counts as equal.
fn differing_settings(spec: &PluginSpec, config: &ServerConfig, local: bool) -> Vec<String> {
    let current = config
        .get("PluginSettings.Plugins")
        .and_then(|p| p.get(spec.id))
        .and_then(Value::as_object);
    spec.settings
        .iter()
        .filter(|(key, want)| {
            let have = current.and_then(|m| m.get(*key));
            match have {
                Some(Value::String(s)) if !local && s == MASKED => false,
                Some(v) => *v != want.to_json(),
                None => true,
            }
        })
        .map(|(key, _)| key.to_string())
        .collect()
}

/// A verified bundle, ready for upload.
pub struct Bundle {
    pub bytes: Vec<u8>,
    pub file_name: String,
}

/// Loads a bundle (path or URL) and checks it against the pinned SRI hash. Nothing is uploaded
/// unless this succeeds.
pub async fn load_verified(plugin: &str, bundle: &BundleSpec) -> Result<Bundle, PluginError> {
    let expected = Sri::parse(&bundle.sri).map_err(|error| PluginError::BadSri {
        plugin: plugin.into(),
        error,
    })?;
    let bytes = if bundle.source.starts_with("http://") || bundle.source.starts_with("https://") {
        download(plugin, &bundle.source).await?
    } else {
        std::fs::read(&bundle.source).map_err(|error| PluginError::ReadBundle {
            plugin: plugin.into(),
            path: bundle.source.clone(),
            error,
        })?
    };
    let actual = Sri::of_bytes(&bytes);
    if actual != expected {
        return Err(PluginError::HashMismatch {
            plugin: plugin.into(),
            source_name: bundle.source.clone(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    let file_name = bundle
        .source
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("plugin.tar.gz")
        .to_string();
    Ok(Bundle { bytes, file_name })
}

async fn download(plugin: &str, url: &str) -> Result<Vec<u8>, PluginError> {
    let fail = |reason: String| PluginError::Download {
        plugin: plugin.into(),
        url: url.into(),
        reason,
    };
    super::transport::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BUNDLE as u64)
    {
        return Err(fail(format!("larger than {MAX_BUNDLE} bytes")));
    }
    let bytes = response.bytes().await.map_err(|e| fail(e.to_string()))?;
    if bytes.len() > MAX_BUNDLE {
        return Err(fail(format!("larger than {MAX_BUNDLE} bytes")));
    }
    Ok(bytes.to_vec())
}

/// Carries out the plugin steps of the plan in order.
pub struct PluginApplier<'a> {
    pub client: &'a ApiClient,
    pub specs: &'a [PluginSpec],
    pub bundles: &'a [(usize, Bundle)],
    /// How long an enabled plugin may take to show up as running.
    pub start_timeout: Duration,
}

impl PluginApplier<'_> {
    pub async fn apply(
        &self,
        plan: &Plan,
        actions: &[Action],
        mut done: impl FnMut(&Item),
    ) -> Result<(), PluginError> {
        for item in &plan.items {
            let Some(Step::Plugin(i)) = item.step else {
                continue;
            };
            let doing = item.doing();
            match &actions[i] {
                Action::WriteSettings { plugin } => {
                    self.write_settings(&doing, &self.specs[*plugin]).await?
                }
                Action::Upload { plugin } => self.upload(&doing, *plugin).await?,
                Action::Enable { plugin } => self.enable(&doing, &self.specs[*plugin]).await?,
            }
            done(item);
        }
        Ok(())
    }

    /// GET /config, set this plugin's keys in the full Plugins map, PUT it back whole (a patch
    /// replaces maps, so sending only our plugin would erase every other plugin's settings).
    async fn write_settings(&self, doing: &str, spec: &PluginSpec) -> Result<(), PluginError> {
        let api = |error| PluginError::Api {
            doing: doing.into(),
            error,
        };
        let config = self.client.get_config().await.map_err(api)?;
        let mut plugins: Map<String, Value> = config
            .get("PluginSettings")
            .and_then(|p| p.get("Plugins"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let entry = plugins
            .entry(spec.id.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let map = entry.as_object_mut().expect("made an object above");
        for (key, value) in &spec.settings {
            map.insert(key.to_string(), value.to_json());
        }
        let patch = json!({ "PluginSettings": { "Plugins": Value::Object(plugins) } });
        self.client.patch_config(&patch).await.map_err(api)?;
        Ok(())
    }

    /// Enables uploads only around the upload, and always restores the previous value.
    async fn upload(&self, doing: &str, plugin: usize) -> Result<(), PluginError> {
        let spec = &self.specs[plugin];
        let api = |error| PluginError::Api {
            doing: doing.into(),
            error,
        };
        let bundle = self
            .bundles
            .iter()
            .find(|(i, _)| *i == plugin)
            .map(|(_, b)| b)
            .expect("every upload has a verified bundle");
        let config = ServerConfig(self.client.get_config().await.map_err(api)?);
        let was_enabled = config.bool("PluginSettings.EnableUploads") == Some(true);
        if !was_enabled {
            self.client
                .patch_config(&json!({ "PluginSettings": { "EnableUploads": true } }))
                .await
                .map_err(api)?;
        }
        let uploaded = self
            .client
            .upload_plugin(bundle.bytes.clone(), &bundle.file_name, true)
            .await;
        let restored = if was_enabled {
            Ok(())
        } else {
            self.client
                .patch_config(&json!({ "PluginSettings": { "EnableUploads": false } }))
                .await
                .map(|_| ())
        };
        let manifest = match (uploaded, restored) {
            (Ok(m), Ok(())) => m,
            (Err(error), restored) => {
                return Err(PluginError::UploadFailed {
                    doing: doing.into(),
                    error,
                    restore: match restored {
                        Ok(()) => String::new(),
                        Err(e) => format!(" — NOT restored ({e}); set it back yourself"),
                    },
                });
            }
            (Ok(_), Err(error)) => {
                return Err(PluginError::RestoreFailed {
                    plugin: spec.name.into(),
                    error,
                });
            }
        };
        let expected_version = spec
            .bundle
            .as_ref()
            .and_then(|b| b.version.clone())
            .unwrap_or_else(|| manifest.version.clone());
        if manifest.id != spec.id || manifest.version != expected_version {
            return Err(PluginError::WrongBundle {
                plugin: spec.name.into(),
                id: manifest.id,
                version: manifest.version,
                expected: expected_version,
            });
        }
        Ok(())
    }

    /// Enables the plugin unless it already runs, then polls GET /plugins until it is active.
    async fn enable(&self, doing: &str, spec: &PluginSpec) -> Result<(), PluginError> {
        let api = |error| PluginError::Api {
            doing: doing.into(),
            error,
        };
        let started = Instant::now();
        let running = |p: &Plugins| p.active.iter().any(|m| m.id == spec.id);
        if !running(&self.client.get_plugins().await.map_err(api)?) {
            self.client.enable_plugin(spec.id).await.map_err(api)?;
        }
        let mut pause = Duration::from_millis(50);
        loop {
            if running(&self.client.get_plugins().await.map_err(api)?) {
                return Ok(());
            }
            let waited = started.elapsed();
            if waited >= self.start_timeout {
                return Err(PluginError::NotRunning {
                    plugin: spec.name.into(),
                    id: spec.id.into(),
                    timeout: self.start_timeout,
                    advice: spec.advice,
                });
            }
            tokio::time::sleep(pause.min(self.start_timeout - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mattermost::model::PluginManifest;

    fn jenkins(version: &str) -> PluginSpec {
        PluginSpec {
            id: JENKINS_ID,
            name: "jenkins",
            bundle: Some(BundleSpec {
                source: "/b/jenkins-1.1.0.tar.gz".into(),
                sri: "sha256-x".into(),
                version: Some(version.into()),
            }),
            settings: vec![
                (
                    "jenkinsurl",
                    Setting::Text("https://jenkins.cicd.local".into()),
                ),
                (
                    "encryptionkey",
                    Setting::Secret(Secret::new("k".repeat(32))),
                ),
            ],
            enable: true,
            advice: "",
        }
    }

    fn config(plugins: Value) -> ServerConfig {
        ServerConfig(
            json!({"PluginSettings": {"Enable": true, "EnableUploads": false, "Plugins": plugins}}),
        )
    }

    fn manifest(id: &str, version: &str) -> PluginManifest {
        PluginManifest {
            id: id.into(),
            name: id.into(),
            version: version.into(),
        }
    }

    fn steps(p: &PluginPlan) -> Vec<(Kind, Change)> {
        p.plan.items.iter().map(|i| (i.kind, i.change)).collect()
    }

    #[test]
    fn a_fresh_install_writes_settings_then_uploads_then_enables() {
        let p = plan(
            &[jenkins("1.1.0")],
            &config(json!({})),
            &Plugins::default(),
            true,
        );
        assert_eq!(
            steps(&p),
            vec![
                (Kind::PluginSettings, Change::Update),
                (Kind::PluginBundle, Change::Create),
                (Kind::Plugin, Change::Create),
            ]
        );
        assert_eq!(
            p.actions,
            vec![
                Action::WriteSettings { plugin: 0 },
                Action::Upload { plugin: 0 },
                Action::Enable { plugin: 0 }
            ]
        );
        assert!(p.plan.blockers.is_empty());
        // Setting names, never values, appear in the plan.
        assert_eq!(p.plan.items[0].detail, "jenkinsurl, encryptionkey");
    }

    #[test]
    fn installed_configured_and_running_means_no_request() {
        let cfg = config(json!({"jenkins": {
            "jenkinsurl": "https://jenkins.cicd.local",
            "encryptionkey": "k".repeat(32),
            "foreign": 1
        }}));
        let installed = Plugins {
            active: vec![manifest("jenkins", "1.1.0")],
            inactive: vec![],
        };
        let p = plan(&[jenkins("1.1.0")], &cfg, &installed, true);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.plan.changes(), 0);
    }

    #[test]
    fn a_new_version_is_uploaded_and_an_inactive_plugin_enabled() {
        let installed = Plugins {
            active: vec![],
            inactive: vec![manifest("jenkins", "1.0.0")],
        };
        let p = plan(&[jenkins("1.1.0")], &config(json!({})), &installed, true);
        assert_eq!(p.plan.items[1].change, Change::Update);
        assert!(p.plan.items[1].detail.contains("1.0.0 → 1.1.0"));
        assert_eq!(p.plan.items[2].change, Change::Create);
    }

    #[test]
    fn masked_secrets_count_as_equal_over_a_session_only() {
        let cfg = config(json!({"jenkins": {
            "jenkinsurl": "https://jenkins.cicd.local",
            "encryptionkey": MASKED,
        }}));
        let spec = jenkins("1.1.0");
        assert!(differing_settings(&spec, &cfg, false).is_empty());
        assert_eq!(differing_settings(&spec, &cfg, true), vec!["encryptionkey"]);
    }

    #[test]
    fn uploads_that_cannot_happen_block_the_run() {
        let cfg = ServerConfig(
            json!({"PluginSettings": {"Enable": true, "RequirePluginSignature": true}}),
        );
        let p = plan(&[jenkins("1.1.0")], &cfg, &Plugins::default(), true);
        assert!(p.plan.blockers[0].contains("RequirePluginSignature"));
        let p = plan(
            &[jenkins("1.1.0")],
            &config(json!({})),
            &Plugins::default(),
            false,
        );
        assert!(p.plan.blockers[0].contains("local mode"));
        let off = ServerConfig(json!({"PluginSettings": {"Enable": false}}));
        let p = plan(&[jenkins("1.1.0")], &off, &Plugins::default(), true);
        assert!(p.plan.blockers[0].contains("PluginSettings.Enable = false"));
    }

    #[test]
    fn a_missing_prepackaged_plugin_is_a_blocker() {
        let gitlab = PluginSpec {
            id: GITLAB_ID,
            name: "gitlab",
            bundle: None,
            settings: vec![("gitlaburl", Setting::Text("https://gitlab".into()))],
            enable: true,
            advice: "",
        };
        let p = plan(&[gitlab], &config(json!({})), &Plugins::default(), true);
        assert!(
            p.plan.blockers[0].contains("not installed"),
            "{:?}",
            p.plan.blockers
        );
    }

    #[tokio::test]
    async fn a_wrong_hash_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jenkins-1.1.0.tar.gz");
        std::fs::write(&path, b"not the bundle you pinned").unwrap();
        let spec = BundleSpec {
            source: path.display().to_string(),
            sri: Sri::of_bytes(b"the real bundle").to_string(),
            version: Some("1.1.0".into()),
        };
        let err = load_verified("jenkins", &spec).await.err().unwrap();
        let text = err.to_string();
        assert!(text.contains("refusing to upload"), "{text}");
        assert!(text.contains(&Sri::of_bytes(b"not the bundle you pinned").to_string()));
        let ok = BundleSpec {
            sri: Sri::of_bytes(b"not the bundle you pinned").to_string(),
            ..spec
        };
        let bundle = load_verified("jenkins", &ok).await.unwrap();
        assert_eq!(bundle.file_name, "jenkins-1.1.0.tar.gz");
    }
}
