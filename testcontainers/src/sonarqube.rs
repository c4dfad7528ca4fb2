//! A SonarQube double for `cityd connect sonarqube`: `api/webhooks/{list,create,update,delete}`
//! with the version differences of integrations.md §1.5-1.7:
//!
//! | behaviour | 9.9 | 10.0 | 10.1-10.5 | 10.6+ | 2025 |
//! |---|---|---|---|---|---|
//! | Bearer token (else only Basic `token:`) | no | yes | yes | yes | yes |
//! | list shows `secret` (else `hasSecret`) | yes | yes | no | no | no |
//! | minimum secret length | 1 | 1 | 1 | 16 | 16 |
//! | validation also refuses private networks | no | no | no | no | yes |
//!
//! With `validate_webhooks` on (SonarQube's default), create/update refuse loopback, wildcard and
//! the server's own addresses (`Invalid URL: loopback and wildcard addresses are not allowed for
//! webhooks.`), and in 2025 mode also link-local, RFC 1918 and multicast addresses. Errors are
//! `{"errors":[{"msg":…}]}`; parameters come as a form body or the query string. Every POST counts
//! as a mutating request; failures can be injected.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::watch;

/// SonarQube versions whose webhook API behaviour differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SonarVersion {
    V9_9,
    V10_0,
    V10_5,
    V10_6,
    V2025,
}

impl SonarVersion {
    pub fn bearer(self) -> bool {
        self >= SonarVersion::V10_0
    }
    pub fn lists_secret(self) -> bool {
        self <= SonarVersion::V10_0
    }
    pub fn min_secret(self) -> usize {
        if self >= SonarVersion::V10_6 { 16 } else { 1 }
    }
    pub fn blocks_private_networks(self) -> bool {
        self >= SonarVersion::V2025
    }
}

#[derive(Debug, Clone)]
pub struct SonarOptions {
    pub version: SonarVersion,
    /// A user token of an administrator.
    pub token: String,
    /// A user token of a user without Administer (403 on webhooks).
    pub user_token: String,
    /// `sonar.validateWebhooks` (default true).
    pub validate_webhooks: bool,
    /// The server's own interface addresses (refused as webhook targets when validating).
    pub own_addresses: Vec<IpAddr>,
    /// Project keys that exist.
    pub projects: Vec<String>,
}

impl Default for SonarOptions {
    fn default() -> Self {
        Self {
            version: SonarVersion::V10_6,
            token: "squ_0123456789abcdef0123456789abcdef01234567".into(),
            user_token: "squ_fedcba9876543210fedcba9876543210fedcba98".into(),
            validate_webhooks: true,
            own_addresses: vec![],
            projects: vec!["http-client".into()],
        }
    }
}

/// A webhook as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub key: String,
    pub name: String,
    pub url: String,
    pub secret: Option<String>,
    pub project: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// `Bearer` or `Basic` (or empty).
    pub auth_scheme: String,
}

struct World {
    opts: SonarOptions,
    hooks: Vec<Webhook>,
    next_key: u64,
}

struct Shared {
    world: Mutex<World>,
    mutations: AtomicU64,
    fail_next: AtomicU64,
    log: Mutex<Vec<Recorded>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running SonarQube double on `127.0.0.1:<ephemeral>`, served by its own runtime.
pub struct SonarDouble {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<watch::Sender<bool>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SonarDouble {
    pub fn start(opts: SonarOptions) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sonarqube-double")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            world: Mutex::new(World {
                opts,
                hooks: Vec::new(),
                next_key: 1,
            }),
            mutations: AtomicU64::new(0),
            fail_next: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        });
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let app = Router::new()
            .route("/api/webhooks/list", get(list))
            .route("/api/webhooks/create", post(create))
            .route("/api/webhooks/update", post(update))
            .route("/api/webhooks/delete", post(remove))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
            .with_state(shared.clone());
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        while !*stop_rx.borrow() {
                            if stop_rx.changed().await.is_err() {
                                return;
                            }
                        }
                    })
                    .await;
            });
            anyhow::Ok(addr)
        })?;
        Ok(Self {
            shared,
            addr,
            stop: Some(stop_tx),
            runtime: Some(runtime),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// POST requests received, whatever their outcome.
    pub fn mutating_requests(&self) -> u64 {
        self.shared.mutations.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    pub fn webhooks(&self) -> Vec<Webhook> {
        lock(&self.shared.world).hooks.clone()
    }

    /// The next `n` POSTs answer 500 and change nothing.
    pub fn fail_next_mutations(&self, n: u64) {
        self.shared.fail_next.store(n, Ordering::SeqCst);
    }

    /// Adds a webhook as an operator would in the UI; returns its key.
    pub fn add_webhook(
        &self,
        name: &str,
        url: &str,
        secret: Option<&str>,
        project: Option<&str>,
    ) -> String {
        let mut world = lock(&self.shared.world);
        let key = world.new_key();
        world.hooks.push(Webhook {
            key: key.clone(),
            name: name.into(),
            url: url.into(),
            secret: secret.map(String::from),
            project: project.map(String::from),
        });
        key
    }

    /// Replaces a stored webhook's secret behind cityd's back.
    pub fn set_secret(&self, key: &str, secret: Option<&str>) {
        if let Some(h) = lock(&self.shared.world)
            .hooks
            .iter_mut()
            .find(|h| h.key == key)
        {
            h.secret = secret.map(String::from);
        }
    }

    pub fn set_validate_webhooks(&self, on: bool) {
        lock(&self.shared.world).opts.validate_webhooks = on;
    }
}

impl Drop for SonarDouble {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl World {
    fn new_key(&mut self) -> String {
        let n = self.next_key;
        self.next_key += 1;
        format!("AY{:018}", n * 7919)
    }
}

async fn gate(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let auth_scheme = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(' ').next())
        .unwrap_or("")
        .to_string();
    let response = if method == Method::POST {
        shared.mutations.fetch_add(1, Ordering::SeqCst);
        let pending = shared.fail_next.load(Ordering::SeqCst);
        if pending > 0 {
            shared.fail_next.store(pending - 1, Ordering::SeqCst);
            errors(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred")
        } else {
            next.run(request).await
        }
    } else {
        next.run(request).await
    };
    lock(&shared.log).push(Recorded {
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        auth_scheme,
    });
    response
}

fn errors(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "errors": [{ "msg": msg }] }))).into_response()
}

