//! `cityd verify webhook` as one call: choose the channels (the city's hooked ones, or those
//! asked for), read their hook URLs from the vault, wait until the API answers, then run the
//! delivery proof of `webhook_check` for each channel. Prints nothing; returns one result per channel.

use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use super::client::ApiClient;
use super::error::ApiError;
use super::ready::wait_until_ready;
use super::transport::{BaseUrl, Scheme, Target, TransportError, hook_client, parse_base_url};
use super::webhook_check::{self, Addressing, Delivery};
use crate::city::City;
use crate::secrets::{Vault, VaultError};
use crate::state::StateDir;

/// What to verify and how long to wait.
#[derive(Debug, Clone)]
pub struct Request {
    /// Channels to check (a leading `#` is allowed); empty: every channel with a webhook.
    pub channels: Vec<String>,
    /// Post to this scheme://host:port instead of the SiteURL's (the hook path is kept).
    pub base_url: Option<String>,
    /// How long each message may take to appear in its channel.
    pub deadline: Duration,
    /// How long to wait for the API to answer its ping.
    pub ready_timeout: Duration,
    /// Where the city description came from, for messages.
    pub city_origin: String,
}

#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("{origin} has no [[webhooks]]: nothing to verify")]
    NoWebhooks { origin: String },
    #[error("#{channel} has no webhook in {origin}; channels with webhooks: {hooked}")]
    UnknownChannel {
        channel: String,
        origin: String,
        hooked: String,
    },
    #[error("--base-url")]
    BaseUrl(#[source] TransportError),
    #[error("#{channel}: no webhook URL in the vault ({path}); run `cityd wire` first")]
    NotWired { channel: String, path: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("webhook delivery failed for {failed} of {total} channel(s)")]
    Undelivered { failed: usize, total: usize },
}

impl crate::exit::ExitCoded for VerifyError {
    fn exit_code(&self) -> u8 {
        match self {
            VerifyError::NoWebhooks { .. }
            | VerifyError::UnknownChannel { .. }
            | VerifyError::BaseUrl(_) => crate::exit::BAD_INPUT,
            _ => crate::exit::FAILED,
        }
    }
}

/// The proof for one channel: the delivery, or why it failed.
#[derive(Debug, Serialize)]
pub struct ChannelCheck {
    pub channel: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChannelCheck {
    /// `ok    #builds  posted through the webhook to …, read back in 0.05s`, or `FAIL  <why>`.
    pub fn text_line(&self) -> Option<String> {
        match (&self.delivery, &self.error) {
            (Some(d), _) => {
                let via = if d.posted_to == d.site_address {
                    format!("to {}", d.site_address)
                } else {
                    format!(
                        "to {} (the SiteURL names {}; --base-url)",
                        d.posted_to, d.site_address
                    )
                };
                Some(format!(
                    "ok    #{:<14} posted through the webhook {via}, read back in {:.2}s",
                    d.channel, d.seconds
                ))
            }
            (_, Some(e)) => Some(format!("FAIL  {e}")),
            _ => None,
        }
    }
}

/// Runs the proof for every requested channel; a channel that fails is in the list, not an error.
pub async fn verify(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    target: Target,
    request: &Request,
) -> Result<Vec<ChannelCheck>, VerifyError> {
    let hooked: Vec<&str> = city.webhooks.iter().map(|h| h.channel.as_str()).collect();
    let channels: Vec<String> = if request.channels.is_empty() {
        hooked.iter().map(|c| c.to_string()).collect()
    } else {
        request
            .channels
            .iter()
            .map(|c| c.trim_start_matches('#').to_string())
            .collect()
    };
    if channels.is_empty() {
        return Err(VerifyError::NoWebhooks {
            origin: request.city_origin.clone(),
        });
    }
    if let Some(c) = channels.iter().find(|c| !hooked.contains(&c.as_str())) {
        return Err(VerifyError::UnknownChannel {
            channel: c.clone(),
            origin: request.city_origin.clone(),
            hooked: hooked.join(", "),
        });
    }
    let base_override: Option<BaseUrl> = request
        .base_url
        .as_deref()
        .map(parse_base_url)
        .transpose()
        .map_err(VerifyError::BaseUrl)?;
    let mut stored = Vec::new();
    for c in &channels {
        let name = StateDir::webhook_secret_name(c);
        let url = vault.read(&name)?.ok_or_else(|| VerifyError::NotWired {
            channel: c.clone(),
            path: vault.path_of(&name).display().to_string(),
        })?;
        stored.push((c.clone(), name, url));
    }
    // The CA is needed only when some post goes over HTTPS.
    let needs_tls = stored.iter().any(|(_, _, url)| {
        let scheme = base_override
            .as_ref()
            .map(|b| b.scheme)
            .or_else(|| parse_base_url(url.expose()).ok().map(|u| u.scheme));
        scheme == Some(Scheme::Https)
    });
    let ca = state.ca_pem();
    let hook_http = hook_client(needs_tls.then_some(ca.as_path()), Duration::from_secs(30))?;
    let addressing = Addressing { base_override };

    let api = ApiClient::new(target)?;
    wait_until_ready(&api, request.ready_timeout).await?;
    let mut checks = Vec::new();
    for (channel, vault_name, url) in &stored {
        let result = webhook_check::check(
            &api,
            &hook_http,
            &addressing,
            &city.team.name,
            channel,
            vault_name,
            url,
            request.deadline,
        )
        .await;
        checks.push(match result {
            Ok(d) => ChannelCheck {
                channel: channel.clone(),
                ok: true,
                delivery: Some(d),
                error: None,
            },
            Err(e) => ChannelCheck {
                channel: channel.clone(),
                ok: false,
                delivery: None,
                error: Some(e.to_string()),
            },
        });
    }
    Ok(checks)
}

/// An error when any channel failed.
pub fn all_delivered(checks: &[ChannelCheck]) -> Result<(), VerifyError> {
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        return Err(VerifyError::Undelivered {
            failed,
            total: checks.len(),
        });
    }
    Ok(())
}
