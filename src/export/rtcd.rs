//! rtcd's settings from the city, as `RTCD_*` overrides (every key one rtcd documents in its
//! `docs/env_config.md`): one list that both the standalone env file (`cityd export rtcd`) and the
//! Kubernetes Deployment (`export k8s`) render, and the Calls setting that points Mattermost at it.

use std::path::Path;

use super::{ExportFile, Exported};
use crate::envfile;
use crate::render::{Inputs, mattermost_env};
use crate::secrets::Secret;
use crate::secrets::Vault;

/// rtcd's API port (its documented default `:8045`).
pub const API_PORT: u16 = 8045;

/// Where a value comes from; the renderers decide how to carry the non-literal ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Literal(String),
    /// The TURN static auth secret (the vault's; a Secret reference in Kubernetes).
    TurnSecret,
    /// The address clients reach this rtcd at: the host's LAN address standalone, the node's IP
    /// (`status.hostIP`) on Kubernetes with the host network.
    HostAddress,
}

/// The `RTCD_*` settings for a city: the API on `API_PORT` with self-registration (rtcd sits on
/// the private network, next to Mattermost; the admin client stays off), media on `ice_port`
/// over UDP and TCP, the city's TURN servers with the shared secret, console logging only.
pub fn settings(inputs: &Inputs, ice_port: u16) -> Vec<(&'static str, Value)> {
    let lit = |s: String| Value::Literal(s);
    vec![
        ("RTCD_API_HTTP_LISTENADDRESS", lit(format!(":{API_PORT}"))),
        (
            "RTCD_API_SECURITY_ALLOWSELFREGISTRATION",
            lit("true".into()),
        ),
        ("RTCD_API_SECURITY_ENABLEADMIN", lit("false".into())),
        ("RTCD_RTC_ICEPORTUDP", lit(ice_port.to_string())),
        ("RTCD_RTC_ICEPORTTCP", lit(ice_port.to_string())),
        ("RTCD_RTC_ICEHOSTOVERRIDE", Value::HostAddress),
        // rtcd decodes this as the same JSON array Calls takes (`ICEServers.Decode`).
        (
            "RTCD_RTC_ICESERVERS",
            lit(mattermost_env::ice_servers_json(inputs)),
        ),
        ("RTCD_RTC_TURNCONFIG_STATICAUTHSECRET", Value::TurnSecret),
        (
            "RTCD_RTC_TURNCONFIG_CREDENTIALSEXPIRATIONMINUTES",
            lit(inputs.city.turn.credential_ttl_minutes.to_string()),
        ),
        ("RTCD_LOGGER_ENABLECONSOLE", lit("true".into())),
        ("RTCD_LOGGER_ENABLEFILE", lit("false".into())),
        ("RTCD_LOGGER_ENABLECOLOR", lit("false".into())),
    ]
}

/// The first IPv4 LAN address (else the first): what a standalone rtcd advertises.
pub fn host_address(inputs: &Inputs) -> Option<String> {
    inputs
        .lan
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(inputs.lan.first())
        .map(|ip| ip.to_string())
}

/// The URL Mattermost reaches a standalone rtcd at: the city's `mattermost.rtcd_url`, else the
/// first LAN address on the API port.
pub fn service_url(inputs: &Inputs) -> String {
    match &inputs.city.mattermost.rtcd_url {
        Some(url) => url.clone(),
        None => {
            let host = inputs
                .lan
                .iter()
                .find(|ip| ip.is_ipv4())
                .or(inputs.lan.first())
                .map_or_else(|| "127.0.0.1".to_string(), crate::render::url_host);
            format!("http://{host}:{API_PORT}")
        }
    }
}

/// rtcd's env file (`docker run --env-file` dialect) for a standalone rtcd on this host.
pub fn env_file(
    inputs: &Inputs,
    secret: &Secret,
    ice_port: u16,
) -> Result<String, envfile::EnvFileError> {
    let host = host_address(inputs).unwrap_or_default();
    let values: Vec<(&str, String)> = settings(inputs, ice_port)
        .into_iter()
        .map(|(k, v)| {
            let value = match v {
                Value::Literal(s) => s,
                Value::TurnSecret => secret.expose().to_string(),
                Value::HostAddress => host.clone(),
            };
            (k, value)
        })
        .collect();
    let header = format!(
        "rtcd for the city of {}: written by `cityd export rtcd`; holds the TURN secret (0600).\n\
         Run: docker run --env-file rtcd.env --network host mattermost/rtcd:<version>",
        inputs.origin
    );
    envfile::render(&header, values.iter().map(|(k, v)| (*k, v.as_str())))
}

/// The Calls settings that point Mattermost at the rtcd (env-file dialect, no secrets).
pub fn calls_env_file(inputs: &Inputs) -> Result<String, envfile::EnvFileError> {
    let url = service_url(inputs);
    let header = "Calls settings pointing Mattermost at rtcd (Enterprise licence needed), written by\n\
         `cityd export rtcd`. The city's own form: `rtcd_url` under [mattermost] in the city\n\
         description, which `cityd render mattermost-env` and `cityd up` carry.";
    envfile::render(header, [("MM_CALLS_RTCD_SERVICE_URL", url.as_str())])
}

/// `cityd export rtcd`: `rtcd.env` (holds the TURN secret, 0600) and `mattermost-calls.env`.
pub fn export(
    inputs: &Inputs,
    vault: &Vault,
    ice_port: u16,
    dir: &Path,
    dry_run: bool,
) -> anyhow::Result<Exported> {
    let secret = crate::turn::secret::from_vault(vault)?;
    let files = [
        ExportFile::secret("rtcd.env", env_file(inputs, &secret, ice_port)?),
        ExportFile::plain("mattermost-calls.env", calls_env_file(inputs)?),
    ];
    Exported::write(dir, &files, dry_run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DefaultCity;

    #[test]
    fn the_env_file_carries_the_secret_and_the_lan_address() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let secret = Secret::new("t".repeat(64));
        let text = env_file(&inputs, &secret, 8445).unwrap();
        let entries = envfile::parse_docker(&text).unwrap();
        let get = |k: &str| {
            entries
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        assert_eq!(get("RTCD_RTC_ICEHOSTOVERRIDE"), Some("192.168.1.20"));
        assert_eq!(get("RTCD_RTC_ICEPORTUDP"), Some("8445"));
        assert_eq!(
            get("RTCD_RTC_TURNCONFIG_STATICAUTHSECRET"),
            Some(secret.expose())
        );
        assert_eq!(
            get("RTCD_RTC_ICESERVERS"),
            Some(
                r#"[{"urls":["turn:192.168.1.20:3478?transport=udp","turn:192.168.1.20:3478?transport=tcp"]}]"#
            )
        );
        assert!(entries.iter().all(|e| e.key.starts_with("RTCD_")));
    }

    #[test]
    fn the_calls_setting_names_the_city_url_or_the_lan_address() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        assert_eq!(service_url(&inputs), "http://192.168.1.20:8045");
        let text = calls_env_file(&inputs).unwrap();
        assert!(text.contains("\nMM_CALLS_RTCD_SERVICE_URL=http://192.168.1.20:8045\n"));
    }
}
