//! `cityd turn creds` (TURN REST credentials from the vault's static auth secret) and
//! `cityd turn probe` (proves the relay works end to end, with a verdict and an exit code per failure).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::Context;
use crate::exit::{self, Coded, Failure};
use crate::secrets::Secret;
use crate::turn::creds;
use crate::turn::ice::{self, IssuedCredentials, Lifetime};
use crate::turn::link::Transport;
use crate::turn::probe::{self, ProbeReport, StepStatus};
use crate::turn::probe_setup::{self, Credential, ProbeRequest};
use crate::turn::secret;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print time-limited TURN credentials (TURN REST API: username `<expiry>:<user>`, password
    /// base64(HMAC-SHA1(secret, username))) for a WebRTC test page. The static secret itself is
    /// never printed.
    Creds(CredsArgs),
    /// Prove the TURN relay works: Binding, Allocate through the 401 challenge, CreatePermission,
    /// data through the relay to a peer and back (Send/Data, then ChannelBind/ChannelData), and
    /// Refresh(0) to release. Each step is timed; a failure gets a diagnosis and its own exit code.
    #[command(after_long_help = PROBE_EXIT_CODES)]
    Probe(ProbeArgs),
}

const PROBE_EXIT_CODES: &str = "\
Exit codes:
   0  relay works: allocated, data relayed both ways, released
   1  probe failed: unusable answers (bad integrity, malformed) or a local error
   2  bad input (server, peer, duration, secret file, city description)
  10  no answer from the server: a firewall drops the port, or the address is wrong
  11  401 to the authenticated Allocate: the secret differs from coturn's static-auth-secret,
      or the credential expired (same answer on the wire; the diagnosis tells which)
  12  403 at CreatePermission/ChannelBind: the relay refuses that peer (denied-peer-ip)
  13  486 allocation quota reached (user-quota / total-quota)
  14  allocation granted but relayed data never came back (relay ports blocked)
  15  another error answer from the server (437, 441, 442, 508, ...)";

#[derive(Debug, clap::Args)]
pub struct CredsArgs {
    /// User id put after the expiry in the username (letters, digits, . _ - @).
    #[arg(long, default_value = "cityd", value_name = "NAME")]
    pub user: String,
    /// How long the credential stays valid: 90s, 30m, 24h, 7d, or seconds.
    #[arg(
        long,
        default_value = "24h",
        value_name = "DURATION",
        conflicts_with = "expires_at"
    )]
    pub ttl: String,
    /// Expire at this Unix time (seconds) instead of after --ttl. A time in the past gives a
    /// credential every TURN server refuses (to test that refusal).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub expires_at: Option<u64>,
    /// Read the static auth secret from FILE instead of the vault.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Print JSON (username, password, expiry, server URLs, an RTCIceServer object).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// TURN server, HOST or HOST:PORT (IPv6 as [ADDR]:PORT). Default: the city's first LAN
    /// address on turn.port.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Transport between the probe and the server. The relay toward the peer is always UDP.
    #[arg(long, value_enum, default_value = "udp")]
    pub transport: Transport,
    /// A peer that echoes every UDP datagram back (e.g. turnutils_peer, or a published port).
    /// Default: the probe's own echo socket on the local address it uses toward the server.
    #[arg(long, value_name = "IP:PORT")]
    pub peer: Option<SocketAddr>,
    /// User id for the probe's own short-lived REST credential.
    #[arg(long, default_value = "cityd-probe", value_name = "NAME")]
    pub user: String,
    /// Use this credential instead of minting one: the JSON `cityd turn creds --json` prints
    /// (its `username` and `password`), so one credential can be tried on several servers.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["secret_file", "expired"])]
    pub credential: Option<PathBuf>,
    /// Read the static auth secret from FILE instead of the vault (e.g. to test coturn's copy).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Bound on the whole probe.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub timeout: String,
    /// Initial UDP retransmission timeout (doubles per resend, 7 sends; RFC 8489 says 500ms).
    #[arg(long, default_value = "500ms", value_name = "DURATION")]
    pub rto: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Test aid: use a credential that expired a minute ago, to see the 401 diagnosis.
    #[arg(long, hide = true)]
    pub expired: bool,
}

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Creds(args) => creds_cmd(ctx, args),
        Command::Probe(args) => probe_cmd(ctx, args),
    }
}

fn bad_input(message: impl Into<String>) -> anyhow::Error {
    Failure::new(exit::BAD_INPUT, message).into()
}

/// A flag's value refused by a typed error: exit 2, the flag named in front of the error.
fn bad_flag(
    flag: &'static str,
    error: impl std::error::Error + Send + Sync + 'static,
) -> anyhow::Error {
    anyhow::Error::new(Coded::new(exit::BAD_INPUT, error)).context(flag)
}

fn parse_duration(text: &str, flag: &'static str) -> anyhow::Result<std::time::Duration> {
    crate::duration::parse(text).map_err(|e| bad_flag(flag, e))
}

/// `--secret-file` when given, else the vault (whose state directory is then needed).
fn static_secret(ctx: &Context, file: Option<&Path>) -> anyhow::Result<Secret> {
    match file {
        Some(path) => Ok(secret::from_file(path)?),
        None => secret::from_vault(&ctx.vault()?),
    }
}

