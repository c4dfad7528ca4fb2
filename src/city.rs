//! The city description: serde types for `city.toml`, the embedded default, derived values
//! (hostnames, SiteURL, realm, CORS origins) and validation whose errors name the field, value and rule.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The default city, compiled into the binary so `cityd up` needs no file.
pub const DEFAULT_CITY_TOML: &str = include_str!("default-city.toml");

#[derive(Debug, Error)]
pub enum CityError {
    #[error("cannot read city description {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("city description {origin} is not valid TOML for cityd: {message}")]
    Parse { origin: String, message: String },
    #[error("city description {origin} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// One validation failure: which field, what value, which rule, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub value: String,
    pub rule: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.rule)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct City {
    /// DNS domain of the lab, e.g. `cicd.local`.
    pub domain: String,
    pub lan: Lan,
    pub mattermost: Mattermost,
    pub turn: Turn,
    pub team: Team,
    pub channels: Vec<Channel>,
    #[serde(default)]
    pub plugins: Plugins,
    #[serde(default)]
    pub database: Database,
    /// How cityd reaches Jenkins, GitLab and SonarQube for `cityd connect` (tokens come from the vault).
    #[serde(default)]
    pub integrations: Integrations,
    #[serde(default)]
    pub relay: Relay,
    /// The human system admin that `cityd wire` adds to the team and channels.
    #[serde(default)]
    pub admin: Admin,
    /// Bot accounts `cityd wire` creates (user, converted to a bot, with a token in the vault).
    #[serde(default)]
    pub bots: Vec<BotAccount>,
    /// Incoming webhooks `cityd wire` creates, one per channel, owned by a bot and locked to the channel.
    #[serde(default)]
    pub webhooks: Vec<IncomingHook>,
    #[serde(default)]
    pub docker: DockerHost,
}

/// How `cityd up` names and pins what it runs on a Docker host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerHost {
    /// Prepended to every container, network and volume name. Empty keeps the blog's names
    /// (`mattermost`, `coturn`, `cicd-net`, `mattermost-data`, ...); tests use it to run cities side by side.
    pub prefix: String,
    /// The network Mattermost joins (and PostgreSQL, when it runs in a container).
    pub network: String,
    /// Pinned coturn image. cityd's coturn configuration targets coturn before 4.9.0.
    pub coturn_image: String,
}

impl Default for DockerHost {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            network: "cicd-net".into(),
            coturn_image: "coturn/coturn:4.6.3".into(),
        }
    }
}

