//! `cityd down [--purge] [--dry-run] [--json]`: stop and remove the city's containers. Volumes,
//! the network and every file under the state directory stay, unless `--purge` removes the volumes,
//! the network (when nothing else uses it) and the containers' host directories. The vault, the PKI
//! and the rendered files are never removed.

use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Context;
use crate::docker::spec::{HostPaths, Names};
use crate::docker::{self, Outcome, Step};

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
struct Report {
    dry_run: bool,
    purge: bool,
    steps: Vec<Step>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let names = Names::new(city);
    let dry = args.dry_run;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut steps = runtime.block_on(async {
        let engine = docker::connect().await?;
        let mut steps = Vec::new();
        // Mattermost first: it is the one that talks to coturn's clients.
        for name in [names.mattermost(), names.coturn()] {
            steps.push(engine.remove_container(&name, &names.prefix, dry).await?);
        }
        if args.purge {
            for volume in names.volumes() {
                steps.push(engine.remove_volume(&volume, dry).await?);
            }
            steps.push(engine.remove_network(&names.network(), dry).await?);
        }
        anyhow::Ok(steps)
    })?;
    if args.purge {
        let paths = HostPaths::new(state);
        let dirs = [
            paths
                .mattermost_config
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
            paths
                .coturn_config
                .parent()
                .map(|p| p.to_path_buf())
                .unwrap_or_default(),
        ];
        for dir in dirs {
            let subject = dir.display().to_string();
            let outcome = if !dir.exists() {
                Outcome::Unchanged
            } else if dry {
                Outcome::WouldRemove
            } else {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
                Outcome::Removed
            };
            steps.push(Step::new("files", subject, outcome));
        }
    }
    if args.json {
        crate::cmd::print_json(&Report {
            dry_run: dry,
            purge: args.purge,
            steps,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &steps {
        let detail = if s.detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", s.detail)
        };
        println!(
            "{:<10} {:<13} {}{detail}",
            s.step,
            s.outcome.as_str(),
            s.subject
        );
    }
    if !args.purge {
        println!(
            "volumes, the network and {} stay; `cityd down --purge` removes the volumes too",
            state.root().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
