//! A GitLab double for `cityd connect gitlab`: REST v4 project lookup by id or URL-encoded full
//! path, the project's Mattermost notifications integration (GET/PUT) and the admin OAuth
//! applications API (GET/POST/DELETE), following integrations.md §2:
//!
//! - auth by `PRIVATE-TOKEN` (or `Authorization: Bearer`); unknown → 401 `{"message":"401 Unauthorized"}`;
//!   applications need the admin token (403 otherwise);
//! - GET of an integration never configured answers GitLab's initialised default (`active: false`,
//!   `notify_only_broken_pipelines: true`, `branches_to_be_notified: "default"`);
//! - the `webhook` is write-only: never returned in `properties` (unless `expose_webhook`);
//! - the webhook must be a public URL: localhost, loopback, private (RFC 1918, ULA), link-local and
//!   unspecified addresses are refused with GitLab's "Requests to … are not allowed" unless
//!   `allow_local_requests` (the admin setting `allow_local_requests_from_web_hooks_and_services`);
//! - `GET /applications` never returns `secret`.
//!
//! Every PUT/POST/DELETE counts as a mutating request; failures can be injected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Map, Value, json};

pub use crate::server::Recorded;
use crate::server::{DoubleServer, Gate, lock};

/// The chat-notification events of the Mattermost integration (`<event>_events` flags).
pub const EVENTS: &[&str] = &[
    "push",
    "issues",
    "confidential_issues",
    "merge_requests",
    "note",
    "confidential_note",
    "tag_push",
    "pipeline",
    "wiki_page",
    "deployment",
    "incident",
];

/// How to start the double.
#[derive(Debug, Clone)]
pub struct GitlabOptions {
    /// Token of a project maintainer (may manage integrations, not applications).
    pub token: String,
    /// Token of an administrator.
    pub admin_token: String,
    /// Projects as (id, full path).
    pub projects: Vec<(u64, String)>,
    /// Admin setting `allow_local_requests_from_web_hooks_and_services`.
    pub allow_local_requests: bool,
    /// Show the webhook in `properties` (some versions did); default false.
    pub expose_webhook: bool,
}

impl Default for GitlabOptions {
    fn default() -> Self {
        Self {
            token: "glpat-maintainer-0123456789".into(),
            admin_token: "glpat-admin-0123456789abcd".into(),
            projects: vec![(42, "articles/http-client".into())],
            allow_local_requests: false,
            expose_webhook: false,
        }
    }
}

/// A project's Mattermost integration as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Integration {
    pub active: bool,
    pub webhook: String,
    pub events: BTreeMap<String, bool>,
    pub properties: BTreeMap<String, Value>,
}

/// An OAuth application as stored (the secret included, for assertions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: u64,
    pub application_id: String,
    pub name: String,
    pub redirect_uri: String,
    pub scopes: String,
    pub secret: String,
    pub confidential: bool,
}

struct World {
    opts: GitlabOptions,
    integrations: BTreeMap<u64, Integration>,
    applications: Vec<Application>,
    next_id: u64,
}

type SharedWorld = Arc<Mutex<World>>;

/// What every GitLab handler answers: the refusal is sent as is.
type Answer = Result<Response, Response>;

/// A running GitLab double on `127.0.0.1:<ephemeral>`; the request log, counters and failure
/// injection come from [`DoubleServer`] (mutating: every method but GET and HEAD).
pub struct GitlabDouble {
    server: DoubleServer,
    world: SharedWorld,
}

impl GitlabDouble {
    pub fn start(opts: GitlabOptions) -> anyhow::Result<Self> {
        let world = Arc::new(Mutex::new(World {
            opts,
            integrations: BTreeMap::new(),
            applications: Vec::new(),
            next_id: 1,
        }));
        let app = Router::new()
            .route("/api/v4/projects/{id}", get(get_project))
            .route(
                "/api/v4/projects/{id}/integrations/mattermost",
                get(get_integration).put(put_integration),
            )
            .route(
                "/api/v4/applications",
                get(list_applications).post(create_application),
            )
            .route("/api/v4/applications/{id}", delete(delete_application))
            .fallback(not_found)
            .with_state(world.clone());
        let gate = Gate {
            is_mutating: crate::server::not_a_read,
            injected_failure: || {
                message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                )
            },
        };
        let server = DoubleServer::start("gitlab-double", gate, app)?;
        Ok(Self { server, world })
    }

    pub fn integration(&self, project_id: u64) -> Option<Integration> {
        lock(&self.world).integrations.get(&project_id).cloned()
    }

    /// Changes what is stored, as an operator clicking in the UI would.
    pub fn edit_integration(&self, project_id: u64, edit: impl FnOnce(&mut Integration)) {
        if let Some(i) = lock(&self.world).integrations.get_mut(&project_id) {
            edit(i);
        }
    }

    pub fn applications(&self) -> Vec<Application> {
        lock(&self.world).applications.clone()
    }

    pub fn set_allow_local_requests(&self, allow: bool) {
        lock(&self.world).opts.allow_local_requests = allow;
    }
}

