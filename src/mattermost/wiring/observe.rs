//! Observation: reads (only GET requests) what the server and the vault hold for the objects the
//! city describes. Looks objects up by name, never by remembered ids.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use super::desired::Desired;
use crate::mattermost::client::{ApiClient, PER_PAGE};
use crate::mattermost::error::ApiError;
use crate::mattermost::model::{Bot, Channel, IncomingWebhook, Team, User, UserAccessToken};
use crate::secrets::{Secret, Vault, VaultError};
use crate::state::StateDir;

/// The server's configuration as read by GET /config. In local mode it holds secrets in clear,
/// so its Debug shows nothing.
#[derive(Clone, Default)]
pub struct ServerConfig(pub serde_json::Value);

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerConfig(<redacted>)")
    }
}

impl ServerConfig {
    /// A setting by its dotted path, e.g. `ServiceSettings.EnableIncomingWebhooks`.
    pub fn get(&self, path: &str) -> Option<&serde_json::Value> {
        path.split('.')
            .try_fold(&self.0, |v, key| v.as_object()?.get(key))
    }

    pub fn bool(&self, path: &str) -> Option<bool> {
        self.get(path).and_then(serde_json::Value::as_bool)
    }
}

/// The vault's side of the wiring: which bot tokens and hook URLs cityd already holds.
#[derive(Debug, Clone, Default)]
pub struct VaultView {
    /// Bot name -> id of the token whose value is in the vault (both files present).
    pub token_ids: BTreeMap<String, String>,
    /// Channel name -> the stored hook URL.
    pub hook_urls: BTreeMap<String, Secret>,
}

/// What the server holds for the city's objects.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub team: Option<Team>,
    /// City channel name -> channel, for those that exist in the team.
    pub channels: BTreeMap<String, Channel>,
    /// User ids of the team's members.
    pub team_members: BTreeSet<String>,
    /// City channel name -> user ids of its members.
    pub channel_members: BTreeMap<String, BTreeSet<String>>,
    /// Username -> user, for the admin and the bots that exist.
    pub users: BTreeMap<String, User>,
    /// User id -> bot record.
    pub bots: BTreeMap<String, Bot>,
    /// Bot name -> its access tokens (metadata).
    pub tokens: BTreeMap<String, Vec<UserAccessToken>>,
    /// The team's incoming webhooks.
    pub hooks: Vec<IncomingWebhook>,
    pub vault: VaultView,
    pub incoming_webhooks_enabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading the server's state failed")]
    Api(#[from] ApiError),
    #[error("reading the vault failed")]
    Vault(#[from] VaultError),
}

/// Reads everything the plan needs. Only GET requests.
pub async fn observe(
    client: &ApiClient,
    desired: &Desired,
    vault: &Vault,
) -> Result<(Observed, ServerConfig), ObserveError> {
    let mut o = Observed::default();
    let config = ServerConfig(client.get_config().await?);
    // Mattermost's default is true; a config without the key is a default config.
    o.incoming_webhooks_enabled = config
        .bool("ServiceSettings.EnableIncomingWebhooks")
        .unwrap_or(true);

    o.team = client.get_team_by_name(&desired.team.name).await?;
    if let Some(team) = &o.team {
        for spec in &desired.channels {
            if let Some(ch) = client.get_channel_by_name(&team.id, &spec.name).await? {
                let members = all_pages(|page| client.get_channel_members(&ch.id, page)).await?;
                o.channel_members.insert(
                    spec.name.clone(),
                    members.into_iter().map(|m| m.user_id).collect(),
                );
                o.channels.insert(spec.name.clone(), ch);
            }
        }
        let members = all_pages(|page| client.get_users_in_team(&team.id, page)).await?;
        o.team_members = members.into_iter().map(|u| u.id).collect();
        o.hooks = all_pages(|page| client.get_incoming_hooks(&team.id, page)).await?;
    }

    let usernames =
        std::iter::once(desired.admin.as_str()).chain(desired.bots.iter().map(|b| b.name.as_str()));
    for name in usernames {
        if let Some(user) = client.get_user_by_username(name).await? {
            o.users.insert(name.to_string(), user);
        }
    }
    let any_bot = desired
        .bots
        .iter()
        .any(|b| o.users.get(&b.name).is_some_and(|u| u.is_bot));
    if any_bot {
        for bot in all_pages(|page| client.get_bots(page)).await? {
            o.bots.insert(bot.user_id.clone(), bot);
        }
        for spec in &desired.bots {
            if let Some(user) = o.users.get(&spec.name).filter(|u| u.is_bot) {
                let tokens = client.get_user_tokens(&user.id).await?;
                o.tokens.insert(spec.name.clone(), tokens);
            }
        }
    }

    for spec in &desired.bots {
        let token = vault.read(&StateDir::bot_token_secret_name(&spec.name))?;
        let id = vault.read(&StateDir::bot_token_id_secret_name(&spec.name))?;
        if let (Some(_), Some(id)) = (token, id) {
            o.vault
                .token_ids
                .insert(spec.name.clone(), id.expose().to_string());
        }
    }
    for hook in &desired.hooks {
        if let Some(url) = vault.read(&StateDir::webhook_secret_name(&hook.channel))? {
            o.vault.hook_urls.insert(hook.channel.clone(), url);
        }
    }
    Ok((o, config))
}

/// Collects every page of a paged listing.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, ApiError>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<Vec<T>, ApiError>>,
{
    let mut out = Vec::new();
    for page in 0.. {
        let items = fetch(page).await?;
        let last = items.len() < PER_PAGE;
        out.extend(items);
        if last {
            break;
        }
    }
    Ok(out)
}