/// Where Mattermost's PostgreSQL tenant lives, as seen from the Mattermost container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    /// Connect with TLS and verify the server against the city CA (`sslmode=verify-full`).
    pub tls: bool,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            host: "postgres".into(),
            port: 5432,
            name: "mattermost".into(),
            user: "mattermost".into(),
            tls: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// `auto`, interface names, or literal addresses. Several are allowed.
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mattermost {
    /// Pinned image reference, `repository:tag` (never a moving tag like `release-11`).
    pub image: String,
    /// Hostname; defaults to `mattermost.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    /// Prometheus listener; must stay on loopback.
    pub metrics: SocketAddr,
    /// Calls RTC port, TCP and UDP (the blog moved it off 8443, which Artifactory holds).
    pub calls_port: u16,
    /// Extra CORS origins. Empty means exactly the city's own origins; `["*"]` must be asked for explicitly.
    #[serde(default)]
    pub allow_cors_from: Vec<String>,
    /// Directory inside the container that holds the local-mode socket (bind-mounted from the host).
    pub local_socket_dir: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    pub port: u16,
    pub relay_min: u16,
    pub relay_max: u16,
    /// Realm; defaults to the Mattermost hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Lifetime of the credentials Calls hands to clients, in minutes.
    pub credential_ttl_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub purpose: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

/// Ports the city holds besides Calls: the Calls port must not collide with any of them.
/// 8443 is listed because the blog's lab runs Artifactory there.
const RESERVED_PORTS: &[(u16, &str)] = &[(8443, "Artifactory in the blog's lab")];

impl City {
    /// The embedded default city.
    pub fn default_city() -> Self {
        Self::from_toml(DEFAULT_CITY_TOML, "the embedded default city")
            .expect("the embedded default city is valid")
    }

    /// Reads and validates a city description file.
    pub fn load(path: &Path) -> Result<Self, CityError> {
        let text = std::fs::read_to_string(path).map_err(|source| CityError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Reads the file if given, the embedded default otherwise.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, CityError> {
        match path {
            Some(path) => Self::load(path),
            None => Ok(Self::default_city()),
        }
    }

    /// Parses TOML (or JSON, which the NixOS module writes) and validates it.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, CityError> {
        let city: City = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| CityError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?
        } else {
            toml::from_str(text).map_err(|e| CityError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?
        };
        let problems = city.problems();
        if problems.is_empty() {
            Ok(city)
        } else {
            Err(CityError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    pub fn mattermost_host(&self) -> String {
        self.mattermost
            .host
            .clone()
            .unwrap_or_else(|| format!("mattermost.{}", self.domain))
    }

    pub fn site_url(&self) -> String {
        format!(
            "https://{}:{}",
            self.mattermost_host(),
            self.mattermost.port
        )
    }

    pub fn turn_realm(&self) -> String {
        self.turn
            .realm
            .clone()
            .unwrap_or_else(|| self.mattermost_host())
    }

    /// Exact CORS origins: the SiteURL, one origin per LAN address, then whatever the city adds.
    pub fn cors_origins(&self, lan: &[IpAddr]) -> Vec<String> {
        let mut origins = vec![self.site_url()];
        for ip in lan {
            let host = match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            };
            origins.push(format!("https://{host}:{}", self.mattermost.port));
        }
        for extra in &self.mattermost.allow_cors_from {
            if !origins.contains(extra) {
                origins.push(extra.clone());
            }
        }
        origins
    }

    /// Every rule the description must satisfy; empty when valid.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, value: String, rule: &str| {
            out.push(Problem {
                field: field.to_string(),
                value,
                rule: rule.to_string(),
            })
        };

        if !is_dns_name(&self.domain) {
            bad(
                "domain",
                self.domain.clone(),
                "must be a DNS name of letters, digits, '-' and '.' (e.g. cicd.local)",
            );
        }
        if let Some(host) = &self.mattermost.host {
            if !is_dns_name(host) {
                bad(
                    "mattermost.host",
                    host.clone(),
                    "must be a DNS name (e.g. mattermost.cicd.local)",
                );
            }
        }
        if self.lan.addresses.is_empty() {
            bad(
                "lan.addresses",
                "[]".into(),
                "needs at least one entry: \"auto\", an interface name or an IP address",
            );
        }
        for (i, a) in self.lan.addresses.iter().enumerate() {
            if a.trim().is_empty() || a.contains(char::is_whitespace) {
                bad(
                    &format!("lan.addresses[{i}]"),
                    format!("{a:?}"),
                    "must be \"auto\", an interface name or an IP address",
                );
            }
        }

        check_image(&self.mattermost.image, &mut bad);

        for (field, port) in [
            ("mattermost.port", self.mattermost.port),
            ("mattermost.calls_port", self.mattermost.calls_port),
            ("turn.port", self.turn.port),
        ] {
            if port == 0 {
                bad(field, "0".into(), "must be a port between 1 and 65535");
            }
        }
        // Calls refuses ports outside 80-49151 at config load.
        if !(80..=49151).contains(&self.mattermost.calls_port) {
            bad(
                "mattermost.calls_port",
                self.mattermost.calls_port.to_string(),
                "the Calls plugin accepts only ports 80-49151",
            );
        }
        if !self.mattermost.metrics.ip().is_loopback() {
            bad(
                "mattermost.metrics",
                self.mattermost.metrics.to_string(),
                "must be a loopback address (127.0.0.1:8067): metrics are unauthenticated and must not reach the LAN",
            );
        }

        let relay = self.turn.relay_min..=self.turn.relay_max;
        if self.turn.relay_min > self.turn.relay_max {
            bad(
                "turn.relay_min",
                format!("{}-{}", self.turn.relay_min, self.turn.relay_max),
                "the relay range is reversed: relay_min must not exceed relay_max",
            );
        } else if self.turn.relay_min < 1024 {
            bad(
                "turn.relay_min",
                self.turn.relay_min.to_string(),
                "relay ports must be 1024 or above (RFC 8656 §7.2)",
            );
        }
        let mut used: Vec<(&str, u16)> = vec![
            ("mattermost.port", self.mattermost.port),
            ("mattermost.metrics", self.mattermost.metrics.port()),
            ("turn.port", self.turn.port),
        ];
        for (name, port) in &used {
            if self.turn.relay_min <= self.turn.relay_max && relay.contains(port) {
                bad(
                    "turn.relay_min",
                    format!("{}-{}", self.turn.relay_min, self.turn.relay_max),
                    &format!(
                        "the relay range overlaps {name} ({port}); move the range or the port"
                    ),
                );
            }
        }
        for (name, port) in &used {
            if *port == self.mattermost.calls_port {
                bad(
                    "mattermost.calls_port",
                    port.to_string(),
                    &format!("collides with {name}; every port of the city must be distinct"),
                );
            }
        }
        for (port, holder) in RESERVED_PORTS {
            if *port == self.mattermost.calls_port {
                bad(
                    "mattermost.calls_port",
                    port.to_string(),
                    &format!("is held by {holder}; use another port such as 8444"),
                );
            }
        }
        if self.turn.relay_min <= self.turn.relay_max && relay.contains(&self.mattermost.calls_port)
        {
            bad(
                "mattermost.calls_port",
                self.mattermost.calls_port.to_string(),
                "lies inside the TURN relay range; move it below turn.relay_min",
            );
        }
        used.push(("mattermost.calls_port", self.mattermost.calls_port));
        let mut seen = BTreeSet::new();
        for (name, port) in &used {
            if *name != "mattermost.calls_port" && !seen.insert(*port) {
                bad(
                    name,
                    port.to_string(),
                    "collides with another port of the city; every port must be distinct",
                );
            }
        }
        if self.turn.credential_ttl_minutes == 0 || self.turn.credential_ttl_minutes >= 10080 {
            bad(
                "turn.credential_ttl_minutes",
                self.turn.credential_ttl_minutes.to_string(),
                "must be between 1 and 10079 (Calls caps credentials below one week)",
            );
        }
        if let Some(realm) = &self.turn.realm {
            if realm.is_empty() || realm.contains(char::is_whitespace) {
                bad(
                    "turn.realm",
                    format!("{realm:?}"),
                    "must be a non-empty name without spaces",
                );
            }
        }

        if let Some(rule) = team_name_rule(&self.team.name) {
            bad("team.name", self.team.name.clone(), rule);
        }
        check_length(
            &mut bad,
            "team.display_name",
            &self.team.display_name,
            64,
            None,
        );
        let mut names = BTreeSet::new();
        for (i, ch) in self.channels.iter().enumerate() {
            if let Some(rule) = channel_name_rule(&ch.name) {
                bad(&format!("channels[{i}].name"), ch.name.clone(), rule);
            }
            check_length(
                &mut bad,
                &format!("channels[{i}].display_name"),
                &ch.display_name,
                64,
                None,
            );
            check_at_most(
                &mut bad,
                &format!("channels[{i}].purpose"),
                &ch.purpose,
                250,
            );
            if !names.insert(ch.name.as_str()) {
                bad(
                    &format!("channels[{i}].name"),
                    ch.name.clone(),
                    "appears twice; channel names must be unique",
                );
            }
        }

        for origin in &self.mattermost.allow_cors_from {
            if origin != "*" && !(origin.starts_with("https://") || origin.starts_with("http://")) {
                bad(
                    "mattermost.allow_cors_from",
                    origin.clone(),
                    "must be an origin like https://host:port, or \"*\"",
                );
            }
        }
        if !self.mattermost.local_socket_dir.starts_with('/') {
            bad(
                "mattermost.local_socket_dir",
                self.mattermost.local_socket_dir.clone(),
                "must be an absolute path inside the container",
            );
        }
        if !is_dns_name(&self.database.host) && self.database.host.parse::<IpAddr>().is_err() {
            bad(
                "database.host",
                self.database.host.clone(),
                "must be a hostname or an IP address",
            );
        }
        for (field, value) in [
            ("database.name", &self.database.name),
            ("database.user", &self.database.user),
        ] {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                bad(
                    field,
                    value.clone(),
                    "must be a PostgreSQL identifier of a-z, 0-9 and '_'",
                );
            }
        }
        if let Some(j) = &self.plugins.jenkins {
            if !j.sri.starts_with("sha256-") {
                bad(
                    "plugins.jenkins.sri",
                    j.sri.clone(),
                    "must be an SRI hash of the form sha256-<base64>",
                );
            }
        }
        let docker_name = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        };
        if !docker_name(&self.docker.prefix) {
            bad(
                "docker.prefix",
                self.docker.prefix.clone(),
                "may hold only a-z, 0-9, '-', '_' and '.' (it starts Docker container names)",
            );
        }
        if self.docker.network.is_empty() || !docker_name(&self.docker.network) {
            bad(
                "docker.network",
                self.docker.network.clone(),
                "must be a Docker network name of a-z, 0-9, '-', '_' and '.'",
            );
        }
        match self.docker.coturn_image.rsplit_once(':') {
            Some((repo, tag)) if !repo.is_empty() && !tag.contains('/') && tag != "latest" => {}
            _ if self.docker.coturn_image.contains("@sha256:") => {}
            _ => bad(
                "docker.coturn_image",
                self.docker.coturn_image.clone(),
                "must carry a pinned version tag, e.g. coturn/coturn:4.6.3",
            ),
        }
        out.extend(self.integrations.problems(&self.team.name, &self.channels));
        out.extend(self.relay.problems());
        out.extend(self.wiring_problems());
        out
    }
}

