//! The server configuration the double keeps: defaults, `PUT /config/patch` merge semantics,
//! session-mode sanitising, and the few validity rules a patch can trip.
//!
//! Merge (MM `server/channels/utils/merge.go`): objects that are Go structs merge field by field;
//! a JSON `null` keeps the old value; arrays replace; any object that is a Go **map**
//! (`PluginSettings.Plugins`, `PluginSettings.PluginStates`) replaces the whole map. An empty
//! `Plugins` map in a patch is ignored (mattermost.md §4).

use serde_json::{Map, Value, json};

use super::errors::{ApiResult, AppError};
use super::ids::new_id;

/// What session-mode GET /config shows instead of a secret (`model.FakeSetting`).
pub const MASK: &str = "********************************";

/// Dotted paths whose objects are Go maps (replaced whole by a patch).
const MAP_PATHS: &[&str] = &["PluginSettings.Plugins", "PluginSettings.PluginStates"];

/// Secrets masked in session-mode GET /config (`Config.Sanitize`, the subset the double has).
const SECRET_PATHS: &[&[&str]] = &[
    &["SqlSettings", "DataSource"],
    &["SqlSettings", "AtRestEncryptKey"],
    &["FileSettings", "PublicLinkSalt"],
];

/// The defaults of a fresh v11 server (MM `model/config.go` `SetDefaults`, the settings cityd touches),
/// with local mode on as in the official image.
pub fn default_config() -> Value {
    json!({
        "ServiceSettings": {
            "SiteURL": "",
            "ListenAddress": ":8065",
            "ConnectionSecurity": "",
            "TLSCertFile": "",
            "TLSKeyFile": "",
            "EnableLocalMode": true,
            "LocalModeSocketLocation": "/var/tmp/mattermost_local.socket",
            "EnableBotAccountCreation": false,
            "EnableUserAccessTokens": false,
            "EnableIncomingWebhooks": true,
            "EnableOutgoingWebhooks": true,
            "EnablePostUsernameOverride": false,
            "EnablePostIconOverride": false,
            "EnableDeveloper": false,
            "EnableInsecureOutgoingConnections": false,
            "AllowCorsFrom": "",
            "AllowedUntrustedInternalConnections": "",
            "PostPriority": true
        },
        "TeamSettings": {
            "SiteName": "Mattermost",
            "MaxUsersPerTeam": 50,
            "EnableOpenServer": false
        },
        "SqlSettings": {
            "DriverName": "postgres",
            "DataSource": "postgres://mmuser:mostest@localhost/mattermost_test?sslmode=disable&connect_timeout=10&binary_parameters=yes",
            "AtRestEncryptKey": random_secret()
        },
        "FileSettings": {
            "MaxFileSize": 104857600,
            "PublicLinkSalt": random_secret()
        },
        "PasswordSettings": {
            "MinimumLength": 8,
            "Lowercase": false,
            "Number": false,
            "Uppercase": false,
            "Symbol": false
        },
        "MetricsSettings": {
            "Enable": false,
            "ListenAddress": ":8067"
        },
        "PluginSettings": {
            "Enable": true,
            "EnableUploads": false,
            "RequirePluginSignature": false,
            "AutomaticPrepackagedPlugins": true,
            "Directory": "./plugins",
            "ClientDirectory": "./client/plugins",
            "Plugins": {},
            "PluginStates": {
                "com.mattermost.calls": {"Enable": true},
                "com.mattermost.nps": {"Enable": true},
                "mattermost-ai": {"Enable": true},
                "playbooks": {"Enable": true}
            }
        }
    })
}

/// 32 characters, like the auto-generated salts and keys of a fresh server.
fn random_secret() -> String {
    format!("{}{}", new_id(), &new_id()[..6])
}

/// Merges `patch` into `base` with the server's rules (module docs).
pub fn merge(base: &Value, patch: &Value) -> Value {
    merge_at(base, patch, "")
}

