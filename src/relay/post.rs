//! Posting to a Mattermost incoming webhook, and what each failure says about whether the post
//! exists: never sent (safe to retry), refused by Mattermost (nothing was created), or unknown
//! (timeout, reset, 5xx: the channel must be checked before a repost).

use std::path::Path;
use std::time::Duration;

use thiserror::Error;

use crate::tls::{self, CityCa, Trust};

#[derive(Debug, Error)]
pub enum PostError {
    #[error(
        "the {channel} webhook URL (from {origin}) is not an incoming webhook URL: {reason}; expected http(s)://<mattermost>/hooks/<id> as `cityd wire` stores it"
    )]
    BadUrl {
        channel: String,
        origin: String,
        reason: &'static str,
    },
    #[error(transparent)]
    Ca(#[from] tls::CaError),
    #[error("cannot build the HTTP client for webhook posts: {0}")]
    Client(String),
}

/// An incoming webhook: its URL is a credential, so `Debug` shows only the channel.
#[derive(Clone, PartialEq, Eq)]
pub struct HookUrl {
    url: String,
    hook_id: String,
    channel: String,
}

impl std::fmt::Debug for HookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HookUrl(#{}, <redacted>)", self.channel)
    }
}

impl HookUrl {
    /// `origin` names where the URL came from (vault file, flag) for the error message.
    pub fn parse(channel: &str, url: &str, origin: &str) -> Result<Self, PostError> {
        let bad = |reason| PostError::BadUrl {
            channel: channel.into(),
            origin: origin.into(),
            reason,
        };
        let url = url.trim();
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| bad("it does not start with http:// or https://"))?;
        let path = rest
            .find('/')
            .map(|at| &rest[at..])
            .ok_or_else(|| bad("it has no path"))?;
        let hook_id = crate::mattermost::incoming_hook_id(path)
            .ok_or_else(|| bad("its path does not end in /hooks/<id>"))?;
        Ok(Self {
            url: url.to_string(),
            hook_id: hook_id.to_string(),
            channel: channel.to_string(),
        })
    }

    pub fn hook_id(&self) -> &str {
        &self.hook_id
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The Mattermost root (scheme, host, port and any path prefix before `/hooks/`).
    pub fn site_root(&self) -> &str {
        let cut = self.url.rfind("/hooks/").unwrap_or(self.url.len());
        &self.url[..cut]
    }
}

/// What one post attempt established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Mattermost answered 2xx: the post exists.
    Posted,
    /// The request never left (connection refused, no route, connect timeout).
    NotSent(String),
    /// Mattermost answered 4xx: it refused the request without creating a post.
    Refused { status: u16, reason: String },
    /// The post may or may not exist (timeout after sending, connection reset, 5xx).
    Unknown(String),
}

/// A reqwest client for webhook posts: HTTPS trusting only `ca_file` when given.
fn http_client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, PostError> {
    let ca = ca_file.map(CityCa::load).transpose()?;
    let trust = ca.as_ref().map_or(Trust::System, Trust::CityCa);
    tls::http_client(trust, |builder| {
        builder
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .no_proxy()
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("cityd-relay/", env!("CARGO_PKG_VERSION")))
    })
    .map_err(|e| PostError::Client(e.without_url().to_string()))
}

#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
}

impl Poster {
    pub fn new(timeout: Duration, ca_file: Option<&Path>) -> Result<Self, PostError> {
        Ok(Self {
            client: http_client(timeout, ca_file)?,
        })
    }

    pub async fn post(&self, hook: &HookUrl, body: Vec<u8>) -> Attempt {
        let sent = self
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status();
                // Read the (short) answer so the connection can be reused.
                let text = response.text().await.unwrap_or_default();
                let reason = text.chars().take(200).collect::<String>();
                if status.is_success() {
                    Attempt::Posted
                } else if status.is_client_error() {
                    Attempt::Refused {
                        status: status.as_u16(),
                        reason,
                    }
                } else {
                    Attempt::Unknown(format!("HTTP {}: {reason}", status.as_u16()))
                }
            }
            // Errors carry the URL, which is a credential: strip it before it reaches a log.
            Err(e) if e.is_connect() => Attempt::NotSent(describe(e)),
            Err(e) => Attempt::Unknown(describe(e)),
        }
    }
}

/// An error's message and causes, without the URL.
fn describe(e: reqwest::Error) -> String {
    crate::exit::causes_text(&e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_are_parsed_and_never_printed() {
        let hook = HookUrl::parse(
            "alerts",
            "https://mm.cicd.local:8065/hooks/abc123xyz",
            "vault",
        )
        .unwrap();
        assert_eq!(hook.hook_id(), "abc123xyz");
        assert_eq!(hook.site_root(), "https://mm.cicd.local:8065");
        assert_eq!(format!("{hook:?}"), "HookUrl(#alerts, <redacted>)");
        for bad in [
            "mm/hooks/x",
            "ftp://mm/hooks/x",
            "https://mm/hooks/",
            "https://mm",
            "https://mm/api/x",
        ] {
            let err = HookUrl::parse("alerts", bad, "flag")
                .unwrap_err()
                .to_string();
            assert!(err.contains("alerts") && !err.contains(bad), "{err}");
        }
    }
}
