//! The relay's connection loop (hyper HTTP/1 under an axum router): accepts within the caps of
//! [`Connections`], closes a connection whose header is late (`--header-timeout`), and on
//! shutdown stops accepting at once, lets started requests finish for the grace, then cuts the
//! rest off, so nothing a client holds can keep the process (and its spool) alive.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::limits::{Admitted, Connections, Limits};
use super::metrics::Metrics;

/// Request headers larger than this are refused (431); also the most hyper buffers per
/// connection while a body is read.
const MAX_BUF: usize = 32 * 1024;

/// What a connection shed at a cap is told before it is closed.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";

/// Serves `router` on `listener` until `stop` fires, then drains for `limits.shutdown_grace`
/// and cuts off what is left. Returns once every connection is closed.
pub async fn run(
    listener: TcpListener,
    what: &'static str,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let table = Connections::new(limits, Arc::clone(&metrics));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_BUF)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let cut = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut accept_errors = 0u32;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    accept_errors = 0;
                    metrics.connections_accepted.fetch_add(1, Relaxed);
                    match table.admit(peer.ip()) {
                        Ok(admitted) => {
                            tasks.spawn(connection(
                                stream,
                                peer,
                                admitted,
                                router.clone(),
                                Arc::clone(&builder),
                                Arc::clone(&metrics),
                                stop.clone(),
                                cut.clone(),
                            ));
                        }
                        // Told why, then closed: it must not wait in the backlog for a slot.
                        Err(_) => {
                            let _ = stream.try_write(BUSY);
                        }
                    }
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: the listener
                    // itself is fine. Back off briefly so a persistent error does not spin.
                    if accept_errors == 0 {
                        tracing::warn!("the {what} cannot accept a connection: {e}");
                    }
                    accept_errors = accept_errors.saturating_add(1);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    // New connections are refused from here on.
    drop(listener);
    let open = table.len();
    if open > 0 {
        tracing::info!(
            "the {what} finishes {open} open connection(s) (at most {:?})",
            limits.shutdown_grace
        );
    }
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "the {what} still had {} connection(s) after {:?}; closing them",
            table.len(),
            limits.shutdown_grace
        );
        cut.cancel();
        while tasks.join_next().await.is_some() {}
    }
}

/// One connection: served until it ends, is evicted, or is cut off after the grace.
#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Admitted,
    router: Router,
    builder: Arc<http1::Builder>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    cut: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let evicted = admitted.evicted();
    let admitted = Arc::new(admitted);
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let admitted = Arc::clone(&admitted);
        admitted.busy();
        let call = hyper::service::Service::call(&tower, request);
        async move {
            let response = call.await;
            admitted.idle();
            response
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break Some(result),
            () = evicted.cancelled() => break None,
            () = cut.cancelled() => break None,
            () = stop.cancelled(), if !stopping => {
                // Idle connections close now; a started request finishes (or is cut).
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    if let Some(Err(e)) = result {
        if e.is_timeout() {
            metrics.connections_timed_out.fetch_add(1, Relaxed);
            tracing::debug!("closed {peer}: no complete request header in time");
        } else {
            tracing::debug!("connection from {peer} ended: {e}");
        }
    }
}
