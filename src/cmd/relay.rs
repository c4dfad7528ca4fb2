//! `cityd relay serve`: resolves the relay's settings from the city, the vault and the flags, then
//! runs it until SIGTERM or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::Context;
use crate::exit::{BAD_INPUT, Failure};
use crate::mattermost::Target;
use crate::mattermost::transport::parse_base_url;
use crate::relay::deliver::Routes;
use crate::relay::message::MessageSettings;
use crate::relay::post::HookUrl;
use crate::relay::{self, RelayConfig};
use crate::secrets::{Secret, SecretName};
use crate::state::StateDir;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Receive SonarQube webhooks on POST /sonarqube and relay them to Mattermost, durably.
    ///
    /// Each request is checked (X-Sonar-Webhook-HMAC-SHA256 against the vault's
    /// sonarqube-webhook-secret: 401; Content-Type application/json: 415; body size: 413; payload:
    /// 400), appended to the spool and synced to disk, then answered 202. A worker posts failed
    /// quality gates to #alerts (and passes to #builds when the city's relay.post_passes is true)
    /// through the incoming webhooks in the vault (webhook-alerts, webhook-builds), retrying with
    /// backoff while Mattermost is down. Each event posts once: duplicates (same SonarQube task id)
    /// are dropped at the door, and a post whose outcome is unknown after a crash is looked up in
    /// the channel (via --mattermost-socket or --mattermost-url) before any repost.
    ///
    /// GET /healthz answers 200 once the spool is recovered. Prometheus metrics are served on
    /// --metrics (loopback only) at /metrics. SIGTERM or SIGINT: stop accepting, finish open
    /// requests and posts in flight, exit 0.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address SonarQube posts to. Default: the city's relay.listen (0.0.0.0:9180).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Prometheus listener, loopback only. Default: the city's relay.metrics (127.0.0.1:9181).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<SocketAddr>,
    /// Spool directory (durable queue of accepted events). Default: <state>/relay-spool.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Read the webhook secret from this file instead of the vault's sonarqube-webhook-secret.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Read a channel's incoming-webhook URL from FILE instead of the vault's webhook-CHANNEL
    /// (CHANNEL is alerts or builds). Repeatable.
    #[arg(long, value_name = "CHANNEL=FILE")]
    pub webhook_url_file: Vec<String>,
    /// Also post passed quality gates to #builds (the city's relay.post_passes turns it on too).
    #[arg(long)]
    pub post_passes: bool,
    /// Public SonarQube root for message links. Default: the city's relay.dashboard_url, else the
    /// links in the payload.
    #[arg(long, value_name = "URL")]
    pub dashboard_url: Option<String>,
    /// Mattermost's local-mode socket, used to read channels back after an uncertain post.
    #[arg(long, value_name = "PATH", conflicts_with = "mattermost_url")]
    pub mattermost_socket: Option<PathBuf>,
    /// Mattermost URL for reading channels back with a token (needs --token-file).
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub mattermost_url: Option<String>,
    /// File holding a token that can read the relay's channels (with --mattermost-url).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) trusted for https webhook and API URLs. Default: <state>/pki/ca.pem
    /// when it exists.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Seconds one post to Mattermost may take before its outcome counts as unknown.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub post_timeout: f64,
    /// Largest accepted body in bytes (larger: 413).
    #[arg(long, value_name = "BYTES", default_value_t = relay::http::DEFAULT_BODY_LIMIT)]
    pub max_body: usize,
    /// Posts in flight at once while Mattermost answers.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub concurrency: usize,
    /// Resolve and print the settings (never secret values) without listening.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable output: the settings with --dry-run, else one JSON line when ready.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_travel_over_https_or_to_loopback_only() {
        for ok in [
            "https://mm.cicd.local:8065",
            "http://127.0.0.1:8065",
            "http://localhost:8065/",
            "http://[::1]:8065",
        ] {
            assert!(super::plain_http_is_safe(ok), "{ok}");
        }
        for bad in [
            "http://192.168.1.5:8065",
            "http://mm.cicd.local",
            "ftp://127.0.0.1",
        ] {
            assert!(!super::plain_http_is_safe(bad), "{bad}");
        }
    }
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(ctx, args),
    }
}

