//! The double's database, opened as the real server opens it: from `MM_SQLSETTINGS_DATASOURCE`,
//! with a real PostgreSQL client (tokio-postgres) over TLS verified against the DSN's `sslrootcert`
//! only, host name checked (`sslmode=verify-full`). Like the real server (SRV
//! `sqlstore/store.go`: 5 pings, 2 s apart) it gives up and the process exits when the database
//! cannot be reached. The ping's `database_status` runs `SELECT 1` on that connection.
//!
//! A DSN with `sslmode=disable` is not opened: the Docker tests that bring their own PostgreSQL
//! publish it on the host's loopback, out of the double's reach, and this double exists to prove
//! the TLS path of the managed server.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::config::SslMode;

static CLIENT: OnceLock<tokio_postgres::Client> = OnceLock::new();

/// The parts of a Mattermost DSN the double uses.
#[derive(Debug, PartialEq)]
pub struct Dsn {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub sslmode: String,
    pub sslrootcert: Option<String>,
}

impl Dsn {
    /// `postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=...&sslrootcert=...&connect_timeout=...`
    pub fn parse(dsn: &str) -> anyhow::Result<Self> {
        let rest = dsn
            .strip_prefix("postgres://")
            .context("the DSN must start with postgres://")?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (auth, hostpath) = main.rsplit_once('@').context("the DSN has no user")?;
        let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
        let (hostport, dbname) = hostpath
            .split_once('/')
            .context("the DSN has no database")?;
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query)?;
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Ok(Self {
            user: user.into(),
            password: password.into(),
            host: host.into(),
            port: port.parse().context("the DSN's port")?,
            dbname: dbname.into(),
            sslmode: get("sslmode").unwrap_or_else(|| "prefer".into()),
            sslrootcert: get("sslrootcert"),
        })
    }
}

/// Opens the database named by `MM_SQLSETTINGS_DATASOURCE` when it asks for verify-full; retries
/// 5 times, 2 s apart, then fails.
pub async fn open_from_env() -> anyhow::Result<()> {
    let Ok(dsn) = std::env::var("MM_SQLSETTINGS_DATASOURCE") else {
        return Ok(());
    };
    let dsn = Dsn::parse(&dsn)?;
    if dsn.sslmode != "verify-full" {
        return Ok(());
    }
    let mut last = None;
    for attempt in 1..=5 {
        match open(&dsn).await {
            Ok(client) => {
                let _ = CLIENT.set(client);
                eprintln!(
                    "database: connected to {}:{} over TLS (verify-full)",
                    dsn.host, dsn.port
                );
                return Ok(());
            }
            Err(e) => {
                eprintln!("database: attempt {attempt} failed: {e:#}");
                last = Some(e);
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Err(last.expect("five attempts")).context("failed to ping the database")
}

async fn open(dsn: &Dsn) -> anyhow::Result<tokio_postgres::Client> {
    let Some(ca_path) = &dsn.sslrootcert else {
        bail!("sslmode=verify-full without sslrootcert");
    };
    let mut roots = RootCertStore::empty();
    for cert in
        CertificateDer::pem_file_iter(ca_path).with_context(|| format!("reading {ca_path}"))?
    {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls);
    let mut config = tokio_postgres::Config::new();
    config
        .host(&dsn.host)
        .port(dsn.port)
        .user(&dsn.user)
        .password(&dsn.password)
        .dbname(&dsn.dbname)
        .ssl_mode(SslMode::Require)
        .connect_timeout(Duration::from_secs(10));
    let (client, connection) = config.connect(connector).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("database: connection lost: {e}");
        }
    });
    client.simple_query("SELECT 1").await?;
    Ok(client)
}

/// `None` when no database was opened; otherwise whether it answers now.
pub async fn healthy() -> Option<bool> {
    let client = CLIENT.get()?;
    let answer =
        tokio::time::timeout(Duration::from_secs(5), client.simple_query("SELECT 1")).await;
    Some(matches!(answer, Ok(Ok(_))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dsn_cityd_renders() {
        let d = Dsn::parse("postgres://mattermost:abc123@postgres:5432/mattermost?sslmode=verify-full&sslrootcert=/mattermost/certs/ca.pem&connect_timeout=10").unwrap();
        assert_eq!(d.host, "postgres");
        assert_eq!(d.sslmode, "verify-full");
        assert_eq!(d.sslrootcert.as_deref(), Some("/mattermost/certs/ca.pem"));
        assert_eq!(
            (
                d.user.as_str(),
                d.password.as_str(),
                d.dbname.as_str(),
                d.port
            ),
            ("mattermost", "abc123", "mattermost", 5432)
        );
    }
}
