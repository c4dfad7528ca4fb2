//! `cityd up [--dry-run] [--json]`: converge the whole city on a Docker host, step by step, each
//! step idempotent and reported: vault, PKI, rendered files, PostgreSQL tenant, network, volumes,
//! images, coturn, Mattermost, readiness, then `cityd wire`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Serialize;

use crate::city::City;
use crate::cli::Context;
use crate::cmd::db::{self, AdminArgs};
use crate::cmd::render::{Target, default_path, render_one, write_rendered};
use crate::cmd::wire::{default_socket, parse_duration};
use crate::docker::desired::{self, Desired, Sources};
use crate::docker::{self, DockerError, Engine, Outcome, Step};
use crate::exit::{self, Failure};
use crate::mattermost::{ApiClient, Target as MmTarget, ready::wait_until_ready};
use crate::secrets::Vault;
use crate::state::StateDir;

#[derive(Debug, clap::Args)]
#[command(
    about = "Bring the city up on this Docker host: vault, PKI, rendered files, PostgreSQL tenant, containers, then wire",
    long_about = "Converge the city on this Docker host, in order: the vault, the PKI, the \
rendered env file and coturn configuration, the PostgreSQL tenant (as `cityd db ensure`), the network \
(cicd-net), Mattermost's four named volumes, the images (pulled with progress when missing), coturn on \
the host network, Mattermost, a wait until Mattermost answers on its local-mode socket, then `cityd wire`.\n\n\
Each container carries the SHA-256 of its spec (image and its ID, env, ports, mounts and the contents of \
mounted files) in the label org.cityd.spec. A container whose label matches is left running untouched; \
one whose spec changed is replaced. Every step reports created / updated / unchanged; --dry-run reports \
what it would do and changes nothing. The Docker engine is the one DOCKER_HOST names (default: the local \
socket)."
)]
pub struct Args {
    /// Print what each step would change, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable report on stdout (wire's report is embedded under "wire").
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Leave the PostgreSQL tenant alone (it is managed elsewhere).
    #[arg(long)]
    pub skip_db: bool,
    /// Stop after Mattermost is ready; do not run `cityd wire`.
    #[arg(long)]
    pub skip_wire: bool,
    /// How long Mattermost may take to answer on its socket (e.g. 90s, 5m).
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = parse_duration)]
    pub ready_timeout: Duration,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<crate::postgres::Report>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wire: Option<serde_json::Value>,
    changed: bool,
    /// Why the run stopped, when it failed (the same text as on stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    seconds: f64,
}

/// Prints each step as it completes (text mode) and keeps it for the JSON report.
struct Progress {
    json: bool,
    steps: Vec<Step>,
}

impl Progress {
    fn add(&mut self, step: Step) {
        if !self.json {
            let detail = if step.detail.is_empty() {
                String::new()
            } else {
                format!("  ({})", step.detail)
            };
            println!(
                "{:<10} {:<13} {}{detail}",
                step.step,
                step.outcome.as_str(),
                step.subject
            );
        }
        self.steps.push(step);
    }
}

fn write_outcome(word: &str) -> Outcome {
    match word {
        "created" => Outcome::Created,
        "updated" => Outcome::Updated,
        "would create" => Outcome::WouldCreate,
        "would update" => Outcome::WouldUpdate,
        _ => Outcome::Unchanged,
    }
}

/// What the steps found beyond their outcomes, for the JSON report.
#[derive(Default)]
struct Findings {
    database: Option<crate::postgres::Report>,
    wire: Option<serde_json::Value>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut p = Progress {
        json: args.json,
        steps: Vec::new(),
    };
    let mut findings = Findings::default();
    let result = converge(ctx, &args, &mut p, &mut findings);

    let changed = p.steps.iter().any(|s| s.outcome.changes_something());
    let dry = args.dry_run;
    if args.json {
        // A failed run still reports the steps it took, so a script sees how far it got.
        crate::cmd::print_json(&Report {
            dry_run: dry,
            changed,
            steps: p.steps,
            database: findings.database,
            wire: findings.wire,
            error: result.as_ref().err().map(|e| format!("{e:#}")),
            seconds: started.elapsed().as_secs_f64(),
        })?;
    } else if result.is_ok() {
        println!(
            "{} in {:.1}s",
            match (changed, dry) {
                (false, _) => "no changes",
                (true, true) => "dry run: nothing was changed",
                (true, false) => "city converged",
            },
            started.elapsed().as_secs_f64()
        );
    }
    result.map(|()| ExitCode::SUCCESS)
}

