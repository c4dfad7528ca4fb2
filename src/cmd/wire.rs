//! `cityd wire [--dry-run] [--json]`: converge the city's Mattermost objects (team, channels,
//! memberships, bots, tokens, incoming webhooks, plugins) with `mattermost::wiring::converge`,
//! printing its progress and report as text or JSON.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::Context;
use crate::flags::mattermost_server::{ServerArgs, parse_wait};
use crate::mattermost::ApiClient;
use crate::mattermost::wiring::{self, Options};

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
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_wait)]
    pub plugin_timeout: Duration,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let vault = ctx.vault()?;
    let client = ApiClient::new(args.server.target(ctx.state()?)?)?;
    let options = Options {
        dry_run: args.dry_run,
        ready_timeout: args.server.timeout,
        plugin_timeout: args.plugin_timeout,
    };
    let (report, result) = ctx.block_on(wiring::converge_shown(
        city, &vault, &client, options, args.json,
    ))?;
    if let Some(report) = report.filter(|_| args.json) {
        crate::report::print_json(&report)?;
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
