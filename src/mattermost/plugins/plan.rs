//! The plugin plan: a pure function from the wanted plugins, the server's config and its plugin
//! list to wiring plan items (settings, bundle, running) and the ops `apply` carries out.

use serde_json::Value;

use super::GITLAB_ID;
use super::desired::PluginSpec;
use crate::mattermost::model::Plugins;
use crate::mattermost::wiring::observe::ServerConfig;
use crate::mattermost::wiring::plan::{Kind, Op, Plan};
use crate::report::Outcome;

/// What the server shows instead of a secret setting over a session (not in local mode).
pub(super) const MASKED: &str = "********************************";

/// What `apply` does for a plugin step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginOp {
    WriteSettings { plugin: usize },
    Upload { plugin: usize },
    Enable { plugin: usize },
}

/// The plugin part of the plan (items carry `Op::Plugin(index into actions)`).
#[derive(Debug, Clone, Default)]
pub struct PluginPlan {
    pub plan: Plan,
    pub ops: Vec<PluginOp>,
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
                Outcome::Unchanged,
                "",
                None,
            );
        } else {
            let step = Some(Op::Plugin(out.ops.len()));
            out.ops.push(PluginOp::WriteSettings { plugin: index });
            out.plan.push(
                Kind::PluginSettings,
                name.clone(),
                Outcome::WouldUpdate,
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
                    Outcome::Unchanged,
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
                    Outcome::WouldUpdate
                } else {
                    Outcome::WouldCreate
                };
                let step = Some(Op::Plugin(out.ops.len()));
                out.ops.push(PluginOp::Upload { plugin: index });
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
                .push(Kind::Plugin, name, Outcome::Unchanged, "running", None);
        } else if !spec.enable {
            out.plan.push(
                Kind::Plugin,
                name,
                Outcome::Unchanged,
                "not enabled (see the warning)",
                None,
            );
        } else {
            let step = Some(Op::Plugin(out.ops.len()));
            out.ops.push(PluginOp::Enable { plugin: index });
            out.plan.push(
                Kind::Plugin,
                name,
                Outcome::WouldCreate,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mattermost::model::PluginManifest;
    use crate::mattermost::plugins::{BundleSpec, JENKINS_ID, Setting};
    use crate::secrets::Secret;
    use serde_json::json;

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

    fn steps(p: &PluginPlan) -> Vec<(Kind, Outcome)> {
        p.plan.items.iter().map(|i| (i.kind, i.outcome)).collect()
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
                (Kind::PluginSettings, Outcome::WouldUpdate),
                (Kind::PluginBundle, Outcome::WouldCreate),
                (Kind::Plugin, Outcome::WouldCreate),
            ]
        );
        assert_eq!(
            p.ops,
            vec![
                PluginOp::WriteSettings { plugin: 0 },
                PluginOp::Upload { plugin: 0 },
                PluginOp::Enable { plugin: 0 }
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
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        assert_eq!(p.plan.changes(), 0);
    }

    #[test]
    fn a_new_version_is_uploaded_and_an_inactive_plugin_enabled() {
        let installed = Plugins {
            active: vec![],
            inactive: vec![manifest("jenkins", "1.0.0")],
        };
        let p = plan(&[jenkins("1.1.0")], &config(json!({})), &installed, true);
        assert_eq!(p.plan.items[1].outcome, Outcome::WouldUpdate);
        assert!(p.plan.items[1].detail.contains("1.0.0 → 1.1.0"));
        assert_eq!(p.plan.items[2].outcome, Outcome::WouldCreate);
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
}
