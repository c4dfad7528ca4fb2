//! The relay's settings: the city's `[relay]`, the state layout, the vault and the flags of
//! `cityd relay serve` resolved into the plan `--dry-run` prints and the [`RelayConfig`] it runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use thiserror::Error;

use crate::city::City;
use crate::exit::{BAD_INPUT, ExitCoded, FAILED};
use crate::mattermost::Target;
use crate::mattermost::transport::parse_base_url;
use crate::relay::RelayConfig;
use crate::relay::deliver::Routes;
use crate::relay::limits::Limits;
use crate::relay::message::MessageSettings;
use crate::relay::post::HookUrl;
use crate::secrets::{Secret, SecretName, Vault};
use crate::state::StateDir;

/// The flags of `cityd relay serve` as given, before the city's defaults fill them in.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub spool: Option<PathBuf>,
    pub secret_file: Option<PathBuf>,
    /// `CHANNEL=FILE` specs, as typed.
    pub webhook_url_file: Vec<String>,
    pub post_passes: bool,
    pub dashboard_url: Option<String>,
    pub mattermost_socket: Option<PathBuf>,
    pub mattermost_url: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub post_timeout_seconds: f64,
    pub max_body: usize,
    pub concurrency: usize,
    pub limits: Limits,
}

/// A setting the flags or the city got wrong, or a file the relay needs that is unusable.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error(
        "--metrics {0} is not a loopback address: metrics are unauthenticated; use 127.0.0.1:PORT"
    )]
    MetricsNotLoopback(SocketAddr),
    #[error("dashboard URL {0} must start with http:// or https://")]
    DashboardScheme(String),
    #[error("--post-timeout {0} must be between 0 and 300 seconds")]
    PostTimeout(f64),
    #[error("--webhook-url-file {0}: expected CHANNEL=FILE, e.g. alerts=/run/keys/alerts-url")]
    UrlFileSyntax(String),
    #[error("--webhook-url-file {0}: the relay posts to alerts and builds only")]
    UrlFileChannel(String),
    #[error("cannot read {what} from {}", path.display())]
    Read {
        what: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is empty; it must hold the {what}", path.display())]
    EmptyFile { what: String, path: PathBuf },
    #[error(
        "the vault has no {name} (the #{channel} incoming webhook URL); run `cityd wire`, or pass --webhook-url-file {channel}=FILE"
    )]
    NoWebhook { name: String, channel: &'static str },
    #[error(
        "--mattermost-url {0}: a token is sent only over https:// (plain http:// only to a loopback address)"
    )]
    TokenOverPlainHttp(String),
    #[error("--mattermost-url needs --token-file")]
    NoTokenFile,
    #[error("{flag} must be greater than zero")]
    Zero { flag: &'static str },
    #[error("--max-connections-per-peer {per_peer} is more than --max-connections {max}; lower it")]
    PerPeerOverTotal { per_peer: usize, max: usize },
    #[error(
        "--max-unverified-bytes {budget} is less than --max-body {body}: a body of the largest size could never be read; raise it"
    )]
    BudgetUnderBody { budget: usize, body: usize },
    #[error(
        "the relay needs {needed} file descriptors (--max-connections {max} + --concurrency {concurrency} + {reserve} for itself) but its limit (RLIMIT_NOFILE) is {limit}: raise LimitNOFILE (systemd) or `ulimit -n`, or lower --max-connections"
    )]
    Descriptors {
        needed: u64,
        max: usize,
        concurrency: usize,
        reserve: u64,
        limit: u64,
    },
}

impl ExitCoded for SettingsError {
    fn exit_code(&self) -> u8 {
        match self {
            // A file that exists but cannot be read is a failed operation, not a wrong flag.
            SettingsError::Read { .. } | SettingsError::NoTokenFile => FAILED,
            _ => BAD_INPUT,
        }
    }
}

