//! Mattermost's PostgreSQL tenant, over TCP as an administrator: the login role with the vault's
//! password, the database owned by that role, and its `public` schema effectively owned by it
//! (PostgreSQL 15 took CREATE on `public` away from ordinary roles, the blog's "silent crash").
//! Observes first and runs DDL only for what differs, so a second run runs none. TLS is verified
//! against the city CA (verify-full) whenever the server offers it. Passwords reach the server
//! only as SCRAM verifiers, never in clear text.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, config::SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::secrets::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum PgError {
    #[error(
        "admin URL {url:?} is not usable: {rule}. Form: postgres://USER@HOST:PORT/DATABASE (the password goes in a file or PGPASSWORD, never in the URL)"
    )]
    BadUrl { url: String, rule: &'static str },
    #[error(
        "cannot reach PostgreSQL at {server}: {detail}; check that it runs and listens on TCP there \
(listen_addresses, port, firewall), or fix --admin-url"
    )]
    Unreachable { server: String, detail: String },
    #[error(
        "PostgreSQL at {server} refused to authenticate {user}: {detail}; check the password \
(--admin-password-file, CITYD_DB_ADMIN_PASSWORD_FILE or PGPASSWORD) and the pg_hba.conf entry for this host"
    )]
    Authentication {
        server: String,
        user: String,
        detail: String,
    },
    #[error(
        "role {user} on {server} may not {what}: {detail}; connect as a superuser, or grant {user} {needed}"
    )]
    Privilege {
        server: String,
        user: String,
        what: String,
        needed: &'static str,
        detail: String,
    },
    #[error("TLS with PostgreSQL at {server} failed: {detail}; {fix}")]
    Tls {
        server: String,
        detail: String,
        fix: &'static str,
    },
    #[error("cannot read the city CA {path}: {detail}; run `cityd pki ensure`")]
    Ca {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("PostgreSQL at {server} failed to {what}: {detail}")]
    Query {
        server: String,
        what: String,
        detail: String,
    },
}

/// How the administrator reaches the server. The password never comes from the URL.
#[derive(Debug, Clone)]
pub struct Admin {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub password: Option<Secret>,
}

