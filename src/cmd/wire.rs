//! `cityd wire [--dry-run] [--json]`: converge the city's Mattermost objects (team, channels,
//! memberships, bots, tokens, incoming webhooks, plugins) by reading the server's state first.
//! Also the server-connection flags shared with `cityd verify webhook`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Context;
use crate::exit::{self, Failure};
use crate::mattermost::client::RequestCounts;
use crate::mattermost::model::Plugins;
use crate::mattermost::plugins::{self, Action, PluginApplier};
use crate::mattermost::ready::wait_until_ready;
use crate::mattermost::wiring::{self, Applier, Change, Desired, Item, Kind, Plan};
use crate::mattermost::{ApiClient, Target};
use crate::secrets::{Secret, Vault};
use crate::state::StateDir;

/// How cityd reaches Mattermost.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Mattermost's local-mode socket: plain HTTP, no token, needs root or UID 2000 (the socket
    /// is 0600, owned by the container's user). Default: <state>/mattermost/run/mattermost_local.socket,
    /// the host side of the directory bind-mounted at [mattermost] local_socket_dir.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub socket: Option<PathBuf>,
    /// Reach the API at this URL instead (https:// trusting only <state>/pki/ca.pem; plain
    /// http:// is accepted for loopback addresses only). Needs --token-file.
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub url: Option<String>,
    /// File holding a system admin's access token for --url (tokens never go on the command line).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for the server to answer GET /api/v4/system/ping (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl ServerArgs {
    /// The socket or URL, with the token read from its file.
    pub fn target(&self, state: &StateDir) -> anyhow::Result<Target> {
        if let (Some(url), Some(file)) = (&self.url, &self.token_file) {
            let text = std::fs::read_to_string(file).map_err(|e| {
                Failure::new(
                    exit::BAD_INPUT,
                    format!("cannot read the token file {}: {e}", file.display()),
                )
            })?;
            let token = text.trim();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(Failure::new(
                    exit::BAD_INPUT,
                    format!(
                        "the token file {} must hold one access token on one line",
                        file.display()
                    ),
                )
                .into());
            }
            let ca = state.ca_pem();
            return Target::url(url, Secret::new(token.to_string()), &ca)
                .map_err(|e| Failure::new(exit::BAD_INPUT, e.to_string()).into());
        }
        Ok(Target::Socket(
            self.socket.clone().unwrap_or_else(|| default_socket(state)),
        ))
    }
}

/// The host-side path of the local-mode socket under the state directory.
pub fn default_socket(state: &StateDir) -> PathBuf {
    state.mattermost_socket()
}

#[derive(Debug, clap::Args)]
#[command(
    about = "Converge the city's Mattermost objects: team, channels, bots, webhooks, plugins",
    long_about = "Converge the city's Mattermost objects: the team, its channels (town-square comes with the \
team), the admin's memberships, bot accounts (a user converted to a bot in local mode) with their tokens, \
incoming webhooks owned by their bots and locked to their channels, and the plugins. Everything is looked \
up by name on the server first; a second run makes no changing request and prints \"no changes\". \
Bot tokens and webhook URLs go to the vault (`cityd secrets get webhook-builds`), never to the output."
)]
pub struct Args {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Print the plan (create / update / unchanged per object) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,
    /// How long an enabled plugin may take to show up as running (e.g. 60s).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub plugin_timeout: Duration,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    target: String,
    dry_run: bool,
    items: &'a [Item],
    warnings: &'a [String],
    blockers: &'a [String],
    created: usize,
    updated: usize,
    unchanged: usize,
    applied: usize,
    requests: RequestCounts,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let target = args.server.target(state)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(wire(city, state, target, &args))
}

