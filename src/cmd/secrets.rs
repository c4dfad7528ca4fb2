//! `cityd secrets ensure | list | get NAME | import-env FILE`: the vault from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::Context;
use crate::secrets::Vault;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate every missing secret; existing ones are validated and never rewritten.
    Ensure {
        /// Show what would be created without writing anything.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Names, lengths, paths and ages of the secrets; never their values.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print one secret's value on stdout (for piping into another tool; never logged).
    Get {
        /// File name in the vault, e.g. turn-static-auth-secret.
        name: String,
    },
    /// Adopt the secrets of the blog's cicd.env so an existing installation keeps its keys.
    ImportEnv {
        /// The env file (MATTERMOST_TURN_SECRET=..., quoted or not).
        file: PathBuf,
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let vault = Vault::new(&state);
    match command {
        Command::Ensure { dry_run, json } => {
            let report = if dry_run {
                vault.plan()?
            } else {
                vault.ensure()?
            };
            if json {
                crate::cmd::print_json(&report)?;
            } else {
                for e in &report {
                    println!("{:<8} {:<32} {}", e.action, e.name, e.path.display());
                }
                if report.iter().all(|e| e.action == "kept") {
                    println!("no changes");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json } => {
            let list = vault.list()?;
            if json {
                crate::cmd::print_json(&list)?;
            } else if list.is_empty() {
                println!(
                    "the vault at {} is empty; run `cityd secrets ensure`",
                    vault.dir().display()
                );
            } else {
                for e in &list {
                    let age = e.age_seconds.map_or("?".to_string(), human_age);
                    let mark = if e.valid { "" } else { "  (WRONG SHAPE)" };
                    println!(
                        "{:<32} {:>4} chars  {:>6}  {}{mark}",
                        e.name,
                        e.length,
                        age,
                        e.path.display()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { name } => {
            let secret = vault.read(&name)?.ok_or_else(|| {
                anyhow::anyhow!(
                    "no secret named {name:?} in {}; `cityd secrets list` shows what is there",
                    vault.dir().display()
                )
            })?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", secret.expose())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ImportEnv { .. } => {
            anyhow::bail!("secrets import-env is not built yet")
        }
    }
}

fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