/// The SonarQube -> Mattermost alert relay (`cityd relay serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Relay {
    /// Where SonarQube's webhook reaches the relay (`POST /sonarqube`).
    pub listen: SocketAddr,
    /// Prometheus listener; must stay on loopback.
    pub metrics: SocketAddr,
    /// Also post passed quality gates (to `#builds`); failures always go to `#alerts`.
    pub post_passes: bool,
    /// Public SonarQube root for the links in messages, e.g. `https://sonarqube.cicd.local`.
    /// Unset: the links SonarQube put in the payload (its `sonar.core.serverBaseURL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

impl Default for Relay {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            metrics: SocketAddr::from(([127, 0, 0, 1], 9181)),
            post_passes: false,
            dashboard_url: None,
        }
    }
}

impl Relay {
    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !self.metrics.ip().is_loopback() {
            out.push(Problem {
                field: "relay.metrics".into(),
                value: self.metrics.to_string(),
                rule: "must be a loopback address (127.0.0.1:9181): metrics are unauthenticated"
                    .into(),
            });
        }
        if self.listen == self.metrics {
            out.push(Problem {
                field: "relay.listen".into(),
                value: self.listen.to_string(),
                rule: "must differ from relay.metrics".into(),
            });
        }
        if let Some(url) = &self.dashboard_url {
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(char::is_whitespace);
            if !ok {
                out.push(Problem {
                    field: "relay.dashboard_url".into(),
                    value: url.clone(),
                    rule: "must be an http(s) URL such as https://sonarqube.cicd.local".into(),
                });
            }
        }
        out
    }
}

