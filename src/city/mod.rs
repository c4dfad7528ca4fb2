//! The city description: the `City` root type, the one place a description is read (a file laid
//! over the embedded default, then checked), and the values derived from it (hostnames, SiteURL,
//! realm, CORS origins). Each section's type and rules live in its own file; rules several
//! sections share live in `rules`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use thiserror::Error;

mod admin;
mod bots;
mod channels;
mod database;
mod docker;
mod integrations;
mod lan;
mod mattermost;
mod merge;
mod origins;
mod plugins;
mod ports;
mod relay;
mod rules;
mod team;
mod turn;
mod webhooks;

pub use admin::Admin;
pub use bots::BotAccount;
pub use channels::Channel;
pub use database::Database;
pub use docker::DockerHost;
pub use integrations::{
    GITLAB_EVENTS, GitlabIntegration, Integrations, JenkinsIntegration, SonarqubeIntegration,
};
pub use lan::Lan;
pub use mattermost::Mattermost;
pub use origins::{FROM_FILE, Origins};
pub use plugins::{GITLAB_CODE_PREVIEW, GitlabPlugin, PluginBundle, Plugins};
pub use relay::Relay;
pub use rules::Problem;
pub use team::Team;
pub use turn::Turn;
pub use webhooks::IncomingHook;

use rules::{Problems, is_dns_name};

/// The default city, compiled into the binary so `cityd up` needs no file. It is the one place
/// the defaults are written: every value a city file leaves out comes from here.
pub const DEFAULT_CITY_TOML: &str = include_str!("../default-city.toml");

/// How the embedded default names itself in messages.
const EMBEDDED_ORIGIN: &str = "the embedded default city";

#[derive(Debug, Error)]
pub enum CityError {
    #[error(
        "cannot read city description {path}; check the path given with --city (or CITYD_CITY)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `format` is the file's own (TOML, or the JSON the NixOS module writes).
    #[error("city description {origin} is not valid {format} for cityd: {message}")]
    Parse {
        origin: String,
        format: &'static str,
        message: String,
    },
    #[error("city description {origin} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// The whole description. A file states only what differs from [`DEFAULT_CITY_TOML`]; by the
/// time a `City` exists every field holds a value, so no field has a serde default of its own
/// except optional ones (absent = unset) and the fields of array elements (`purpose`, ...).
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
    pub plugins: Plugins,
    pub database: Database,
    /// How cityd reaches Jenkins, GitLab and SonarQube for `cityd connect` (tokens come from the vault).
    pub integrations: Integrations,
    pub relay: Relay,
    /// The human system admin that `cityd wire` adds to the team and channels.
    pub admin: Admin,
    /// Bot accounts `cityd wire` creates (user, converted to a bot, with a token in the vault).
    pub bots: Vec<BotAccount>,
    /// Incoming webhooks `cityd wire` creates, one per channel, owned by a bot and locked to the channel.
    pub webhooks: Vec<IncomingHook>,
    pub docker: DockerHost,
}

/// A checked city and where its values came from (`cityd config show` prints both).
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    pub city: City,
    pub origins: Origins,
}

/// What a description is read from.
enum Source<'a> {
    Embedded,
    File(&'a Path),
    Text { text: &'a str, origin: &'a str },
}

/// The embedded default as a table (what files are laid over) and as a city (unchecked here:
/// [`describe`] checks it like any other description, and a test pins that it passes).
struct Embedded {
    table: toml::Table,
    city: City,
}

fn embedded() -> &'static Embedded {
    static EMBEDDED: OnceLock<Embedded> = OnceLock::new();
    EMBEDDED.get_or_init(|| {
        let table: toml::Table = DEFAULT_CITY_TOML
            .parse()
            .expect("the embedded default city is TOML");
        let city = deserialize(table.clone(), EMBEDDED_ORIGIN, "TOML")
            .expect("the embedded default city states every field");
        Embedded { table, city }
    })
}

