//! Simulated plugin activation: which installed plugins run, given `PluginStates` and settings.
//!
//! Like `syncPluginsActiveState` (MM `app/plugin.go`), this runs after every change that can
//! matter (upload, enable, disable, config patch/reload): enabled plugins that are not running get
//! an activation attempt, disabled ones stop, running ones keep running. Activation fails for
//! - any plugin id the test named with `fail_plugin_start`;
//! - `jenkins` (v1.1.0 `OnActivate`) while its `jenkinsurl` setting is empty;
//! - the GitLab plugin while `SiteURL`, `gitlaburl` or (unless `usepreregisteredapplication`) the
//!   OAuth client id/secret are empty; on activation it generates and saves `encryptionkey` and
//!   `webhooksecret` when empty (GitLab `OnActivate`, mattermost.md §6.2).

use serde_json::{Map, Value, json};

use super::config;
use super::ids::new_id;
use super::model::PluginState;
use super::state::World;

pub const JENKINS_ID: &str = "jenkins";
pub const GITLAB_ID: &str = "com.github.manland.mattermost-plugin-gitlab";

/// Brings every plugin's state in line with the current config.
pub fn sync(world: &mut World) {
    let plugins_on = world.cfg_bool("PluginSettings.Enable");
    for index in 0..world.plugins.len() {
        let id = world.plugins[index].id.clone();
        let enabled = plugins_on && config::plugin_enabled(&world.config, &id);
        let running = world.plugins[index].state == PluginState::Running;
        if !enabled {
            world.plugins[index].state = PluginState::NotRunning;
            world.plugins[index].error.clear();
        } else if !running {
            let outcome = activate(world, &id);
            let plugin = &mut world.plugins[index];
            match outcome {
                Ok(()) => {
                    plugin.state = PluginState::Running;
                    plugin.error.clear();
                }
                Err(why) => {
                    plugin.state = PluginState::FailedToStart;
                    plugin.error = why;
                }
            }
        }
    }
}

fn activate(world: &mut World, id: &str) -> Result<(), String> {
    if world.failing_plugins.contains(id) {
        return Err(format!("plugin {id} was told by the test to fail to start"));
    }
    let settings = config::plugin_settings(&world.config, id);
    match id {
        JENKINS_ID => {
            if setting_str(&settings, "jenkinsurl").is_empty() {
                return Err("Please add Jenkins URL in plugin settings".into());
            }
            Ok(())
        }
        GITLAB_ID => activate_gitlab(world, &settings),
        _ => Ok(()),
    }
}

fn activate_gitlab(world: &mut World, settings: &Map<String, Value>) -> Result<(), String> {
    if config::get_str(&world.config, "ServiceSettings.SiteURL").is_empty() {
        return Err("siteURL is not set. Please set it and restart the plugin".into());
    }
    for key in ["encryptionkey", "webhooksecret"] {
        if setting_str(settings, key).is_empty() {
            let generated = format!("{}{}", new_id(), &new_id()[..6]);
            config::set_plugin_setting(&mut world.config, GITLAB_ID, key, json!(generated));
        }
    }
    if setting_str(settings, "gitlaburl").is_empty() {
        return Err("invalid config: must have a GitLab URL".into());
    }
    let preregistered =
        setting(settings, "usepreregisteredapplication").and_then(Value::as_bool) == Some(true);
    if !preregistered {
        if setting_str(settings, "gitlaboauthclientid").is_empty() {
            return Err("invalid config: must have a GitLab oauth client id".into());
        }
        if setting_str(settings, "gitlaboauthclientsecret").is_empty() {
            return Err("invalid config: must have a GitLab oauth client secret".into());
        }
    }
    Ok(())
}

/// Plugins unmarshal their settings case-insensitively, so `JenkinsURL` and `jenkinsurl` both count.
fn setting<'a>(settings: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    settings
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

fn setting_str<'a>(settings: &'a Map<String, Value>, key: &str) -> &'a str {
    setting(settings, key).and_then(Value::as_str).unwrap_or("")
}
