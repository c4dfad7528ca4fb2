//! `cityd verify webhook` (placeholder until its issue lands).

use std::process::ExitCode;

use crate::cli::Context;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cityd verify webhook is not built yet")
}
