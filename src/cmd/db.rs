//! `cityd db ensure [--dry-run] [--json]`: Mattermost's PostgreSQL tenant (role, database, schema
//! ownership) through an administrator connection. Also the admin-connection flags `cityd up` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::city::City;
use crate::cli::Context;
use crate::exit::{self, Failure};
use crate::postgres::{self, Admin, PgError, Report, Tenant, Tls, TlsMode};
use crate::render::{Inputs, mattermost_env};
use crate::secrets::{Secret, SecretName, Vault};
use crate::state::StateDir;

#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// How cityd reaches PostgreSQL as an administrator: postgres://USER@HOST:PORT/DATABASE.
    /// No password here (command lines are visible to every local user).
    #[arg(
        long,
        env = "CITYD_DB_ADMIN_URL",
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// File whose first line is the administrator's password. Without it, PGPASSWORD is used,
    /// and without that, no password is sent (trust or peer setups).
    #[arg(long, env = "CITYD_DB_ADMIN_PASSWORD_FILE", value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// TLS toward PostgreSQL. auto: verify-full against <state>/pki/ca.pem whenever the server
    /// offers TLS; require: the same, but refuse plain connections (implied by [database] tls = true).
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub db_tls: TlsMode,
}

impl AdminArgs {
    /// The admin connection and TLS setup, reading the password file or PGPASSWORD.
    pub fn resolve(&self, city: &City, state: &StateDir) -> anyhow::Result<(Admin, Tls)> {
        let password = match &self.admin_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Failure::new(
                        exit::BAD_INPUT,
                        format!(
                            "cannot read the admin password file {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                let line = text.lines().next().unwrap_or("").to_string();
                if line.is_empty() {
                    return Err(Failure::new(
                        exit::BAD_INPUT,
                        format!(
                            "the admin password file {} is empty; its first line must be the password",
                            path.display()
                        ),
                    )
                    .into());
                }
                Some(Secret::new(line))
            }
            None => std::env::var("PGPASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
        };
        let admin = Admin::from_url(&self.admin_url, password)
            .map_err(|e| Failure::new(exit::BAD_INPUT, e.to_string()))?;
        let mode = if city.database.tls && self.db_tls == TlsMode::Auto {
            TlsMode::Require
        } else {
            self.db_tls
        };
        let tls = Tls::load(mode, &state.pki_dir().join(crate::pki::files::CA_PEM))?;
        Ok((admin, tls))
    }
}

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
        Command::Ensure(args) => ensure_cmd(ctx, args),
    }
}

/// The DSN Mattermost gets, with the password shown as the vault entry it comes from.
pub fn shown_dsn(city: &City) -> String {
    let inputs = Inputs {
        city,
        lan: &[],
        origin: "",
    };
    mattermost_env::database_dsn(
        &inputs,
        &Secret::new("<vault:mattermost-db-password>".into()),
    )
}

/// Runs the tenant step; shared with `cityd up`.
pub fn ensure_tenant(
    city: &City,
    state: &StateDir,
    admin_args: &AdminArgs,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let (admin, tls) = admin_args.resolve(city, state)?;
    let vault = Vault::new(state);
    let password = vault
        .get(SecretName::MattermostDbPassword)
        .context("the tenant's password comes from the vault")?;
    let tenant = Tenant {
        role: &city.database.user,
        database: &city.database.name,
        password: &password,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime
        .block_on(postgres::ensure(&admin, &tenant, &tls, dry_run))
        .map_err(|e: PgError| Failure::new(exit::FAILED, e.to_string()))?;
    Ok(report)
}

fn ensure_cmd(ctx: &Context, args: EnsureArgs) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let report = ensure_tenant(city, state, &args.admin, args.dry_run)?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a Report,
            dsn: String,
        }
        crate::cmd::print_json(&Out {
            report: &report,
            dsn: shown_dsn(city),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    print_report(&report);
    println!("DSN     {}", shown_dsn(city));
    Ok(ExitCode::SUCCESS)
}

pub fn print_report(r: &Report) {
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

/// `cityd doctor`'s look at the tenant: who effectively owns `public` in its database. Runs only
/// when CITYD_DB_ADMIN_URL says where PostgreSQL is (password: CITYD_DB_ADMIN_PASSWORD_FILE or
/// PGPASSWORD), so hosts without a reachable database get no noise.
pub fn schema_findings(city: &City, state: &StateDir) -> Vec<crate::doctor::Finding> {
    use crate::doctor::{Finding, Severity};
    let Some(url) = std::env::var("CITYD_DB_ADMIN_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        return Vec::new();
    };
    let args = AdminArgs {
        admin_url: url,
        admin_password_file: std::env::var_os("CITYD_DB_ADMIN_PASSWORD_FILE").map(PathBuf::from),
        db_tls: TlsMode::Auto,
    };
    let subject = format!("database {}", city.database.name);
    let problem = |severity, code, problem: String, fix: &str| Finding {
        severity,
        code,
        subject: subject.clone(),
        problem,
        fix: fix.to_string(),
    };
    let owner = args.resolve(city, state).and_then(|(admin, tls)| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(postgres::schema_owner(&admin, &city.database.name, &tls))?)
    });
    match owner {
        Ok(owner) if owner == city.database.user => Vec::new(),
        Ok(owner) => vec![problem(
            Severity::Error,
            "schema-owner",
            format!(
                "schema public in {} belongs to {owner}, not {}: since PostgreSQL 15 only the owner may CREATE there, so Mattermost's first migration fails",
                city.database.name, city.database.user
            ),
            "run `cityd db ensure` (it makes the tenant own the database and its public schema)",
        )],
        Err(e) => vec![problem(
            Severity::Warning,
            "schema-owner-unknown",
            format!("cannot read the owner of schema public: {e:#}"),
            "check CITYD_DB_ADMIN_URL and the admin password, or unset CITYD_DB_ADMIN_URL",
        )],
    }
}