fn check_image(image: &str, bad: &mut impl FnMut(&str, String, &str)) {
    let (_, tag) = match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') && !repo.is_empty() => (repo, tag),
        _ => {
            if !image.contains("@sha256:") {
                bad(
                    "mattermost.image",
                    image.to_string(),
                    "must carry a pinned version tag, e.g. mattermost/mattermost-enterprise-edition:11.8.5",
                );
            }
            return;
        }
    };
    if tag == "latest" || tag.starts_with("release-") {
        bad(
            "mattermost.image",
            image.to_string(),
            "moving tags (latest, release-X) do not receive patch releases predictably; pin a version like 11.8.5",
        );
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Mattermost reserves these team-name prefixes and names (model/team.go).
const RESERVED_TEAM_NAMES: &[&str] = &[
    "admin",
    "api",
    "channel",
    "claim",
    "error",
    "files",
    "help",
    "landing",
    "login",
    "mfa",
    "oauth",
    "plug",
    "plugins",
    "post",
    "signup",
    "boards",
    "playbooks",
];

fn team_name_rule(name: &str) -> Option<&'static str> {
    let len = name.len();
    if !(2..=64).contains(&len) {
        return Some("Mattermost team names are 2-64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("Mattermost team names use only a-z, 0-9 and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Some("Mattermost team names start and end with a letter or digit");
    }
    if RESERVED_TEAM_NAMES.iter().any(|r| name.starts_with(r)) {
        return Some("Mattermost reserves this team name prefix (admin, api, login, plugins, ...)");
    }
    None
}

fn channel_name_rule(name: &str) -> Option<&'static str> {
    let len = name.len();
    if !(1..=64).contains(&len) {
        return Some("Mattermost channel names are 1-64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Some("Mattermost channel names use only a-z, 0-9, '-' and '_'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("Mattermost channel names start with a letter or digit");
    }
    if len > 1 && !name.ends_with(|c: char| c.is_ascii_alphanumeric()) && !name.ends_with("__") {
        return Some("Mattermost channel names end with a letter or digit");
    }
    if name.len() == 26 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some("a 26-character alphanumeric name looks like a Mattermost id and is rejected");
    }
    None
}

/// How cityd reaches the products it connects to Mattermost (`cityd connect jenkins|gitlab|sonarqube`).
/// Tokens are never written here: each names a file in the vault (`<state>/secrets/<name>`, mode 0600).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Integrations {
    pub jenkins: JenkinsIntegration,
    pub gitlab: GitlabIntegration,
    pub sonarqube: SonarqubeIntegration,
}

/// Jenkins: the env file and JCasC YAML cityd edits, and how it applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JenkinsIntegration {
    /// Jenkins' root URL: the API base and the `buildServerUrl` links point here.
    pub url: String,
    /// The user whose API token (vault file `token_secret`) reloads JCasC.
    pub user: String,
    /// Vault file holding that user's API token; absent = restart the container instead.
    pub token_secret: String,
    /// The `docker run --env-file` file of the Jenkins container (e.g. the blog's jenkins.env).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// The JCasC YAML Jenkins loads (e.g. ~/cicd_stack/jenkins/config/jenkins.yaml).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jcasc_file: Option<PathBuf>,
    /// The Jenkins container, restarted when no API token is in the vault.
    pub container: String,
    /// The channel build results go to; its webhook URL is the vault's `webhook-<channel>`.
    pub channel: String,
    /// Optional username the posts carry (the plugin's `user@channel` form). The part before `@`
    /// is a username, never a team: the team is fixed by the webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Icon URL of the posts; unset = `<url>/favicon.ico` (served by Jenkins itself, so it works air-gapped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}

