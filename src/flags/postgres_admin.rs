//! `--admin-url`, `--admin-password-file`, `--db-tls`: how `cityd db ensure` and `cityd up` reach
//! PostgreSQL as an administrator (and `cityd doctor`, through the same environment variables),
//! resolved into a `postgres::Admin` and a TLS mode.

use std::path::PathBuf;

use thiserror::Error;

use crate::city::City;
use crate::postgres::{Admin, TlsMode};
use crate::secrets::Secret;

const ADMIN_URL_ENV: &str = "CITYD_DB_ADMIN_URL";
const PASSWORD_FILE_ENV: &str = "CITYD_DB_ADMIN_PASSWORD_FILE";

#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// How cityd reaches PostgreSQL as an administrator: postgres://USER@HOST:PORT/DATABASE.
    /// No password here (command lines are visible to every local user).
    #[arg(
        long,
        env = ADMIN_URL_ENV,
        value_name = "URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// File whose first line is the administrator's password. Without it, PGPASSWORD is used,
    /// and without that, no password is sent (trust or peer setups).
    #[arg(long, env = PASSWORD_FILE_ENV, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// TLS toward PostgreSQL. auto: verify-full against <state>/pki/ca.pem whenever the server
    /// offers TLS; require: the same, but refuse plain connections (implied by [database] tls = true).
    #[arg(long, value_enum, default_value = "auto", value_name = "MODE")]
    pub db_tls: TlsMode,
}

/// The administrator's password file is the input at fault (exit 2).
#[derive(Debug, Error)]
pub enum AdminFlagError {
    #[error("cannot read the admin password file {path}")]
    PasswordFileUnreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the admin password file {path} is empty; its first line must be the password")]
    PasswordFileEmpty { path: PathBuf },
}

impl crate::exit::ExitCoded for AdminFlagError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

impl AdminArgs {
    /// The administrator only when the environment says where PostgreSQL is (`cityd doctor`
    /// looks at the tenant only then, so hosts without a reachable database get no noise).
    pub fn from_env() -> Option<Self> {
        let url = std::env::var(ADMIN_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty())?;
        Some(Self {
            admin_url: url,
            admin_password_file: std::env::var_os(PASSWORD_FILE_ENV).map(PathBuf::from),
            db_tls: TlsMode::Auto,
        })
    }

    /// The administrator's connection, its password read from the file or PGPASSWORD.
    pub fn admin(&self) -> anyhow::Result<Admin> {
        let password = match &self.admin_password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    AdminFlagError::PasswordFileUnreadable {
                        path: path.clone(),
                        source,
                    }
                })?;
                let line = text.lines().next().unwrap_or("").to_string();
                if line.is_empty() {
                    return Err(AdminFlagError::PasswordFileEmpty { path: path.clone() }.into());
                }
                Some(Secret::new(line))
            }
            None => std::env::var("PGPASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Secret::new),
        };
        Ok(Admin::from_url(&self.admin_url, password)?)
    }

    /// The TLS mode: `[database] tls = true` turns `auto` into `require`.
    pub fn tls_mode(&self, city: &City) -> TlsMode {
        if city.database.tls && self.db_tls == TlsMode::Auto {
            TlsMode::Require
        } else {
            self.db_tls
        }
    }
}
