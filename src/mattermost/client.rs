//! The Mattermost API client: one method per REST v4 endpoint cityd uses, over the local-mode
//! socket or a URL with a token. Counts requests (and the mutating ones) for reports and benchmarks.
//! Never logs bodies: config and token answers carry secrets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, AppError, ConnectProblem, excerpt};
use super::model::*;
use super::transport::{REQUEST_TIMEOUT, Target};
use crate::secrets::Secret;

/// Mattermost's largest page.
pub const PER_PAGE: usize = 200;

/// Requests made so far: all of them, and those that may change server state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub total: u64,
    pub mutating: u64,
}

pub struct ApiClient {
    http: reqwest::Client,
    target: Target,
    total: AtomicU64,
    mutating: AtomicU64,
}

enum Body {
    Empty,
    Json(Vec<u8>),
    Multipart(reqwest::multipart::Form),
}

impl ApiClient {
    pub fn new(target: Target) -> Result<Self, ApiError> {
        Self::with_timeout(target, REQUEST_TIMEOUT)
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(target: Target, timeout: Duration) -> Result<Self, ApiError> {
        Ok(Self {
            http: target.http_client(timeout)?,
            target,
            total: AtomicU64::new(0),
            mutating: AtomicU64::new(0),
        })
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            total: self.total.load(Ordering::Relaxed),
            mutating: self.mutating.load(Ordering::Relaxed),
        }
    }

    // ---- system -------------------------------------------------------------------------------

    /// GET /system/ping (no authentication needed).
    pub async fn ping(&self) -> Result<Ping, ApiError> {
        self.json(Method::GET, "/system/ping", Body::Empty).await
    }

    /// GET /system/ping with the server status (database write, file store) in REST semantics,
    /// and the build from `X-Version-ID`, timed: what `cityd status` shows.
    pub async fn server_status(&self) -> Result<ServerStatus, ApiError> {
        let endpoint = "GET /system/ping?get_server_status";
        let started = std::time::Instant::now();
        let url = format!(
            "{}/api/v4/system/ping?get_server_status=true&use_rest_semantics=true",
            self.target.base_url()
        );
        let mut request = self.http.get(url);
        if let Some(token) = self.target.token() {
            request = request.bearer_auth(token.expose());
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        let socket = match &self.target {
            Target::Socket(p) => Some(p.as_path()),
            Target::Url { .. } => None,
        };
        let connect = |e: &reqwest::Error| ApiError::Connect {
            target: self.target.to_string(),
            endpoint: endpoint.into(),
            problem: ConnectProblem::from_reqwest(e, socket),
        };
        let response = request.send().await.map_err(|e| connect(&e))?;
        let version = response
            .headers()
            .get("X-Version-ID")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = response.bytes().await.map_err(|e| connect(&e))?;
        let mut status: ServerStatus = self.decode(&bytes, endpoint)?;
        status.version = version;
        status.millis = started.elapsed().as_secs_f64() * 1000.0;
        Ok(status)
    }

    // ---- teams --------------------------------------------------------------------------------

    /// GET /teams/name/{name}; `None` when there is no such team.
    pub async fn get_team_by_name(&self, name: &str) -> Result<Option<Team>, ApiError> {
        self.json_or_404(Method::GET, &format!("/teams/name/{}", enc(name)))
            .await
    }

    /// POST /teams (open team).
    pub async fn create_team(&self, name: &str, display_name: &str) -> Result<Team, ApiError> {
        let body = NewTeam {
            name,
            display_name,
            kind: OPEN,
        };
        self.json(Method::POST, "/teams", json_body(&body)?).await
    }

    /// PUT /teams/{id}/patch.
    pub async fn patch_team(&self, team_id: &str, display_name: &str) -> Result<Team, ApiError> {
        let body = TeamPatch { display_name };
        self.json(
            Method::PUT,
            &format!("/teams/{}/patch", enc(team_id)),
            json_body(&body)?,
        )
        .await
    }

    /// GET /users?in_team={id}: the team's members, one page. (Local mode has no GET
    /// /teams/{id}/members; the user list with its team filter is available on both transports.)
    pub async fn get_users_in_team(
        &self,
        team_id: &str,
        page: usize,
    ) -> Result<Vec<User>, ApiError> {
        self.json(
            Method::GET,
            &format!(
                "/users?in_team={}&page={page}&per_page={PER_PAGE}",
                enc(team_id)
            ),
            Body::Empty,
        )
        .await
    }

    /// POST /teams/{id}/members.
    pub async fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
    ) -> Result<TeamMember, ApiError> {
        let body = NewTeamMember { team_id, user_id };
        self.json(
            Method::POST,
            &format!("/teams/{}/members", enc(team_id)),
            json_body(&body)?,
        )
        .await
    }