impl Default for JenkinsIntegration {
    fn default() -> Self {
        Self {
            url: "https://jenkins.cicd.local:10400".into(),
            user: "admin".into(),
            token_secret: "jenkins-api-token".into(),
            env_file: None,
            jcasc_file: None,
            container: "jenkins-controller".into(),
            channel: "builds".into(),
            username: None,
            icon: None,
        }
    }
}

impl JenkinsIntegration {
    /// `buildServerUrl`: the plugin wants a trailing slash.
    pub fn build_server_url(&self) -> String {
        format!("{}/", self.url.trim_end_matches('/'))
    }
    /// The plugin's `room`: `channel`, or `username@channel`.
    pub fn room(&self) -> String {
        match &self.username {
            Some(user) => format!("{user}@{}", self.channel),
            None => self.channel.clone(),
        }
    }
    pub fn icon_url(&self) -> String {
        self.icon
            .clone()
            .unwrap_or_else(|| format!("{}/favicon.ico", self.url.trim_end_matches('/')))
    }
}

/// GitLab: the project whose Mattermost integration cityd sets, and the optional OAuth application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitlabIntegration {
    pub url: String,
    /// Full path of the project, e.g. `articles/http-client` (groups and subgroups separated by `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Vault file with a token (Maintainer of the project, scope `api`).
    pub token_secret: String,
    /// Vault file with an admin token; when present, cityd creates the OAuth application of the
    /// Mattermost GitLab plugin.
    pub admin_token_secret: String,
    /// The channel notifications go to; its webhook URL is the vault's `webhook-<channel>`.
    pub channel: String,
    /// Username override of the posts; unset = GitLab's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Events that notify: push, issues, confidential_issues, merge_requests, note,
    /// confidential_note, tag_push, pipeline, wiki_page. The others are switched off.
    pub events: Vec<String>,
    /// Branches that notify: all, default, protected, default_and_protected.
    pub branches: String,
    /// Notify about broken pipelines only.
    pub notify_only_broken_pipelines: bool,
    /// Name of the OAuth application cityd creates for the Mattermost GitLab plugin.
    pub oauth_application: String,
}

/// The chat-notification events GitLab's Mattermost integration takes (`<event>_events` flags).
pub const GITLAB_EVENTS: &[&str] = &[
    "push",
    "issues",
    "confidential_issues",
    "merge_requests",
    "note",
    "confidential_note",
    "tag_push",
    "pipeline",
    "wiki_page",
];

const GITLAB_BRANCHES: &[&str] = &["all", "default", "protected", "default_and_protected"];

impl Default for GitlabIntegration {
    fn default() -> Self {
        Self {
            url: "https://gitlab.cicd.local:10300".into(),
            project: None,
            token_secret: "gitlab-api-token".into(),
            admin_token_secret: "gitlab-admin-token".into(),
            channel: "code-reviews".into(),
            username: None,
            events: ["push", "merge_requests", "pipeline", "tag_push"]
                .map(String::from)
                .to_vec(),
            branches: "all".into(),
            notify_only_broken_pipelines: false,
            oauth_application: "Mattermost GitLab plugin (cityd)".into(),
        }
    }
}

/// SonarQube: the webhook that sends analysis results to the cityd relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SonarqubeIntegration {
    pub url: String,
    /// Vault file with a user token of a user with Administer permission.
    pub token_secret: String,
    /// Project key for a project-level webhook; unset = a global webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The webhook's name, how cityd finds it again.
    pub webhook_name: String,
    /// Where SonarQube reaches the relay; unset = `http://<relay.listen>/sonarqube`, with the first
    /// LAN address when relay.listen is a wildcard (0.0.0.0:9180 by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

impl Default for SonarqubeIntegration {
    fn default() -> Self {
        Self {
            url: "http://sonarqube.cicd.local:9000".into(),
            token_secret: "sonarqube-admin-token".into(),
            project: None,
            webhook_name: "cityd-relay".into(),
            relay_url: None,
        }
    }
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !s.contains(char::is_whitespace))
}

fn is_vault_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && !s.starts_with('.') && !s.contains(char::is_whitespace)
}