impl Admin {
    /// Parses `postgres://USER@HOST[:PORT][/DATABASE]`. A URL carrying a password is refused:
    /// command lines are readable by every local user.
    pub fn from_url(url: &str, password: Option<Secret>) -> Result<Self, PgError> {
        let bad = |rule| PgError::BadUrl {
            url: redact_url(url),
            rule,
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("it must start with postgres://"))?;
        if rest.contains('?') {
            return Err(bad(
                "query parameters are not accepted; TLS is chosen with --db-tls",
            ));
        }
        let (authority, dbname) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, hostport)) => (user, hostport),
            None => ("postgres", authority),
        };
        if user.contains(':') {
            return Err(bad(
                "it carries a password; put the password in --admin-password-file or PGPASSWORD",
            ));
        }
        if user.is_empty() {
            return Err(bad("the user name is empty"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 host needs a closing ]"))?;
            (host.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => 5432,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1-65535"))?,
        };
        Ok(Self {
            host,
            port,
            user: user.to_string(),
            dbname: if dbname.is_empty() {
                "postgres".into()
            } else {
                dbname.to_string()
            },
            password,
        })
    }

    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Never echo a password that someone put in a URL anyway.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if url[s + 3..at].contains(':') => {
            let user = url[s + 3..at].split(':').next().unwrap_or("");
            format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// TLS policy toward the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS verified against the city CA when the server offers it, plain otherwise.
    Auto,
    /// TLS verified against the city CA, or fail.
    Require,
    /// Never TLS.
    Disable,
}

/// The TLS setup: the mode and the city CA (PEM) to verify against.
#[derive(Clone)]
pub struct Tls {
    pub mode: TlsMode,
    pub ca_pem: Option<Vec<u8>>,
    pub ca_path: std::path::PathBuf,
}

impl Tls {
    /// Reads the CA if it exists. `Require` without a CA is an error; `Auto` without one stays plain.
    pub fn load(mode: TlsMode, ca_path: &std::path::Path) -> Result<Self, PgError> {
        let ca_pem = match std::fs::read(ca_path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode != TlsMode::Require => None,
            Err(e) => {
                return Err(PgError::Ca {
                    path: ca_path.to_path_buf(),
                    detail: e.to_string(),
                });
            }
        };
        Ok(Self {
            mode,
            ca_pem,
            ca_path: ca_path.to_path_buf(),
        })
    }

    fn connector(&self) -> Result<Option<MakeRustlsConnect>, PgError> {
        let Some(pem) = &self.ca_pem else {
            return Ok(None);
        };
        if self.mode == TlsMode::Disable {
            return Ok(None);
        }
        let ca_err = |detail: String| PgError::Ca {
            path: self.ca_path.clone(),
            detail,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| ca_err(e.to_string()))?;
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(ca_err("it holds no certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ca_err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }
}

/// The tenant as the city describes it.
pub struct Tenant<'a> {
    pub role: &'a str,
    pub database: &'a str,
    pub password: &'a Secret,
}

/// One statement `ensure` runs (or would run). The text never holds a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    pub what: String,
    pub statement: String,
    #[serde(skip)]
    sql: String,
}

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

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Turns a connection error into the error that names what failed.
fn connect_error(server: &str, user: &str, tls: &Tls, e: tokio_postgres::Error) -> PgError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return PgError::Authentication {
                server: server.into(),
                user: user.into(),
                detail: db.message().to_string(),
            };
        }
        return PgError::Query {
            server: server.into(),
            what: format!("accept a connection for {user}"),
            detail: db.message().to_string(),
        };
    }
    let detail = chain(&e);
    if detail.starts_with("error performing TLS handshake") {
        let fix = if tls.ca_pem.is_some() {
            "give the server a certificate from the city CA (its name must match the host you connect to), or use --db-tls disable"
        } else {
            "the server requires TLS; run `cityd pki ensure` so cityd can verify it against the city CA"
        };
        return PgError::Tls {
            server: server.into(),
            detail,
            fix,
        };
    }
    if detail.starts_with("authentication error") || detail.contains("password missing") {
        return PgError::Authentication {
            server: server.into(),
            user: user.into(),
            detail,
        };
    }
    PgError::Unreachable {
        server: server.into(),
        detail,
    }
}

/// A connected client and whether the connection is encrypted.
struct Session {
    client: Client,
    tls: bool,
    server: String,
    user: String,
}

