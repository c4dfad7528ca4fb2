//! `cityd render mattermost-env | coturn | all [--out FILE] [--dry-run]`: render from the city, its
//! LAN addresses and the vault, then write only what changed (0600: the files hold secrets).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::Context;
use crate::render::Inputs;
use crate::render::files::{self, Target as File, TurnSecret};
use crate::report::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to render.
    #[arg(value_enum)]
    pub what: Target,
    /// Where to write (`-` for stdout). Default: <state>/render/mattermost.env or turnserver.conf.
    /// Not allowed with `all`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// coturn only: leave the static auth secret out (NixOS supplies it from static-auth-secret-file).
    #[arg(long)]
    pub without_secret: bool,
    /// Say what would change (setting names only, never values) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    MattermostEnv,
    Coturn,
    All,
}

/// One file in `--json`: the outcome is the text word ("would create"), as this verb always printed.
#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    outcome: &'static str,
    /// Settings (env keys or config lines' names) that differ from the file on disk.
    changed: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let targets = match args.what {
        Target::All => {
            anyhow::ensure!(
                args.out.is_none(),
                "--out names one file; render `mattermost-env` and `coturn` separately to choose paths"
            );
            File::ALL.to_vec()
        }
        Target::MattermostEnv => vec![File::MattermostEnv],
        Target::Coturn => vec![File::Coturn],
    };
    let lan = ctx.lan_addresses()?;
    let origin = ctx.city_origin();
    let inputs = Inputs {
        city: ctx.city()?,
        lan: &lan,
        origin: &origin,
    };
    let vault = ctx.vault()?;
    let turn_secret = if args.without_secret {
        TurnSecret::External
    } else {
        TurnSecret::Inline
    };
    if args.out.as_deref() == Some(Path::new("-")) {
        // `--out` names one file, so there is one target here.
        for target in targets {
            print!("{}", files::text(target, &inputs, &vault, turn_secret)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut rendered = Vec::new();
    for target in targets {
        let path = args
            .out
            .clone()
            .unwrap_or_else(|| target.default_path(state));
        rendered.push(files::render(
            target,
            &inputs,
            &vault,
            turn_secret,
            &path,
            args.dry_run,
        )?);
    }
    if args.json {
        let reports: Vec<Report> = rendered
            .into_iter()
            .map(|r| Report {
                file: r.path,
                outcome: r.outcome.as_str(),
                changed: r.changed,
            })
            .collect();
        crate::report::print_json(&reports)?;
    } else {
        for r in &rendered {
            let detail = if r.changed.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.changed.join(", "))
            };
            println!("{:<13} {}{detail}", r.outcome.as_str(), r.path.display());
        }
        if rendered.iter().all(|r| r.outcome == Outcome::Unchanged) {
            println!("no changes");
        }
    }
    Ok(ExitCode::SUCCESS)
}
