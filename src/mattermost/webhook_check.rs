//! The webhook delivery proof: post a uniquely tagged message through a channel's incoming
//! webhook (URL from the vault), then read it back from the channel through the API within a
//! deadline. Never prints or logs the hook URL: it is a credential.

use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use super::client::ApiClient;
use super::error::{ApiError, AppError, ConnectProblem};
use super::transport::{BaseUrl, Scheme, TransportError, parse_base_url};
use crate::secrets::Secret;

#[derive(Debug, Error)]
pub enum CheckError {
    #[error(
        "#{channel}: the stored webhook URL (vault {vault_name}) is not of the form <SiteURL>/hooks/<id>; rerun `cityd wire` to store it again"
    )]
    BadStoredUrl { channel: String, vault_name: String },
    #[error(
        "#{channel}: the channel does not exist in team {team} on {target}: run `cityd wire` first"
    )]
    NoChannel {
        channel: String,
        team: String,
        target: String,
    },
    #[error("#{channel}: posting through the webhook to {address} failed: {reason}")]
    Post {
        channel: String,
        address: String,
        reason: String,
    },
    #[error(
        "#{channel}: the webhook accepted the message but it did not appear in the channel within {}",
        super::error::human(*deadline)
    )]
    NotDelivered { channel: String, deadline: Duration },
    #[error(
        "#{channel}: the message appeared, but posted by user {author} instead of the hook's owner {owner}"
    )]
    WrongAuthor {
        channel: String,
        author: String,
        owner: String,
    },
    #[error("#{channel}: reading it back failed: {error}")]
    Api { channel: String, error: ApiError },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Where hook posts go: the stored URL's scheme and host, or those of `--base-url`.
#[derive(Debug, Clone)]
pub struct Addressing {
    pub base_override: Option<BaseUrl>,
}

impl Addressing {
    /// The URL actually posted to, and its `host:port` for messages.
    pub fn resolve(&self, stored: &BaseUrl) -> (String, String, Scheme) {
        let (scheme, authority) = match &self.base_override {
            Some(b) => (b.scheme, b.authority.clone()),
            None => (stored.scheme, stored.authority.clone()),
        };
        let prefix = match scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let base_path = self
            .base_override
            .as_ref()
            .map(|b| b.path.trim_end_matches('/').to_string())
            .unwrap_or_default();
        (
            format!("{prefix}://{authority}{base_path}{}", stored.path),
            authority,
            scheme,
        )
    }
}

/// The result for one channel.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: String,
    /// `host:port` the stored URL names (the SiteURL's).
    pub site_address: String,
    /// `host:port` the message was posted to.
    pub posted_to: String,
    pub tag: String,
    pub seconds: f64,
}

/// Posts a tagged message through the hook and waits until the API shows it in the channel.
#[allow(clippy::too_many_arguments)]
pub async fn check(
    api: &ApiClient,
    hook_http: &reqwest::Client,
    addressing: &Addressing,
    team: &str,
    channel: &str,
    vault_name: &str,
    stored_url: &Secret,
    deadline: Duration,
) -> Result<Delivery, CheckError> {
    let bad_url = || CheckError::BadStoredUrl {
        channel: channel.into(),
        vault_name: vault_name.into(),
    };
    let stored = parse_base_url(stored_url.expose()).map_err(|_| bad_url())?;
    let hook_id = super::incoming_hook_id(&stored.path)
        .ok_or_else(bad_url)?
        .to_string();
    let api_err = |error| CheckError::Api {
        channel: channel.into(),
        error,
    };
    let ch = api
        .get_channel_by_names(team, channel)
        .await
        .map_err(api_err)?
        .ok_or_else(|| CheckError::NoChannel {
            channel: channel.into(),
            team: team.into(),
            target: api.target().to_string(),
        })?;
    let owner = api
        .get_incoming_hook(&hook_id)
        .await
        .map_err(api_err)?
        .map(|h| h.user_id);

    let tag = format!("cityd-verify-{}", random_hex());
    let (post_url, posted_to, _) = addressing.resolve(&stored);
    let started = Instant::now();
    post(hook_http, &post_url, &hook_id, &tag, channel, &posted_to).await?;

    let mut pause = Duration::from_millis(20);
    loop {
        let posts = api
            .get_channel_posts(&ch.id, 0, 60)
            .await
            .map_err(api_err)?;
        if let Some(found) = posts.posts.values().find(|p| p.message.contains(&tag)) {
            if let Some(owner) = owner.filter(|o| !o.is_empty() && *o != found.user_id) {
                return Err(CheckError::WrongAuthor {
                    channel: channel.into(),
                    author: found.user_id.clone(),
                    owner,
                });
            }
            return Ok(Delivery {
                channel: channel.into(),
                site_address: stored.authority.clone(),
                posted_to,
                tag,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let waited = started.elapsed();
        if waited >= deadline {
            return Err(CheckError::NotDelivered {
                channel: channel.into(),
                deadline,
            });
        }
        tokio::time::sleep(pause.min(deadline - waited)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    hook_id: &str,
    tag: &str,
    channel: &str,
    address: &str,
) -> Result<(), CheckError> {
    let fail = |reason: String| CheckError::Post {
        channel: channel.into(),
        address: address.into(),
        reason,
    };
    let body = serde_json::json!({
        "text": format!("cityd verify webhook: delivery check `{tag}`"),
    });
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        // reqwest puts the URL (with the hook id) into its messages: describe the problem instead.
        .map_err(|e| fail(ConnectProblem::from_reqwest(&e.without_url(), None).to_string()))?;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    if status == 200 {
        return Ok(());
    }
    // Mattermost echoes the hook id (the credential part of the URL) in its error messages.
    let server = serde_json::from_str::<AppError>(&text)
        .map(|e| e.to_string())
        .unwrap_or_else(|_| super::error::excerpt(&text))
        .replace(hook_id, "<hook id>");
    let advice = match status {
        400 => {
            "; Mattermost answers 400 for an unknown hook: rerun `cityd wire` (it recreates missing hooks)"
        }
        403 => "; the hook is locked to its channel or its owner lost access to the channel",
        501 => {
            "; incoming webhooks are disabled on the server (ServiceSettings.EnableIncomingWebhooks=false)"
        }
        _ => "",
    };
    Err(fail(format!("HTTP {status}: {server}{advice}")))
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_override_keeps_the_hook_path() {
        let stored = parse_base_url("https://mattermost.cicd.local:8065/hooks/abc123").unwrap();
        let none = Addressing {
            base_override: None,
        };
        let (url, addr, scheme) = none.resolve(&stored);
        assert_eq!(url, "https://mattermost.cicd.local:8065/hooks/abc123");
        assert_eq!(addr, "mattermost.cicd.local:8065");
        assert_eq!(scheme, Scheme::Https);
        let over = Addressing {
            base_override: Some(parse_base_url("http://127.0.0.1:4000/").unwrap()),
        };
        let (url, addr, scheme) = over.resolve(&stored);
        assert_eq!(url, "http://127.0.0.1:4000/hooks/abc123");
        assert_eq!(addr, "127.0.0.1:4000");
        assert_eq!(scheme, Scheme::Http);
    }

    #[test]
    fn tags_are_unique() {
        assert_ne!(random_hex(), random_hex());
        assert_eq!(random_hex().len(), 16);
    }
}