async fn connect(
    admin: &Admin,
    user: &str,
    password: Option<&Secret>,
    dbname: &str,
    tls: &Tls,
) -> Result<Session, PgError> {
    let server = admin.server();
    let mut config = Config::new();
    config
        .host(&admin.host)
        .port(admin.port)
        .user(user)
        .dbname(dbname)
        .application_name("cityd")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(p) = password {
        config.password(p.expose());
    }
    let connector = tls.connector()?;
    let (client, encrypted) = match connector {
        Some(connector) => {
            config.ssl_mode(if tls.mode == TlsMode::Require {
                SslMode::Require
            } else {
                SslMode::Prefer
            });
            let (client, connection) = config
                .connect(connector)
                .await
                .map_err(|e| connect_error(&server, user, tls, e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            // Ask the server: `Prefer` falls back to plain when TLS is not offered.
            let row = client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .ok();
            let encrypted = row
                .and_then(|r| r.try_get::<_, bool>(0).ok())
                .unwrap_or(false);
            (client, encrypted)
        }
        None => {
            config.ssl_mode(SslMode::Disable);
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|e| connect_error(&server, user, tls, e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            (client, false)
        }
    };
    Ok(Session {
        client,
        tls: encrypted,
        server,
        user: user.to_string(),
    })
}

impl Session {
    fn query_error(&self, what: &str, e: tokio_postgres::Error) -> PgError {
        match e.as_db_error() {
            Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => PgError::Privilege {
                server: self.server.clone(),
                user: self.user.clone(),
                what: what.to_string(),
                needed: "CREATEROLE and CREATEDB, and membership in the tenant role",
                detail: db.message().to_string(),
            },
            Some(db) => PgError::Query {
                server: self.server.clone(),
                what: what.to_string(),
                detail: db.message().to_string(),
            },
            None => PgError::Query {
                server: self.server.clone(),
                what: what.to_string(),
                detail: chain(&e),
            },
        }
    }

    async fn rows(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, PgError> {
        self.client
            .query(sql, params)
            .await
            .map_err(|e| self.query_error(what, e))
    }

    async fn run(&self, action: &Action) -> Result<(), PgError> {
        self.client
            .batch_execute(&action.sql)
            .await
            .map_err(|e| self.query_error(&action.what, e))
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's stored form, for `password` with `salt`.
fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    type H = Hmac<Sha256>;
    let mac = |key: &[u8], data: &[u8]| -> [u8; 32] {
        let mut m = <H as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(data);
        m.finalize().into_bytes().into()
    };
    // PBKDF2-HMAC-SHA256, one block (RFC 5802 "Hi"). Vault passwords are ASCII letters and digits,
    // so SASLprep leaves them unchanged.
    let mut block = salt.to_vec();
    block.extend_from_slice(&1u32.to_be_bytes());
    let mut u = mac(password.as_bytes(), &block);
    let mut salted = u;
    for _ in 1..iterations {
        u = mac(password.as_bytes(), &u);
        for (s, x) in salted.iter_mut().zip(u.iter()) {
            *s ^= x;
        }
    }
    let client_key = mac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = mac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    )
}

fn new_verifier(password: &Secret) -> String {
    let mut salt = [0u8; 16];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut salt);
    scram_verifier(password.expose(), &salt, 4096)
}

/// Whether a stored `rolpassword` is a SCRAM verifier of `password`. Anything unparsable is "no".
fn verifier_matches(stored: &str, password: &Secret) -> bool {
    let parse = || -> Option<bool> {
        let rest = stored.strip_prefix("SCRAM-SHA-256$")?;
        let (params, _) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let iterations: u32 = iterations
            .parse()
            .ok()
            .filter(|i| (1..=10_000_000).contains(i))?;
        let salt = B64.decode(salt).ok()?;
        Some(scram_verifier(password.expose(), &salt, iterations) == stored)
    };
    parse().unwrap_or(false)
}

fn action(what: impl Into<String>, sql: String, shown: Option<String>) -> Action {
    Action {
        what: what.into(),
        statement: shown.unwrap_or_else(|| sql.clone()),
        sql,
    }
}

/// Converges the tenant (or, with `dry_run`, only observes and reports what it would run).
pub async fn ensure(
    admin: &Admin,
    tenant: &Tenant<'_>,
    tls: &Tls,
    dry_run: bool,
) -> Result<Report, PgError> {
    let s = connect(
        admin,
        &admin.user,
        admin.password.as_ref(),
        &admin.dbname,
        tls,
    )
    .await?;
    let version: String = s
        .rows("read the server version", "SHOW server_version", &[])
        .await?
        .first()
        .and_then(|r| r.try_get(0).ok())
        .unwrap_or_default();
    let me = s
        .rows(
            "read the admin's privileges",
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?;
    let (is_super, can_createrole, can_createdb) = me
        .first()
        .map(|r| {
            (
                r.get::<_, bool>(0),
                r.get::<_, bool>(1),
                r.get::<_, bool>(2),
            )
        })
        .unwrap_or((false, false, false));
    if is_super && !dry_run {
        // Role statements carry the password's SCRAM verifier: keep this session's statements
        // out of a server log that records them all (only a superuser may change that).
        s.client
            .batch_execute("SET log_statement = 'none'; SET log_min_error_statement = 'panic'")
            .await
            .map_err(|e| s.query_error("turn statement logging off for this session", e))?;
    }

    let role_row = s
        .rows(
            "look up the tenant role",
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
            &[&tenant.role],
        )
        .await?;
    let role_can_login: Option<bool> = role_row.first().map(|r| r.get(0));
    let db_owner: Option<String> = s
        .rows(
            "look up the tenant database",
            "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
            &[&tenant.database],
        )
        .await?
        .first()
        .map(|r| r.get(0));

    let role = ident(tenant.role);
    let db = ident(tenant.database);
    let mut actions = Vec::new();
    let mut notes = Vec::new();
    let need = |what: &str, ok: bool, needed: &'static str| -> Result<(), PgError> {
        if is_super || ok {
            Ok(())
        } else {
            Err(PgError::Privilege {
                server: s.server.clone(),
                user: admin.user.clone(),
                what: what.to_string(),
                needed,
                detail: "it is neither superuser nor holds that attribute".into(),
            })
        }
    };
    match role_can_login {
        None => {
            need("create the role", can_createrole, "CREATEROLE")?;
            let verifier = new_verifier(tenant.password);
            actions.push(action(
                format!("create role {}", tenant.role),
                format!("CREATE ROLE {role} LOGIN PASSWORD '{verifier}'"),
                Some(format!(
                    "CREATE ROLE {role} LOGIN PASSWORD '<SCRAM verifier of the vault password>'"
                )),
            ));
        }
        Some(can_login) => {
            if !can_login {
                need("let the role log in", can_createrole, "CREATEROLE")?;
                actions.push(action(
                    format!("let role {} log in", tenant.role),
                    format!("ALTER ROLE {role} LOGIN"),
                    None,
                ));
            }
            if is_super {
                let stored: Option<String> = s
                    .rows(
                        "read the tenant's password verifier",
                        "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                        &[&tenant.role],
                    )
                    .await?
                    .first()
                    .and_then(|r| r.get(0));
                if !stored.is_some_and(|v| verifier_matches(&v, tenant.password)) {
                    actions.push(password_action(tenant));
                }
            }
        }
    }
    match &db_owner {
        None => {
            need("create the database", can_createdb, "CREATEDB")?;
            actions.push(action(
                format!(
                    "create database {} owned by {}",
                    tenant.database, tenant.role
                ),
                format!("CREATE DATABASE {db} OWNER {role} ENCODING 'UTF8'"),
                None,
            ));
        }
        Some(owner) if owner != tenant.role => actions.push(action(
            format!(
                "hand database {} from {owner} to {}",
                tenant.database, tenant.role
            ),
            format!("ALTER DATABASE {db} OWNER TO {role}"),
            None,
        )),
        Some(_) => {}
    }

    if !dry_run {
        for a in &actions {
            // CREATE DATABASE cannot run inside a transaction block, so each statement runs alone.
            s.run(a).await?;
        }
    }

    // Without superuser, the only proof of the password is logging in with it.
    if role_can_login.is_some() && !is_super {
        match connect(
            admin,
            tenant.role,
            Some(tenant.password),
            if db_owner.is_some() {
                tenant.database
            } else {
                &admin.dbname
            },
            tls,
        )
        .await
        {
            Ok(_) => {}
            Err(PgError::Authentication { detail, .. }) if detail.contains("password") => {
                need("set the tenant's password", can_createrole, "CREATEROLE")?;
                let a = password_action(tenant);
                if !dry_run {
                    s.run(&a).await?;
                }
                actions.push(a);
            }
            Err(e) => notes.push(format!(
                "the tenant's password was not verified (cityd is not superuser and could not log in as {}: {e})",
                tenant.role
            )),
        }
    }

    // The schema lives inside the tenant database: look at it from there.
    let schema_owner = if db_owner.is_none() && dry_run {
        notes.push(format!(
            "public in the new database will belong to {} (PostgreSQL 15+: through pg_database_owner)",
            tenant.role
        ));
        None
    } else {
        let t = connect(
            admin,
            &admin.user,
            admin.password.as_ref(),
            tenant.database,
            tls,
        )
        .await?;
        let row = t
            .rows(
                "read the owner of schema public",
                "SELECT n.nspowner::regrole::text, pg_get_userbyid(d.datdba)::text \
                 FROM pg_namespace n, pg_database d \
                 WHERE n.nspname = 'public' AND d.datname = current_database()",
                &[],
            )
            .await?;
        match row.first() {
            None => {
                let a = action(
                    format!("create schema public owned by {}", tenant.role),
                    format!("CREATE SCHEMA public AUTHORIZATION {role}"),
                    None,
                );
                if !dry_run {
                    t.run(&a).await?;
                }
                actions.push(a);
                Some(tenant.role.to_string())
            }
            Some(r) => {
                let (nsp_owner, owner_now): (String, String) = (r.get(0), r.get(1));
                // In a dry run the database owner is still the old one; judge by what it will be.
                let db_owner_after = if dry_run {
                    tenant.role.to_string()
                } else {
                    owner_now
                };
                let effective = if nsp_owner == "pg_database_owner" {
                    db_owner_after
                } else {
                    nsp_owner.clone()
                };
                if effective != tenant.role {
                    let a = action(
                        format!("hand schema public from {nsp_owner} to {}", tenant.role),
                        format!("ALTER SCHEMA public OWNER TO {role}"),
                        None,
                    );
                    if !dry_run {
                        t.run(&a).await?;
                    }
                    actions.push(a);
                }
                Some(tenant.role.to_string())
            }
        }
    };

    Ok(Report {
        server: s.server.clone(),
        version,
        tls: s.tls,
        dry_run,
        role: tenant.role.to_string(),
        database: tenant.database.to_string(),
        schema_owner,
        actions,
        notes,
    })
}

fn password_action(tenant: &Tenant) -> Action {
    let verifier = new_verifier(tenant.password);
    action(
        format!("set the password of role {} from the vault", tenant.role),
        format!("ALTER ROLE {} PASSWORD '{verifier}'", ident(tenant.role)),
        Some(format!(
            "ALTER ROLE {} PASSWORD '<SCRAM verifier of the vault password>'",
            ident(tenant.role)
        )),
    )
}

/// Who effectively owns `public` in the tenant database, read by the administrator (for doctor).
pub async fn schema_owner(admin: &Admin, database: &str, tls: &Tls) -> Result<String, PgError> {
    let t = connect(admin, &admin.user, admin.password.as_ref(), database, tls).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_url_parses_and_refuses_passwords() {
        let a = Admin::from_url("postgres://admin@db.lan:5433/tenants", None).unwrap();
        assert_eq!(
            (a.user.as_str(), a.host.as_str(), a.port, a.dbname.as_str()),
            ("admin", "db.lan", 5433, "tenants")
        );
        let d = Admin::from_url("postgresql://127.0.0.1", None).unwrap();
        assert_eq!(
            (d.user.as_str(), d.port, d.dbname.as_str()),
            ("postgres", 5432, "postgres")
        );
        let v6 = Admin::from_url("postgres://u@[::1]:6000/x", None).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 6000));
        assert_eq!(v6.server(), "[::1]:6000");
        let err = Admin::from_url("postgres://admin:hunter2@db:5432/x", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("password"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
        for bad in [
            "mysql://x",
            "postgres://u@h:0/x",
            "postgres://u@:5432",
            "postgres://h/x?sslmode=require",
        ] {
            assert!(Admin::from_url(bad, None).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn scram_verifier_matches_an_independent_computation() {
        // RFC 7677's example inputs (password "pencil", this salt, 4096 rounds); the expected keys
        // were computed independently with Python's hashlib.pbkdf2_hmac and hmac.
        let secret = Secret::new("pencil".into());
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = scram_verifier(secret.expose(), &salt, 4096);
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert!(verifier_matches(&v, &secret));
        assert!(!verifier_matches(&v, &Secret::new("pencil2".into())));
        for junk in [
            "",
            "md5abc",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$x:y$z",
            "SCRAM-SHA-256$99999999999:AA==$a:b",
        ] {
            assert!(!verifier_matches(junk, &secret), "{junk:?}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("mattermost"), "\"mattermost\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
    }
}
