//! Binding the listeners (TCP and the local-mode unix socket) and serving until told to stop.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::routes;
use super::state::{Shared, Transport};
use crate::server::stopped;

/// Binds TCP on `addr` and serves the session-auth API; returns the bound address.
pub async fn serve_tcp(
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the Mattermost double's TCP listener on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("reading the bound TCP address")?;
    let app = routes::router(shared, Transport::Tcp);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await;
    });
    Ok((bound, task))
}

/// Creates the local-mode socket like the server does (remove what is there, listen, chmod 0600)
/// and serves the local routes on it.
pub async fn serve_socket(
    shared: Arc<Shared>,
    path: &Path,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<()>> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "the local-mode socket directory {} does not exist; create it before starting the double",
            parent.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing the stale socket {}", path.display()));
        }
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding the local-mode socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
    let app = routes::router(shared, Transport::Socket);
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped(stop))
            .await;
    }))
}
