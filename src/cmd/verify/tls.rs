//! `cityd verify tls` (placeholder until its issue lands).

use std::process::ExitCode;

use crate::cli::Context;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cityd verify tls is not built yet")
}
