//! Mattermost's env file (`docker run --env-file` dialect): every setting the blog sets, with its
//! mistakes fixed: no quotes, Calls TURN through the static auth secret (never a static credential),
//! no PluginStates pin, exact CORS origins, outgoing TLS verified, secrets from the vault.

use crate::envfile::{self, EnvFileError};
use crate::render::{Inputs, container};
use crate::secrets::Secret;

/// The vault values the env file needs.
pub struct MattermostSecrets<'a> {
    pub db_password: &'a Secret,
    pub at_rest_encrypt_key: &'a Secret,
    pub public_link_salt: &'a Secret,
    pub turn_static_auth_secret: &'a Secret,
}

/// The PostgreSQL DSN Mattermost uses. The password is letters and digits (vault shape), so it
/// needs no URL escaping.
pub fn database_dsn(inputs: &Inputs, password: &Secret) -> String {
    let db = &inputs.city.database;
    let tls = if db.uses_tls() {
        format!("sslmode=verify-full&sslrootcert={}", container::CA_FILE)
    } else {
        "sslmode=disable".to_string()
    };
    format!(
        "postgres://{}:{}@{}:{}/{}?{tls}&connect_timeout=10",
        db.user,
        password.expose(),
        db.host,
        db.port,
        db.name
    )
}

/// ICE servers for Calls: TURN over UDP and TCP on every TURN endpoint of the city (its
/// `turn.servers`, else this host's coturn on every LAN address), deliberately WITHOUT
/// username/credential so Calls mints time-limited credentials from the static auth secret.
pub fn ice_servers_json(inputs: &Inputs) -> String {
    let urls: Vec<String> = inputs
        .city
        .turn
        .endpoints(inputs.lan)
        .iter()
        .flat_map(|endpoint| {
            [
                format!("turn:{endpoint}?transport=udp"),
                format!("turn:{endpoint}?transport=tcp"),
            ]
        })
        .collect();
    serde_json::json!([{ "urls": urls }]).to_string()
}

/// `AllowedUntrustedInternalConnections`: only outgoing requests care (plugins reaching Jenkins and
/// GitLab on the LAN). IPs must be CIDR tokens; hostnames match exactly.
fn allowed_untrusted(inputs: &Inputs) -> String {
    let mut tokens: Vec<String> = inputs
        .lan
        .iter()
        .map(|ip| match ip {
            std::net::IpAddr::V4(v4) => format!("{v4}/32"),
            std::net::IpAddr::V6(v6) => format!("{v6}/128"),
        })
        .collect();
    for service in ["jenkins", "gitlab", "sonarqube"] {
        tokens.push(format!("{service}.{}", inputs.city.domain));
    }
    tokens.join(" ")
}