/// The settings as printed by `--dry-run`: no secret values, no webhook URLs.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub spool: PathBuf,
    pub spool_exists: bool,
    pub secret_from: String,
    pub alerts_webhook_from: String,
    pub builds_webhook_from: Option<String>,
    pub post_passes: bool,
    pub dashboard_url: Option<String>,
    pub readback: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub post_timeout_seconds: f64,
    pub max_body: usize,
    pub concurrency: usize,
    pub header_timeout_seconds: f64,
    pub body_timeout_seconds: f64,
    pub shutdown_grace_seconds: f64,
    pub max_connections: usize,
    pub max_connections_per_peer: usize,
    pub max_unverified_bytes: usize,
}

/// The relay's two channels.
const CHANNELS: [&str; 2] = ["alerts", "builds"];

/// What the flags and the city decide before any secret is read; checked in the order the flags
/// are documented, so the first wrong one is the one reported.
struct Checked {
    listen: SocketAddr,
    metrics: SocketAddr,
    spool: PathBuf,
    post_passes: bool,
    dashboard_url: Option<String>,
    /// `--webhook-url-file` as (channel, file).
    url_files: Vec<(&'static str, PathBuf)>,
    ca_file: Option<PathBuf>,
}

fn check(city: &City, state: &StateDir, flags: &Flags) -> Result<Checked, SettingsError> {
    let listen = flags.listen.unwrap_or(city.relay.listen);
    let metrics = flags.metrics.unwrap_or(city.relay.metrics);
    if !metrics.ip().is_loopback() {
        return Err(SettingsError::MetricsNotLoopback(metrics));
    }
    let dashboard_url = flags
        .dashboard_url
        .clone()
        .or_else(|| city.relay.dashboard_url.clone());
    if let Some(url) = &dashboard_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(SettingsError::DashboardScheme(url.clone()));
    }
    let timeout = flags.post_timeout_seconds;
    if !(timeout.is_finite() && timeout > 0.0 && timeout <= 300.0) {
        return Err(SettingsError::PostTimeout(timeout));
    }
    check_limits(flags)?;
    let url_files = flags
        .webhook_url_file
        .iter()
        .map(|spec| parse_url_file(spec))
        .collect::<Result<_, _>>()?;
    let ca_file = flags.ca_file.clone().or_else(|| {
        let default = state.ca_pem();
        default.is_file().then_some(default)
    });
    Ok(Checked {
        listen,
        metrics,
        spool: flags.spool.clone().unwrap_or_else(|| state.relay_spool()),
        post_passes: flags.post_passes || city.relay.post_passes,
        dashboard_url,
        url_files,
        ca_file,
    })
}

/// The timeouts and caps: each non-zero, the per-peer cap within the total, and a budget of
/// unverified bytes that can hold the largest body.
fn check_limits(flags: &Flags) -> Result<(), SettingsError> {
    let l = &flags.limits;
    for (zero, flag) in [
        (l.header_timeout.is_zero(), "--header-timeout"),
        (l.body_timeout.is_zero(), "--body-timeout"),
        (l.max_connections == 0, "--max-connections"),
        (l.max_per_peer == 0, "--max-connections-per-peer"),
        (flags.max_body == 0, "--max-body"),
    ] {
        if zero {
            return Err(SettingsError::Zero { flag });
        }
    }
    if l.max_per_peer > l.max_connections {
        return Err(SettingsError::PerPeerOverTotal {
            per_peer: l.max_per_peer,
            max: l.max_connections,
        });
    }
    if l.max_unverified_bytes < flags.max_body {
        return Err(SettingsError::BudgetUnderBody {
            budget: l.max_unverified_bytes,
            body: flags.max_body,
        });
    }
    Ok(())
}

/// The process's descriptor limit must cover the caps: a relay out of descriptors cannot accept
/// SonarQube's connection, and SonarQube never retries.
fn check_descriptors(flags: &Flags, limit: u64) -> Result<(), SettingsError> {
    let needed = flags.limits.descriptors_needed(flags.concurrency);
    if limit < needed {
        return Err(SettingsError::Descriptors {
            needed,
            max: flags.limits.max_connections,
            concurrency: flags.concurrency,
            reserve: crate::relay::limits::DESCRIPTOR_RESERVE,
            limit,
        });
    }
    Ok(())
}