enum Caller {
    Admin,
    User,
}

/// Bearer (10.0+) or Basic `token:`; anything else is anonymous (401).
fn caller(world: &World, headers: &HeaderMap) -> Option<Caller> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = if let Some(t) = value.strip_prefix("Bearer ") {
        if !world.opts.version.bearer() {
            return None;
        }
        t.to_string()
    } else {
        let encoded = value.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        if !password.is_empty() {
            return None;
        }
        user.to_string()
    };
    if token == world.opts.token {
        Some(Caller::Admin)
    } else if token == world.opts.user_token {
        Some(Caller::User)
    } else {
        None
    }
}

/// `Err` carries the refusal to send as is.
#[allow(clippy::result_large_err)]
fn authorize(world: &World, headers: &HeaderMap) -> Result<(), Response> {
    match caller(world, headers) {
        None => Err(StatusCode::UNAUTHORIZED.into_response()),
        Some(Caller::User) => Err(errors(StatusCode::FORBIDDEN, "Insufficient privileges")),
        Some(Caller::Admin) => Ok(()),
    }
}

/// Query parameters merged with a form body (the body wins).
fn params(uri: &Uri, body: &Bytes) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = uri
        .query()
        .and_then(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    if let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) {
        out.extend(pairs);
    }
    out
}

fn render(world: &World, h: &Webhook) -> Value {
    let mut v = json!({ "key": h.key, "name": h.name, "url": h.url });
    if world.opts.version.lists_secret() {
        if let Some(s) = &h.secret {
            v["secret"] = json!(s);
        }
    } else {
        v["hasSecret"] = json!(h.secret.is_some());
    }
    v
}

async fn list(State(shared): State<Arc<Shared>>, uri: Uri, headers: HeaderMap) -> Response {
    let world = lock(&shared.world);
    if let Err(r) = authorize(&world, &headers) {
        return r;
    }
    let p = params(&uri, &Bytes::new());
    let project = p.get("project").cloned();
    if let Some(key) = &project
        && !world.opts.projects.contains(key)
    {
        return errors(StatusCode::NOT_FOUND, &format!("Project '{key}' not found"));
    }
    let hooks: Vec<Value> = world
        .hooks
        .iter()
        .filter(|h| h.project == project)
        .map(|h| render(&world, h))
        .collect();
    axum::Json(json!({ "webhooks": hooks })).into_response()
}

fn url_problem(world: &World, url: &str) -> Option<String> {
    let invalid = || {
        Some(format!(
            "Url parameter with value '{url}' is not a valid url"
        ))
    };
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() || url.len() > 512 {
        return invalid();
    }
    if !world.opts.validate_webhooks {
        return None;
    }
    let ip = if host.eq_ignore_ascii_case("localhost") {
        Some(IpAddr::from([127, 0, 0, 1]))
    } else {
        host.parse::<IpAddr>().ok()
    };
    let ip = ip?;
    let newest = world.opts.version.blocks_private_networks();
    let loopback_or_wildcard =
        ip.is_loopback() || ip.is_unspecified() || world.opts.own_addresses.contains(&ip);
    let private = match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local() || v4.is_multicast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_multicast(),
    };
    if newest && (loopback_or_wildcard || private) {
        return Some("Invalid URL: loopback, wildcard, link-local, site-local, multicast, cloud metadata addresses and addresses of the SonarQube server itself are not allowed for webhooks.".into());
    }
    if loopback_or_wildcard {
        return Some(
            "Invalid URL: loopback and wildcard addresses are not allowed for webhooks.".into(),
        );
    }
    None
}

