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
use std::future::{Ready, ready};
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};

pub use crate::server::Recorded;
use crate::server::{DoubleServer, Gate, lock};

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

struct World {
    opts: SonarOptions,
    hooks: Vec<Webhook>,
    next_key: u64,
}

type SharedWorld = Arc<Mutex<World>>;

/// Request parameters, query string and form body merged.
type Params = BTreeMap<String, String>;

/// A running SonarQube double on `127.0.0.1:<ephemeral>`; the request log (with the auth scheme
/// each request used), counters and failure injection come from [`DoubleServer`] (mutating: POST).
pub struct SonarDouble {
    server: DoubleServer,
    world: SharedWorld,
}

impl SonarDouble {
    pub fn start(opts: SonarOptions) -> anyhow::Result<Self> {
        let world = Arc::new(Mutex::new(World {
            opts,
            hooks: Vec::new(),
            next_key: 1,
        }));
        let app = Router::new()
            .route("/api/webhooks/list", get(admin_get(list)))
            .route("/api/webhooks/create", post(admin_post(create)))
            .route("/api/webhooks/update", post(admin_post(update)))
            .route("/api/webhooks/delete", post(admin_post(remove)))
            .fallback(not_found)
            .with_state(world.clone());
        let gate = Gate {
            is_mutating: |method| method == Method::POST,
            injected_failure: || errors(StatusCode::INTERNAL_SERVER_ERROR, "An error has occurred"),
        };
        let server = DoubleServer::start("sonarqube-double", gate, app)?;
        Ok(Self { server, world })
    }

    pub fn webhooks(&self) -> Vec<Webhook> {
        lock(&self.world).hooks.clone()
    }

    /// Adds a webhook as an operator would in the UI; returns its key.
    pub fn add_webhook(
        &self,
        name: &str,
        url: &str,
        secret: Option<&str>,
        project: Option<&str>,
    ) -> String {
        let mut world = lock(&self.world);
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
        if let Some(h) = lock(&self.world).hooks.iter_mut().find(|h| h.key == key) {
            h.secret = secret.map(String::from);
        }
    }

    pub fn set_validate_webhooks(&self, on: bool) {
        lock(&self.world).opts.validate_webhooks = on;
    }
}

/// `base_url`, `requests`, `mutating_requests`, `fail_next_mutations`.
impl Deref for SonarDouble {
    type Target = DoubleServer;
    fn deref(&self) -> &DoubleServer {
        &self.server
    }
}

impl World {
    fn new_key(&mut self) -> String {
        let n = self.next_key;
        self.next_key += 1;
        format!("AY{:018}", n * 7919)
    }
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
fn params(uri: &Uri, body: &Bytes) -> Params {
    let mut out: Params = uri
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

/// What a webhooks call does once [`admin_call`] has let the caller in.
type Action = fn(&mut World, &Params) -> Response;

/// A GET handler for `action`: parameters from the query string only.
fn admin_get(
    action: Action,
) -> impl Fn(State<SharedWorld>, Uri, HeaderMap) -> Ready<Response> + Clone + Send + Sync + 'static
{
    move |State(world), uri, headers| {
        ready(admin_call(
            &world,
            &headers,
            &params(&uri, &Bytes::new()),
            action,
        ))
    }
}

/// A POST handler for `action`: parameters from the query string and the form body.
fn admin_post(
    action: Action,
) -> impl Fn(State<SharedWorld>, Uri, HeaderMap, Bytes) -> Ready<Response> + Clone + Send + Sync + 'static
{
    move |State(world), uri, headers, body| {
        ready(admin_call(&world, &headers, &params(&uri, &body), action))
    }
}

/// Every webhooks call needs an administrator (401/403 otherwise) and holds the world throughout.
fn admin_call(world: &Mutex<World>, headers: &HeaderMap, p: &Params, action: Action) -> Response {
    let mut world = lock(world);
    match authorize(&world, headers) {
        Ok(()) => action(&mut world, p),
        Err(refusal) => refusal,
    }
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

fn list(world: &mut World, p: &Params) -> Response {
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
        .map(|h| render(world, h))
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

fn create(world: &mut World, p: &Params) -> Response {
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
    if let Some(r) = url_refusal(world, url) {
        return r;
    }
    let secret = p.get("secret").filter(|s| !s.is_empty()).cloned();
    if let Some(r) = secret.as_deref().and_then(|s| secret_refusal(world, s)) {
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
    axum::Json(json!({ "webhook": render(world, &hook) })).into_response()
}

fn update(world: &mut World, p: &Params) -> Response {
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
    if let Some(r) = url_refusal(world, url) {
        return r;
    }
    // Omitted: unchanged. Empty: removed. Otherwise 16..200 (10.6+).
    let secret = match p.get("secret") {
        None => None,
        Some(s) if s.is_empty() => Some(None),
        Some(s) => {
            if let Some(r) = secret_refusal(world, s) {
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

fn remove(world: &mut World, p: &Params) -> Response {
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
