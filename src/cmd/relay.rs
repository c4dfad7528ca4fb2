//! `cityd relay serve`: maps the flags to the relay's settings (`relay::settings`), prints the plan
//! under `--dry-run`, else runs the relay until SIGTERM or SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::Context;
use crate::relay;
use crate::relay::settings::{self, Flags, Plan};

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
    /// A request without a well-formed signature header is refused before its body is read.
    /// Connections are capped (--max-connections, --max-connections-per-peer) and timed
    /// (--header-timeout, --body-timeout); the process needs --max-connections + --concurrency +
    /// 128 file descriptors (RLIMIT_NOFILE) and refuses to start with fewer.
    ///
    /// GET /healthz answers 200 once the spool is recovered. Prometheus metrics are served on
    /// --metrics (loopback only) at /metrics. SIGTERM or SIGINT: stop accepting, let open
    /// requests finish for --shutdown-grace (then cut them off), finish posts in flight, sync the
    /// spool, exit 0.
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
    /// A request's line and headers must arrive in full within this after the connection opens
    /// or the previous response; an idle connection is closed after it too. E.g. 10s, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse_flag)]
    pub header_timeout: Duration,
    /// A request's body must arrive in full within this after its header (else 408).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::duration::parse_flag)]
    pub body_timeout: Duration,
    /// Open webhook connections at once; at the cap the longest-idle one is closed for a new one.
    #[arg(long, value_name = "N", default_value_t = relay::limits::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Open webhook connections from one IP address.
    #[arg(long, value_name = "N", default_value_t = relay::limits::DEFAULT_MAX_PER_PEER)]
    pub max_connections_per_peer: usize,
    /// Body bytes buffered at once across all requests whose signature is not yet verified.
    #[arg(long, value_name = "BYTES", default_value_t = relay::limits::DEFAULT_MAX_UNVERIFIED_BYTES)]
    pub max_unverified_bytes: usize,
    /// On SIGTERM or SIGINT, how long started requests may take before they are cut off.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = crate::duration::parse_flag)]
    pub shutdown_grace: Duration,
    /// Resolve and print the settings (never secret values) without listening.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable output: the settings with --dry-run, else one JSON line when ready.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => serve(ctx, args),
    }
}

impl ServeArgs {
    fn flags(&self) -> Flags {
        Flags {
            listen: self.listen,
            metrics: self.metrics,
            spool: self.spool.clone(),
            secret_file: self.secret_file.clone(),
            webhook_url_file: self.webhook_url_file.clone(),
            post_passes: self.post_passes,
            dashboard_url: self.dashboard_url.clone(),
            mattermost_socket: self.mattermost_socket.clone(),
            mattermost_url: self.mattermost_url.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
            post_timeout_seconds: self.post_timeout,
            max_body: self.max_body,
            concurrency: self.concurrency,
            limits: relay::limits::Limits {
                header_timeout: self.header_timeout,
                body_timeout: self.body_timeout,
                max_connections: self.max_connections,
                max_per_peer: self.max_connections_per_peer,
                max_unverified_bytes: self.max_unverified_bytes,
                shutdown_grace: self.shutdown_grace,
            },
        }
    }
}

fn print_plan(plan: &Plan) {
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
        "connections          at most {} ({} per address); header within {}s, body within {}s",
        plan.max_connections,
        plan.max_connections_per_peer,
        plan.header_timeout_seconds,
        plan.body_timeout_seconds
    );
    println!(
        "unverified bodies    at most {} bytes at once; shutdown grace {}s",
        plan.max_unverified_bytes, plan.shutdown_grace_seconds
    );
    println!(
        "read-back            {}",
        plan.readback
            .as_deref()
            .unwrap_or("none: a post of unknown outcome would be repeated (at least once)")
    );
}

fn serve(ctx: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let vault = ctx.vault()?;
    let flags = args.flags();

    if args.dry_run {
        let plan = settings::plan(city, state, &vault, &flags)?;
        if args.json {
            crate::report::print_json(&plan)?;
        } else {
            print_plan(&plan);
        }
        return Ok(ExitCode::SUCCESS);
    }

    let config = settings::resolve(city, state, &vault, &flags)?;
    let json = args.json;
    // The program's runtime has two workers: the HTTP intake and the delivery worker run side by
    // side; the spool's writer is a thread of its own, outside the runtime.
    ctx.block_on(relay::serve_until_signal(config, |ready| {
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
    }))??;
    Ok(ExitCode::SUCCESS)
}