fn creds_cmd(ctx: &Context, args: CredsArgs) -> anyhow::Result<ExitCode> {
    let lifetime = match args.expires_at {
        Some(at) => {
            if at <= creds::unix_now() {
                eprintln!(
                    "warning: --expires-at {at} is not in the future: TURN servers refuse this credential"
                );
            }
            Lifetime::Until(at)
        }
        None => {
            let ttl = parse_duration(&args.ttl, "--ttl")?;
            // The credential's expiry is counted in whole seconds: anything under one is already expired.
            if ttl.as_secs() == 0 {
                return Err(bad_input(
                    "--ttl under one second gives a credential that is already expired; give e.g. 24h",
                ));
            }
            Lifetime::Ttl(ttl)
        }
    };
    creds::validate_user(&args.user).map_err(|e| bad_flag("--user", e))?;
    let city = ctx.city()?;
    let secret = static_secret(ctx, args.secret_file.as_deref())?;
    let lan = ctx.lan_addresses().context("resolving lan.addresses")?;
    let creds = ice::issue(city, &lan, &secret, &args.user, lifetime)?;
    if args.json {
        crate::report::print_json(&creds)?;
        return Ok(ExitCode::SUCCESS);
    }
    print_creds(&args.user, &creds)?;
    Ok(ExitCode::SUCCESS)
}

fn print_creds(user: &str, creds: &IssuedCredentials) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "TURN credentials for user {:?}, valid until {} ({} s)",
        user, creds.expires_at_utc, creds.ttl_seconds
    )?;
    writeln!(out, "  username: {}", creds.username)?;
    writeln!(out, "  password: {}", creds.password)?;
    writeln!(
        out,
        "  realm:    {} (coturn's; clients do not need it)",
        creds.realm
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "TURN servers to paste into a WebRTC test page (e.g. Trickle ICE), with the username and password above:"
    )?;
    for url in &creds.urls {
        writeln!(out, "  {url}")?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "The same as an RTCIceServer for `new RTCPeerConnection({{iceServers: [...]}})`:"
    )?;
    writeln!(out, "  {}", serde_json::to_string(&creds.ice_server)?)?;
    writeln!(out)?;
    writeln!(
        out,
        "A relay works when the page lists a candidate of type \"relay\"; `cityd turn probe` checks the same without a browser."
    )?;
    Ok(())
}

fn probe_cmd(ctx: &Context, args: ProbeArgs) -> anyhow::Result<ExitCode> {
    let port = ctx.city()?.turn.port;
    let server = match args.server.as_deref() {
        Some(text) => probe_setup::parse_server(text, port)?,
        None => {
            let lan = ctx.lan().context("resolving lan.addresses")?;
            probe_setup::first_lan_server(lan, port)?
        }
    };
    let deadline = parse_duration(&args.timeout, "--timeout")?;
    let rto = parse_duration(&args.rto, "--rto")?;
    if rto.is_zero() || deadline.is_zero() {
        return Err(bad_input("--rto and --timeout must be above zero"));
    }
    creds::validate_user(&args.user).map_err(|e| bad_flag("--user", e))?;
    let credential = match args.credential.as_deref() {
        Some(path) => Credential::Given(probe_setup::credential_from_file(path)?),
        None => Credential::Minted(static_secret(ctx, args.secret_file.as_deref())?),
    };
    let request = ProbeRequest {
        server,
        transport: args.transport,
        peer: args.peer,
        user: args.user,
        rto,
        deadline,
        expired: args.expired,
    };
    let config = probe_setup::config(&request, &credential)?;
    let progress: probe::Progress = Arc::new(|line: &str| eprintln!("cityd turn probe: {line}"));
    let report = ctx.block_on(probe::run(&config, progress))?;
    if args.json {
        crate::report::print_json(&report)?;
    } else {
        print_report(&report)?;
    }
    Ok(ExitCode::from(report.exit_code))
}

fn print_report(r: &ProbeReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "TURN probe of {} over {} (username {})",
        r.server,
        r.transport.name(),
        r.username
    )?;
    for s in &r.steps {
        let status = match s.status {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "FAILED",
        };
        let latency = s
            .latency_ms
            .map(|l| format!("{l:>9.3} ms"))
            .unwrap_or_else(|| format!("{:>12}", "-"));
        writeln!(out, "  {status:<7} {:<19} {latency}  {}", s.name, s.detail)?;
    }
    let show = |a: Option<SocketAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
    writeln!(
        out,
        "mapped address:  {} (this client as the server sees it)",
        show(r.mapped)
    )?;
    writeln!(
        out,
        "relayed address: {} (where peers send to reach this client)",
        show(r.relayed)
    )?;
    writeln!(
        out,
        "peer:            {}{}",
        show(r.peer),
        if r.own_peer {
            " (the probe's own echo socket)"
        } else {
            ""
        }
    )?;
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    writeln!(
        out,
        "verdict: {} (exit {}, {:.1} ms)",
        r.summary, r.exit_code, r.total_ms
    )?;
    writeln!(out, "{}", r.diagnosis)?;
    Ok(())
}
