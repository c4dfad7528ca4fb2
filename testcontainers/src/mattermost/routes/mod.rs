//! The HTTP surface: one router per listener (TCP with session auth, unix socket in local mode),
//! and the gate every request passes (readiness, mutation counting, fault injection, auth, log).
//!
//! Counting rule: every POST/PUT/PATCH/DELETE that reaches a ready server counts as a mutating
//! request, whatever its outcome (404, 401, 400 included), on either listener — **except**
//! deliveries to an incoming webhook (`POST /hooks/{id}`), which are counted separately
//! (`webhook_deliveries`) and are never the target of `fail_nth_mutation`. So "zero mutating
//! requests" measures cityd's converging API calls, and `verify webhook` can run without
//! disturbing those counts.

mod bots;
mod channels;
mod config;
mod form;
mod hooks;
mod plugins;
mod posts;
mod system;
mod teams;
mod users;
mod webhook;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Serialize;

use super::errors::{ApiResult, AppError};
use super::state::{RecordedRequest, Shared, Transport};

/// Router state: the shared server plus which listener this router serves.
#[derive(Clone)]
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub transport: Transport,
}

/// Who is calling, as established by the gate.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A request on the local-mode socket: unrestricted, no user.
    Local,
    /// A TCP request with a valid bearer token.
    User { id: String, admin: bool, bot: bool },
    /// A TCP request without a (valid) token, on a route that needs none.
    Anonymous,
}

impl Caller {
    pub fn is_local(&self) -> bool {
        matches!(self, Caller::Local)
    }

    /// The permission check of every route that needs `manage_system`-level rights: local mode
    /// and system admins pass, everyone else gets 403.
    pub fn require_admin(&self) -> ApiResult<()> {
        match self {
            Caller::Local | Caller::User { admin: true, .. } => Ok(()),
            _ => Err(AppError::permission()),
        }
    }

    pub fn user_id(&self) -> Option<&str> {
        match self {
            Caller::User { id, .. } => Some(id),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Local | Caller::User { admin: true, .. })
    }
}

/// Plugin bundles are larger than axum's 2 MB default; the server's `FileSettings.MaxFileSize`
/// default is 100 MiB.
const MAX_BODY: usize = 100 * 1024 * 1024;

pub fn router(shared: Arc<Shared>, transport: Transport) -> Router {
    let ctx = Ctx { shared, transport };
    let session = transport == Transport::Tcp;
    let mut r = Router::new()
        .route("/api/v4/system/ping", get(system::ping))
        .route("/api/v4/config", get(config::get_config))
        .route("/api/v4/config/patch", put(config::patch))
        .route("/api/v4/config/reload", post(config::reload))
        .route("/api/v4/teams", post(teams::create))
        .route("/api/v4/teams/{team_id}", get(teams::get_by_id))
        .route("/api/v4/teams/name/{team_name}", get(teams::get_by_name))
        .route("/api/v4/teams/{team_id}/members", post(teams::add_member))
        .route("/api/v4/teams/{team_id}/patch", put(teams::patch))
        .route("/api/v4/channels", post(channels::create))
        .route(
            "/api/v4/teams/{team_id}/channels/name/{channel_name}",
            get(channels::get_by_team_id_and_name),
        )
        .route(
            "/api/v4/teams/name/{team_name}/channels/name/{channel_name}",
            get(channels::get_by_names),
        )
        .route(
            "/api/v4/channels/{channel_id}/members",
            post(channels::add_member).get(channels::members),
        )
        .route("/api/v4/channels/{channel_id}/posts", get(channels::posts))
        .route("/api/v4/channels/{channel_id}/patch", put(channels::patch))
        .route("/api/v4/users", post(users::create).get(users::list))
        .route("/api/v4/users/tokens/revoke", post(users::revoke_token))
        .route("/api/v4/bots/{bot_user_id}", put(bots::patch))
        .route(
            "/api/v4/users/username/{username}",
            get(users::get_by_username),
        )
        .route(
            "/api/v4/users/{user_id}/convert_to_bot",
            post(users::convert_to_bot),
        )
        .route(
            "/api/v4/users/{user_id}/tokens",
            post(users::create_token).get(users::list_tokens),
        )
        .route(
            "/api/v4/hooks/incoming",
            post(hooks::create).get(hooks::list),
        )
        .route(
            "/api/v4/hooks/incoming/{hook_id}",
            get(hooks::get_one).put(hooks::update),
        )
        .route("/api/v4/plugins", post(plugins::upload).get(plugins::list))
        .route("/api/v4/plugins/{plugin_id}/enable", post(plugins::enable))
        .route(
            "/api/v4/plugins/{plugin_id}/disable",
            post(plugins::disable),
        )
        .route("/api/v4/posts/{post_id}", get(posts::get_one));
    if session {
        // Routes the local-mode server does not register (mattermost.md §3).
        r = r
            .route("/api/v4/bots", get(bots::list).post(bots::create))
            .route("/api/v4/plugins/statuses", get(plugins::statuses))
            .route("/api/v4/posts", post(posts::create))
            .route("/hooks/{hook_id}", post(webhook::deliver));
    } else {
        r = r.route("/api/v4/bots", get(bots::list));
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(ctx.clone(), gate))
        .with_state(ctx)
}