async fn wire(
    city: &crate::city::City,
    state: &StateDir,
    target: Target,
    args: &Args,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let vault = Vault::new(state);
    let client = ApiClient::new(target)?;
    wait_until_ready(&client, args.server.timeout).await?;

    let desired = Desired::from_city(city);
    let (observed, config) = wiring::observe(&client, &desired, &vault).await?;
    let mut plan = wiring::plan(&desired, &observed);

    let (specs, plugin_warnings) = plugins::desired(city, &vault)?;
    plan.warnings.extend(plugin_warnings);
    let installed = if specs.is_empty() {
        Plugins::default()
    } else {
        client.get_plugins().await?
    };
    let plugin_plan = plugins::plan(&specs, &config, &installed, client.target().is_local());
    // Bundles are fetched and checked against their pins before anything changes.
    let mut bundles = Vec::new();
    for action in &plugin_plan.actions {
        if let Action::Upload { plugin } = action {
            let spec = &specs[*plugin];
            let bundle = spec.bundle.as_ref().expect("uploads have bundles");
            match plugins::load_verified(spec.name, bundle).await {
                Ok(b) => bundles.push((*plugin, b)),
                Err(e) => plan.blockers.push(e.to_string()),
            }
        }
    }
    let plugin_actions = plugin_plan.actions.clone();
    plan.extend(plugin_plan.plan);

    let out = Output {
        json: args.json,
        target: client.target().to_string(),
    };
    if !plan.blockers.is_empty() || args.dry_run {
        let failed = !plan.blockers.is_empty();
        out.finish(&plan, args.dry_run, 0, client.counts(), started, None)?;
        if failed {
            return Err(Failure::new(
                exit::FAILED,
                format!(
                    "cityd wire changed nothing: {} problem(s) must be fixed first:\n  - {}",
                    plan.blockers.len(),
                    plan.blockers.join("\n  - ")
                ),
            )
            .into());
        }
        return Ok(ExitCode::SUCCESS);
    }

    if !args.json {
        println!("wiring Mattermost at {}", out.target);
    }
    let mut applied = 0usize;
    let mut progress = |item: &Item| {
        applied += 1;
        if !args.json {
            println!("{}", line(item, true));
        }
    };
    let mut applier = Applier::new(&client, &vault, &desired, &observed);
    let result = match applier.apply(&plan, &mut progress).await {
        Ok(()) => {
            let plugin_applier = PluginApplier {
                client: &client,
                specs: &specs,
                bundles: &bundles,
                start_timeout: args.plugin_timeout,
            };
            plugin_applier
                .apply(&plan, &plugin_actions, &mut progress)
                .await
                .map_err(anyhow::Error::from)
        }
        Err(e) => Err(anyhow::Error::from(e)),
    };
    let error = result.as_ref().err().map(|e| format!("{e:#}"));
    out.finish(&plan, false, applied, client.counts(), started, error)?;
    result.map(|()| ExitCode::SUCCESS)
}

struct Output {
    json: bool,
    target: String,
}

impl Output {
    fn finish(
        &self,
        plan: &Plan,
        dry_run: bool,
        applied: usize,
        requests: RequestCounts,
        started: Instant,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let (created, updated, unchanged) = (
            plan.count(Change::Create),
            plan.count(Change::Update),
            plan.count(Change::Unchanged),
        );
        if self.json {
            return crate::cmd::print_json(&Report {
                target: self.target.clone(),
                dry_run,
                items: &plan.items,
                warnings: &plan.warnings,
                blockers: &plan.blockers,
                created,
                updated,
                unchanged,
                applied,
                requests,
                seconds: started.elapsed().as_secs_f64(),
                error,
            });
        }
        if dry_run || !plan.blockers.is_empty() {
            println!(
                "plan for Mattermost at {} (dry run: nothing is changed)",
                self.target
            );
            for item in &plan.items {
                println!("{}", line(item, false));
            }
        }
        for w in &plan.warnings {
            eprintln!("warning: {w}");
        }
        let requests = format!(
            "{} requests, {} changing, {:.2}s",
            requests.total,
            requests.mutating,
            started.elapsed().as_secs_f64()
        );
        if plan.changes() == 0 {
            println!("no changes ({unchanged} objects checked; {requests})");
        } else if dry_run || !plan.blockers.is_empty() {
            println!(
                "would change {}: {created} to create, {updated} to update, {unchanged} unchanged ({requests})",
                plan.changes()
            );
        } else if error.is_none() {
            println!(
                "wired: {created} created, {updated} updated, {unchanged} unchanged ({requests})"
            );
        } else {
            println!(
                "stopped after {applied} of {} changes ({requests}); rerun `cityd wire` to finish",
                plan.changes()
            );
        }
        Ok(())
    }
}

/// One plan line: `  create     channel         #builds (detail)`; past tense once applied.
fn line(item: &Item, applied: bool) -> String {
    let (change, detail) = match (item.kind, item.change, applied) {
        (Kind::Plugin, Change::Create, true) => ("enabled", "running"),
        (Kind::PluginBundle, Change::Create | Change::Update, true) => {
            ("uploaded", item.detail.as_str())
        }
        (_, Change::Create, true) => ("created", item.detail.as_str()),
        (_, Change::Update, true) => ("updated", item.detail.as_str()),
        (_, c, _) => (c.label(), item.detail.as_str()),
    };
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    format!(
        "  {change:<10} {:<15} {}{detail}",
        item.kind.label(),
        item.name
    )
}

/// A server wait: the one duration grammar, at most a day.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse_at_most(text, Duration::from_secs(86_400))
}
