//! `cityd doctor [--env FILE] [--secrets FILE] [--json]`: report known pitfalls with their fixes.
//! Exit 1 when any finding is an error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Context;
use crate::doctor::{self, Finding, Severity};
use crate::flags::postgres_admin::AdminArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Audit an existing blog-style Mattermost env file instead of the city's state.
    #[arg(long, value_name = "FILE")]
    pub env: Option<PathBuf>,
    /// Also audit the blog's secrets file (cicd.env) for missing or mis-shaped secrets.
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The city's state, through `doctor::state::audit` with what the context resolved.
fn state_findings(ctx: &Context) -> anyhow::Result<Vec<Finding>> {
    let state = ctx.state()?;
    let city = ctx.city()?;
    let vault = ctx.vault()?;
    let origin = ctx.city_origin();
    let lan = ctx.lan_addresses();
    // The tenant is looked at only when the environment says where PostgreSQL is.
    let database = AdminArgs::from_env().map(|args| (args.admin(), args.tls_mode(city)));
    let inputs = doctor::state::Inputs {
        city,
        origin: &origin,
        state,
        vault: &vault,
        lan: lan.as_deref(),
        database: database
            .as_ref()
            .map(|(admin, mode)| (admin.as_ref(), *mode)),
    };
    ctx.block_on(doctor::state::audit(&inputs))?
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut findings = Vec::new();
    if let Some(env) = &args.env {
        findings.extend(doctor::audit_mattermost_env(
            &env.display().to_string(),
            &read(env)?,
        ));
    }
    if let Some(secrets) = &args.secrets {
        findings.extend(doctor::audit_secrets_env(
            &secrets.display().to_string(),
            &read(secrets)?,
        ));
    }
    if args.env.is_none() && args.secrets.is_none() {
        findings.extend(state_findings(ctx)?);
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    if args.json {
        crate::report::print_json(&findings)?;
    } else if findings.is_empty() {
        println!("no findings");
    } else {
        for f in &findings {
            let tag = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            println!(
                "{tag}[{}] {}\n    {}\n    fix: {}",
                f.code, f.subject, f.problem, f.fix
            );
        }
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        println!(
            "{} error(s), {} warning(s), {} note(s)",
            count(Severity::Error),
            count(Severity::Warning),
            count(Severity::Info)
        );
    }
    Ok(if doctor::worst(&findings) == Some(Severity::Error) {
        ExitCode::from(crate::exit::FAILED)
    } else {
        ExitCode::SUCCESS
    })
}