impl Integrations {
    fn problems(&self, team: &str, channels: &[Channel]) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, value: String, rule: &str| {
            out.push(Problem {
                field: field.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        let known_channel = |name: &str| channels.iter().any(|c| c.name == name);
        let (j, g, s) = (&self.jenkins, &self.gitlab, &self.sonarqube);
        for (field, url) in [
            ("integrations.jenkins.url", &j.url),
            ("integrations.gitlab.url", &g.url),
            ("integrations.sonarqube.url", &s.url),
        ] {
            if !is_http_url(url) {
                bad(
                    field,
                    url.clone(),
                    "must be an http(s) URL such as https://host:port",
                );
            }
        }
        for (field, name) in [
            ("integrations.jenkins.token_secret", &j.token_secret),
            ("integrations.gitlab.token_secret", &g.token_secret),
            (
                "integrations.gitlab.admin_token_secret",
                &g.admin_token_secret,
            ),
            ("integrations.sonarqube.token_secret", &s.token_secret),
        ] {
            if !is_vault_name(name) {
                bad(
                    field,
                    name.clone(),
                    "must be a file name in the vault (no '/', not starting with '.'), e.g. jenkins-api-token",
                );
            }
        }
        if j.user.is_empty() || j.user.contains(char::is_whitespace) {
            bad(
                "integrations.jenkins.user",
                format!("{:?}", j.user),
                "must be a Jenkins user id",
            );
        }
        for (field, path) in [
            ("integrations.jenkins.env_file", &j.env_file),
            ("integrations.jenkins.jcasc_file", &j.jcasc_file),
        ] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                bad(
                    field,
                    path.display().to_string(),
                    "must be an absolute path",
                );
            }
        }
        let docker_name = |n: &str| {
            n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if !docker_name(&j.container) {
            bad(
                "integrations.jenkins.container",
                j.container.clone(),
                "must be a Docker container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)",
            );
        }
        for (field, channel) in [
            ("integrations.jenkins.channel", &j.channel),
            ("integrations.gitlab.channel", &g.channel),
        ] {
            // A city that never wrote [integrations] keeps the defaults; it is not wrong for
            // lacking #builds, and `cityd connect` names the missing channel if it is ever used.
            if *self != Integrations::default() && !known_channel(channel) {
                bad(
                    field,
                    channel.clone(),
                    "must be the name of one of the city's [[channels]]",
                );
            }
        }
        if let Some(user) = &j.username {
            if user == team {
                bad(
                    "integrations.jenkins.username",
                    user.clone(),
                    "is the team's name, but the plugin's `x@channel` means username@channel (the team comes from the webhook); use a username such as jenkins, or leave it unset",
                );
            } else if user.is_empty() || user.contains(['@', ',', ';', ' ']) {
                bad(
                    "integrations.jenkins.username",
                    format!("{user:?}"),
                    "must be a plain username without '@', ',', ';' or spaces",
                );
            }
        }
        if let Some(icon) = &j.icon
            && !is_http_url(icon)
        {
            bad(
                "integrations.jenkins.icon",
                icon.clone(),
                "must be an http(s) URL",
            );
        }
        if let Some(project) = &g.project {
            let ok = project.contains('/')
                && !project.starts_with('/')
                && !project.ends_with('/')
                && !project.contains("//")
                && !project.contains(char::is_whitespace);
            if !ok {
                bad(
                    "integrations.gitlab.project",
                    project.clone(),
                    "must be the project's full path, namespace/project (e.g. articles/http-client)",
                );
            }
        }
        if g.events.is_empty() {
            bad(
                "integrations.gitlab.events",
                "[]".into(),
                "needs at least one event, e.g. [\"push\", \"merge_requests\", \"pipeline\", \"tag_push\"]",
            );
        }
        for (i, event) in g.events.iter().enumerate() {
            if !GITLAB_EVENTS.contains(&event.as_str()) {
                bad(
                    &format!("integrations.gitlab.events[{i}]"),
                    event.clone(),
                    &format!("must be one of {}", GITLAB_EVENTS.join(", ")),
                );
            }
        }
        if !GITLAB_BRANCHES.contains(&g.branches.as_str()) {
            bad(
                "integrations.gitlab.branches",
                g.branches.clone(),
                &format!("must be one of {}", GITLAB_BRANCHES.join(", ")),
            );
        }
        if g.oauth_application.trim().is_empty() {
            bad(
                "integrations.gitlab.oauth_application",
                "\"\"".into(),
                "must be a non-empty application name",
            );
        }
        check_length(
            &mut bad,
            "integrations.sonarqube.webhook_name",
            &s.webhook_name,
            100,
            Some("SonarQube's limit"),
        );
        if let Some(project) = &s.project
            && (project.is_empty() || project.len() > 400)
        {
            bad(
                "integrations.sonarqube.project",
                format!("{project:?}"),
                "must be a project key of 1-400 characters",
            );
        }
        if let Some(url) = &s.relay_url
            && (!is_http_url(url) || url.len() > 512)
        {
            bad(
                "integrations.sonarqube.relay_url",
                url.clone(),
                "must be an http(s) URL of at most 512 characters, e.g. http://192.168.1.20:9180/sonarqube",
            );
        }
        out
    }
}

/// The human admin account (created by the operator, e.g. `mmctl user create --system-admin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub username: String,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            username: "admin".into(),
        }
    }
}

/// A bot account: a Mattermost user converted to a bot, member of the team and of `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotAccount {
    /// Username, e.g. `jenkins-bot` (not `gitlab`: the GitLab plugin creates that bot itself).
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// The channel the bot posts into (it is made a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// An incoming webhook: identified by channel + owning bot + display name; its URL goes to the
/// vault as `webhook-<channel>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingHook {
    pub channel: String,
    pub bot: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

