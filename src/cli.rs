//! The command line: global options, the verb list, the one `Context` they resolve into, dispatch to
//! `cmd::<verb>::run`, and the error printed once (`{:#}`) with its exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;
pub use crate::context::Context;

#[derive(Debug, Parser)]
#[command(
    name = "cityd",
    version,
    about = "Plan, converge and prove a self-hosted ChatOps command center",
    long_about = "cityd builds a sovereign ChatOps command center from one city description: \
Mattermost with Calls, coturn, PostgreSQL 17, a local CA that phones accept by LAN IP, and the \
wiring of Jenkins, GitLab and SonarQube. Every step is idempotent; --dry-run shows what would change."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Args)]
pub struct Global {
    /// City description (TOML, or JSON from the NixOS module). Default: the embedded default city.
    #[arg(long, global = true, env = "CITYD_CITY", value_name = "FILE")]
    pub city: Option<PathBuf>,
    /// State directory (secrets, PKI, rendered files). Default: /var/lib/cityd as root,
    /// $XDG_STATE_HOME/cityd otherwise. Never under /nix/store.
    #[arg(long, global = true, env = "CITYD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug). Logs go to stderr and never contain secret values.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Up(cmd::up::Args),
    /// Check or show the city description.
    #[command(subcommand)]
    Config(cmd::config::Command),
    /// The vault: generate, list, read and import secrets.
    #[command(subcommand)]
    Secrets(cmd::secrets::Command),
    /// The local root CA and the mobile-ready server certificate.
    #[command(subcommand)]
    Pki(cmd::pki::Command),
    /// Render Mattermost's env file or coturn's configuration.
    Render(cmd::render::Args),
    /// Find known pitfalls in the city's state or in a blog-style env file.
    Doctor(cmd::doctor::Args),
    /// TURN credentials and the relay probe.
    #[command(subcommand)]
    Turn(cmd::turn::Command),
    /// Prove the running city works: TLS by LAN IP, webhook delivery.
    #[command(subcommand)]
    Verify(cmd::verify::Command),
    Wire(cmd::wire::Args),
    /// Connect Jenkins, GitLab and SonarQube to the city's Mattermost channels.
    #[command(subcommand)]
    Connect(cmd::connect::Command),
    /// The SonarQube -> Mattermost alert relay (a long-running service).
    #[command(subcommand)]
    Relay(cmd::relay::Command),
    /// Stop and remove the city's containers (volumes and state stay unless --purge).
    Down(cmd::down::Args),
    /// Mattermost's PostgreSQL tenant: role, database, schema ownership.
    #[command(subcommand)]
    Db(cmd::db::Command),
    Onboard(cmd::onboard::Args),
    /// Hand the city to the engines that scale: Mattermost Operator manifests, rtcd, a TURN fleet.
    #[command(subcommand)]
    Export(cmd::export::Command),
    /// The whole city at a glance: containers, Mattermost, PostgreSQL, TURN, certificate, vault,
    /// relay, backups; green/yellow/red with the fix; exit 1 when anything is red.
    Status(cmd::status::Args),
    Backup(cmd::backup::Args),
    Restore(cmd::restore::Args),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.global.verbose);
    let ctx = Context::new(cli.global.city.clone(), cli.global.state_dir.clone());
    let result = match cli.command {
        Command::Up(args) => cmd::up::run(&ctx, args),
        Command::Config(c) => cmd::config::run(&ctx, c),
        Command::Secrets(c) => cmd::secrets::run(&ctx, c),
        Command::Pki(c) => cmd::pki::run(&ctx, c),
        Command::Render(args) => cmd::render::run(&ctx, args),
        Command::Doctor(args) => cmd::doctor::run(&ctx, args),
        Command::Turn(c) => cmd::turn::run(&ctx, c),
        Command::Verify(c) => cmd::verify::run(&ctx, c),
        Command::Wire(args) => cmd::wire::run(&ctx, args),
        Command::Connect(c) => cmd::connect::run(&ctx, c),
        Command::Relay(c) => cmd::relay::run(&ctx, c),
        Command::Down(args) => cmd::down::run(&ctx, args),
        Command::Db(c) => cmd::db::run(&ctx, c),
        Command::Onboard(args) => cmd::onboard::run(&ctx, args),
        Command::Export(c) => cmd::export::run(&ctx, c),
        Command::Status(args) => cmd::status::run(&ctx, args),
        Command::Backup(args) => cmd::backup::run(&ctx, args),
        Command::Restore(args) => cmd::restore::run(&ctx, args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            crate::exit::code_for(&error)
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CITYD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: stderr redirected to a log file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The long help of `cityd <path…> --help`, as a user sees it.
    fn long_help(path: &[&str]) -> String {
        let mut command = Cli::command();
        command.build();
        let mut sub = &mut command;
        for name in path {
            sub = sub
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        sub.render_long_help().to_string()
    }

    // A doc comment on a subcommand variant silently replaces its Args' long_about; these verbs
    // explain their contract there, so the explanation must reach `--help`.
    #[test]
    fn verbs_with_a_long_explanation_show_it_in_help() {
        for (path, phrase) in [
            (&["up"][..], "org.cityd.spec"),
            (&["wire"][..], "locked to their channels"),
            (&["verify", "webhook"][..], "uniquely tagged"),
            (&["db", "ensure"][..], "PostgreSQL 15 revoked CREATE"),
        ] {
            let help = long_help(path);
            assert!(
                help.contains(phrase),
                "cityd {path:?} --help lacks {phrase:?}:\n{help}"
            );
        }
    }

    #[test]
    fn every_verb_has_a_one_line_summary() {
        let command = Cli::command();
        for sub in command.get_subcommands() {
            let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
            assert!(!about.is_empty(), "cityd {} has no summary", sub.get_name());
            assert!(!about.contains('\n'), "cityd {}: {about}", sub.get_name());
        }
    }
}