/// Every step in order; stops at the first that fails.
fn converge(
    ctx: &Context,
    args: &Args,
    p: &mut Progress,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let dry = args.dry_run;
    if !dry {
        StateDir::create_private_dir(state.root())?;
    }

    // 1. The vault.
    let vault = Vault::new(state);
    let secrets = if dry { vault.plan() } else { vault.ensure() }.context("the vault")?;
    let generated = secrets
        .secrets
        .iter()
        .filter(|s| s.action != crate::secrets::EnsureAction::Kept)
        .count();
    let vault_ready = generated == 0 || !dry;
    p.add(
        Step::new(
            "vault",
            vault.dir().display().to_string(),
            match (generated, dry) {
                (0, _) => Outcome::Unchanged,
                (_, true) => Outcome::WouldCreate,
                (_, false) => Outcome::Created,
            },
        )
        .detail(if generated > 0 {
            format!("{generated} secret(s)")
        } else {
            String::new()
        }),
    );

    // 2. The PKI.
    let lan: Vec<_> = crate::lan::resolve(&city.lan.addresses)?
        .into_iter()
        .map(|l| l.address)
        .collect();
    let options = crate::pki::EnsureOptions {
        dry_run: dry,
        ..Default::default()
    };
    let pki = crate::pki::ensure(state, city, &lan, &options)
        .map_err(|e| Failure::new(exit::FAILED, format!("the PKI: {e}")))?;
    p.add(
        Step::new(
            "pki",
            pki.dir.display().to_string(),
            match (pki.changed, dry) {
                (false, _) => Outcome::Unchanged,
                (true, true) => Outcome::WouldUpdate,
                (true, false) => Outcome::Updated,
            },
        )
        .detail(if pki.changed {
            format!(
                "CA {}, server certificate {}",
                pki.ca.as_str(),
                pki.server.as_str()
            )
        } else {
            String::new()
        }),
    );

    // 3. The rendered files.
    let mut rendered = Vec::new();
    for target in [Target::MattermostEnv, Target::Coturn] {
        let path = default_path(state, target);
        if !vault_ready {
            p.add(
                Step::new("render", path.display().to_string(), Outcome::WouldCreate)
                    .detail("after the vault exists"),
            );
            continue;
        }
        let text = render_one(ctx, state, target, false)?;
        let (word, changed) = write_rendered(&path, &text, dry)?;
        p.add(
            Step::new("render", path.display().to_string(), write_outcome(&word))
                .detail(changed.join(", ")),
        );
        rendered.push(text);
    }

    // 4. The PostgreSQL tenant.
    if args.skip_db {
        p.add(Step::new("postgres", &args.admin.admin_url, Outcome::Skipped).detail("--skip-db"));
    } else if !vault_ready {
        p.add(
            Step::new("postgres", &args.admin.admin_url, Outcome::WouldCreate)
                .detail("after the vault exists"),
        );
    } else {
        let report = db::ensure_tenant(city, state, &args.admin, dry)
            .context("the PostgreSQL tenant step")?;
        let outcome = match (report.actions.is_empty(), dry) {
            (true, _) => Outcome::Unchanged,
            (false, true) => Outcome::WouldUpdate,
            (false, false) => Outcome::Updated,
        };
        let what: Vec<_> = report.actions.iter().map(|a| a.what.as_str()).collect();
        p.add(
            Step::new(
                "postgres",
                format!("{}@{}", report.role, report.server),
                outcome,
            )
            .detail(what.join("; ")),
        );
        findings.database = Some(report);
    }

    // 5.-10. Docker.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mattermost_running =
        runtime.block_on(converge_docker(city, &lan, state, &rendered, args, p))?;
    drop(runtime);

    // 11. Wire.
    if args.skip_wire {
        p.add(Step::new("wire", "mattermost", Outcome::Skipped).detail("--skip-wire"));
    } else if dry && !mattermost_running {
        p.add(
            Step::new("wire", "mattermost", Outcome::Skipped)
                .detail("dry run: Mattermost is not up yet, so there is nothing to compare"),
        );
    } else {
        run_wire(ctx, state, args.json, dry, &mut findings.wire)?;
    }
    Ok(())
}