    // ---- channels -----------------------------------------------------------------------------

    /// GET /teams/{team_id}/channels/name/{name}; `None` when absent.
    pub async fn get_channel_by_name(
        &self,
        team_id: &str,
        name: &str,
    ) -> Result<Option<Channel>, ApiError> {
        self.json_or_404(
            Method::GET,
            &format!("/teams/{}/channels/name/{}", enc(team_id), enc(name)),
        )
        .await
    }

    /// GET /teams/name/{team}/channels/name/{channel}; `None` when either is absent.
    pub async fn get_channel_by_names(
        &self,
        team: &str,
        channel: &str,
    ) -> Result<Option<Channel>, ApiError> {
        self.json_or_404(
            Method::GET,
            &format!("/teams/name/{}/channels/name/{}", enc(team), enc(channel)),
        )
        .await
    }

    /// POST /channels (open channel).
    pub async fn create_channel(
        &self,
        team_id: &str,
        name: &str,
        display_name: &str,
        purpose: &str,
    ) -> Result<Channel, ApiError> {
        let body = NewChannel {
            team_id,
            name,
            display_name,
            purpose,
            kind: OPEN,
        };
        self.json(Method::POST, "/channels", json_body(&body)?)
            .await
    }

    /// PUT /channels/{id}/patch.
    pub async fn patch_channel(
        &self,
        channel_id: &str,
        display_name: &str,
        purpose: &str,
    ) -> Result<Channel, ApiError> {
        let body = ChannelPatch {
            display_name,
            purpose,
        };
        self.json(
            Method::PUT,
            &format!("/channels/{}/patch", enc(channel_id)),
            json_body(&body)?,
        )
        .await
    }

    /// GET /channels/{id}/members, one page.
    pub async fn get_channel_members(
        &self,
        channel_id: &str,
        page: usize,
    ) -> Result<Vec<ChannelMember>, ApiError> {
        self.json(
            Method::GET,
            &format!(
                "/channels/{}/members?page={page}&per_page={PER_PAGE}",
                enc(channel_id)
            ),
            Body::Empty,
        )
        .await
    }

    /// POST /channels/{id}/members.
    pub async fn add_channel_member(
        &self,
        channel_id: &str,
        user_id: &str,
    ) -> Result<ChannelMember, ApiError> {
        let body = NewChannelMember { user_id };
        self.json(
            Method::POST,
            &format!("/channels/{}/members", enc(channel_id)),
            json_body(&body)?,
        )
        .await
    }

    /// GET /channels/{id}/posts, one page; page 0 holds the newest posts.
    pub async fn get_channel_posts(
        &self,
        channel_id: &str,
        page: usize,
        per_page: usize,
    ) -> Result<PostList, ApiError> {
        self.json(
            Method::GET,
            &format!(
                "/channels/{}/posts?page={page}&per_page={per_page}",
                enc(channel_id)
            ),
            Body::Empty,
        )
        .await
    }

    // ---- users, bots, tokens ------------------------------------------------------------------

    /// GET /users/username/{username}; `None` when absent.
    pub async fn get_user_by_username(&self, username: &str) -> Result<Option<User>, ApiError> {
        self.json_or_404(Method::GET, &format!("/users/username/{}", enc(username)))
            .await
    }

    /// POST /users. The password is used for this request only.
    pub async fn create_user(
        &self,
        username: &str,
        email: &str,
        password: &Secret,
        nickname: &str,
    ) -> Result<User, ApiError> {
        let body = NewUser {
            username,
            email,
            password: password.expose(),
            nickname,
        };
        self.json(Method::POST, "/users", json_body(&body)?).await
    }

    /// POST /users/{id}/convert_to_bot (local mode or system admin).
    pub async fn convert_user_to_bot(&self, user_id: &str) -> Result<Bot, ApiError> {
        self.json(
            Method::POST,
            &format!("/users/{}/convert_to_bot", enc(user_id)),
            Body::Empty,
        )
        .await
    }

    /// POST /bots (session only; needs EnableBotAccountCreation).
    pub async fn create_bot(
        &self,
        username: &str,
        display_name: &str,
        description: &str,
    ) -> Result<Bot, ApiError> {
        let body = NewBot {
            username,
            display_name,
            description,
        };
        self.json(Method::POST, "/bots", json_body(&body)?).await
    }

    /// GET /bots (deleted ones included), one page.
    pub async fn get_bots(&self, page: usize) -> Result<Vec<Bot>, ApiError> {
        self.json(
            Method::GET,
            &format!("/bots?include_deleted=true&page={page}&per_page={PER_PAGE}"),
            Body::Empty,
        )
        .await
    }

