//! A Mattermost double for cityd's tests: an in-process HTTP server implementing exactly the v4
//! endpoints cityd uses, on TCP (session auth) and on a local-mode unix socket (no auth, local
//! routes only), following the OpenAPI spec and the real server's quirks (mattermost.md).
//!
//! Seed state: one user `admin` (`system_admin system_user`, email `admin@localhost`) whose
//! session token is [`MattermostDouble::admin_token`]; no teams, channels or plugins; the default
//! config of a fresh v11 server (local mode on, `EnableBotAccountCreation=false`,
//! `EnableUploads=false`, `EnableIncomingWebhooks=true`, `SiteURL` empty) merged with
//! [`DoubleOptions::config`].
//!
//! Where the double is simpler than the server: permissions are "system admin (or local mode) may
//! do everything, other users may read and post in their channels, team admins may manage their
//! team's hooks"; no websocket, no files, no email; `POST /config/reload` re-reads nothing.

mod bundle;
mod config;
pub mod database;
mod errors;
mod ids;
pub mod mmctl;
mod model;
mod outage;
mod plugin_runtime;
mod routes;
mod server;
mod snapshot;
mod state;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use bundle::{BundleError, make_bundle, read_manifest};
pub use model::PluginState;
pub use plugin_runtime::{GITLAB_ID, JENKINS_ID};
pub use snapshot::{
    SnapBot, SnapChannel, SnapHook, SnapPlugin, SnapPost, SnapTeam, SnapUser, Snapshot,
};
pub use state::{RecordedRequest, SEED_ADMIN, Transport};

use state::Shared;

/// How to start the double.
#[derive(Debug, Clone, Default)]
pub struct DoubleOptions {
    /// Serve local mode on this unix socket (created 0600; its directory must exist).
    pub socket_path: Option<PathBuf>,
    /// Serve the session-auth API on TCP `127.0.0.1:<ephemeral>`.
    pub tcp: bool,
    /// Overrides merged into the default config with `PUT /config/patch` rules (struct fields
    /// merge, maps such as `PluginSettings.Plugins` replace whole), e.g.
    /// `json!({"ServiceSettings": {"EnableIncomingWebhooks": false}})`. `Null` = no overrides.
    pub config: serde_json::Value,
}

/// A running double. Dropping it stops the listeners (and removes the socket).
pub struct MattermostDouble {
    shared: Arc<Shared>,
    socket_path: Option<PathBuf>,
    tcp_addr: Option<SocketAddr>,
    stop: Option<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
    /// Present when started with [`MattermostDouble::start_blocking`]: the runtime serving it.
    runtime: Option<tokio::runtime::Runtime>,
}

impl MattermostDouble {
    /// Binds the requested listeners and returns once both accept connections.
    pub async fn start(opts: DoubleOptions) -> anyhow::Result<Self> {
        Self::start_on(opts, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`start`](Self::start) with an explicit TCP address (used by the `mattermost-double`
    /// binary, e.g. `0.0.0.0:8065` inside a container).
    pub async fn start_on(opts: DoubleOptions, tcp_addr: SocketAddr) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared::new(&opts.config));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut double = MattermostDouble {
            shared: shared.clone(),
            socket_path: None,
            tcp_addr: None,
            stop: Some(stop_tx),
            tasks: vec![],
            runtime: None,
        };
        if opts.tcp {
            let (addr, task) = server::serve_tcp(shared.clone(), tcp_addr, stop_rx.clone()).await?;
            double.tcp_addr = Some(addr);
            double.tasks.push(task);
        }
        if let Some(path) = opts.socket_path {
            let task = server::serve_socket(shared, &path, stop_rx).await?;
            double.socket_path = Some(path);
            double.tasks.push(task);
        }
        Ok(double)
    }

    /// Starts the double on its own background runtime, for plain `#[test]` functions (e.g. tests
    /// that run the cityd binary against it). Stop it with [`stop_blocking`](Self::stop_blocking)
    /// or by dropping it (not from inside an async context).
    pub fn start_blocking(opts: DoubleOptions) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mattermost-double")
            .enable_all()
            .build()?;
        let mut double = runtime.block_on(Self::start(opts))?;
        double.runtime = Some(runtime);
        Ok(double)
    }

    pub fn socket_path(&self) -> Option<&Path> {
        self.socket_path.as_deref()
    }

    /// `http://127.0.0.1:PORT` when TCP is served.
    pub fn base_url(&self) -> Option<String> {
        self.tcp_addr.map(|a| format!("http://{a}"))
    }

    /// A session token of the seed system admin, for `Authorization: Bearer …` on TCP.
    pub fn admin_token(&self) -> String {
        self.shared.admin_token.clone()
    }

    /// POST/PUT/PATCH/DELETE requests received so far on either listener, whatever their outcome,
    /// **excluding** webhook deliveries (`POST /hooks/{id}`, see [`webhook_deliveries`](Self::webhook_deliveries)).
    /// Requests answered 503 while not ready are not counted.
    pub fn mutating_requests(&self) -> u64 {
        self.shared.mutations.load(Ordering::SeqCst)
    }

    /// Messages posted (or attempted) through incoming webhooks.
    pub fn webhook_deliveries(&self) -> u64 {
        self.shared.deliveries.load(Ordering::SeqCst)
    }

    /// Every request so far, in completion order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The `k`-th mutating request from now (1-based, counted like [`mutating_requests`](Self::mutating_requests))
    /// answers 500 `app.injected_failure.app_error` and changes nothing. One injection at a time;
    /// `k = 0` cancels a pending one.
    pub fn fail_nth_mutation(&self, k: u64) {
        let target = if k == 0 {
            0
        } else {
            self.mutating_requests() + k
        };
        self.shared.fail_at.store(target, Ordering::SeqCst);
    }

    /// Makes every later activation of `plugin_id` fail (state 3, FailedToStart); a plugin that is
    /// already running keeps running until it is disabled or re-uploaded.
    pub fn fail_plugin_start(&self, plugin_id: &str) {
        self.shared
            .world()
            .failing_plugins
            .insert(plugin_id.to_owned());
    }

    /// `false`: every request (ping included) answers 503 until set back to `true`.
    pub fn set_ready(&self, ready: bool) {
        self.shared.ready.store(ready, Ordering::SeqCst);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.shared.world())
    }

    /// Stops both listeners and waits (up to 5 s) for them to finish.
    pub async fn stop(mut self) {
        self.signal_stop();
        let tasks = std::mem::take(&mut self.tasks);
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// [`stop`](Self::stop) for a double made by [`start_blocking`](Self::start_blocking).
    pub fn stop_blocking(mut self) {
        if let Some(runtime) = self.runtime.take() {
            let tasks = std::mem::take(&mut self.tasks);
            self.signal_stop();
            runtime.block_on(async {
                for task in tasks {
                    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
                }
            });
            runtime.shutdown_background();
        }
    }

    fn signal_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl Drop for MattermostDouble {
    fn drop(&mut self) {
        self.signal_stop();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
        if let Some(path) = &self.socket_path {
            let _ = std::fs::remove_file(path);
        }
    }
}