/// Renders the env file. Fails only if a value cannot be carried by an env file.
pub fn render(inputs: &Inputs, secrets: &MattermostSecrets) -> Result<String, EnvFileError> {
    let city = inputs.city;
    let calls_port = city.mattermost.calls_port.to_string();
    let socket = format!(
        "{}/{}",
        city.mattermost.local_socket_dir.trim_end_matches('/'),
        container::LOCAL_SOCKET_NAME
    );
    let ice_host = inputs
        .lan
        .iter()
        .find(|ip| ip.is_ipv4())
        .or(inputs.lan.first())
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let listen = format!(":{}", city.mattermost.port);
    let metrics_listen = format!(":{}", container::METRICS_PORT);
    let dsn = database_dsn(inputs, secrets.db_password);
    let cors = city.cors_origins(inputs.lan).join(" ");
    let ice = ice_servers_json(inputs);
    let ttl = city.turn.credential_ttl_minutes.to_string();
    let untrusted = allowed_untrusted(inputs);
    let site_url = city.site_url();

    let mut entries: Vec<(&str, &str)> = vec![
        ("MM_SQLSETTINGS_DRIVERNAME", "postgres"),
        ("MM_SQLSETTINGS_DATASOURCE", &dsn),
        (
            "MM_SQLSETTINGS_ATRESTENCRYPTKEY",
            secrets.at_rest_encrypt_key.expose(),
        ),
        (
            "MM_FILESETTINGS_PUBLICLINKSALT",
            secrets.public_link_salt.expose(),
        ),
        ("MM_SERVICESETTINGS_SITEURL", &site_url),
        ("MM_SERVICESETTINGS_LISTENADDRESS", &listen),
        ("MM_SERVICESETTINGS_CONNECTIONSECURITY", "TLS"),
        ("MM_SERVICESETTINGS_TLSCERTFILE", container::TLS_CERT_FILE),
        ("MM_SERVICESETTINGS_TLSKEYFILE", container::TLS_KEY_FILE),
        ("MM_SERVICESETTINGS_ENABLELOCALMODE", "true"),
        ("MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION", &socket),
        ("MM_SERVICESETTINGS_ALLOWCORSFROM", &cors),
        (
            "MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS",
            &untrusted,
        ),
        (
            "MM_SERVICESETTINGS_ENABLEINSECUREOUTGOINGCONNECTIONS",
            "false",
        ),
        ("MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION", "true"),
        ("MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS", "true"),
        ("MM_SERVICESETTINGS_ENABLEPOSTUSERNAMEOVERRIDE", "true"),
        ("MM_SERVICESETTINGS_ENABLEPOSTICONOVERRIDE", "true"),
        ("MM_SERVICESETTINGS_POSTPRIORITY", "true"),
        ("MM_SERVICESETTINGS_ENABLEDEVELOPER", "false"),
        ("MM_TEAMSETTINGS_MAXUSERSPERTEAM", "50"),
        ("MM_METRICSSETTINGS_ENABLE", "true"),
        ("MM_METRICSSETTINGS_LISTENADDRESS", &metrics_listen),
        ("MM_PLUGINSETTINGS_ENABLE", "true"),
        ("MM_PLUGINSETTINGS_REQUIREPLUGINSIGNATURE", "false"),
        ("MM_PLUGINSETTINGS_AUTOMATICPREPACKAGEDPLUGINS", "true"),
        ("MM_CALLS_UDP_SERVER_PORT", &calls_port),
        ("MM_CALLS_TCP_SERVER_PORT", &calls_port),
        ("MM_CALLS_ICE_HOST_OVERRIDE", &ice_host),
        ("MM_CALLS_ICE_SERVERS_CONFIGS", &ice),
        (
            "MM_CALLS_TURN_STATIC_AUTH_SECRET",
            secrets.turn_static_auth_secret.expose(),
        ),
        ("MM_CALLS_TURN_CREDENTIALS_EXPIRATION_MINUTES", &ttl),
        ("MM_CALLS_SERVER_SIDE_TURN", "false"),
        ("MM_CALLS_DEFAULT_ENABLED", "true"),
    ];
    if let Some(rtcd) = &city.mattermost.rtcd_url {
        entries.push(("MM_CALLS_RTCD_SERVICE_URL", rtcd));
    }
    let header = format!(
        "Rendered by cityd from {}. Do not edit: `cityd render mattermost-env` rewrites it.\n\
         docker --env-file dialect: every value is literal, so nothing is quoted.\n\
         Deliberately absent: PluginStates and Plugins (env values pin them and turn API changes into\n\
         no-ops), EnableUploads (cityd opens it only around a plugin upload), EnableUserAccessTokens\n\
         (bot tokens work without it).",
        inputs.origin
    );
    envfile::render(&header, entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DefaultCity;

    fn secrets() -> [Secret; 4] {
        [
            Secret::new("D".repeat(32)),
            Secret::new("A".repeat(32)),
            Secret::new("S".repeat(32)),
            Secret::new("t".repeat(64)),
        ]
    }

    #[test]
    fn ice_servers_carry_no_credential() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let ice: serde_json::Value = serde_json::from_str(&ice_servers_json(&inputs)).unwrap();
        assert_eq!(
            ice,
            serde_json::json!([{"urls": ["turn:192.168.1.20:3478?transport=udp", "turn:192.168.1.20:3478?transport=tcp"]}])
        );
    }

    #[test]
    fn env_file_has_no_quotes_no_pins_and_exact_cors() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let [db, at, salt, turn] = secrets();
        let text = render(
            &inputs,
            &MattermostSecrets {
                db_password: &db,
                at_rest_encrypt_key: &at,
                public_link_salt: &salt,
                turn_static_auth_secret: &turn,
            },
        )
        .unwrap();
        let entries = envfile::parse_docker(&text).unwrap();
        for e in &entries {
            assert!(
                !e.value.starts_with('"') && !e.value.starts_with('\''),
                "{} is quoted",
                e.key
            );
        }
        let get = |k: &str| {
            entries
                .iter()
                .find(|e| e.key == k)
                .map(|e| e.value.as_str())
        };
        assert_eq!(
            get("MM_SERVICESETTINGS_ALLOWCORSFROM"),
            Some("https://mattermost.cicd.local:8065 https://192.168.1.20:8065")
        );
        assert_eq!(get("MM_PLUGINSETTINGS_PLUGINSTATES"), None);
        assert_eq!(
            get("MM_SERVICESETTINGS_ENABLEINSECUREOUTGOINGCONNECTIONS"),
            Some("false")
        );
        assert_eq!(get("MM_CALLS_UDP_SERVER_PORT"), Some("8444"));
        assert_eq!(get("MM_CALLS_TURN_STATIC_AUTH_SECRET"), Some(turn.expose()));
    }
}