    /// PUT /bots/{id}.
    pub async fn patch_bot(
        &self,
        user_id: &str,
        display_name: &str,
        description: &str,
    ) -> Result<Bot, ApiError> {
        let body = BotPatch {
            display_name,
            description,
        };
        self.json(
            Method::PUT,
            &format!("/bots/{}", enc(user_id)),
            json_body(&body)?,
        )
        .await
    }

    /// GET /users/{id}/tokens (metadata only, never the token values).
    pub async fn get_user_tokens(&self, user_id: &str) -> Result<Vec<UserAccessToken>, ApiError> {
        self.json(
            Method::GET,
            &format!("/users/{}/tokens?page=0&per_page={PER_PAGE}", enc(user_id)),
            Body::Empty,
        )
        .await
    }

    /// POST /users/{id}/tokens: the only answer that carries the token.
    pub async fn create_user_token(
        &self,
        user_id: &str,
        description: &str,
    ) -> Result<CreatedToken, ApiError> {
        let body = NewToken { description };
        let raw: RawCreatedToken = self
            .json(
                Method::POST,
                &format!("/users/{}/tokens", enc(user_id)),
                json_body(&body)?,
            )
            .await?;
        Ok(CreatedToken {
            id: raw.id,
            user_id: raw.user_id,
            token: Secret::new(raw.token),
        })
    }

    /// POST /users/tokens/revoke.
    pub async fn revoke_user_token(&self, token_id: &str) -> Result<StatusOk, ApiError> {
        let body = RevokeToken { token_id };
        self.json(Method::POST, "/users/tokens/revoke", json_body(&body)?)
            .await
    }

    // ---- incoming webhooks --------------------------------------------------------------------

    /// GET /hooks/incoming?team_id=…, one page.
    pub async fn get_incoming_hooks(
        &self,
        team_id: &str,
        page: usize,
    ) -> Result<Vec<IncomingWebhook>, ApiError> {
        self.json(
            Method::GET,
            &format!(
                "/hooks/incoming?team_id={}&page={page}&per_page={PER_PAGE}",
                enc(team_id)
            ),
            Body::Empty,
        )
        .await
    }

    /// GET /hooks/incoming/{id}; `None` when absent.
    pub async fn get_incoming_hook(&self, id: &str) -> Result<Option<IncomingWebhook>, ApiError> {
        self.json_or_404(Method::GET, &format!("/hooks/incoming/{}", enc(id)))
            .await
    }

    /// POST /hooks/incoming (`user_id` is required in local mode).
    pub async fn create_incoming_hook(
        &self,
        hook: &NewIncomingWebhook<'_>,
    ) -> Result<IncomingWebhook, ApiError> {
        self.json(Method::POST, "/hooks/incoming", json_body(hook)?)
            .await
    }

    /// PUT /hooks/incoming/{id} with the whole hook.
    pub async fn update_incoming_hook(
        &self,
        hook: &IncomingWebhook,
    ) -> Result<IncomingWebhook, ApiError> {
        self.json(
            Method::PUT,
            &format!("/hooks/incoming/{}", enc(&hook.id)),
            json_body(hook)?,
        )
        .await
    }

    // ---- config -------------------------------------------------------------------------------

    /// GET /config: raw in local mode (secrets in clear), sanitized over a session.
    pub async fn get_config(&self) -> Result<serde_json::Value, ApiError> {
        self.json(Method::GET, "/config", Body::Empty).await
    }

    /// PUT /config/patch. Maps in the patch replace the server's maps whole.
    pub async fn patch_config(
        &self,
        patch: &serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        self.json(Method::PUT, "/config/patch", json_body(patch)?)
            .await
    }

    // ---- plugins ------------------------------------------------------------------------------

    /// GET /plugins: `{active, inactive}` manifests.
    pub async fn get_plugins(&self) -> Result<Plugins, ApiError> {
        self.json(Method::GET, "/plugins", Body::Empty).await
    }

    /// POST /plugins, multipart with the bundle in part `plugin` and `force`.
    pub async fn upload_plugin(
        &self,
        bundle: Vec<u8>,
        file_name: &str,
        force: bool,
    ) -> Result<PluginManifest, ApiError> {
        let part = reqwest::multipart::Part::bytes(bundle)
            .file_name(file_name.to_string())
            .mime_str("application/gzip")
            .map_err(|e| ApiError::Decode {
                target: self.target.to_string(),
                endpoint: "POST /api/v4/plugins".into(),
                reason: e.to_string(),
            })?;
        let form = reqwest::multipart::Form::new()
            .part("plugin", part)
            .text("force", if force { "true" } else { "false" });
        self.json(Method::POST, "/plugins", Body::Multipart(form))
            .await
    }

