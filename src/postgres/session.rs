//! Connections to the server: the TLS policy (verify-full against the city CA whenever the server
//! offers TLS), connecting as a given user to a given database, and mapping driver errors to the
//! error that names what failed.

use std::time::Duration;

use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, config::SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::plan::Action;
use super::{Admin, PgError};
use crate::exit::causes_text as chain;
use crate::secrets::Secret;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The TLS setup: the mode and the city CA to verify against, loaded once.
#[derive(Clone)]
pub struct Tls {
    pub mode: TlsMode,
    pub ca: Option<crate::tls::CityCa>,
}

impl Tls {
    /// Loads the CA if it exists. `Require` without a CA is an error; `Auto` without one stays plain.
    pub fn load(mode: TlsMode, ca_path: &std::path::Path) -> Result<Self, PgError> {
        let ca = match crate::tls::CityCa::load(ca_path) {
            Ok(ca) => Some(ca),
            Err(crate::tls::CaError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && mode != TlsMode::Require =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self { mode, ca })
    }

    /// The PostgreSQL client's TLS, from `crate::tls`: only the city CA is trusted, and the server's
    /// name must match (verify-full).
    fn connector(&self) -> Option<MakeRustlsConnect> {
        match (&self.ca, self.mode) {
            (Some(ca), TlsMode::Auto | TlsMode::Require) => Some(ca.postgres_connector()),
            _ => None,
        }
    }
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
        let fix = if tls.ca.is_some() {
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
pub struct Session {
    client: Client,
    pub tls: bool,
    pub server: String,
    pub user: String,
}

impl Session {
    /// Connects as the administrator to `dbname`.
    pub async fn admin(admin: &Admin, dbname: &str, tls: &Tls) -> Result<Self, PgError> {
        Self::connect(admin, &admin.user, admin.password.as_ref(), dbname, tls).await
    }

    /// Connects to the administrator's server as `user` with `password`.
    pub async fn connect(
        admin: &Admin,
        user: &str,
        password: Option<&Secret>,
        dbname: &str,
        tls: &Tls,
    ) -> Result<Self, PgError> {
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
        let connector = tls.connector();
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
        Ok(Self {
            client,
            tls: encrypted,
            server,
            user: user.to_string(),
        })
    }

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

    /// Runs a query; `what` names it in the error.
    pub async fn rows(
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

    /// Runs statements that return nothing; `what` names them in the error.
    pub async fn execute(&self, what: &str, sql: &str) -> Result<(), PgError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| self.query_error(what, e))
    }

    /// Runs one planned action.
    pub async fn run(&self, action: &Action) -> Result<(), PgError> {
        self.execute(&action.what, action.sql()).await
    }
}
