//! `cityd turn` (placeholder until its issue lands).

use std::process::ExitCode;

use crate::cli::Context;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Not built yet.
    Placeholder,
}

pub fn run(_ctx: &Context, _command: Command) -> anyhow::Result<ExitCode> {
    anyhow::bail!("cityd turn is not built yet")
}