/// `base_url`, `requests`, `mutating_requests`, `fail_next_mutations`.
impl Deref for GitlabDouble {
    type Target = DoubleServer;
    fn deref(&self) -> &DoubleServer {
        &self.server
    }
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

fn bad_request(body: Value) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

#[derive(PartialEq)]
enum Caller {
    Maintainer,
    Admin,
}

fn caller(world: &World, headers: &HeaderMap) -> Option<Caller> {
    let token = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(String::from)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(String::from)
        })?;
    if token == world.opts.admin_token {
        Some(Caller::Admin)
    } else if token == world.opts.token {
        Some(Caller::Maintainer)
    } else {
        None
    }
}

/// Applications need the admin token: 401 without a known token, 403 for the maintainer.
#[allow(clippy::result_large_err)]
fn require_admin(world: &World, headers: &HeaderMap) -> Result<(), Response> {
    match caller(world, headers) {
        None => Err(message(StatusCode::UNAUTHORIZED, "401 Unauthorized")),
        Some(Caller::Maintainer) => Err(message(StatusCode::FORBIDDEN, "403 Forbidden")),
        Some(Caller::Admin) => Ok(()),
    }
}

/// The project `id` (numeric or full path) names, as (id, full path), for any known token: 401
/// before 404, as GitLab answers.
#[allow(clippy::result_large_err)]
fn find_project(world: &World, headers: &HeaderMap, id: &str) -> Result<(u64, String), Response> {
    if caller(world, headers).is_none() {
        return Err(message(StatusCode::UNAUTHORIZED, "401 Unauthorized"));
    }
    world
        .opts
        .projects
        .iter()
        .find(|(pid, path)| id == pid.to_string() || id.eq_ignore_ascii_case(path))
        .cloned()
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "404 Project Not Found"))
}

async fn get_project(
    State(world): State<SharedWorld>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let (pid, path) = find_project(&lock(&world), &headers, &id)?;
    let name = path.rsplit('/').next().unwrap_or(&path).to_string();
    Ok(axum::Json(json!({
        "id": pid,
        "name": name,
        "path": name,
        "path_with_namespace": path,
        "default_branch": "main",
    }))
    .into_response())
}

fn default_integration() -> Integration {
    let mut properties = BTreeMap::new();
    properties.insert("notify_only_broken_pipelines".into(), json!(true));
    properties.insert("branches_to_be_notified".into(), json!("default"));
    properties.insert("labels_to_be_notified".into(), json!(""));
    properties.insert("labels_to_be_notified_behavior".into(), json!("match_any"));
    properties.insert("channel".into(), json!(""));
    properties.insert("username".into(), json!(""));
    Integration {
        active: false,
        webhook: String::new(),
        events: EVENTS
            .iter()
            .map(|e| (format!("{e}_events"), true))
            .collect(),
        properties,
    }
}

fn render_integration(project_id: u64, i: &Integration, expose_webhook: bool) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(1000 + project_id));
    out.insert("title".into(), json!("Mattermost notifications"));
    out.insert("slug".into(), json!("mattermost"));
    out.insert("active".into(), json!(i.active));
    out.insert("commit_events".into(), json!(true));
    out.insert("job_events".into(), json!(false));
    for (k, v) in &i.events {
        out.insert(k.clone(), json!(v));
    }
    let mut props: Map<String, Value> = i.properties.clone().into_iter().collect();
    if expose_webhook {
        props.insert("webhook".into(), json!(i.webhook));
    }
    out.insert("properties".into(), Value::Object(props));
    Value::Object(out)
}

async fn get_integration(
    State(world): State<SharedWorld>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let world = lock(&world);
    let (pid, _) = find_project(&world, &headers, &id)?;
    let integration = world
        .integrations
        .get(&pid)
        .cloned()
        .unwrap_or_else(default_integration);
    Ok(axum::Json(render_integration(
        pid,
        &integration,
        world.opts.expose_webhook,
    ))
    .into_response())
}

/// Parameters from a JSON or form body; 400 when the body is neither.
#[allow(clippy::result_large_err)]
fn params(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if body.is_empty() {
        return Ok(Map::new());
    }
    let parsed = if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        }
    } else {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(|pairs| pairs.into_iter().map(|(k, v)| (k, json!(v))).collect())
    };
    parsed.ok_or_else(|| {
        message(
            StatusCode::BAD_REQUEST,
            "400 Bad request - body is not valid",
        )
    })
}

fn to_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "1" => Some(true),
        Value::String(s) if s == "false" || s == "0" => Some(false),
        _ => None,
    }
}

fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// GitLab's `public_url` validation of the webhook: `Err(message)` when blocked.
fn blocked(url: &str, allow_local: bool) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| "is blocked: Only allowed schemes are http, https".to_string())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err("is blocked: URI is invalid".into());
    }
    if allow_local {
        return Ok(());
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Err("is blocked: Requests to localhost are not allowed".into());
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if ip.is_loopback() {
            return Err("is blocked: Requests to loopback addresses are not allowed".into());
        }
        if is_local_ip(ip) {
            return Err("is blocked: Requests to the local network are not allowed".into());
        }
    }
    Ok(())
}