/// The one function that reads and validates a city description: the file (if any) is parsed,
/// laid over the embedded default (`merge`), deserialized and checked.
fn describe(source: Source<'_>) -> Result<Described, CityError> {
    let owned;
    let (text, origin) = match source {
        Source::Embedded => (None, EMBEDDED_ORIGIN.to_string()),
        Source::File(path) => {
            owned = std::fs::read_to_string(path).map_err(|source| CityError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            (Some(owned.as_str()), path.display().to_string())
        }
        Source::Text { text, origin } => (Some(text), origin.to_string()),
    };
    let mut table = embedded().table.clone();
    let mut origins = Origins::default();
    let mut format = "TOML";
    if let Some(text) = text {
        format = merge::format_of(text);
        let file = merge::parse(text).map_err(|message| CityError::Parse {
            origin: origin.clone(),
            format,
            message,
        })?;
        origins.from_file = merge::overlay(&mut table, file);
        origins.file = Some(origin.clone());
        database::unmanaged_when_a_server_is_named(&mut table, &origins.from_file);
    }
    let mut text_problems = Problems::default();
    rules::control_characters(&table, &mut text_problems);
    let city = deserialize(table, &origin, format)?;
    let mut problems = text_problems.into_vec();
    problems.extend(city.problems());
    if !problems.is_empty() {
        explain_defaulted_arrays(&mut problems, &origins);
        return Err(CityError::Invalid { origin, problems });
    }
    tracing::debug!(city = %origin, "city description read and validated");
    Ok(Described { city, origins })
}

/// A file that states its own channels but no bots or webhooks gets the default's, which name the
/// default channels: say where they came from and how to have none, or the problem reads as if the
/// user had written them.
fn explain_defaulted_arrays(problems: &mut [Problem], origins: &Origins) {
    if origins.file.is_none() {
        return;
    }
    for section in ["bots", "webhooks"] {
        if origins.from_file.contains(section) {
            continue;
        }
        for problem in problems.iter_mut() {
            let field = problem.field.as_str();
            if field
                .strip_prefix(section)
                .is_some_and(|rest| rest.starts_with('['))
            {
                problem.rule.push_str(&format!(
                    " (the file states no {section}, so the embedded default's apply; \
                     write `{section} = []` for none, or state your own)"
                ));
            }
        }
    }
}

/// The merged table as a `City`. The merged table has lost the file's line numbers, so errors
/// name the dotted path of the value instead: `mattermost.port: invalid type: ...`, and for an
/// unknown key the key itself: `team.colour: unknown field `colour`, expected ...`.
fn deserialize(table: toml::Table, origin: &str, format: &'static str) -> Result<City, CityError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        // `message()` is the error without toml's own "in `key`" line, which omits array indices.
        let message = e.inner().message().trim_end().to_string();
        CityError::Parse {
            origin: origin.to_string(),
            format,
            message: if path == "." {
                message
            } else {
                format!("{path}: {message}")
            },
        }
    })
}

impl Described {
    /// Reads the file if given, the embedded default otherwise, with where each value came from.
    pub fn read(path: Option<&Path>) -> Result<Self, CityError> {
        describe(path.map_or(Source::Embedded, Source::File))
    }
}

impl City {
    /// The embedded default city.
    pub fn default_city() -> Self {
        describe(Source::Embedded)
            .expect("the embedded default city is valid")
            .city
    }

    /// Reads and validates a city description file.
    pub fn load(path: &Path) -> Result<Self, CityError> {
        Ok(describe(Source::File(path))?.city)
    }

    /// Parses TOML (or JSON, which the NixOS module writes), lays it over the embedded default
    /// and validates it. `origin` names the text in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, CityError> {
        Ok(describe(Source::Text { text, origin })?.city)
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

    /// Every rule the description must satisfy; empty when valid. Each section checks itself;
    /// what spans sections (ports, references to channels and bots) is checked here.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Problems::default();
        if !is_dns_name(&self.domain) {
            out.bad(
                "domain",
                &self.domain,
                "must be a DNS name of letters, digits, '-' and '.' (e.g. cicd.local)",
            );
        }
        self.lan.check(&mut out);
        self.mattermost.check(&mut out);
        self.turn.check(&mut out);
        ports::check(self, &mut out);
        self.team.check(&mut out);
        channels::check(&self.channels, &mut out);
        self.plugins.check(&mut out);
        self.database.check(&mut out);
        self.integrations.check(
            &self.team.name,
            &self.channels,
            &embedded().city.integrations,
            &mut out,
        );
        self.relay.check(&mut out);
        self.admin.check(&mut out);
        let channel_names = channels::names(&self.channels);
        bots::check(&self.bots, &self.admin.username, &channel_names, &mut out);
        webhooks::check(
            &self.webhooks,
            &bots::names(&self.bots),
            &channel_names,
            &mut out,
        );
        self.docker.check(&mut out);
        out.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One change to the default city, for the tables of cases below.
    type Edit = Box<dyn FnOnce(&mut City)>;

