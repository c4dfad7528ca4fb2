//! `cityd down [--purge] [--dry-run] [--json]`: stop and remove the city's containers. Volumes,
//! the network and every file under the state directory stay, unless `--purge` removes the volumes,
//! the network (when nothing else uses it) and the containers' host directories. The vault, the PKI
//! and the rendered files are never removed.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::Context;
use crate::docker;
use crate::report::Report;
use crate::report::Step;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also remove Mattermost's volumes (its data, logs and plugins), the network, and the
    /// containers' host directories under <state>/mattermost and <state>/coturn.
    #[arg(long)]
    pub purge: bool,
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Json<'a> {
    dry_run: bool,
    purge: bool,
    steps: &'a [Step],
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let mut report = Report::new(args.dry_run, args.json);
    ctx.block_on(async {
        let engine = docker::connect().await?;
        docker::city::teardown(&engine, city, state, args.purge, args.dry_run, &mut report).await
    })??;
    if args.json {
        crate::report::print_json(&Json {
            dry_run: args.dry_run,
            purge: args.purge,
            steps: &report.steps,
        })?;
    } else if !args.purge {
        println!(
            "volumes, the network and {} stay; `cityd down --purge` removes the volumes too",
            state.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
