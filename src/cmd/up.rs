//! `cityd up [--dry-run] [--json]`: converge the whole city on a Docker host, step by step, each
//! step idempotent and reported: vault, PKI, rendered files, PostgreSQL tenant, network, volumes,
//! images, coturn, Mattermost, readiness, then `cityd wire`. The steps are `crate::up`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Context;
use crate::flags::postgres_admin::AdminArgs;
use crate::report::Report;
use crate::up;

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
socket).\n\n\
With [database] managed = true (the default city) cityd runs PostgreSQL 17 itself and reaches it as its \
superuser through a port published on 127.0.0.1 only; --admin-url, --admin-password-file and --db-tls \
then do not apply. Each container's health check (exec form) must pass before the run goes on."
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
    #[arg(long, value_name = "DURATION", default_value = "300s", value_parser = crate::flags::mattermost_server::parse_wait)]
    pub ready_timeout: Duration,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut report = Report::new(args.dry_run, args.json);
    let mut found = up::Found::default();
    let result = converge(ctx, &args, &mut report, &mut found);
    if args.json {
        // A failed run still reports the steps it took, so a script sees how far it got.
        crate::report::print_json(&up::Json::new(
            &report,
            &found,
            result.as_ref().err(),
            started.elapsed(),
        ))?;
    } else if result.is_ok() {
        println!(
            "{} in {:.1}s",
            report.summary("city converged"),
            started.elapsed().as_secs_f64()
        );
    }
    result.map(|()| ExitCode::SUCCESS)
}

fn converge(
    ctx: &Context,
    args: &Args,
    report: &mut Report,
    found: &mut up::Found,
) -> anyhow::Result<()> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let lan = ctx.lan_addresses()?;
    let vault = ctx.vault()?;
    let admin = if args.skip_db {
        None
    } else {
        Some(args.admin.admin()?)
    };
    let origin = ctx.city_origin();
    let options = up::Options {
        dry_run: args.dry_run,
        database: admin.as_ref().map(|a| (a, args.admin.tls_mode(city))),
        database_subject: &args.admin.admin_url,
        skip_wire: args.skip_wire,
        ready_timeout: args.ready_timeout,
        origin: &origin,
    };
    ctx.block_on(up::converge(
        city, state, &vault, &lan, &options, report, found,
    ))?
}
