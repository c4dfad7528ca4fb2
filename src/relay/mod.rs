//! The SonarQube -> Mattermost alert relay: binds its listeners, recovers the spool, runs the HTTP
//! server and the delivery worker, and shuts all of it down in order when cancelled or signalled.
//! Design and guarantees: docs/relay.md.

pub mod deliver;
pub mod http;
pub mod limits;
pub mod message;
pub mod metrics;
pub mod payload;
pub mod post;
pub mod readback;
pub mod record;
pub mod server;
pub mod settings;
pub mod signature;
pub mod spool;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

use crate::mattermost::{ApiClient, ApiError, Target};
use crate::secrets::Secret;
use deliver::{DeliveryOptions, Routes, Worker};
use limits::Limits;
use message::MessageSettings;
use metrics::Metrics;
use post::{PostError, Poster};
use readback::Readback;
use signature::Verifier;
use spool::{SpoolError, SpoolOptions};

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("cannot listen on {addr} ({what}); pick a free address with {flag}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        flag: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Post(#[from] PostError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("cannot install the {signal} handler")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the relay's {what} task failed: {reason}")]
    Task { what: &'static str, reason: String },
}

/// Everything `serve` needs, resolved from the city, the vault and the flags by [`settings::resolve`].
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub spool_dir: PathBuf,
    pub secret: Secret,
    pub routes: Routes,
    pub settings: MessageSettings,
    /// The Mattermost API that channels are read back through (its URL target carries the CA).
    pub readback: Option<Target>,
    pub ca_file: Option<PathBuf>,
    pub post_timeout: Duration,
    pub body_limit: usize,
    pub concurrency: usize,
    /// Timeouts, connection caps, the unverified-bytes budget and the shutdown grace.
    pub limits: Limits,
}

/// What the relay reports once it accepts events.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    pub listen: SocketAddr,
    pub metrics: SocketAddr,
    pub spool: PathBuf,
    pub pending: usize,
    pub in_flight: usize,
    pub truncated_bytes: u64,
    pub remembered_keys: usize,
}

async fn bind(
    addr: SocketAddr,
    what: &'static str,
    flag: &'static str,
) -> Result<tokio::net::TcpListener, RelayError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RelayError::Bind {
            addr,
            what,
            flag,
            source,
        })
}

/// [`serve`] until SIGTERM or SIGINT, then a graceful stop (open requests and posts in flight
/// finish). Both handlers exist before `on_ready` runs, so no signal meets the default action.
pub async fn serve_until_signal(
    config: RelayConfig,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), RelayError> {
    use tokio::signal::unix::{SignalKind, signal};
    let handler = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| RelayError::Signal {
            signal: name,
            source,
        })
    };
    let mut term = handler(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = handler(SignalKind::interrupt(), "SIGINT")?;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: finishing open requests and posts"),
            _ = interrupt.recv() => tracing::info!("SIGINT: finishing open requests and posts"),
        }
        on_signal.cancel();
    });
    serve(config, cancel, on_ready).await
}

/// Runs the relay until `cancel` fires or the spool fails. `on_ready` is called once the spool is
/// recovered and events are accepted.
pub async fn serve(
    config: RelayConfig,
    cancel: CancellationToken,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), RelayError> {
    let public = bind(config.listen, "webhook listener", "--listen").await?;
    let private = bind(config.metrics, "metrics listener", "--metrics").await?;
    let listen = public.local_addr().unwrap_or(config.listen);
    let metrics_addr = private.local_addr().unwrap_or(config.metrics);

    let metrics = Arc::new(Metrics::default());
    let poster = Poster::new(config.post_timeout, config.ca_file.as_deref())?;
    let readback = match &config.readback {
        Some(target) => Some(Arc::new(Readback::new(ApiClient::with_timeout(
            target.clone(),
            config.post_timeout,
        )?))),
        None => None,
    };

    let options = SpoolOptions::new(config.spool_dir.clone());
    let spool_metrics = Arc::clone(&metrics);
    let opened = tokio::task::spawn_blocking(move || spool::open(options, spool_metrics))
        .await
        .map_err(|e| RelayError::Task {
            what: "spool recovery",
            reason: e.to_string(),
        })??;

    let app = Arc::new(http::App {
        verifier: Verifier::new(&config.secret),
        spool: opened.spool.clone(),
        metrics: Arc::clone(&metrics),
        ready: AtomicBool::new(false),
        body_limit: config.body_limit,
        body_timeout: config.limits.body_timeout,
        unverified: http::App::budget(config.limits.max_unverified_bytes),
    });
    // Both listeners stop accepting when `cancel` fires and end within the grace: after that no
    // connection holds the app (and with it the spool) any more.
    let server = tokio::spawn(server::run(
        public,
        "webhook listener",
        http::router(Arc::clone(&app)),
        config.limits,
        Arc::clone(&metrics),
        cancel.clone(),
    ));
    let metrics_server = tokio::spawn(server::run(
        private,
        "metrics listener",
        http::metrics_router(Arc::clone(&metrics)),
        config.limits.for_metrics(),
        // Its connections are not the webhook listener's: counted apart, never rendered.
        Arc::new(Metrics::default()),
        cancel.clone(),
    ));

    let mut delivery = DeliveryOptions::for_post_timeout(config.post_timeout);
    delivery.concurrency = config.concurrency.max(1);
    let worker = Worker {
        spool: opened.spool.clone(),
        poster,
        readback,
        routes: Arc::new(config.routes),
        settings: Arc::new(config.settings),
        metrics: Arc::clone(&metrics),
        options: delivery,
    };
    let recovered = opened.recovered.clone();
    let worker = tokio::spawn(worker.run(opened.recovered, opened.new_events, cancel.clone()));
    app.ready.store(true, Relaxed);
    on_ready(&Ready {
        listen,
        metrics: metrics_addr,
        spool: config.spool_dir.clone(),
        pending: recovered.pending.len(),
        in_flight: recovered.in_flight.len(),
        truncated_bytes: recovered.truncated_bytes,
        remembered_keys: recovered.remembered_keys,
    });

    // The worker returns when cancelled (after its posts in flight) or when the spool fails.
    let worker_result = match worker.await {
        Ok(result) => result.map_err(RelayError::from),
        Err(e) => Err(RelayError::Task {
            what: "delivery",
            reason: e.to_string(),
        }),
    };
    cancel.cancel();
    app.ready.store(false, Relaxed);
    // Each server ends within the grace (it cuts off what is still open then).
    for (what, handle) in [
        ("webhook server", server),
        ("metrics server", metrics_server),
    ] {
        if let Err(e) = handle.await {
            tracing::warn!("the {what} task failed: {e}");
        }
    }
    // Last handles gone: the writer drains what is queued, syncs and stops.
    drop(app);
    drop(opened.spool);
    let writer = opened.writer;
    let writer_result = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| RelayError::Task {
            what: "spool writer",
            reason: e.to_string(),
        })?
        .map_err(|_| RelayError::Task {
            what: "spool writer",
            reason: "panicked".into(),
        })?;
    // A writer error is the cause of any worker error; report it first.
    writer_result?;
    worker_result?;
    Ok(())
}
