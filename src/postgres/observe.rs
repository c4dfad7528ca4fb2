//! What the server holds for the tenant, read and never changed: the administrator's privileges,
//! the role and whether its password is the vault's, the database's owner, and who owns `public`
//! inside it.

use super::desired::Tenant;
use super::scram;
use super::session::{Session, Tls};
use super::{Admin, PgError};

/// What the administrator may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Privileges {
    pub superuser: bool,
    pub create_role: bool,
    pub create_db: bool,
}

/// Whether the role's stored password is the vault's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    Matches,
    Differs,
    /// Only a superuser may read `pg_authid`; otherwise logging in as the tenant is the proof.
    Unread,
}

/// The tenant role as it exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Role {
    pub can_login: bool,
    pub password: Password,
}

/// The server-level objects: what `plan::server` compares with the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub version: String,
    pub privileges: Privileges,
    pub role: Option<Role>,
    /// The tenant database's owner, when the database exists.
    pub database_owner: Option<String>,
}

/// Reads the server-level state through the administrator's session.
pub async fn server(s: &Session, tenant: &Tenant<'_>) -> Result<Server, PgError> {
    let version: String = s
        .rows("read the server version", "SHOW server_version", &[])
        .await?
        .first()
        .and_then(|r| r.try_get(0).ok())
        .unwrap_or_default();
    let privileges = s
        .rows(
            "read the admin's privileges",
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .first()
        .map(|r| Privileges {
            superuser: r.get(0),
            create_role: r.get(1),
            create_db: r.get(2),
        })
        .unwrap_or_default();
    let can_login: Option<bool> = s
        .rows(
            "look up the tenant role",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&tenant.role],
        )
        .await?
        .first()
        .map(|r| r.get(0));
    let role = match can_login {
        None => None,
        Some(can_login) => Some(Role {
            can_login,
            password: if privileges.superuser {
                let stored: Option<String> = s
                    .rows(
                        "read the tenant's password verifier",
                        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                        &[&tenant.role],
                    )
                    .await?
                    .first()
                    .and_then(|r| r.get(0));
                if stored.is_some_and(|v| scram::matches(&v, tenant.password)) {
                    Password::Matches
                } else {
                    Password::Differs
                }
            } else {
                Password::Unread
            },
        }),
    };
    let database_owner: Option<String> = s
        .rows(
            "look up the tenant database",
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&tenant.database],
        )
        .await?
        .first()
        .map(|r| r.get(0));
    Ok(Server {
        version,
        privileges,
        role,
        database_owner,
    })
}

/// What logging in as the tenant with the vault's password showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    Accepted,
    WrongPassword,
    /// The login failed for another reason, so the password is neither proven nor disproven.
    Unverified(String),
}

/// Logs in as the tenant to `dbname`: the proof of its password when cityd is not superuser.
pub async fn login(admin: &Admin, tenant: &Tenant<'_>, dbname: &str, tls: &Tls) -> Login {
    match Session::connect(admin, tenant.role, Some(tenant.password), dbname, tls).await {
        Ok(_) => Login::Accepted,
        Err(PgError::Authentication { detail, .. }) if detail.contains("password") => {
            Login::WrongPassword
        }
        Err(e) => Login::Unverified(e.to_string()),
    }
}

/// Schema `public` inside the tenant database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schema {
    Missing,
    /// `owner` may be `pg_database_owner` (PostgreSQL 15+), which stands for the database's owner.
    Present {
        owner: String,
        database_owner: String,
    },
}

/// Reads schema `public` through a session connected to the tenant database.
pub async fn schema(t: &Session) -> Result<Schema, PgError> {
    let rows = t
        .rows(
            "read the owner of schema public",
            "SELECT n.nspowner::regrole::text, pg_get_userbyid(d.datdba)::text \
             FROM pg_namespace n, pg_database d \
             WHERE n.nspname = 'public' AND d.datname = current_database()",
            &[],
        )
        .await?;
    Ok(match rows.first() {
        None => Schema::Missing,
        Some(r) => Schema::Present {
            owner: r.get(0),
            database_owner: r.get(1),
        },
    })
}
