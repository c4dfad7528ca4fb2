//! `cityd verify ...`: proofs against the running city, shared by the lab tests and the NixOS VM tests.

pub mod tls;
pub mod webhook;

use std::process::ExitCode;

use crate::cli::Context;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// TLS handshake by LAN IP with only the city CA trusted.
    Tls(tls::Args),
    Webhook(webhook::Args),
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Tls(args) => tls::run(ctx, args),
        Command::Webhook(args) => webhook::run(ctx, args),
    }
}