/// Network, volumes, images, host files, containers and readiness. Returns whether Mattermost is
/// running with its current spec (what a dry run of `wire` needs).
async fn converge_docker(
    city: &City,
    lan: &[std::net::IpAddr],
    state: &StateDir,
    rendered: &[String],
    args: &Args,
    p: &mut Progress,
) -> anyhow::Result<bool> {
    let dry = args.dry_run;
    let engine = docker::connect().await?;
    let names = crate::docker::spec::Names::new(city);
    let prefix = names.prefix.clone();

    p.add(
        engine
            .ensure_network(&names.network(), &prefix, dry)
            .await?,
    );
    for volume in names.volumes() {
        p.add(engine.ensure_volume(&volume, &prefix, dry).await?);
    }
    let (coturn_image, step) = engine.ensure_image(&city.docker.coturn_image, dry).await?;
    p.add(step);
    let (mattermost_image, step) = engine.ensure_image(&city.mattermost.image, dry).await?;
    p.add(step);

    let [mattermost_env, coturn_config] = rendered else {
        for name in names.containers() {
            p.add(
                Step::new("container", name, Outcome::WouldCreate)
                    .detail("after the vault and the rendered files exist"),
            );
        }
        return Ok(false);
    };
    let sources = Sources {
        city,
        lan,
        state,
        mattermost_env,
        coturn_config,
        coturn_image_id: coturn_image,
        mattermost_image_id: mattermost_image,
    };
    let desired = match desired::desired(&sources) {
        Ok(d) => d,
        Err(DockerError::MissingInput { .. }) if dry => {
            for name in names.containers() {
                p.add(
                    Step::new("container", name, Outcome::WouldCreate)
                        .detail("after the PKI exists"),
                );
            }
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    let Desired {
        coturn,
        coturn_files,
        mattermost,
        mattermost_files,
        ..
    } = &desired;

    for (files, spec) in [(coturn_files, coturn), (mattermost_files, mattermost)] {
        let changed = if dry { files.pending() } else { files.apply()? };
        let outcome = match (changed.is_empty(), dry) {
            (true, _) => Outcome::Unchanged,
            (false, true) => Outcome::WouldUpdate,
            (false, false) => Outcome::Updated,
        };
        let shown: Vec<String> = changed
            .iter()
            .filter_map(|c| c.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        p.add(Step::new("files", files.container, outcome).detail(shown.join(", ")));
        p.add(engine.ensure_container(spec, &prefix, dry).await?);
    }

    let ready_subject = mattermost.name.clone();
    if dry {
        let current = engine.inspect(&mattermost.name).await?;
        let up_to_date = current
            .as_ref()
            .and_then(|c| c.config.as_ref())
            .and_then(|c| c.labels.as_ref())
            .and_then(|l| l.get(crate::docker::spec::LABEL_SPEC))
            .is_some_and(|d| *d == mattermost.digest());
        return Ok(up_to_date);
    }
    let waited = wait_ready(&engine, &mattermost.name, state, args.ready_timeout).await?;
    p.add(
        Step::new("ready", ready_subject, Outcome::Unchanged)
            .detail(format!("answered after {:.1}s", waited.as_secs_f64())),
    );
    Ok(true)
}

/// Waits until Mattermost answers on its local-mode socket, failing early (with its logs) if the
/// container stops.
async fn wait_ready(
    engine: &Engine,
    name: &str,
    state: &StateDir,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = ApiClient::new(MmTarget::Socket(default_socket(state)))?;
    let ready = wait_until_ready(&client, timeout);
    tokio::pin!(ready);
    loop {
        tokio::select! {
            result = &mut ready => {
                result.context("waiting for Mattermost")?;
                return Ok(started.elapsed());
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                engine.require_running(name).await?;
            }
        }
    }
}

/// Runs `cityd wire` as a child with the same city and state, so its output and exit code stay
/// its own; in JSON mode its report is captured into `report`, also when wire fails.
fn run_wire(
    ctx: &Context,
    state: &StateDir,
    json: bool,
    dry_run: bool,
    report: &mut Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the cityd binary to run `cityd wire`")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--state-dir").arg(state.root());
    if let Some(city) = ctx.city_path() {
        cmd.arg("--city").arg(city);
    }
    cmd.arg("wire");
    if dry_run {
        cmd.arg("--dry-run");
    }
    let status = if json {
        cmd.arg("--json");
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running `cityd wire`")?;
        *report = serde_json::from_slice(&out.stdout).ok();
        out.status
    } else {
        println!("wire       (cityd wire)");
        cmd.status().context("running `cityd wire`")?
    };
    if !status.success() {
        return Err(Failure::new(
            exit::FAILED,
            format!("`cityd wire` failed ({status}); the containers are up, fix the cause and run `cityd up` or `cityd wire` again"),
        )
        .into());
    }
    Ok(())
}