/// Settings of the prepackaged GitLab plugin (`com.github.manland.mattermost-plugin-gitlab`).
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

/// Usernames Mattermost refuses (model/user.go restricted names).
const RESERVED_USERNAMES: &[&str] = &["all", "channel", "here", "matterbot", "system"];

fn username_rule(name: &str) -> Option<&'static str> {
    if !(3..=22).contains(&name.len()) {
        return Some("Mattermost usernames are 3-22 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("Mattermost usernames start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        return Some("Mattermost usernames use only a-z, 0-9, '.', '-' and '_'");
    }
    if RESERVED_USERNAMES.contains(&name) {
        return Some("Mattermost reserves this username (all, channel, here, matterbot, system)");
    }
    None
}

fn http_url_rule(url: &str) -> Option<&'static str> {
    (!is_http_url(url)).then_some(
        "must be an http:// or https:// URL with a host, e.g. https://jenkins.cicd.local:8080",
    )
}

/// A name shown in Mattermost or SonarQube: 1 to `max` characters (characters, not bytes).
/// `why`, when given, follows the rule in parentheses.
fn check_length(
    bad: &mut impl FnMut(&str, String, &str),
    field: &str,
    text: &str,
    max: usize,
    why: Option<&str>,
) {
    if (1..=max).contains(&text.chars().count()) {
        return;
    }
    let rule = match why {
        Some(why) => format!("must be 1-{max} characters ({why})"),
        None => format!("must be 1-{max} characters"),
    };
    bad(field, format!("{text:?}"), &rule);
}

/// A free text of at most `max` characters; the problem names its length rather than repeat it.
fn check_at_most(bad: &mut impl FnMut(&str, String, &str), field: &str, text: &str, max: usize) {
    let len = text.chars().count();
    if len > max {
        bad(
            field,
            format!("{len} characters"),
            &format!("must be at most {max} characters"),
        );
    }
}

/// A reference to one of the city's `[[channels]]`.
fn check_channel(
    bad: &mut impl FnMut(&str, String, &str),
    field: &str,
    name: &str,
    channels: &BTreeSet<&str>,
) {
    if !channels.contains(name) {
        bad(
            field,
            name.to_string(),
            "names no channel of the city; add it under [[channels]] or fix the name",
        );
    }
}

