//! `cityd verify webhook [--channel NAME]... [--json]`: post a uniquely tagged message through
//! each channel's incoming webhook (URL from the vault) and read it back from the channel through
//! the API within a deadline (`mattermost::webhook_verify`). Used by the lab and the NixOS VM tests.

use std::process::ExitCode;
use std::time::Duration;

use crate::cli::Context;
use crate::flags::mattermost_server::{ServerArgs, parse_wait};
use crate::mattermost::webhook_verify::{self, Request};

#[derive(Debug, clap::Args)]
#[command(
    about = "Post a tagged message through each channel's incoming webhook and read it back",
    long_about = "For each channel with a webhook in the city (or each --channel), post a uniquely tagged \
message through the incoming webhook whose URL `cityd wire` stored in the vault, then read the channel \
through the API (local socket, or --url with --token-file) until the message shows up. Exits 1 when any \
channel fails.\n\nThe stored URL names the SiteURL's host (e.g. mattermost.cicd.local:8065). When that \
name does not resolve where this runs, --base-url replaces the scheme and host:port (the /hooks/<id> \
path is kept): https://192.168.1.20:8065 works with the city certificate, which carries the LAN IP. \
HTTPS trusts only <state>/pki/ca.pem; http:// URLs (a test server) are posted to in plain HTTP."
)]
pub struct Args {
    /// Channel to check (repeatable). Default: every channel with a webhook in the city.
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Post to this scheme://host:port instead of the SiteURL's (the hook path is kept).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// How long each message may take to appear in its channel.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_wait)]
    pub deadline: Duration,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let request = Request {
        channels: args.channels,
        base_url: args.base_url,
        deadline: args.deadline,
        ready_timeout: args.server.timeout,
        city_origin: ctx.city_origin(),
    };
    let target = args.server.target(state)?;
    let vault = ctx.vault()?;
    let checks = ctx.block_on(webhook_verify::verify(
        city, state, &vault, target, &request,
    ))??;
    if args.json {
        crate::report::print_json(&checks)?;
    } else {
        for line in checks.iter().filter_map(|c| c.text_line()) {
            println!("{line}");
        }
    }
    webhook_verify::all_delivered(&checks)?;
    Ok(ExitCode::SUCCESS)
}
