//! Applying the plugin ops of the plan in order: settings (the whole Plugins map, read then
//! written back), uploads (EnableUploads switched on only around them and always restored), and
//! enabling with a wait until the plugin runs.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::PluginError;
use super::bundle::Bundle;
use super::desired::PluginSpec;
use super::plan::PluginOp;
use crate::mattermost::client::ApiClient;
use crate::mattermost::model::Plugins;
use crate::mattermost::wiring::observe::ServerConfig;
use crate::mattermost::wiring::plan::{Item, Op, Plan};

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
        ops: &[PluginOp],
        mut done: impl FnMut(&Item),
    ) -> Result<(), PluginError> {
        for item in &plan.items {
            let Some(Op::Plugin(i)) = item.op else {
                continue;
            };
            let doing = item.doing();
            match &ops[i] {
                PluginOp::WriteSettings { plugin } => {
                    self.write_settings(&doing, &self.specs[*plugin]).await?
                }
                PluginOp::Upload { plugin } => self.upload(&doing, *plugin).await?,
                PluginOp::Enable { plugin } => self.enable(&doing, &self.specs[*plugin]).await?,
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
