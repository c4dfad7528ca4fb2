//! Mattermost's PostgreSQL tenant, over TCP as an administrator: the login role with the vault's
//! password, the database owned by that role, and its `public` schema effectively owned by it
//! (PostgreSQL 15 took CREATE on `public` away from ordinary roles, the blog's "silent crash").
//! Converged like the wiring: `desired` (the tenant from the city and the vault) -> `observe` (the
//! server) -> `plan` (pure diff into statements) -> `apply` (only those), so a second run runs no
//! DDL. `session` connects, verifying TLS against the city CA (verify-full) whenever the server
//! offers it; passwords reach the server only as SCRAM verifiers (`scram`).

pub mod admin;
pub mod apply;
pub mod audit;
pub mod desired;
pub mod error;
pub mod observe;
pub mod plan;
pub mod scram;
pub mod session;

use anyhow::Context as _;
use serde::Serialize;

pub use admin::Admin;
pub use desired::{Tenant, shown_dsn};
pub use error::PgError;
pub use plan::Action;
pub use session::{Tls, TlsMode};

use crate::city::City;
use crate::report::{Outcome, Step};
use crate::secrets::{SecretName, Vault};
use crate::state::StateDir;
use observe::{Login, Password};
use session::Session;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub server: String,
    pub version: String,
    pub tls: bool,
    pub dry_run: bool,
    pub role: String,
    pub database: String,
    /// Who effectively owns `public` in the tenant database after this run (or now, in a dry run).
    pub schema_owner: Option<String>,
    pub actions: Vec<Action>,
    pub notes: Vec<String>,
}

impl Report {
    /// The tenant as one step of a larger converge (`cityd up`).
    pub fn step(&self) -> Step {
        let what: Vec<_> = self.actions.iter().map(|a| a.what.as_str()).collect();
        Step::new(
            "postgres",
            format!("{}@{}", self.role, self.server),
            Outcome::updated_if(!self.actions.is_empty(), self.dry_run),
        )
        .detail(what.join("; "))
    }
}

/// The tenant step from typed values: the TLS set-up from the city CA under `state` (read now, so
/// a CA made earlier in the same run is used), the password from the vault, then [`ensure`].
pub async fn ensure_tenant(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    admin: &Admin,
    mode: TlsMode,
    dry_run: bool,
) -> anyhow::Result<Report> {
    let tls = Tls::load(mode, &state.ca_pem())?;
    let password = vault
        .get(SecretName::MattermostDbPassword)
        .context("the tenant's password comes from the vault")?;
    let tenant = Tenant::new(city, &password, &scram::random_salt());
    Ok(ensure(admin, &tenant, &tls, dry_run).await?)
}

/// Converges the tenant (or, with `dry_run`, only observes and reports what it would run). The
/// role and database come first; the password proof (when cityd is not superuser) and the schema
/// can only be observed once they exist.
pub async fn ensure(
    admin: &Admin,
    tenant: &Tenant<'_>,
    tls: &Tls,
    dry_run: bool,
) -> Result<Report, PgError> {
    let s = Session::admin(admin, &admin.dbname, tls).await?;
    let observed = observe::server(&s, tenant).await?;
    let privileges = observed.privileges;
    let refused = |r: plan::Refusal| PgError::Privilege {
        server: s.server.clone(),
        user: admin.user.clone(),
        what: r.what.to_string(),
        needed: r.needed,
        detail: "it is neither superuser nor holds that attribute".into(),
    };
    let mut actions = plan::server(tenant, &observed).map_err(refused)?;
    if !dry_run {
        if privileges.superuser {
            apply::quiet_statement_log(&s).await?;
        }
        apply::run(&s, &actions).await?;
    }

    let mut notes = Vec::new();
    // Without superuser, the only proof of the password is logging in with it.
    if observed
        .role
        .is_some_and(|r| r.password == Password::Unread)
    {
        let dbname = if observed.database_owner.is_some() {
            tenant.database
        } else {
            &admin.dbname
        };
        match observe::login(admin, tenant, dbname, tls).await {
            Login::Accepted => {}
            Login::WrongPassword => {
                let reset = plan::password(tenant, &privileges).map_err(refused)?;
                if !dry_run {
                    s.run(&reset).await?;
                }
                actions.push(reset);
            }
            Login::Unverified(why) => notes.push(format!(
                "the tenant's password was not verified (cityd is not superuser and could not log in as {}: {why})",
                tenant.role
            )),
        }
    }

    // The schema lives inside the tenant database: look at it from there.
    let schema_owner = if observed.database_owner.is_none() && dry_run {
        notes.push(format!(
            "public in the new database will belong to {} (PostgreSQL 15+: through pg_database_owner)",
            tenant.role
        ));
        None
    } else {
        let t = Session::admin(admin, tenant.database, tls).await?;
        let schema = observe::schema(&t).await?;
        if let Some(action) = plan::schema(tenant, &schema, dry_run) {
            if !dry_run {
                t.run(&action).await?;
            }
            actions.push(action);
        }
        Some(tenant.role.to_string())
    };

    Ok(Report {
        server: s.server.clone(),
        version: observed.version,
        tls: s.tls,
        dry_run,
        role: tenant.role.to_string(),
        database: tenant.database.to_string(),
        schema_owner,
        actions,
        notes,
    })
}
