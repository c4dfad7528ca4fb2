//! `cityd db ensure [--dry-run] [--json]`: Mattermost's PostgreSQL tenant (role, database, schema
//! ownership) through an administrator connection.

use std::process::ExitCode;

use crate::cli::Context;
use crate::flags::postgres_admin::AdminArgs;
use crate::postgres::{self, Report};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Create the tenant role and database if absent, and make the role own the database and its
    /// public schema. Idempotent: a second run runs no DDL.
    #[command(
        long_about = "Converge Mattermost's PostgreSQL tenant from [database] in the city: \
a login role (name = user) with the vault's mattermost-db-password, a database owned by it, and \
schema public effectively owned by it. PostgreSQL 15 revoked CREATE on public from ordinary roles, \
so a database owned by postgres makes Mattermost fail at its first migration; owning the database \
fixes that (public belongs to pg_database_owner).\n\nThe administrator connects over TCP \
(--admin-url, password from --admin-password-file or PGPASSWORD). TLS is verified against the \
city CA whenever the server offers it. Passwords are sent as SCRAM verifiers only. Unreachable \
server, failed authentication and missing privileges are separate errors (exit 1)."
    )]
    Ensure(EnsureArgs),
}

#[derive(Debug, clap::Args)]
pub struct EnsureArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Observe and print the statements that would run; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Ensure(args) => ensure(ctx, args),
    }
}

fn ensure(ctx: &Context, args: EnsureArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let admin = args.admin.admin()?;
    let report = ctx.block_on(postgres::ensure_tenant(
        city,
        ctx.state()?,
        &ctx.vault()?,
        &admin,
        args.admin.tls_mode(city),
        args.dry_run,
    ))??;
    let dsn = postgres::shown_dsn(city);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a Report,
            dsn: String,
        }
        crate::report::print_json(&Out {
            report: &report,
            dsn,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&report);
    println!("DSN     {dsn}");
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report) {
    println!(
        "PostgreSQL {} at {} ({})",
        r.version,
        r.server,
        if r.tls {
            "TLS, verified against the city CA"
        } else {
            "no TLS"
        }
    );
    let verb = if r.dry_run { "would run" } else { "ran" };
    if r.actions.is_empty() {
        println!(
            "unchanged role {} owns database {} and schema public: no DDL",
            r.role, r.database
        );
    }
    for a in &r.actions {
        println!("{verb:<9} {}\n          {}", a.what, a.statement);
    }
    for n in &r.notes {
        println!("note      {n}");
    }
}
