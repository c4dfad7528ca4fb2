//! `cityd onboard [--for 15m] [--listen ADDR:PORT] [--listen-public] [--json]`: serve the phone
//! onboarding page on the LAN address for a limited time; print its URL as a QR code and the CA
//! fingerprint.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::Context;
use crate::onboard::{self, Announcement, OnboardError, Served, Site};

/// Serve a page that gets phones onto the city: the CA, its fingerprint, the Mattermost URL.
///
/// The page is plain HTTP (the phone trusts nothing yet) on the first LAN address, for --for
/// (default 15 minutes), and carries no secret: the CA certificate as DER (Android), as an
/// iOS/macOS configuration profile and as PEM, the SHA-256 fingerprint as Android and iOS show
/// it, per-platform steps, and the Mattermost server URL as a QR code. The terminal shows a QR
/// code of the page URL and the fingerprint to compare on the phone. Wildcard and public listen
/// addresses are refused unless --listen-public is given.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 the page was served until its time ran out or Ctrl-C, 1 it could \
not listen, 2 bad input (no CA yet: run `cityd pki ensure`; a wildcard or public --listen)."
)]
pub struct Args {
    /// How long to serve the page (500ms, 90s, 15m, 1h…; at most 24h).
    #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = parse_for)]
    pub lifetime: Duration,
    /// Listen here instead of the first LAN address on port 8090 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Allow a wildcard (0.0.0.0, ::) or public --listen address.
    #[arg(long)]
    pub listen_public: bool,
    /// Print the URLs and the fingerprint as JSON (one document, before serving).
    #[arg(long)]
    pub json: bool,
}

fn parse_for(text: &str) -> Result<Duration, String> {
    let value = crate::duration::parse_at_most(text, onboard::MAX_FOR)?;
    if value.is_zero() {
        return Err(format!(
            "duration {text:?} is zero: give how long to serve, e.g. 15m"
        ));
    }
    Ok(value)
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let lan = ctx.lan_addresses()?;
    let listen = onboard::choose_listen(args.listen, &lan, args.listen_public)
        .map_err(OnboardError::from)?;
    let onboarding = onboard::prepare(state, city, &lan)?;
    ctx.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| OnboardError::Bind {
                addr: listen,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| OnboardError::Bind {
            addr: listen,
            source,
        })?;
        let expires_at = time::OffsetDateTime::now_utc() + args.lifetime;
        let site = Arc::new(Site::build(&onboarding, expires_at));
        let announcement = Announcement::new(&onboarding, bound, expires_at);
        if args.json {
            crate::report::print_json(&announcement)?;
        } else {
            print_terminal(&announcement);
        }
        use std::io::Write as _;
        std::io::stdout().flush()?;
        let served = onboard::serve(listener, site, args.lifetime).await?;
        if !args.json {
            match served {
                Served::Expired => println!("the onboarding page has stopped: its time ran out"),
                Served::Interrupted => println!("the onboarding page has stopped"),
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}

fn print_terminal(a: &Announcement) {
    println!("{}", onboard::qr::terminal(&a.page_url));
    println!("Open on the phone (same Wi-Fi): {}", a.page_url);
    println!("Check the CA fingerprint the phone shows against this one (SHA-256):");
    println!("  {}", a.sha256);
    if !a.ca_constrained {
        println!(
            "Note: this CA has no name constraints, so a device that trusts it accepts any site it signs (see `cityd doctor`)."
        );
    }
    println!("Mattermost server URL for the app: {}", a.mattermost_url);
    if !a.leaf_missing.is_empty() {
        eprintln!(
            "warning: the server certificate does not name {}: phones will refuse Mattermost there until `cityd pki ensure` (or `cityd up`) re-issues it and Mattermost restarts",
            a.leaf_missing.join(", ")
        );
    }
    println!("Serving until {} (Ctrl-C stops earlier).", a.expires_at);
}