impl City {
    /// Rules for the wiring sections (admin, bots, webhooks, plugin settings).
    fn wiring_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let mut bad = |field: &str, value: String, rule: &str| {
            out.push(Problem {
                field: field.to_string(),
                value,
                rule: rule.to_string(),
            })
        };
        let channels: BTreeSet<&str> = self.channels.iter().map(|c| c.name.as_str()).collect();
        if let Some(rule) = username_rule(&self.admin.username) {
            bad("admin.username", self.admin.username.clone(), rule);
        }
        let mut bots = BTreeSet::new();
        for (i, b) in self.bots.iter().enumerate() {
            if let Some(rule) = username_rule(&b.name) {
                bad(&format!("bots[{i}].name"), b.name.clone(), rule);
            }
            if b.name == self.admin.username {
                bad(
                    &format!("bots[{i}].name"),
                    b.name.clone(),
                    "is the admin's username; a bot needs its own",
                );
            }
            if !bots.insert(b.name.as_str()) {
                bad(
                    &format!("bots[{i}].name"),
                    b.name.clone(),
                    "appears twice; bot names must be unique",
                );
            }
            check_length(
                &mut bad,
                &format!("bots[{i}].display_name"),
                &b.display_name,
                64,
                None,
            );
            check_at_most(
                &mut bad,
                &format!("bots[{i}].description"),
                &b.description,
                1024,
            );
            if let Some(ch) = &b.channel {
                check_channel(&mut bad, &format!("bots[{i}].channel"), ch, &channels);
            }
        }
        let mut hooked = BTreeSet::new();
        for (i, h) in self.webhooks.iter().enumerate() {
            check_channel(
                &mut bad,
                &format!("webhooks[{i}].channel"),
                &h.channel,
                &channels,
            );
            if !bots.contains(h.bot.as_str()) {
                bad(
                    &format!("webhooks[{i}].bot"),
                    h.bot.clone(),
                    "names no bot of the city; add it under [[bots]] (webhooks are owned by bots)",
                );
            }
            if !hooked.insert(h.channel.as_str()) {
                bad(
                    &format!("webhooks[{i}].channel"),
                    h.channel.clone(),
                    "has a second webhook; one per channel (its URL is stored as webhook-<channel>)",
                );
            }
            check_length(
                &mut bad,
                &format!("webhooks[{i}].display_name"),
                &h.display_name,
                64,
                Some("it identifies the hook together with channel and bot"),
            );
            check_at_most(
                &mut bad,
                &format!("webhooks[{i}].description"),
                &h.description,
                500,
            );
        }
        if let Some(j) = &self.plugins.jenkins {
            let source = j.source.as_str();
            if source.starts_with("http://") || source.starts_with("https://") {
                if let Some(rule) = http_url_rule(source) {
                    bad("plugins.jenkins.source", source.into(), rule);
                }
            } else if !source.starts_with('/') {
                bad(
                    "plugins.jenkins.source",
                    source.into(),
                    "must be an absolute path or an http(s) URL of the plugin bundle (.tar.gz)",
                );
            } else if crate::nixhash::StorePath::looks_like(source)
                && let Err(e) = crate::nixhash::StorePath::parse(source)
            {
                bad("plugins.jenkins.source", source.into(), &e.to_string());
            }
            if j.sri.starts_with("sha256-")
                && let Err(e) = crate::nixhash::Sri::parse(&j.sri)
            {
                bad("plugins.jenkins.sri", j.sri.clone(), &e.to_string());
            }
            if j.version.as_deref().is_none_or(str::is_empty) {
                bad(
                    "plugins.jenkins.version",
                    "(missing)".into(),
                    "set the bundle's plugin version (e.g. 1.1.0): `cityd wire` compares it with the installed plugin to decide whether to upload",
                );
            }
            match &j.jenkins_url {
                None => bad(
                    "plugins.jenkins.jenkins_url",
                    "(missing)".into(),
                    "the Jenkins plugin (v1.1.0) refuses to start without its Jenkins URL; set e.g. https://jenkins.cicd.local:8080",
                ),
                Some(url) => {
                    if let Some(rule) = http_url_rule(url) {
                        bad("plugins.jenkins.jenkins_url", url.clone(), rule);
                    }
                }
            }
        }
        if let Some(g) = &self.plugins.gitlab {
            if let Some(rule) = http_url_rule(&g.url) {
                bad("plugins.gitlab.url", g.url.clone(), rule);
            }
            if !GITLAB_CODE_PREVIEW.contains(&g.code_preview.as_str()) {
                bad(
                    "plugins.gitlab.code_preview",
                    g.code_preview.clone(),
                    "must be one of public, privateAndPublic, disable",
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut City)) -> Vec<Problem> {
        let mut c = City::default_city();
        edit(&mut c);
        c.problems()
    }

    #[test]
    fn default_city_matches_the_specification() {
        let c = City::default_city();
        assert_eq!(c.domain, "cicd.local");
        assert_eq!(c.mattermost_host(), "mattermost.cicd.local");
        assert_eq!(c.site_url(), "https://mattermost.cicd.local:8065");
        assert_eq!(c.mattermost.metrics.to_string(), "127.0.0.1:8067");
        assert_eq!(c.mattermost.calls_port, 8444);
        assert_eq!(
            (c.turn.port, c.turn.relay_min, c.turn.relay_max),
            (3478, 49152, 65535)
        );
        assert_eq!(c.turn_realm(), "mattermost.cicd.local");
        assert_eq!(c.team.name, "engineering");
        let names: Vec<_> = c.channels.iter().map(|ch| ch.name.as_str()).collect();
        assert_eq!(names, ["builds", "code-reviews", "alerts", "town-square"]);
        assert_eq!(c.lan.addresses, ["auto"]);
        assert!(!c.mattermost.image.ends_with("release-11"));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = DEFAULT_CITY_TOML.replace("[team]", "[team]\ncolour = \"blue\"");
        let err = City::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Box<dyn FnOnce(&mut City)>, &str)> = vec![
            (
                Box::new(|c| (c.turn.relay_min, c.turn.relay_max) = (60000, 50000)),
                "turn.relay_min",
            ),
            (
                Box::new(|c| c.mattermost.calls_port = 8443),
                "mattermost.calls_port",
            ),
            (
                Box::new(|c| c.mattermost.calls_port = 8065),
                "mattermost.calls_port",
            ),
            (
                Box::new(|c| c.mattermost.metrics = "0.0.0.0:8067".parse().unwrap()),
                "mattermost.metrics",
            ),
            (
                Box::new(|c| c.team.name = "Engineering Team".into()),
                "team.name",
            ),
            (
                Box::new(|c| c.channels[0].name = "Builds!".into()),
                "channels[0].name",
            ),
            (
                Box::new(|c| {
                    c.mattermost.image =
                        "mattermost/mattermost-enterprise-edition:release-11".into()
                }),
                "mattermost.image",
            ),
            (Box::new(|c| c.turn.relay_min = 3000), "turn.relay_min"),
        ];
        for (edit, field) in cases {
            let problems = with(edit);
            assert!(
                problems.iter().any(|p| p.field == field),
                "expected a problem on {field}, got {problems:?}"
            );
        }
    }
}
