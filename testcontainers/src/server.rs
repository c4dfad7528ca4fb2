//! What the GitLab, Jenkins and SonarQube doubles share: serving a product's router on
//! `127.0.0.1:<ephemeral>` from a runtime of its own, and the gate every request passes (request
//! log, mutation counter, failure injection). Each product keeps its own state, routes and quirks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use tokio::sync::watch;

/// One request as a double saw it, in completion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub status: u16,
    /// The `Authorization` scheme sent, `Bearer` or `Basic` (empty without the header).
    pub auth_scheme: String,
}

/// How a product's gate tells mutating requests apart and how it answers an injected failure.
#[derive(Clone, Copy)]
pub struct Gate {
    /// Requests that count as mutating (and that [`DoubleServer::fail_next_mutations`] fails).
    pub is_mutating: fn(&Method) -> bool,
    /// The product's own 500 for a mutating request told to fail; nothing is changed.
    pub injected_failure: fn() -> Response,
}

/// Everything but GET and HEAD counts as mutating (a [`Gate::is_mutating`] for REST APIs).
pub fn not_a_read(method: &Method) -> bool {
    method != Method::GET && method != Method::HEAD
}

/// Locks a double's state; a handler that panicked mid-update must not wedge every later request.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Traffic {
    gate: Gate,
    mutations: AtomicU64,
    fail_next: AtomicU64,
    log: Mutex<Vec<Recorded>>,
}

/// A product's router served on `127.0.0.1:<ephemeral>` by a one-worker runtime; dropping it
/// stops the server. The product doubles dereference to it for the methods below.
pub struct DoubleServer {
    traffic: Arc<Traffic>,
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DoubleServer {
    /// Serves `app` behind `gate` and returns once it accepts connections; `name` names the
    /// runtime's thread (e.g. `gitlab-double`).
    pub fn start(name: &str, gate: Gate, app: Router) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        let traffic = Arc::new(Traffic {
            gate,
            mutations: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let app = app.layer(axum::middleware::from_fn_with_state(
            traffic.clone(),
            pass_gate,
        ));
        let (stop_tx, stop_rx) = watch::channel(false);
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(stopped(stop_rx))
                    .await;
            });
            anyhow::Ok(addr)
        })?;
        Ok(Self {
            traffic,
            addr,
            stop: Some(stop_tx),
            runtime: Some(runtime),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Mutating requests received (as the product's [`Gate`] counts them), whatever their outcome.
    pub fn mutating_requests(&self) -> u64 {
        self.traffic.mutations.load(Ordering::SeqCst)
    }

    /// Every request so far, in completion order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.traffic.log).clone()
    }

    /// The next `n` mutating requests answer the product's 500 and change nothing.
    pub fn fail_next_mutations(&self, n: u64) {
        self.traffic.fail_next.store(n, Ordering::SeqCst);
    }
}

impl Drop for DoubleServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn pass_gate(State(traffic): State<Arc<Traffic>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let auth_scheme = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(' ').next())
        .unwrap_or("")
        .to_string();
    let response = if (traffic.gate.is_mutating)(&method) {
        traffic.mutations.fetch_add(1, Ordering::SeqCst);
        let told_to_fail = traffic
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if told_to_fail {
            (traffic.gate.injected_failure)()
        } else {
            next.run(request).await
        }
    } else {
        next.run(request).await
    };
    lock(&traffic.log).push(Recorded {
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        auth_scheme,
    });
    response
}