fn url_refusal(world: &World, url: &str) -> Option<Response> {
    let rest_ok = url.starts_with("http://") || url.starts_with("https://");
    if !rest_ok {
        return Some(errors(
            StatusCode::BAD_REQUEST,
            &format!("Url parameter with value '{url}' is not a valid url"),
        ));
    }
    url_problem(world, url).map(|msg| errors(StatusCode::BAD_REQUEST, &msg))
}

fn secret_refusal(world: &World, secret: &str) -> Option<Response> {
    let len = secret.chars().count();
    let min = world.opts.version.min_secret();
    (!(min..=200).contains(&len)).then(|| {
        errors(
            StatusCode::BAD_REQUEST,
            &format!("Secret length must between {min} and 200 characters"),
        )
    })
}

async fn create(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut world = lock(&shared.world);
    if let Err(r) = authorize(&world, &headers) {
        return r;
    }
    let p = params(&uri, &body);
    let (Some(name), Some(url)) = (p.get("name"), p.get("url")) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "The 'name' and 'url' parameters are missing",
        );
    };
    if name.is_empty() || name.chars().count() > 100 {
        return errors(
            StatusCode::BAD_REQUEST,
            "'name' length must be between 1 and 100",
        );
    }
    if let Some(r) = url_refusal(&world, url) {
        return r;
    }
    let secret = p.get("secret").filter(|s| !s.is_empty()).cloned();
    if let Some(r) = secret.as_deref().and_then(|s| secret_refusal(&world, s)) {
        return r;
    }
    let project = p.get("project").cloned();
    if let Some(key) = &project
        && !world.opts.projects.contains(key)
    {
        return errors(StatusCode::NOT_FOUND, &format!("Project '{key}' not found"));
    }
    if world.hooks.iter().filter(|h| h.project == project).count() >= 10 {
        let msg = match &project {
            Some(key) => format!("Maximum number of webhook reached for project '{key}'"),
            None => "Maximum number of global webhooks reached".into(),
        };
        return errors(StatusCode::BAD_REQUEST, &msg);
    }
    let key = world.new_key();
    let hook = Webhook {
        key,
        name: name.clone(),
        url: url.clone(),
        secret,
        project,
    };
    world.hooks.push(hook.clone());
    axum::Json(json!({ "webhook": render(&world, &hook) })).into_response()
}

async fn update(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut world = lock(&shared.world);
    if let Err(r) = authorize(&world, &headers) {
        return r;
    }
    let p = params(&uri, &body);
    let (Some(key), Some(name), Some(url)) = (p.get("webhook"), p.get("name"), p.get("url")) else {
        return errors(
            StatusCode::BAD_REQUEST,
            "The 'webhook', 'name' and 'url' parameters are missing",
        );
    };
    if !world.hooks.iter().any(|h| &h.key == key) {
        return errors(
            StatusCode::NOT_FOUND,
            &format!("No webhook with key '{key}'"),
        );
    }
    if let Some(r) = url_refusal(&world, url) {
        return r;
    }
    // Omitted: unchanged. Empty: removed. Otherwise 16..200 (10.6+).
    let secret = match p.get("secret") {
        None => None,
        Some(s) if s.is_empty() => Some(None),
        Some(s) => {
            if let Some(r) = secret_refusal(&world, s) {
                return r;
            }
            Some(Some(s.clone()))
        }
    };
    if let Some(h) = world.hooks.iter_mut().find(|h| &h.key == key) {
        h.name = name.clone();
        h.url = url.clone();
        if let Some(secret) = secret {
            h.secret = secret;
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut world = lock(&shared.world);
    if let Err(r) = authorize(&world, &headers) {
        return r;
    }
    let p = params(&uri, &body);
    let Some(key) = p.get("webhook").cloned() else {
        return errors(
            StatusCode::BAD_REQUEST,
            "The 'webhook' parameter is missing",
        );
    };
    let before = world.hooks.len();
    world.hooks.retain(|h| h.key != key);
    if world.hooks.len() == before {
        return errors(
            StatusCode::NOT_FOUND,
            &format!("No webhook with key '{key}'"),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn not_found() -> Response {
    errors(StatusCode::NOT_FOUND, "Unknown url")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(version: SonarVersion) -> World {
        World {
            opts: SonarOptions {
                version,
                own_addresses: vec!["172.17.0.5".parse().unwrap()],
                ..SonarOptions::default()
            },
            hooks: vec![],
            next_key: 1,
        }
    }

    #[test]
    fn address_validation_follows_the_version() {
        let w = world(SonarVersion::V10_6);
        assert!(url_problem(&w, "http://127.0.0.1:9180/sonarqube").is_some());
        assert!(url_problem(&w, "http://localhost/sonarqube").is_some());
        assert!(url_problem(&w, "http://0.0.0.0/sonarqube").is_some());
        assert!(url_problem(&w, "http://172.17.0.5/sonarqube").is_some());
        assert!(url_problem(&w, "http://192.168.1.20:9180/sonarqube").is_none());
        let newest = world(SonarVersion::V2025);
        assert!(url_problem(&newest, "http://192.168.1.20:9180/sonarqube").is_some());
        assert!(url_problem(&newest, "http://203.0.113.7:9180/sonarqube").is_none());
    }
}