/// The settings as printed by --dry-run: no secret values, no webhook URLs.
#[derive(Serialize)]
struct Plan {
    listen: SocketAddr,
    metrics: SocketAddr,
    spool: PathBuf,
    spool_exists: bool,
    secret_from: String,
    alerts_webhook_from: String,
    builds_webhook_from: Option<String>,
    post_passes: bool,
    dashboard_url: Option<String>,
    readback: Option<String>,
    ca_file: Option<PathBuf>,
    post_timeout_seconds: f64,
    max_body: usize,
    concurrency: usize,
}

fn bad_input(message: String) -> anyhow::Error {
    Failure::new(BAD_INPUT, message).into()
}

fn read_one_line(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} from {}", path.display()))?;
    let value = text.trim_end_matches(['\n', '\r']).trim();
    if value.is_empty() {
        return Err(bad_input(format!(
            "{} is empty; it must hold the {what}",
            path.display()
        )));
    }
    Ok(Secret::new(value.to_string()))
}

/// `https://` anything, or `http://` to this machine only (a token must not cross a network in clear).
fn plain_http_is_safe(url: &str) -> bool {
    url.starts_with("https://") || parse_base_url(url).is_ok_and(|u| u.loopback)
}

fn serve(ctx: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let vault = ctx.vault()?;

    let listen = args.listen.unwrap_or(city.relay.listen);
    let metrics = args.metrics.unwrap_or(city.relay.metrics);
    if !metrics.ip().is_loopback() {
        return Err(bad_input(format!(
            "--metrics {metrics} is not a loopback address: metrics are unauthenticated; use 127.0.0.1:PORT"
        )));
    }
    let spool = args.spool.clone().unwrap_or_else(|| state.relay_spool());
    let post_passes = args.post_passes || city.relay.post_passes;
    let dashboard_url = args
        .dashboard_url
        .clone()
        .or_else(|| city.relay.dashboard_url.clone());
    if let Some(url) = &dashboard_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(bad_input(format!(
            "dashboard URL {url} must start with http:// or https://"
        )));
    }
    if !(args.post_timeout.is_finite() && args.post_timeout > 0.0 && args.post_timeout <= 300.0) {
        return Err(bad_input(format!(
            "--post-timeout {} must be between 0 and 300 seconds",
            args.post_timeout
        )));
    }

    let mut url_files: Vec<(String, PathBuf)> = Vec::new();
    for spec in &args.webhook_url_file {
        let Some((channel, file)) = spec.split_once('=') else {
            return Err(bad_input(format!(
                "--webhook-url-file {spec}: expected CHANNEL=FILE, e.g. alerts=/run/keys/alerts-url"
            )));
        };
        if !matches!(channel, "alerts" | "builds") {
            return Err(bad_input(format!(
                "--webhook-url-file {spec}: the relay posts to alerts and builds only"
            )));
        }
        url_files.push((channel.to_string(), PathBuf::from(file)));
    }
    let url_origin = |channel: &str| -> String {
        url_files
            .iter()
            .find(|(c, _)| c == channel)
            .map(|(_, f)| f.display().to_string())
            .unwrap_or_else(|| {
                vault
                    .path_of(&StateDir::webhook_secret_name(channel))
                    .display()
                    .to_string()
            })
    };
    let secret_from = args.secret_file.as_ref().map_or_else(
        || {
            vault
                .path_of(SecretName::SonarqubeWebhookSecret.file_name())
                .display()
                .to_string()
        },
        |p| p.display().to_string(),
    );
    let ca_file = args.ca_file.clone().or_else(|| {
        let default = state.ca_pem();
        default.is_file().then_some(default)
    });
    let readback_label = match (&args.mattermost_socket, &args.mattermost_url) {
        (Some(socket), _) => Some(format!("local-mode socket {}", socket.display())),
        (None, Some(url)) => Some(url.clone()),
        (None, None) => None,
    };

    if args.dry_run {
        let plan = Plan {
            listen,
            metrics,
            spool_exists: spool.is_dir(),
            spool,
            secret_from,
            alerts_webhook_from: url_origin("alerts"),
            builds_webhook_from: post_passes.then(|| url_origin("builds")),
            post_passes,
            dashboard_url,
            readback: readback_label,
            ca_file,
            post_timeout_seconds: args.post_timeout,
            max_body: args.max_body,
            concurrency: args.concurrency,
        };
        if args.json {
            crate::cmd::print_json(&plan)?;
        } else {
            println!(
                "would listen on      {} (POST /sonarqube, GET /healthz)",
                plan.listen
            );
            println!("would serve metrics  http://{}/metrics", plan.metrics);
            println!(
                "spool                {}{}",
                plan.spool.display(),
                if plan.spool_exists {
                    ""
                } else {
                    " (to be created)"
                }
            );
            println!("webhook secret from  {}", plan.secret_from);
            println!("#alerts webhook from {}", plan.alerts_webhook_from);
            match &plan.builds_webhook_from {
                Some(from) => println!("#builds webhook from {from} (passes are posted)"),
                None => println!("passes               not posted"),
            }
            println!(
                "read-back            {}",
                plan.readback
                    .as_deref()
                    .unwrap_or("none: a post of unknown outcome would be repeated (at least once)")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let secret = match &args.secret_file {
        Some(path) => read_one_line(path, "SonarQube webhook secret")?,
        None => vault
            .get(SecretName::SonarqubeWebhookSecret)
            .context("the relay verifies SonarQube's signature with the vault's secret")?,
    };
    let hook = |channel: &str| -> anyhow::Result<HookUrl> {
        let (url, origin) = match url_files.iter().find(|(c, _)| c == channel) {
            Some((_, file)) => (
                read_one_line(file, &format!("#{channel} webhook URL"))?,
                file.display().to_string(),
            ),
            None => {
                let name = StateDir::webhook_secret_name(channel);
                let url = vault.read(&name)?.ok_or_else(|| {
                    bad_input(format!(
                        "the vault has no {name} (the #{channel} incoming webhook URL); run `cityd wire`, or pass --webhook-url-file {channel}=FILE"
                    ))
                })?;
                (url, vault.path_of(&name).display().to_string())
            }
        };
        Ok(HookUrl::parse(channel, url.expose(), &origin)?)
    };
    let routes = Routes {
        alerts: hook("alerts")?,
        builds: if post_passes {
            Some(hook("builds")?)
        } else {
            None
        },
        post_passes,
    };
    let readback = match (
        &args.mattermost_socket,
        &args.mattermost_url,
        &args.token_file,
    ) {
        (Some(socket), _, _) => Some(Target::Socket(socket.clone())),
        (None, Some(url), Some(token_file)) => {
            if !plain_http_is_safe(url) {
                return Err(bad_input(format!(
                    "--mattermost-url {url}: a token is sent only over https:// (plain http:// only to a loopback address)"
                )));
            }
            Some(Target::Url {
                base: url.trim_end_matches('/').to_string(),
                token: read_one_line(token_file, "Mattermost token")?,
                ca_pem: ca_file.clone(),
            })
        }
        (None, Some(_), None) => bail!("--mattermost-url needs --token-file"),
        (None, None, _) => None,
    };
    if readback.is_none() {
        tracing::warn!(
            "no --mattermost-socket or --mattermost-url: after a crash, a post whose outcome is unknown is repeated (at least once, not exactly once)"
        );
    }

    let config = RelayConfig {
        listen,
        metrics,
        spool_dir: spool,
        secret,
        routes,
        settings: MessageSettings { dashboard_url },
        readback,
        ca_file,
        post_timeout: Duration::from_secs_f64(args.post_timeout),
        body_limit: args.max_body,
        concurrency: args.concurrency,
    };
    let json = args.json;
    // The program's runtime has two workers: the HTTP intake and the delivery worker run side by
    // side; the spool's writer is a thread of its own, outside the runtime.
    ctx.block_on(async move {
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        // Both handlers exist before `ready` is announced, so no signal meets the default action.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot install the SIGTERM handler")?;
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .context("cannot install the SIGINT handler")?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: finishing open requests and posts"),
                _ = interrupt.recv() => tracing::info!("SIGINT: finishing open requests and posts"),
            }
            on_signal.cancel();
        });
        relay::serve(config, cancel, |ready| {
            let mut out = std::io::stdout().lock();
            if json {
                let line = serde_json::json!({ "event": "ready", "relay": ready });
                let _ = writeln!(out, "{line}");
            } else {
                let _ = writeln!(
                    out,
                    "relay ready: POST http://{}/sonarqube, metrics http://{}/metrics, spool {} ({} undelivered, {} to check in the channels)",
                    ready.listen,
                    ready.metrics,
                    ready.spool.display(),
                    ready.pending + ready.in_flight,
                    ready.in_flight
                );
            }
            let _ = out.flush();
        })
        .await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}
