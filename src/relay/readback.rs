//! Reading a channel's recent posts back through the Mattermost API (the local-mode socket, or a
//! URL with a token) to learn whether a post whose outcome is unknown exists. This is what turns
//! "at least once" into "exactly once" after a crash or an ambiguous failure.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::sync::Mutex;

use super::message::KEY_PROP;
use super::post::{HookUrl, PostError, describe, http_client};
use crate::secrets::Secret;

const PER_PAGE: usize = 200;
/// Pages read per search before giving up (100,000 posts).
const MAX_PAGES: usize = 500;

#[derive(Debug, Error)]
pub enum ReadbackError {
    #[error("reading back #{channel} through {target}: {reason}")]
    Request {
        channel: String,
        target: String,
        reason: String,
    },
    #[error(
        "reading back #{channel} through {target}: more than {max} posts since the event; cannot tell whether it was posted",
        max = MAX_PAGES * PER_PAGE
    )]
    TooManyPosts { channel: String, target: String },
}

/// Where the API is.
#[derive(Clone)]
pub enum ApiTarget {
    /// Local mode: the socket authenticates (root or the Mattermost UID only).
    Socket(PathBuf),
    /// A Mattermost URL and a token of a user that can read the relay's channels.
    Url { base: String, token: Secret },
}

impl std::fmt::Display for ApiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiTarget::Socket(p) => write!(f, "the local-mode socket {}", p.display()),
            ApiTarget::Url { base, .. } => write!(f, "{base}"),
        }
    }
}

#[derive(Deserialize)]
struct HookInfo {
    channel_id: String,
}

#[derive(Deserialize)]
struct PostList {
    #[serde(default)]
    order: Vec<String>,
    #[serde(default)]
    posts: HashMap<String, PostInfo>,
}

#[derive(Deserialize)]
struct PostInfo {
    #[serde(default)]
    create_at: i64,
    #[serde(default)]
    props: Option<serde_json::Map<String, serde_json::Value>>,
}

pub struct Readback {
    client: reqwest::Client,
    target: ApiTarget,
    base: String,
    channels: Mutex<HashMap<String, String>>,
}

impl Readback {
    pub fn new(
        target: ApiTarget,
        timeout: Duration,
        ca_file: Option<&Path>,
    ) -> Result<Self, PostError> {
        let builder = reqwest::Client::builder();
        let (builder, base) = match &target {
            ApiTarget::Socket(path) => (
                builder.unix_socket(path.as_path()).http1_only(),
                "http://_".to_string(),
            ),
            ApiTarget::Url { base, .. } => (builder, base.trim_end_matches('/').to_string()),
        };
        Ok(Self {
            client: http_client(timeout, ca_file, builder)?,
            target,
            base,
            channels: Mutex::new(HashMap::new()),
        })
    }

    pub fn target(&self) -> &ApiTarget {
        &self.target
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        hook: &HookUrl,
        path: &str,
    ) -> Result<T, ReadbackError> {
        let fail = |reason: String| ReadbackError::Request {
            channel: hook.channel().into(),
            target: self.target.to_string(),
            reason,
        };
        let mut request = self.client.get(format!("{}/api/v4{path}", self.base));
        if let ApiTarget::Url { token, .. } = &self.target {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| fail(describe(e)))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(fail(format!(
                "GET {} answered {}: {}",
                path.split('?').next().unwrap_or(path),
                status.as_u16(),
                text.chars().take(200).collect::<String>()
            )));
        }
        response
            .json::<T>()
            .await
            .map_err(|e| fail(format!("unexpected answer: {}", describe(e))))
    }

    async fn channel_of(&self, hook: &HookUrl) -> Result<String, ReadbackError> {
        if let Some(id) = self.channels.lock().await.get(hook.hook_id()) {
            return Ok(id.clone());
        }
        let info: HookInfo = self
            .get(hook, &format!("/hooks/incoming/{}", hook.hook_id()))
            .await?;
        self.channels
            .lock()
            .await
            .insert(hook.hook_id().to_string(), info.channel_id.clone());
        Ok(info.channel_id)
    }

    /// Which of `keys` appear as `props.cityd_relay_key` on posts in the hook's channel created at
    /// or after `since_ms`. Pages go newest first; posts arriving meanwhile only push older posts
    /// to later pages, so nothing is skipped.
    pub async fn find_posted(
        &self,
        hook: &HookUrl,
        keys: &HashSet<String>,
        since_ms: u64,
    ) -> Result<HashSet<String>, ReadbackError> {
        let channel_id = self.channel_of(hook).await?;
        let mut found = HashSet::new();
        for page in 0..MAX_PAGES {
            let list: PostList = self
                .get(
                    hook,
                    &format!("/channels/{channel_id}/posts?page={page}&per_page={PER_PAGE}"),
                )
                .await?;
            let mut oldest = i64::MAX;
            for id in &list.order {
                let Some(post) = list.posts.get(id) else {
                    continue;
                };
                oldest = oldest.min(post.create_at);
                let key = post
                    .props
                    .as_ref()
                    .and_then(|p| p.get(KEY_PROP))
                    .and_then(|v| v.as_str());
                if let Some(key) = key {
                    if keys.contains(key) {
                        found.insert(key.to_string());
                    }
                }
            }
            let exhausted = list.order.len() < PER_PAGE;
            let passed_since = oldest < since_ms as i64;
            if exhausted || passed_since || found.len() == keys.len() {
                return Ok(found);
            }
        }
        Err(ReadbackError::TooManyPosts {
            channel: hook.channel().into(),
            target: self.target.to_string(),
        })
    }
}
