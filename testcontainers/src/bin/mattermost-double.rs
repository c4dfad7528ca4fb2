//! `mattermost-double`: runs the Mattermost double as a standalone server (for a local Docker
//! image or manual poking). Prints one JSON line with its URL, socket and admin token when ready;
//! on SIGINT/SIGTERM optionally writes a state snapshot, then exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cityd_testcontainers::mattermost::{DoubleOptions, MattermostDouble};
use clap::Parser;

/// A Mattermost double: the v4 API subset cityd uses, with in-memory state.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Serve the session-auth API on this TCP address (e.g. 0.0.0.0:8065).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Serve local mode on this unix socket (its directory must exist).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// JSON file of config overrides merged into the defaults (PUT /config/patch rules).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// On shutdown, write the state snapshot (JSON) to this file.
    #[arg(long, value_name = "FILE")]
    state_dump: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Installed as /mattermost/bin/mmctl too (a link), for the image's health check.
    let argv: Vec<String> = std::env::args().collect();
    if argv
        .first()
        .is_some_and(|a| std::path::Path::new(a).file_name() == Some("mmctl".as_ref()))
    {
        let code = cityd_testcontainers::mattermost::mmctl::run(&argv[1..]).await?;
        std::process::exit(code);
    }
    let args = Args::parse();
    // As the real server: the database first (migrations), then the listeners.
    cityd_testcontainers::mattermost::database::open_from_env().await?;
    if args.listen.is_none() && args.socket.is_none() {
        anyhow::bail!("nothing to serve: give --listen ADDR and/or --socket PATH");
    }
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?
        }
        None => serde_json::Value::Null,
    };
    let opts = DoubleOptions {
        socket_path: args.socket.clone(),
        tcp: args.listen.is_some(),
        config,
    };
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    // Handlers before the ready line: a SIGTERM sent as soon as it is read must not kill the
    // process with the default action and lose the state dump.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let double = MattermostDouble::start_on(opts, addr).await?;
    println!(
        "{}",
        serde_json::json!({
            "base_url": double.base_url(),
            "socket": double.socket_path(),
            "admin_token": double.admin_token(),
        })
    );
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    if let Some(path) = &args.state_dump {
        let json = serde_json::to_vec_pretty(&double.snapshot())?;
        std::fs::write(path, json)
            .with_context(|| format!("writing the state dump {}", path.display()))?;
    }
    double.stop().await;
    Ok(())
}
