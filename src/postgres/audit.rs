//! `cityd doctor`'s read-only look at the tenant: who effectively owns `public` in its database.

use super::session::{Session, Tls, TlsMode};
use super::{Admin, PgError};
use crate::city::City;
use crate::doctor::{Finding, Severity};
use crate::state::StateDir;

/// Who effectively owns `public` in the tenant database, read by the administrator.
pub async fn schema_owner(admin: &Admin, database: &str, tls: &Tls) -> Result<String, PgError> {
    let t = Session::admin(admin, database, tls).await?;
    let rows = t
        .rows(
            "read the owner of schema public",
            "SELECT CASE WHEN n.nspowner::regrole::text = 'pg_database_owner' \
             THEN pg_get_userbyid(d.datdba)::text ELSE n.nspowner::regrole::text END \
             FROM pg_namespace n, pg_database d \
             WHERE n.nspname = 'public' AND d.datname = current_database()",
            &[],
        )
        .await?;
    Ok(rows
        .first()
        .map(|r| r.get::<_, String>(0))
        .unwrap_or_else(|| "(no schema public)".into()))
}

/// Findings about schema `public` in the tenant database: an error when another role owns it
/// (Mattermost's first migration fails), a warning when it cannot be read. `admin` is the
/// administrator as the environment names it, or why it could not be resolved.
pub async fn schema_findings(
    city: &City,
    state: &StateDir,
    admin: Result<&Admin, &anyhow::Error>,
    mode: TlsMode,
) -> Vec<Finding> {
    let subject = format!("database {}", city.database.name);
    let problem = |severity, code, problem: String, fix: &str| {
        Finding::new(severity, code, &subject, problem, fix)
    };
    let owner = async {
        let admin = admin.map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let tls = Tls::load(mode, &state.ca_pem())?;
        anyhow::Ok(schema_owner(admin, &city.database.name, &tls).await?)
    };
    match owner.await {
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
