//! `cityd up`: converge the whole city, step by step, each step idempotent.

use std::process::ExitCode;

use crate::cli::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print what each step would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let _ = (ctx, args);
    anyhow::bail!("cityd up is not built yet")
}
