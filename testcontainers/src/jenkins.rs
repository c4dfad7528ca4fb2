//! A Jenkins double for `cityd connect jenkins`: the crumb issuer and the JCasC reload action, with
//! Jenkins' quirks (integrations.md §3): Basic auth with a user's API token (401 otherwise), a
//! crumb bound to the web session that fetched it (`Set-Cookie: JSESSIONID…`), 403 "No valid crumb
//! was included in the request" without it, 404 from the crumb issuer when CSRF protection is off,
//! and a reload that answers with a redirect to `/manage`.
//!
//! On reload the double does what JCasC does with the file it was pointed at: parses the YAML,
//! resolves `${VAR}` from the *container environment* (fixed when the double starts, like Docker's
//! `--env-file` at create time; [`JenkinsDouble::recreate_with_env`] models a re-created container)
//! and records the Mattermost notifier settings it would apply.

use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;

pub use crate::server::Recorded;
use crate::server::{DoubleServer, Gate, lock};

/// How to start the double.
#[derive(Debug, Clone)]
pub struct JenkinsOptions {
    pub user: String,
    pub api_token: String,
    /// CSRF protection on (the default since Jenkins 2.222): the crumb issuer answers and POSTs need a crumb.
    pub csrf: bool,
    /// The JCasC YAML the reload reads (CASC_JENKINS_CONFIG).
    pub casc_file: Option<PathBuf>,
    /// The container's environment, fixed at "creation".
    pub env: BTreeMap<String, String>,
}

impl Default for JenkinsOptions {
    fn default() -> Self {
        Self {
            user: "admin".into(),
            api_token: "11aa22bb33cc44dd55ee66ff77aa88bb99".into(),
            csrf: true,
            casc_file: None,
            env: BTreeMap::new(),
        }
    }
}

/// What a successful reload applied from `unclassified.mattermostNotifier`, variables resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedNotifier {
    pub endpoint: Option<String>,
    pub room: Option<String>,
    pub build_server_url: Option<String>,
    pub icon: Option<String>,
    /// `${VAR}` references the environment could not resolve.
    pub unresolved: Vec<String>,
}

struct Shared {
    opts: Mutex<JenkinsOptions>,
    /// Session cookie value → crumb issued to it.
    crumbs: Mutex<HashMap<String, String>>,
    next_id: AtomicU64,
    reloads: AtomicU64,
    applied: Mutex<Option<AppliedNotifier>>,
    reload_errors: Mutex<Vec<String>>,
}

const COOKIE_NAME: &str = "JSESSIONID.7c1a3e2f";

/// A running Jenkins double on `127.0.0.1:<ephemeral>`; the request log, counters and failure
/// injection come from [`DoubleServer`] (mutating: POST).
pub struct JenkinsDouble {
    server: DoubleServer,
    shared: Arc<Shared>,
}

impl JenkinsDouble {
    /// Starts the double and returns once it accepts connections.
    pub fn start(opts: JenkinsOptions) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            opts: Mutex::new(opts),
            crumbs: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            reloads: AtomicU64::new(0),
            applied: Mutex::new(None),
            reload_errors: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/crumbIssuer/api/json", get(crumb_issuer))
            .route("/configuration-as-code/reload", post(reload))
            .fallback(not_found)
            .with_state(shared.clone());
        let gate = Gate {
            is_mutating: |method| method == Method::POST,
            injected_failure: || {
                (StatusCode::INTERNAL_SERVER_ERROR, "injected failure").into_response()
            },
        };
        let server = DoubleServer::start("jenkins-double", gate, app)?;
        Ok(Self { server, shared })
    }

    /// Reloads that passed auth and the crumb check (whether the YAML applied or not).
    pub fn reloads(&self) -> u64 {
        self.shared.reloads.load(Ordering::SeqCst)
    }

    /// The notifier settings of the last successful reload.
    pub fn applied_notifier(&self) -> Option<AppliedNotifier> {
        lock(&self.shared.applied).clone()
    }

    /// Why reloads failed to apply the YAML (unreadable or invalid file).
    pub fn reload_errors(&self) -> Vec<String> {
        lock(&self.shared.reload_errors).clone()
    }

    /// A re-created container: a new environment (read from the env file again).
    pub fn recreate_with_env(&self, env: BTreeMap<String, String>) {
        lock(&self.shared.opts).env = env;
    }
}