/// The soft RLIMIT_NOFILE of this process (unlimited: `u64::MAX`).
fn descriptor_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// One `--webhook-url-file CHANNEL=FILE`.
fn parse_url_file(spec: &str) -> Result<(&'static str, PathBuf), SettingsError> {
    let Some((channel, file)) = spec.split_once('=') else {
        return Err(SettingsError::UrlFileSyntax(spec.to_string()));
    };
    let Some(channel) = CHANNELS.into_iter().find(|c| *c == channel) else {
        return Err(SettingsError::UrlFileChannel(spec.to_string()));
    };
    Ok((channel, PathBuf::from(file)))
}

impl Checked {
    fn url_file(&self, channel: &str) -> Option<&Path> {
        self.url_files
            .iter()
            .find(|(c, _)| *c == channel)
            .map(|(_, f)| f.as_path())
    }
}

/// Where the read-back goes, as the plan names it.
fn readback_label(flags: &Flags) -> Option<String> {
    match (&flags.mattermost_socket, &flags.mattermost_url) {
        (Some(socket), _) => Some(format!("local-mode socket {}", socket.display())),
        (None, Some(url)) => Some(url.clone()),
        (None, None) => None,
    }
}

/// The settings `serve` would run with, naming where each secret comes from; reads no secret.
pub fn plan(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    flags: &Flags,
) -> Result<Plan, SettingsError> {
    let checked = check(city, state, flags)?;
    let origin = |channel: &str| -> String {
        checked
            .url_file(channel)
            .map_or_else(
                || vault.path_of(&StateDir::webhook_secret_name(channel)),
                Path::to_path_buf,
            )
            .display()
            .to_string()
    };
    let secret_from = flags
        .secret_file
        .clone()
        .unwrap_or_else(|| vault.path_of(SecretName::SonarqubeWebhookSecret.file_name()));
    Ok(Plan {
        listen: checked.listen,
        metrics: checked.metrics,
        spool_exists: checked.spool.is_dir(),
        spool: checked.spool.clone(),
        secret_from: secret_from.display().to_string(),
        alerts_webhook_from: origin("alerts"),
        builds_webhook_from: checked.post_passes.then(|| origin("builds")),
        post_passes: checked.post_passes,
        dashboard_url: checked.dashboard_url.clone(),
        readback: readback_label(flags),
        ca_file: checked.ca_file.clone(),
        post_timeout_seconds: flags.post_timeout_seconds,
        max_body: flags.max_body,
        concurrency: flags.concurrency,
        header_timeout_seconds: flags.limits.header_timeout.as_secs_f64(),
        body_timeout_seconds: flags.limits.body_timeout.as_secs_f64(),
        shutdown_grace_seconds: flags.limits.shutdown_grace.as_secs_f64(),
        max_connections: flags.limits.max_connections,
        max_connections_per_peer: flags.limits.max_per_peer,
        max_unverified_bytes: flags.limits.max_unverified_bytes,
    })
}

