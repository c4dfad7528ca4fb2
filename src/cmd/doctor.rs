//! `cityd doctor [--env FILE] [--secrets FILE] [--json]`: report known pitfalls with their fixes.
//! Exit 1 when any finding is an error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Context;
use crate::cmd::render::{Target, default_path, render_one};
use crate::doctor::{self, Finding, Severity};
use crate::secrets::Vault;

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

fn state_findings(ctx: &Context) -> anyhow::Result<Vec<Finding>> {
    let state = ctx.state()?;
    let city = ctx.city()?;
    let mut findings = doctor::audit_vault(&Vault::new(state));
    let lan = match crate::lan::resolve(&city.lan.addresses) {
        Ok(lan) => lan.into_iter().map(|l| l.address).collect::<Vec<_>>(),
        Err(e) => {
            findings.push(Finding {
                severity: Severity::Error,
                code: "lan-unresolved",
                subject: "lan.addresses".into(),
                problem: e.to_string(),
                fix: "set lan.addresses in the city description".into(),
            });
            return Ok(findings);
        }
    };
    let pki = crate::pki::inspect(state)?;
    findings.extend(doctor::audit_pki(
        pki.as_ref(),
        &crate::pki::wanted_sans(city, &lan),
    ));
    for (target, command) in [
        (Target::MattermostEnv, "cityd render mattermost-env"),
        (Target::Coturn, "cityd render coturn"),
    ] {
        // Without the vault there is nothing to compare against; the vault findings already say so.
        if let Ok(expected) = render_one(ctx, state, target, false) {
            findings.extend(doctor::audit_rendered(
                &default_path(state, target),
                &expected,
                command,
            ));
        }
    }
    findings.extend(crate::cmd::db::schema_findings(city, state));
    if let (Ok(env), Ok(conf)) = (
        render_one(ctx, state, Target::MattermostEnv, false),
        render_one(ctx, state, Target::Coturn, false),
    ) {
        findings.extend(crate::docker::audit::city_findings(
            &crate::docker::desired::Sources {
                city,
                lan: &lan,
                state,
                mattermost_env: &env,
                coturn_config: &conf,
                coturn_image_id: None,
                mattermost_image_id: None,
            },
        ));
    }
    Ok(findings)
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
    findings.sort_by(|a, b| b.severity.cmp(&a.severity));
    if args.json {
        crate::cmd::print_json(&findings)?;
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
