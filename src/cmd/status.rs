//! `cityd status [--json]`: the city at a glance, one line per check (`crate::status`), green,
//! yellow or red with the fix; exit 1 when any line is red.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::Context;
use crate::status::{self, Inputs};

#[derive(Debug, clap::Args)]
#[command(
    long_about = "One screen that says how the city is doing: each container (image, up \
since, health, restarts); Mattermost (ping with database and file store, version, the Calls \
plugin, plugins running); PostgreSQL (version, database size, connections); coturn (a real TURN \
allocation and relayed round trip, timed); the server certificate (SANs, days left, whether the \
current LAN address is still in it); the vault; the relay (listening, backlog, oldest undelivered \
event); the last backup's age. Every line is green, yellow or red, and names the fix when it is \
not green. Exit 1 when any line is red. Reads only."
)]
pub struct Args {
    /// Machine-readable: {"level", "lines": [{"area", "subject", "level", "text", "fix"}], "seconds"}.
    #[arg(long)]
    pub json: bool,
    /// How long the TURN probe may take (e.g. 2s).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = crate::flags::mattermost_server::parse_wait)]
    pub turn_timeout: Duration,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let lan = ctx.lan_addresses()?;
    let vault = ctx.vault()?;
    let inputs = Inputs {
        city: ctx.city()?,
        state: ctx.state()?,
        vault: &vault,
        lan: &lan,
        turn_deadline: args.turn_timeout,
    };
    let status = ctx.block_on(status::collect(&inputs))?;
    if args.json {
        crate::report::print_json(&status)?;
    } else {
        print!("{}", status.text(std::io::stdout().is_terminal()));
    }
    Ok(if status.is_red() {
        ExitCode::from(crate::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