/// Everything `serve` runs with: the checks of [`plan`], then the secret, the webhook URLs and the
/// read-back token read from their files or the vault.
pub fn resolve(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    flags: &Flags,
) -> anyhow::Result<RelayConfig> {
    let checked = check(city, state, flags)?;
    check_descriptors(flags, descriptor_limit())?;
    let secret = match &flags.secret_file {
        Some(path) => read_one_line(path, "SonarQube webhook secret")?,
        None => vault
            .get(SecretName::SonarqubeWebhookSecret)
            .context("the relay verifies SonarQube's signature with the vault's secret")?,
    };
    let hook = |channel: &'static str| -> anyhow::Result<HookUrl> {
        let (url, origin) = match checked.url_file(channel) {
            Some(file) => (
                read_one_line(file, &format!("#{channel} webhook URL"))?,
                file.display().to_string(),
            ),
            None => {
                let name = StateDir::webhook_secret_name(channel);
                let url = vault.read(&name)?.ok_or_else(|| SettingsError::NoWebhook {
                    name: name.clone(),
                    channel,
                })?;
                (url, vault.path_of(&name).display().to_string())
            }
        };
        // A malformed URL in the vault or the file is bad input (exit 2), not a failed relay.
        HookUrl::parse(channel, url.expose(), &origin)
            .map_err(|e| crate::exit::Coded::new(crate::exit::BAD_INPUT, e).into())
    };
    let routes = Routes {
        alerts: hook("alerts")?,
        builds: if checked.post_passes {
            Some(hook("builds")?)
        } else {
            None
        },
        post_passes: checked.post_passes,
    };
    let readback = readback_target(flags, checked.ca_file.as_ref())?;
    if readback.is_none() {
        tracing::warn!(
            "no --mattermost-socket or --mattermost-url: after a crash, a post whose outcome is unknown is repeated (at least once, not exactly once)"
        );
    }
    Ok(RelayConfig {
        listen: checked.listen,
        metrics: checked.metrics,
        spool_dir: checked.spool,
        secret,
        routes,
        settings: MessageSettings {
            dashboard_url: checked.dashboard_url,
        },
        readback,
        ca_file: checked.ca_file,
        post_timeout: Duration::from_secs_f64(flags.post_timeout_seconds),
        body_limit: flags.max_body,
        concurrency: flags.concurrency,
        limits: flags.limits,
    })
}

/// The Mattermost API the relay reads channels back through, if any.
fn readback_target(
    flags: &Flags,
    ca_file: Option<&PathBuf>,
) -> Result<Option<Target>, SettingsError> {
    match (
        &flags.mattermost_socket,
        &flags.mattermost_url,
        &flags.token_file,
    ) {
        (Some(socket), _, _) => Ok(Some(Target::Socket(socket.clone()))),
        (None, Some(url), Some(token_file)) => {
            if !plain_http_is_safe(url) {
                return Err(SettingsError::TokenOverPlainHttp(url.clone()));
            }
            Ok(Some(Target::Url {
                base: url.trim_end_matches('/').to_string(),
                token: read_one_line(token_file, "Mattermost token")?,
                ca_pem: ca_file.cloned(),
            }))
        }
        (None, Some(_), None) => Err(SettingsError::NoTokenFile),
        (None, None, _) => Ok(None),
    }
}

