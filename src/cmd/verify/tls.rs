//! `cityd verify tls`: TLS handshakes by LAN IP (and optionally by hostname) with a client that trusts
//! only the city CA, the way a phone that installed ca.crt connects. Exit 1 when any target fails.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use rustls_pki_types::ServerName;
use serde::Serialize;

use crate::cli::Context;
use crate::exit;
use crate::pki::{self, probe::TlsCheck, probe::TlsInputError, probe::TlsProbe};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 every handshake verified, 1 at least one failed, 2 bad input \
(no CA yet, unreadable --ca)."
)]
pub struct Args {
    /// Handshake with IP:PORT (repeatable), verifying the certificate for that IP address.
    /// Default: every LAN address of the city (lan.addresses) on mattermost.port.
    #[arg(long, value_name = "IP:PORT")]
    pub connect: Vec<SocketAddr>,
    /// Also verify each target under the city's hostname (mattermost.host, or mattermost.<domain>),
    /// as a client that resolves the name would.
    #[arg(long)]
    pub name: bool,
    /// Trust this CA certificate (PEM or DER) instead of <state>/pki/ca.pem.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Seconds to wait for the connection and for each step of the handshake.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    ca: PathBuf,
    ok: bool,
    checks: Vec<TlsCheck>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let state = ctx.state()?;
    let ca_path = args.ca.clone().unwrap_or_else(|| state.ca_pem());
    let ca_der = pki::read_certificate(&ca_path).map_err(TlsInputError::NoCa)?;
    let probe = TlsProbe::trusting(&ca_der, Duration::from_secs(args.timeout.max(1))).map_err(
        |reason| TlsInputError::BadCa {
            path: ca_path.clone(),
            reason,
        },
    )?;

    let targets = if args.connect.is_empty() {
        let city = ctx.city()?;
        let lan = ctx.lan_addresses().context(
            "resolving lan.addresses for the default targets (or give --connect IP:PORT)",
        )?;
        lan.iter()
            .map(|address| SocketAddr::new(*address, city.mattermost.port))
            .collect()
    } else {
        args.connect.clone()
    };
    let host = if args.name {
        let city = ctx.city()?;
        let name = ServerName::try_from(city.mattermost_host()).map_err(|source| {
            TlsInputError::BadHostname {
                host: city.mattermost_host(),
                source,
            }
        })?;
        Some(name)
    } else {
        None
    };

    let mut checks = Vec::new();
    for target in targets {
        checks.push(probe.check(target, ServerName::IpAddress(target.ip().into())));
        if let Some(host) = &host {
            checks.push(probe.check(target, host.clone()));
        }
    }
    let ok = !checks.is_empty() && checks.iter().all(|c| c.ok);
    let report = Report {
        ca: ca_path,
        ok,
        checks,
    };
    if args.json {
        crate::report::print_json(&report)?;
    } else {
        let mut out = std::io::stdout().lock();
        for c in &report.checks {
            if c.ok {
                writeln!(
                    out,
                    "ok      {} as {}: {}, leaf SHA-256 {}, {} days left",
                    c.target,
                    c.name,
                    c.protocol.as_deref().unwrap_or("?"),
                    c.leaf_sha256.as_deref().unwrap_or("?"),
                    c.leaf_days_left.map_or("?".into(), |d| d.to_string()),
                )?;
            } else {
                writeln!(
                    out,
                    "failed  {} as {}: {}",
                    c.target,
                    c.name,
                    c.error.as_deref().unwrap_or("unknown error")
                )?;
            }
        }
        if report.checks.is_empty() {
            writeln!(
                out,
                "failed  no targets: lan.addresses resolved to nothing; give --connect IP:PORT"
            )?;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::FAILED)
    })
}