    fn with(edit: impl FnOnce(&mut City)) -> Vec<Problem> {
        let mut c = City::default_city();
        edit(&mut c);
        c.problems()
    }

    fn parse_error(text: &str) -> String {
        City::from_toml(text, "t.toml").unwrap_err().to_string()
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

    /// The embedded TOML is the only copy of the defaults: it parses and checks, and it states
    /// every value of every table, so no serde default can supply one behind its back.
    #[test]
    fn the_embedded_default_parses_checks_and_states_every_field() {
        let described = Described::read(None).unwrap();
        assert_eq!(described.city.problems(), []);
        assert_eq!(described.origins, Origins::default());
        assert_eq!(
            City::from_toml(DEFAULT_CITY_TOML, "t.toml").unwrap(),
            described.city
        );
        let stated: toml::Table = DEFAULT_CITY_TOML.parse().unwrap();
        let shown = toml::Table::try_from(&described.city).unwrap();
        fn same_keys(at: &str, stated: &toml::Table, shown: &toml::Table) {
            for (key, value) in shown {
                let path = format!("{at}{key}");
                let Some(written) = stated.get(key) else {
                    panic!("{path} has no value in src/default-city.toml: write its default there")
                };
                if let (toml::Value::Table(shown), toml::Value::Table(stated)) = (value, written) {
                    same_keys(&format!("{path}."), stated, shown);
                }
            }
        }
        same_keys("", &stated, &shown);
    }

    #[test]
    fn a_file_with_just_domain_and_lan_loads_over_the_default() {
        let c = City::from_toml(
            "domain = \"lab.example\"\n[lan]\naddresses = [\"192.168.1.20\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.domain, "lab.example");
        assert_eq!(c.lan.addresses, ["192.168.1.20"]);
        assert_eq!(c.site_url(), "https://mattermost.lab.example:8065");
        let default = City::default_city();
        assert_eq!(c.mattermost, default.mattermost);
        assert_eq!(c.channels, default.channels);
        assert_eq!(c.bots, default.bots);
        assert_eq!(c.relay, default.relay);
        // An empty file is the default city.
        assert_eq!(City::from_toml("", "t.toml").unwrap(), default);
    }

    #[test]
    fn a_nested_value_overrides_only_itself() {
        let c = City::from_toml(
            "[integrations.jenkins]\nurl = \"https://ci.lab.example\"\n[mattermost]\nport = 9065\n",
            "t.toml",
        )
        .unwrap();
        let default = City::default_city();
        assert_eq!(c.integrations.jenkins.url, "https://ci.lab.example");
        assert_eq!(
            c.integrations.jenkins.channel,
            default.integrations.jenkins.channel
        );
        assert_eq!(c.integrations.gitlab, default.integrations.gitlab);
        assert_eq!(c.mattermost.port, 9065);
        assert_eq!(c.mattermost.calls_port, default.mattermost.calls_port);
        assert_eq!(c.site_url(), "https://mattermost.cicd.local:9065");
    }

    #[test]
    fn own_channels_without_bots_name_the_default_bots_and_how_to_have_none() {
        let text = "[[channels]]\nname = \"ops\"\ndisplay_name = \"Ops\"\npurpose = \"\"\n";
        let error = City::from_toml(text, "c.toml").unwrap_err().to_string();
        assert!(error.contains("bots[0].channel"), "{error}");
        assert!(error.contains("write `bots = []` for none"), "{error}");
        assert!(error.contains("write `webhooks = []` for none"), "{error}");
        let none = format!("bots = []\nwebhooks = []\n{text}");
        let city = City::from_toml(&none, "c.toml").unwrap();
        assert!(city.bots.is_empty() && city.webhooks.is_empty());
    }

    #[test]
    fn arrays_replace_the_default_whole() {
        let c = City::from_toml(
            "bots = []\nwebhooks = []\n[[channels]]\nname = \"builds\"\ndisplay_name = \"Builds\"\n\
             [[channels]]\nname = \"code-reviews\"\ndisplay_name = \"Reviews\"\n\
             [integrations.gitlab]\nevents = [\"push\"]\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.channels.len(), 2);
        assert_eq!(c.channels[0].purpose, "");
        assert!(c.bots.is_empty() && c.webhooks.is_empty());
        assert_eq!(c.integrations.gitlab.events, ["push"]);
        // Replacing the channels keeps the default bots, which then point at missing channels.
        let err = parse_error("[[channels]]\nname = \"builds\"\ndisplay_name = \"Builds\"\n");
        assert!(err.contains("bots[1].channel = code-reviews"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = DEFAULT_CITY_TOML.replace("[team]", "[team]\ncolour = \"blue\"");
        let err = City::from_toml(&text, "t.toml").unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_refused_naming_its_table_the_key_and_the_file() {
        for (text, table, key) in [
            ("colour = 1\n", "", "colour"),
            ("[team]\ncolour = 1\n", "team", "colour"),
            (
                "[integrations.jenkins]\ncolour = 1\n",
                "integrations.jenkins",
                "colour",
            ),
            (
                "[[channels]]\nname = \"x\"\ndisplay_name = \"X\"\ncolour = 1\n",
                "channels[0]",
                "colour",
            ),
            (
                "[plugins.gitlab]\nurl = \"https://g.example\"\ncolour = 1\n",
                "plugins.gitlab",
                "colour",
            ),
            ("[surprise]\nx = 1\n", "", "surprise"),
        ] {
            let err = parse_error(text);
            assert!(err.contains("city description t.toml"), "{err}");
            let path = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            let named = format!(": {path}: unknown field `{key}`, expected");
            assert!(err.contains(&named), "{err}");
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_path() {
        let err = parse_error("[mattermost]\nport = \"8065\"\n");
        assert!(err.contains("mattermost.port: invalid type"), "{err}");
        let err = parse_error("[[bots]]\nname = \"x-bot\"\ndisplay_name = 5\n");
        assert!(err.contains("bots[0].display_name: invalid type"), "{err}");
        let err = parse_error("[turn]\nport = 70000\n");
        assert!(err.contains("turn.port"), "{err}");
        // A TOML syntax error keeps the parser's line and column.
        let err = parse_error("domain = \n");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn json_is_laid_over_the_default_too_with_null_meaning_unset() {
        let c = City::from_toml(
            r#"{"domain": "lab.example", "lan": {"addresses": ["10.0.0.2"]},
                "mattermost": {"host": null, "port": 9065}, "turn": {"realm": null}}"#,
            "city.json",
        )
        .unwrap();
        assert_eq!(c.domain, "lab.example");
        assert_eq!(c.mattermost.port, 9065);
        assert_eq!(c.mattermost.host, None);
        assert_eq!(c.turn, City::default_city().turn);
        let err = City::from_toml(r#"{"team": {"colour": "blue"}}"#, "city.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("city.json") && err.contains("team.colour: unknown field `colour`"),
            "{err}"
        );
    }

    #[test]
    fn read_notes_which_values_came_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("city.toml");
        std::fs::write(
            &path,
            "domain = \"lab.example\"\n[lan]\naddresses = [\"auto\"]\n[mattermost]\nport = 9065\n",
        )
        .unwrap();
        let described = Described::read(Some(&path)).unwrap();
        assert_eq!(described.origins.file, Some(path.display().to_string()));
        assert_eq!(
            described.origins.from_file.iter().collect::<Vec<_>>(),
            ["domain", "lan.addresses", "mattermost.port"]
        );
        let shown = described
            .origins
            .annotate(&toml::to_string(&described.city).unwrap());
        assert!(shown.contains("port = 9065  # from file\n"), "{shown}");
        assert!(shown.contains("\ncalls_port = 8444\n"), "{shown}");
    }

    #[test]
    fn docker_names_accept_what_the_engine_accepts() {
        assert_eq!(with(|c| c.docker.prefix = "Lab1-".into()), []);
        assert_eq!(
            with(|c| c.integrations.jenkins.container = "Jenkins".into()),
            []
        );
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|c| c.docker.prefix = "-lab".into()),
                "docker.prefix",
            ),
            (Box::new(|c| c.docker.network = "".into()), "docker.network"),
            (
                Box::new(|c| c.docker.network = "my net".into()),
                "docker.network",
            ),
            (
                Box::new(|c| c.integrations.jenkins.container = "_j".into()),
                "integrations.jenkins.container",
            ),
        ];
        for (edit, field) in cases {
            let problems = with(edit);
            assert!(
                problems.iter().any(|p| p.field == field),
                "{field}: {problems:?}"
            );
        }
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: Vec<(Edit, &str)> = vec![
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