/// A file's one line (a secret, a URL, a token), trailing newline and blanks trimmed.
fn read_one_line(path: &Path, what: &str) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        what: what.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.trim_end_matches(['\n', '\r']).trim();
    if value.is_empty() {
        return Err(SettingsError::EmptyFile {
            what: what.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(value.to_string()))
}

/// `https://` anything, or `http://` to this machine only (a token must not cross a network in clear).
fn plain_http_is_safe(url: &str) -> bool {
    url.starts_with("https://") || parse_base_url(url).is_ok_and(|u| u.loopback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            post_timeout_seconds: 10.0,
            max_body: 1024,
            concurrency: 4,
            limits: Limits::default(),
            ..Flags::default()
        }
    }

    fn fixture() -> (tempfile::TempDir, City, StateDir, Vault) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().to_path_buf()).unwrap();
        let vault = Vault::new(&state);
        (dir, City::default_city(), state, vault)
    }

    #[test]
    fn tokens_travel_over_https_or_to_loopback_only() {
        for ok in [
            "https://mm.cicd.local:8065",
            "http://127.0.0.1:8065",
            "http://localhost:8065/",
            "http://[::1]:8065",
        ] {
            assert!(plain_http_is_safe(ok), "{ok}");
        }
        for bad in [
            "http://192.168.1.5:8065",
            "http://mm.cicd.local",
            "ftp://127.0.0.1",
        ] {
            assert!(!plain_http_is_safe(bad), "{bad}");
        }
    }

    #[test]
    fn webhook_url_files_name_alerts_or_builds() {
        assert_eq!(
            parse_url_file("builds=/run/b").unwrap(),
            ("builds", PathBuf::from("/run/b"))
        );
        assert!(matches!(
            parse_url_file("alerts"),
            Err(SettingsError::UrlFileSyntax(_))
        ));
        assert!(matches!(
            parse_url_file("general=/x"),
            Err(SettingsError::UrlFileChannel(_))
        ));
    }

    #[test]
    fn the_plan_takes_the_city_defaults_and_names_the_vault_files() {
        let (_dir, city, state, vault) = fixture();
        let plan = plan(&city, &state, &vault, &flags()).unwrap();
        assert_eq!(plan.listen, city.relay.listen);
        assert_eq!(plan.metrics, city.relay.metrics);
        assert_eq!(plan.spool, state.relay_spool());
        assert!(!plan.spool_exists);
        assert_eq!(
            plan.alerts_webhook_from,
            vault.path_of("webhook-alerts").display().to_string()
        );
        assert_eq!(plan.builds_webhook_from, None);
        assert_eq!(plan.ca_file, None, "no ca.pem in the state yet");
        assert_eq!(plan.readback, None);
    }

    #[test]
    fn flags_override_the_city_and_files_replace_the_vault() {
        let (_dir, city, state, vault) = fixture();
        let given = Flags {
            post_passes: true,
            webhook_url_file: vec!["builds=/run/keys/builds".into()],
            secret_file: Some("/run/keys/secret".into()),
            mattermost_socket: Some("/run/mm.sock".into()),
            ..flags()
        };
        let plan = plan(&city, &state, &vault, &given).unwrap();
        assert!(plan.post_passes);
        assert_eq!(
            plan.builds_webhook_from.as_deref(),
            Some("/run/keys/builds")
        );
        assert_eq!(plan.secret_from, "/run/keys/secret");
        assert_eq!(
            plan.readback.as_deref(),
            Some("local-mode socket /run/mm.sock")
        );
    }

    #[test]
    fn wrong_flags_are_refused_as_bad_input() {
        let (_dir, city, state, vault) = fixture();
        let cases = [
            Flags {
                metrics: Some("0.0.0.0:9181".parse().unwrap()),
                ..flags()
            },
            Flags {
                dashboard_url: Some("sonar.local".into()),
                ..flags()
            },
            Flags {
                post_timeout_seconds: 0.0,
                ..flags()
            },
            Flags {
                post_timeout_seconds: 301.0,
                ..flags()
            },
            Flags {
                limits: Limits {
                    header_timeout: Duration::ZERO,
                    ..Limits::default()
                },
                ..flags()
            },
            Flags {
                limits: Limits {
                    max_per_peer: 1000,
                    ..Limits::default()
                },
                ..flags()
            },
            Flags {
                max_body: 2048,
                limits: Limits {
                    max_unverified_bytes: 1024,
                    ..Limits::default()
                },
                ..flags()
            },
        ];
        for given in cases {
            let error = plan(&city, &state, &vault, &given).unwrap_err();
            assert_eq!(error.exit_code(), BAD_INPUT, "{error}");
        }
    }

    #[test]
    fn the_descriptor_limit_must_cover_the_caps() {
        let given = Flags {
            concurrency: 16,
            ..flags()
        };
        assert!(check_descriptors(&given, 1024).is_ok());
        let error = check_descriptors(&given, 512).unwrap_err();
        assert_eq!(error.exit_code(), BAD_INPUT);
        assert!(
            error.to_string().contains("needs 656 file descriptors"),
            "{error}"
        );
        assert!(error.to_string().contains("LimitNOFILE"), "{error}");
    }

    #[test]
    fn a_token_is_not_sent_over_plain_http_to_another_host() {
        let given = Flags {
            mattermost_url: Some("http://192.168.1.5:8065".into()),
            token_file: Some("/nonexistent".into()),
            ..flags()
        };
        let error = readback_target(&given, None).unwrap_err();
        assert!(matches!(error, SettingsError::TokenOverPlainHttp(_)));
    }

    #[test]
    fn an_empty_file_is_refused_and_a_line_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = read_one_line(&empty, "token").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} is empty; it must hold the token", empty.display())
        );
        let full = dir.path().join("full");
        std::fs::write(&full, "abc \n").unwrap();
        assert_eq!(read_one_line(&full, "token").unwrap().expose(), "abc");
    }
}