/// Unknown paths and methods: the local-mode server answers 404 for anything it does not register
/// (e.g. `POST /bots`), and so does the TCP side for anything the double does not implement.
async fn not_found() -> AppError {
    AppError::route_not_found()
}

fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Routes that need no session (`APIHandler` / the webhook handler).
fn is_public(path: &str) -> bool {
    path == "/api/v4/system/ping" || path.starts_with("/hooks/")
}

async fn gate(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let response = admit(&ctx, req, next).await;
    ctx.shared.record(RecordedRequest {
        method,
        path,
        query,
        status: response.status().as_u16(),
        transport: ctx.transport,
    });
    response
}

async fn admit(ctx: &Ctx, mut req: Request, next: Next) -> Response {
    let shared = &ctx.shared;
    if !shared.is_ready() {
        return AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api.system.not_ready.app_error",
            "The server is starting and is not ready yet.",
        )
        .into_response();
    }
    let delivery = ctx.transport == Transport::Tcp
        && req.method() == Method::POST
        && req.uri().path().starts_with("/hooks/");
    if delivery {
        shared.deliveries.fetch_add(1, Ordering::SeqCst);
    } else if is_mutating(req.method()) {
        let n = shared.mutations.fetch_add(1, Ordering::SeqCst) + 1;
        if shared
            .fail_at
            .compare_exchange(n, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return AppError::internal(
                "app.injected_failure.app_error",
                format!(
                    "Injected failure: mutating request #{n} was told to fail; nothing was changed."
                ),
            )
            .into_response();
        }
    }
    let caller = match ctx.transport {
        Transport::Socket => Caller::Local,
        Transport::Tcp => authenticate(shared, req.headers(), req.uri().query()),
    };
    if matches!(caller, Caller::Anonymous) && !is_public(req.uri().path()) {
        return AppError::session_expired().into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Resolves `Authorization: Bearer|Token <t>` (or `?access_token=`) to a user; an unknown token
/// is treated as no token (public routes still answer, others 401).
fn authenticate(shared: &Shared, headers: &HeaderMap, query: Option<&str>) -> Caller {
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                .then(|| token.trim().to_owned())
        });
    let from_query = || {
        query.and_then(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .ok()?
                .into_iter()
                .find(|(k, _)| k == "access_token")
                .map(|(_, v)| v)
        })
    };
    let Some(token) = from_header.or_else(from_query) else {
        return Caller::Anonymous;
    };
    let world = shared.world();
    let Some(user) = world
        .sessions
        .get(&token)
        .and_then(|uid| world.user(uid).ok())
    else {
        return Caller::Anonymous;
    };
    if user.delete_at != 0 {
        return Caller::Anonymous;
    }
    Caller::User {
        id: user.id.clone(),
        admin: user.is_system_admin(),
        bot: user.is_bot,
    }
}

/// A JSON response with the given status.
pub fn json_with<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// `page` / `per_page` query parameters (per_page defaults to 60, at most 200).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
#[serde(default)]
pub struct Paging {
    pub page: usize,
    pub per_page: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 0,
            per_page: 60,
        }
    }
}

impl Paging {
    pub fn apply<T>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        let per_page = self.per_page.clamp(1, 200);
        items
            .into_iter()
            .skip(self.page.saturating_mul(per_page))
            .take(per_page)
            .collect()
    }
}

/// Parses the query string leniently: a malformed parameter answers like `SetInvalidParam`.
pub fn query<T: serde::de::DeserializeOwned + Default>(
    raw: Option<&str>,
    name: &str,
) -> ApiResult<T> {
    match raw {
        None | Some("") => Ok(T::default()),
        Some(q) => serde_urlencoded::from_str(q).map_err(|_| AppError::invalid_param(name)),
    }
}