/// `base_url`, `requests`, `mutating_requests`, `fail_next_mutations`.
impl Deref for JenkinsDouble {
    type Target = DoubleServer;
    fn deref(&self) -> &DoubleServer {
        &self.server
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"")],
        "<html><body>Authentication required</body></html>",
    )
        .into_response()
}

/// Basic `user:api-token` of the configured user.
fn authenticated(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let opts = lock(&shared.opts);
    decoded == format!("{}:{}", opts.user, opts.api_token).as_bytes()
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
}

async fn crumb_issuer(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authenticated(&shared, &headers) {
        return unauthorized();
    }
    if !lock(&shared.opts).csrf {
        return (StatusCode::NOT_FOUND, "Not Found").into_response();
    }
    let n = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let session = format!("node0{n:08x}q1w2e3");
    let crumb = format!("{:064x}", 0x5eed_c0de_u64.wrapping_mul(n + 7919));
    lock(&shared.crumbs).insert(session.clone(), crumb.clone());
    let body = serde_json::json!({
        "_class": "hudson.security.csrf.DefaultCrumbIssuer",
        "crumb": crumb,
        "crumbRequestField": "Jenkins-Crumb",
    });
    (
        StatusCode::OK,
        [(
            header::SET_COOKIE,
            format!("{COOKIE_NAME}={session}; Path=/; HttpOnly"),
        )],
        axum::Json(body),
    )
        .into_response()
}

async fn reload(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authenticated(&shared, &headers) {
        return unauthorized();
    }
    if lock(&shared.opts).csrf {
        let sent = headers.get("Jenkins-Crumb").and_then(|v| v.to_str().ok());
        let issued = session_of(&headers).and_then(|s| lock(&shared.crumbs).get(&s).cloned());
        if sent.is_none() || sent != issued.as_deref() {
            return (
                StatusCode::FORBIDDEN,
                "<html><body><h2>HTTP ERROR 403 No valid crumb was included in the request</h2></body></html>",
            )
                .into_response();
        }
    }
    shared.reloads.fetch_add(1, Ordering::SeqCst);
    let opts = lock(&shared.opts).clone();
    if let Some(path) = &opts.casc_file {
        match apply(path, &opts.env) {
            Ok(applied) => *lock(&shared.applied) = Some(applied),
            Err(e) => lock(&shared.reload_errors).push(e),
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, "/manage")], "").into_response()
}

/// JCasC's part of a reload: parse the file, resolve variables, pick the notifier settings.
fn apply(path: &PathBuf, env: &BTreeMap<String, String>) -> Result<AppliedNotifier, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|e| format!("{}: invalid YAML: {e}", path.display()))?;
    let doc = docs.first().cloned().unwrap_or(yaml_rust2::Yaml::Null);
    let notifier = &doc["unclassified"]["mattermostNotifier"];
    let mut applied = AppliedNotifier::default();
    let mut resolve = |key: &str| -> Option<String> {
        let raw = notifier[key].as_str()?;
        let mut out = String::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[start..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            match env.get(name) {
                Some(v) => out.push_str(v),
                None => applied.unresolved.push(name.to_string()),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Some(out)
    };
    let endpoint = resolve("endpoint");
    let room = resolve("room");
    let build_server_url = resolve("buildServerUrl");
    let icon = resolve("icon");
    applied.endpoint = endpoint;
    applied.room = room;
    applied.build_server_url = build_server_url;
    applied.icon = icon;
    Ok(applied)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}