fn merge_at(base: &Value, patch: &Value, path: &str) -> Value {
    match (base, patch) {
        (_, Value::Null) => base.clone(),
        (Value::Object(b), Value::Object(p)) if !MAP_PATHS.contains(&path) => {
            let mut out = b.clone();
            for (key, value) in p {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let merged = match b.get(key) {
                    Some(old) => merge_at(old, value, &child),
                    None => value.clone(),
                };
                out.insert(key.clone(), merged);
            }
            Value::Object(out)
        }
        (_, Value::Object(p)) if path == "PluginSettings.Plugins" && p.is_empty() => base.clone(),
        _ => patch.clone(),
    }
}

/// Reads a dotted path such as `PluginSettings.EnableUploads`.
pub fn get<'a>(config: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(config, |node, key| node.get(key))
}

pub fn get_bool(config: &Value, path: &str) -> bool {
    get(config, path).and_then(Value::as_bool).unwrap_or(false)
}

pub fn get_str<'a>(config: &'a Value, path: &str) -> &'a str {
    get(config, path).and_then(Value::as_str).unwrap_or("")
}

pub fn get_i64(config: &Value, path: &str) -> i64 {
    get(config, path).and_then(Value::as_i64).unwrap_or(0)
}

/// Settings of one plugin (`PluginSettings.Plugins[id]`), an empty map when absent.
pub fn plugin_settings(config: &Value, plugin_id: &str) -> Map<String, Value> {
    get(config, "PluginSettings.Plugins")
        .and_then(|p| p.get(plugin_id))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Whether `PluginStates[id].Enable` is true.
pub fn plugin_enabled(config: &Value, plugin_id: &str) -> bool {
    get(config, "PluginSettings.PluginStates")
        .and_then(|s| s.get(plugin_id))
        .and_then(|s| s.get("Enable"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Writes `PluginStates[id] = {"Enable": enable}` (what enable/disable do on the server).
pub fn set_plugin_enabled(config: &mut Value, plugin_id: &str, enable: bool) {
    let states = ensure_object(config, &["PluginSettings", "PluginStates"]);
    states.insert(plugin_id.to_owned(), json!({"Enable": enable}));
}

/// Writes one plugin setting (used when a simulated plugin saves its own generated keys).
pub fn set_plugin_setting(config: &mut Value, plugin_id: &str, key: &str, value: Value) {
    let plugins = ensure_object(config, &["PluginSettings", "Plugins"]);
    let entry = plugins
        .entry(plugin_id.to_owned())
        .or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    if let Some(map) = entry.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

fn ensure_object<'a>(config: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut node = config;
    for key in path {
        if !node.is_object() {
            *node = json!({});
        }
        node = node
            .as_object_mut()
            .expect("just made an object")
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    if !node.is_object() {
        *node = json!({});
    }
    node.as_object_mut().expect("just made an object")
}

/// Secret plugin settings: `(plugin id, lower-cased key)` for every manifest setting marked `secret`.
pub type SecretSettings = Vec<(String, String)>;

/// The session-mode view: secrets replaced by [`MASK`] (empty values stay empty).
pub fn sanitized(config: &Value, plugin_secrets: &SecretSettings) -> Value {
    let mut out = config.clone();
    for path in SECRET_PATHS {
        if let Some(v) = pointer_mut(&mut out, path)
            && v.as_str().is_some_and(|s| !s.is_empty())
        {
            *v = json!(MASK);
        }
    }
    for (plugin, key) in plugin_secrets {
        if let Some(v) = pointer_mut(&mut out, &["PluginSettings", "Plugins", plugin, key])
            && !v.is_null()
            && v.as_str() != Some("")
        {
            *v = json!(MASK);
        }
    }
    out
}

/// Puts back the current secret wherever a session-mode patch sent the mask unchanged
/// (MM `config/utils.go` `desanitize`).
pub fn desanitize(patch: &mut Value, current: &Value, plugin_secrets: &SecretSettings) {
    let mut paths: Vec<Vec<String>> = SECRET_PATHS
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect();
    for (plugin, key) in plugin_secrets {
        paths.push(vec![
            "PluginSettings".into(),
            "Plugins".into(),
            plugin.clone(),
            key.clone(),
        ]);
    }
    for path in paths {
        let refs: Vec<&str> = path.iter().map(String::as_str).collect();
        let Some(slot) = pointer_mut(patch, &refs) else {
            continue;
        };
        if slot.as_str() == Some(MASK) {
            let old = refs
                .iter()
                .try_fold(current, |n, k| n.get(*k))
                .cloned()
                .unwrap_or(Value::Null);
            *slot = old;
        }
    }
}

fn pointer_mut<'a>(value: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, key| node.get_mut(*key))
}

/// The validity rules (`Config.IsValid`) a patch from cityd could break.
pub fn validate(config: &Value) -> ApiResult<()> {
    let site_url = get_str(config, "ServiceSettings.SiteURL");
    let site_url_ok =
        site_url.is_empty() || site_url.starts_with("http://") || site_url.starts_with("https://");
    if !site_url_ok {
        return Err(AppError::bad_request(
            "model.config.is_valid.site_url.app_error",
            "Site URL must be a valid URL and start with http:// or https://.",
        ));
    }
    let security = get_str(config, "ServiceSettings.ConnectionSecurity");
    if !security.is_empty() && security != "TLS" {
        return Err(AppError::bad_request(
            "model.config.is_valid.webserver_security.app_error",
            "Invalid value for webserver connection security.",
        ));
    }
    for (path, id) in [
        (
            "SqlSettings.AtRestEncryptKey",
            "model.config.is_valid.encrypt_sql.app_error",
        ),
        (
            "FileSettings.PublicLinkSalt",
            "model.config.is_valid.file_salt.app_error",
        ),
    ] {
        let value = get_str(config, path);
        if !value.is_empty() && value.len() < 32 {
            return Err(AppError::bad_request(
                id,
                format!("Invalid {path}. Must be 32 chars or more."),
            ));
        }
    }
    if get_i64(config, "TeamSettings.MaxUsersPerTeam") <= 0 {
        return Err(AppError::bad_request(
            "model.config.is_valid.max_users.app_error",
            "Invalid maximum users per team for team settings. Must be a positive number.",
        ));
    }
    for map in MAP_PATHS {
        if get(config, map).is_some_and(|v| !v.is_object()) {
            return Err(AppError::invalid_body_param("config"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_fields_merge_but_maps_replace() {
        let base =
            json!({"PluginSettings": {"Enable": true, "Plugins": {"a": {"x": 1}, "b": {"y": 2}}}});
        let patch = json!({"PluginSettings": {"Plugins": {"a": {"z": 3}}}});
        let merged = merge(&base, &patch);
        assert_eq!(merged["PluginSettings"]["Enable"], json!(true));
        assert_eq!(merged["PluginSettings"]["Plugins"], json!({"a": {"z": 3}}));
    }

    #[test]
    fn empty_plugins_map_and_nulls_are_ignored() {
        let base = json!({"PluginSettings": {"Plugins": {"a": {"x": 1}}, "EnableUploads": true}});
        let patch = json!({"PluginSettings": {"Plugins": {}, "EnableUploads": null}});
        assert_eq!(merge(&base, &patch), base);
    }

    #[test]
    fn empty_plugin_states_map_replaces() {
        let base = json!({"PluginSettings": {"PluginStates": {"a": {"Enable": true}}}});
        let patch = json!({"PluginSettings": {"PluginStates": {}}});
        assert_eq!(
            merge(&base, &patch)["PluginSettings"]["PluginStates"],
            json!({})
        );
    }

    #[test]
    fn sanitize_masks_and_desanitize_restores() {
        let config = default_config();
        let secrets = vec![];
        let shown = sanitized(&config, &secrets);
        assert_eq!(shown["SqlSettings"]["DataSource"], json!(MASK));
        let mut patch = json!({"SqlSettings": {"DataSource": MASK}});
        desanitize(&mut patch, &config, &secrets);
        assert_eq!(
            patch["SqlSettings"]["DataSource"],
            config["SqlSettings"]["DataSource"]
        );
    }

    #[test]
    fn short_salt_and_bad_site_url_are_invalid() {
        let mut c = default_config();
        c["FileSettings"]["PublicLinkSalt"] = json!("short");
        assert_eq!(
            validate(&c).unwrap_err().id,
            "model.config.is_valid.file_salt.app_error"
        );
        let mut c = default_config();
        c["ServiceSettings"]["SiteURL"] = json!("chat.example");
        assert_eq!(
            validate(&c).unwrap_err().id,
            "model.config.is_valid.site_url.app_error"
        );
        assert!(validate(&default_config()).is_ok());
    }
}
