//! `cityd render mattermost-env | coturn | all [--out FILE] [--dry-run]`: render from the city, its
//! LAN addresses and the vault, then write only what changed (0600: the files hold secrets).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::Context;
use crate::fsx::{self, WriteOutcome};
use crate::render::{Inputs, coturn, mattermost_env};
use crate::secrets::{SecretName, Vault};
use crate::state::StateDir;

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

#[derive(Debug, Serialize)]
struct Report {
    file: PathBuf,
    outcome: String,
    /// Settings (env keys or config lines' names) that differ from the file on disk.
    changed: Vec<String>,
}

/// Renders one artefact. Shared with `cityd up`.
pub fn render_one(
    ctx: &Context,
    state: &StateDir,
    target: Target,
    without_secret: bool,
) -> anyhow::Result<String> {
    let city = ctx.city()?;
    let lan: Vec<_> = crate::lan::resolve(&city.lan.addresses)?
        .into_iter()
        .map(|l| l.address)
        .collect();
    let origin = ctx.city_origin();
    let inputs = Inputs {
        city,
        lan: &lan,
        origin: &origin,
    };
    let vault = Vault::new(state);
    match target {
        Target::MattermostEnv => {
            let get = |n| vault.get(n).context("the env file needs the vault");
            let db = get(SecretName::MattermostDbPassword)?;
            let at = get(SecretName::MattermostAtRestEncryptKey)?;
            let salt = get(SecretName::MattermostPublicLinkSalt)?;
            let turn = get(SecretName::TurnStaticAuthSecret)?;
            let secrets = mattermost_env::MattermostSecrets {
                db_password: &db,
                at_rest_encrypt_key: &at,
                public_link_salt: &salt,
                turn_static_auth_secret: &turn,
            };
            Ok(mattermost_env::render(&inputs, &secrets)?)
        }
        Target::Coturn => {
            if without_secret {
                Ok(coturn::render(&inputs, coturn::SecretSource::External))
            } else {
                let secret = vault
                    .get(SecretName::TurnStaticAuthSecret)
                    .context("the coturn config needs the TURN secret")?;
                Ok(coturn::render(
                    &inputs,
                    coturn::SecretSource::Inline(&secret),
                ))
            }
        }
        Target::All => unreachable!("`all` is expanded by the caller"),
    }
}

pub fn default_path(state: &StateDir, target: Target) -> PathBuf {
    match target {
        Target::MattermostEnv => state.rendered_mattermost_env(),
        Target::Coturn | Target::All => state.rendered_turnserver_conf(),
    }
}

/// Names of settings that differ between two renderings, never their values.
fn changed_settings(old: &str, new: &str) -> Vec<String> {
    let names = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect()
    };
    let (old, new) = (names(old), names(new));
    let mut out: Vec<String> = Vec::new();
    for (k, v) in &new {
        if !old.iter().any(|(ok, ov)| ok == k && ov == v) && !out.contains(k) {
            out.push(k.clone());
        }
    }
    for (k, v) in &old {
        if !new.iter().any(|(nk, nv)| nk == k && nv == v) && !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

/// Writes (or, in a dry run, compares) one rendered file.
pub fn write_rendered(
    path: &Path,
    text: &str,
    dry_run: bool,
) -> anyhow::Result<(String, Vec<String>)> {
    let old = std::fs::read_to_string(path).ok();
    // A new file changes every setting; listing them all would say nothing.
    let changed = old
        .as_deref()
        .map(|o| changed_settings(o, text))
        .unwrap_or_default();
    if dry_run {
        let outcome = match &old {
            None => "would create",
            Some(o) if o == text => "unchanged",
            Some(_) => "would update",
        };
        return Ok((outcome.to_string(), changed));
    }
    if let Some(dir) = path.parent() {
        StateDir::create_private_dir(dir)?;
    }
    let outcome = fsx::write_if_changed(path, text.as_bytes(), 0o600)?;
    let word = match outcome {
        WriteOutcome::Created => "created",
        WriteOutcome::Updated => "updated",
        WriteOutcome::Unchanged => "unchanged",
    };
    Ok((word.to_string(), changed))
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let targets = match args.what {
        Target::All => {
            anyhow::ensure!(
                args.out.is_none(),
                "--out names one file; render `mattermost-env` and `coturn` separately to choose paths"
            );
            vec![Target::MattermostEnv, Target::Coturn]
        }
        t => vec![t],
    };
    let mut reports = Vec::new();
    for target in targets {
        let text = render_one(ctx, state, target, args.without_secret)?;
        if args.out.as_deref() == Some(Path::new("-")) {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        let path = args
            .out
            .clone()
            .unwrap_or_else(|| default_path(state, target));
        let (outcome, changed) = write_rendered(&path, &text, args.dry_run)?;
        reports.push(Report {
            file: path,
            outcome,
            changed,
        });
    }
    if args.json {
        crate::cmd::print_json(&reports)?;
    } else {
        for r in &reports {
            let detail = if r.changed.is_empty() || r.outcome == "unchanged" {
                String::new()
            } else {
                format!(" ({})", r.changed.join(", "))
            };
            println!("{:<13} {}{detail}", r.outcome, r.file.display());
        }
        if reports.iter().all(|r| r.outcome == "unchanged") {
            println!("no changes");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn changed_settings_names_keys_not_values() {
        let got = super::changed_settings("A=1\nB=secret1\n# c\n", "A=1\nB=secret2\nC=3\n");
        assert_eq!(got, ["B", "C"]);
    }
}