    /// POST /plugins/{id}/enable. 200 says nothing about whether the plugin then starts.
    pub async fn enable_plugin(&self, id: &str) -> Result<StatusOk, ApiError> {
        self.json(
            Method::POST,
            &format!("/plugins/{}/enable", enc(id)),
            Body::Empty,
        )
        .await
    }

    // ---- plumbing -----------------------------------------------------------------------------

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<T, ApiError> {
        let endpoint = endpoint_name(&method, path);
        let bytes = self.call(method, path, body, &endpoint).await?;
        self.decode(&bytes, &endpoint)
    }

    async fn json_or_404<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<Option<T>, ApiError> {
        match self.json(method, path, Body::Empty).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], endpoint: &str) -> Result<T, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| ApiError::Decode {
            target: self.target.to_string(),
            endpoint: endpoint.into(),
            reason: e.to_string(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body,
        endpoint: &str,
    ) -> Result<Vec<u8>, ApiError> {
        let mutating = method != Method::GET && method != Method::HEAD;
        let url = format!("{}/api/v4{path}", self.target.base_url());
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = self.target.token() {
            request = request.bearer_auth(token.expose());
        }
        request = match body {
            Body::Empty => request,
            Body::Json(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes),
            Body::Multipart(form) => request.multipart(form),
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        if mutating {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        let socket = match &self.target {
            Target::Socket(p) => Some(p.as_path()),
            Target::Url { .. } => None,
        };
        let response = request.send().await.map_err(|e| ApiError::Connect {
            target: self.target.to_string(),
            endpoint: endpoint.into(),
            problem: ConnectProblem::from_reqwest(&e, socket),
        })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| ApiError::Connect {
            target: self.target.to_string(),
            endpoint: endpoint.into(),
            problem: ConnectProblem::from_reqwest(&e, socket),
        })?;
        tracing::debug!("{endpoint} on {} -> {status}", self.target);
        if (200..300).contains(&status) {
            return Ok(bytes.to_vec());
        }
        match serde_json::from_slice::<AppError>(&bytes) {
            Ok(error) if !error.id.is_empty() || !error.message.is_empty() => Err(ApiError::App {
                target: self.target.to_string(),
                endpoint: endpoint.into(),
                status,
                error: Box::new(error),
                hint: self.hint_for(status),
            }),
            _ => Err(ApiError::Http {
                target: self.target.to_string(),
                endpoint: endpoint.into(),
                status,
                body: excerpt(&String::from_utf8_lossy(&bytes)),
            }),
        }
    }

    fn hint_for(&self, status: u16) -> &'static str {
        match (status, self.target.is_local()) {
            (401, false) => {
                "; the token was refused: check --token-file (a system admin's personal access token)"
            }
            (403, false) => {
                "; the token's user lacks this permission: use a system admin's token, or local mode (--socket)"
            }
            (501, _) => "; the feature is disabled in the server's configuration",
            _ => "",
        }
    }
}

/// `METHOD /api/v4/path` without the query string, for messages.
/// How a request is named in logs and errors: without its query, and with an incoming webhook's
/// id replaced, since that id is the secret part of the webhook's URL.
fn endpoint_name(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    match path.strip_prefix("/hooks/incoming/") {
        Some(id) if !id.is_empty() => format!("{method} /api/v4/hooks/incoming/<hook id>"),
        _ => format!("{method} /api/v4{path}"),
    }
}

fn json_body<T: Serialize + ?Sized>(value: &T) -> Result<Body, ApiError> {
    serde_json::to_vec(value)
        .map(Body::Json)
        .map_err(|e| ApiError::Decode {
            target: "(request)".into(),
            endpoint: "(encoding a request body)".into(),
            reason: e.to_string(),
        })
}

/// Percent-encodes one path segment or query value.
fn enc(segment: &str) -> std::borrow::Cow<'_, str> {
    urlencoding::encode(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_drop_the_query() {
        assert_eq!(
            endpoint_name(&Method::GET, "/teams/x/members?page=0&per_page=200"),
            "GET /api/v4/teams/x/members"
        );
    }

    #[test]
    fn a_hook_id_never_appears_in_an_endpoint_name() {
        let id = "b8x1q3k7zt4m9c2w6r5y0p1n3e";
        for method in [Method::GET, Method::PUT] {
            let name = endpoint_name(&method, &format!("/hooks/incoming/{id}"));
            assert!(!name.contains(id), "{name}");
            assert_eq!(name, format!("{method} /api/v4/hooks/incoming/<hook id>"));
        }
        assert_eq!(
            endpoint_name(&Method::GET, "/hooks/incoming?team_id=t&page=0"),
            "GET /api/v4/hooks/incoming"
        );
    }
}