async fn put_integration(
    State(world): State<SharedWorld>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let mut world = lock(&world);
    let (pid, _) = find_project(&world, &headers, &id)?;
    let params = params(&headers, &body)?;
    let mut integration = world
        .integrations
        .get(&pid)
        .cloned()
        .unwrap_or_else(default_integration);
    match params.get("webhook").and_then(Value::as_str) {
        Some(webhook) => {
            if let Err(why) = blocked(webhook, world.opts.allow_local_requests) {
                return Err(bad_request(json!({ "message": { "webhook": [why] } })));
            }
            integration.webhook = webhook.to_string();
        }
        None if integration.webhook.is_empty() => {
            return Err(bad_request(json!({ "error": "webhook is missing" })));
        }
        None => {}
    }
    for (key, value) in &params {
        if let Some(event) = key.strip_suffix("_events")
            && EVENTS.contains(&event)
        {
            match to_bool(value) {
                Some(b) => {
                    integration.events.insert(key.clone(), b);
                }
                None => return Err(bad_request(json!({ "error": format!("{key} is invalid") }))),
            }
        }
    }
    for key in ["notify_only_broken_pipelines"] {
        if let Some(v) = params.get(key) {
            let Some(b) = to_bool(v) else {
                return Err(bad_request(json!({ "error": format!("{key} is invalid") })));
            };
            integration.properties.insert(key.into(), json!(b));
        }
    }
    if let Some(v) = params.get("branches_to_be_notified") {
        let ok = v
            .as_str()
            .is_some_and(|s| ["all", "default", "protected", "default_and_protected"].contains(&s));
        if !ok {
            return Err(bad_request(
                json!({ "error": "branches_to_be_notified does not have a valid value" }),
            ));
        }
        integration
            .properties
            .insert("branches_to_be_notified".into(), v.clone());
    }
    for key in ["channel", "username", "labels_to_be_notified"]
        .into_iter()
        .map(String::from)
        .chain(EVENTS.iter().map(|e| format!("{e}_channel")))
    {
        if let Some(v) = params.get(&key).and_then(Value::as_str) {
            integration.properties.insert(key, json!(v));
        }
    }
    integration.active = true;
    world.integrations.insert(pid, integration.clone());
    Ok(axum::Json(render_integration(
        pid,
        &integration,
        world.opts.expose_webhook,
    ))
    .into_response())
}

async fn list_applications(State(world): State<SharedWorld>, headers: HeaderMap) -> Answer {
    let world = lock(&world);
    require_admin(&world, &headers)?;
    let list: Vec<Value> = world
        .applications
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "application_id": a.application_id,
                "application_name": a.name,
                "callback_url": a.redirect_uri,
                "confidential": a.confidential,
            })
        })
        .collect();
    Ok(axum::Json(list).into_response())
}

async fn create_application(
    State(world): State<SharedWorld>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let mut world = lock(&world);
    require_admin(&world, &headers)?;
    let params = params(&headers, &body)?;
    let text = |k: &str| params.get(k).and_then(Value::as_str).map(String::from);
    let (Some(name), Some(redirect_uri), Some(scopes)) =
        (text("name"), text("redirect_uri"), text("scopes"))
    else {
        return Err(bad_request(
            json!({ "error": "name, redirect_uri, scopes are missing" }),
        ));
    };
    let confidential = params.get("confidential").and_then(to_bool).unwrap_or(true);
    let id = world.next_id;
    world.next_id += 1;
    let application = Application {
        id,
        application_id: format!("{:064x}", 0xa11c_e5ed_u64.wrapping_mul(id + 31)),
        name,
        redirect_uri,
        scopes,
        secret: format!("gloas-{:064x}", 0x5ec4_e7ed_u64.wrapping_mul(id + 101)),
        confidential,
    };
    world.applications.push(application.clone());
    Ok((
        StatusCode::OK,
        axum::Json(json!({
            "id": application.id,
            "application_id": application.application_id,
            "application_name": application.name,
            "secret": application.secret,
            "callback_url": application.redirect_uri,
            "confidential": application.confidential,
        })),
    )
        .into_response())
}

async fn delete_application(
    State(world): State<SharedWorld>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let mut world = lock(&world);
    require_admin(&world, &headers)?;
    let before = world.applications.len();
    world.applications.retain(|a| a.id.to_string() != id);
    if world.applications.len() == before {
        return Err(message(StatusCode::NOT_FOUND, "404 Application Not Found"));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "404 Not Found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_refused_unless_allowed() {
        assert!(blocked("https://192.168.1.20:8065/hooks/x", false).is_err());
        assert!(blocked("http://127.0.0.1/hooks/x", false).is_err());
        assert!(blocked("http://localhost:8065/hooks/x", false).is_err());
        assert!(blocked("http://[fd00::1]:8065/hooks/x", false).is_err());
        assert!(blocked("https://203.0.113.9/hooks/x", false).is_ok());
        assert!(blocked("https://mattermost.example/hooks/x", false).is_ok());
        assert!(blocked("https://192.168.1.20:8065/hooks/x", true).is_ok());
    }
}
