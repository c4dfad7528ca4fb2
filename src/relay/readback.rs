//! Reading a channel's recent posts back through the Mattermost API client (the local-mode socket,
//! or a URL with a token) to learn whether a post whose outcome is unknown exists. This is what
//! turns "at least once" into "exactly once" after a crash or an ambiguous failure.

use std::collections::{HashMap, HashSet};

use thiserror::Error;
use tokio::sync::Mutex;

use super::message::KEY_PROP;
use super::post::HookUrl;
use crate::mattermost::client::PER_PAGE;
use crate::mattermost::{ApiClient, ApiError};

/// Pages read per search before giving up (100,000 posts).
const MAX_PAGES: usize = 500;

#[derive(Debug, Error)]
pub enum ReadbackError {
    #[error("reading back #{channel}: {error}")]
    Api { channel: String, error: ApiError },
    #[error(
        "reading back #{channel} through {target}: its incoming webhook no longer exists there; run `cityd wire` to make a new one"
    )]
    HookGone { channel: String, target: String },
    #[error(
        "reading back #{channel} through {target}: more than {max} posts since the event; cannot tell whether it was posted",
        max = MAX_PAGES * PER_PAGE
    )]
    TooManyPosts { channel: String, target: String },
}

pub struct Readback {
    api: ApiClient,
    /// Hook id → channel id: a hook's channel is looked up once.
    channels: Mutex<HashMap<String, String>>,
}

impl Readback {
    pub fn new(api: ApiClient) -> Self {
        Self {
            api,
            channels: Mutex::new(HashMap::new()),
        }
    }

    async fn channel_of(&self, hook: &HookUrl) -> Result<String, ReadbackError> {
        if let Some(id) = self.channels.lock().await.get(hook.hook_id()) {
            return Ok(id.clone());
        }
        let info = self
            .api
            .get_incoming_hook(hook.hook_id())
            .await
            .map_err(|error| api_error(hook, error))?
            .ok_or_else(|| ReadbackError::HookGone {
                channel: hook.channel().into(),
                target: self.api.target().to_string(),
            })?;
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
            let list = self
                .api
                .get_channel_posts(&channel_id, page, PER_PAGE)
                .await
                .map_err(|error| api_error(hook, error))?;
            let mut oldest = i64::MAX;
            for id in &list.order {
                let Some(post) = list.posts.get(id) else {
                    continue;
                };
                oldest = oldest.min(post.create_at);
                if let Some(key) = post.prop_str(KEY_PROP)
                    && keys.contains(key)
                {
                    found.insert(key.to_string());
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
            target: self.api.target().to_string(),
        })
    }
}

fn api_error(hook: &HookUrl, error: ApiError) -> ReadbackError {
    ReadbackError::Api {
        channel: hook.channel().into(),
        error,
    }
}
