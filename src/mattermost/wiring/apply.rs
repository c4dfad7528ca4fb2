//! Applying the wiring plan: executes each item's step in order against the server and stores
//! learned credentials (bot tokens, hook URLs) in the vault. Stops at the first failure, naming
//! the object; a rerun observes again and converges without duplicates.

use std::collections::BTreeMap;

use thiserror::Error;

use super::desired::{Desired, TOKEN_DESCRIPTION};
use super::observe::Observed;
use super::plan::{Item, Op, Plan};
use crate::mattermost::client::ApiClient;
use crate::mattermost::error::ApiError;
use crate::mattermost::model::NewIncomingWebhook;
use crate::secrets::{Secret, Shape, Vault, VaultError};
use crate::state::StateDir;

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error("{doing} failed: {error}{hint}")]
    Api {
        doing: String,
        error: Box<ApiError>,
        hint: &'static str,
    },
    #[error("{doing} failed: {error}")]
    Vault { doing: String, error: VaultError },
    #[error("{doing} failed: {what}")]
    Missing { doing: String, what: String },
}

/// Ids known so far: seeded from the observation, extended by every creation.
struct Ids {
    team: Option<String>,
    channels: BTreeMap<String, String>,
    users: BTreeMap<String, String>,
}

pub struct Applier<'a> {
    client: &'a ApiClient,
    vault: &'a Vault,
    desired: &'a Desired,
    ids: Ids,
}

impl<'a> Applier<'a> {
    pub fn new(
        client: &'a ApiClient,
        vault: &'a Vault,
        desired: &'a Desired,
        observed: &Observed,
    ) -> Self {
        Self {
            client,
            vault,
            desired,
            ids: Ids {
                team: observed.team.as_ref().map(|t| t.id.clone()),
                channels: observed
                    .channels
                    .iter()
                    .map(|(name, ch)| (name.clone(), ch.id.clone()))
                    .collect(),
                users: observed
                    .users
                    .iter()
                    .map(|(name, u)| (name.clone(), u.id.clone()))
                    .collect(),
            },
        }
    }

    /// Runs every wiring step of the plan in order; `done` is told about each finished item.
    pub async fn apply(
        &mut self,
        plan: &Plan,
        mut done: impl FnMut(&Item),
    ) -> Result<(), ApplyError> {
        for item in &plan.items {
            match &item.op {
                // Carried out by the step before it (a new hook's URL goes to the vault with it).
                None if item.is_change() => done(item),
                None | Some(Op::Plugin(_)) => {}
                Some(step) => {
                    self.run(item, step).await?;
                    done(item);
                }
            }
        }
        Ok(())
    }

    async fn run(&mut self, item: &Item, step: &Op) -> Result<(), ApplyError> {
        let doing = item.doing();
        let api = |error: ApiError| {
            let hint = hint_for(&error);
            ApplyError::Api {
                doing: doing.clone(),
                error: Box::new(error),
                hint,
            }
        };
        let d = self.desired;
        let c = self.client;
        match step {
            Op::CreateTeam => {
                let team = c
                    .create_team(&d.team.name, &d.team.display_name)
                    .await
                    .map_err(api)?;
                self.ids.team = Some(team.id);
            }
            Op::PatchTeam { team_id } => {
                c.patch_team(team_id, &d.team.display_name)
                    .await
                    .map_err(api)?;
            }
            Op::CreateChannel { name } => {
                let team_id = self.team_id(&doing)?;
                let spec = d.channel(name).ok_or_else(|| missing(&doing, name))?;
                let ch = c
                    .create_channel(&team_id, name, &spec.display_name, &spec.purpose)
                    .await
                    .map_err(api)?;
                self.ids.channels.insert(name.clone(), ch.id);
            }
            Op::PatchChannel { name, channel_id } => {
                let spec = d.channel(name).ok_or_else(|| missing(&doing, name))?;
                c.patch_channel(channel_id, &spec.display_name, &spec.purpose)
                    .await
                    .map_err(api)?;
            }
            Op::CreateBot { name } => {
                let spec = d.bot(name).ok_or_else(|| missing(&doing, name))?;
                if c.target().is_local() {
                    // Local mode has no POST /bots: a user, converted. The password satisfies any
                    // password policy, is never stored, and stops working with the conversion
                    // (Mattermost refuses password logins of bots).
                    let password = throwaway_password();
                    let user = c
                        .create_user(name, &spec.email, &password, &spec.display_name)
                        .await
                        .map_err(api)?;
                    drop(password);
                    self.ids.users.insert(name.clone(), user.id.clone());
                    self.convert(&doing, name, &user.id).await?;
                } else {
                    let bot = c
                        .create_bot(name, &spec.display_name, &spec.description)
                        .await
                        .map_err(api)?;
                    self.ids.users.insert(name.clone(), bot.user_id);
                }
            }
            Op::ConvertToBot { name, user_id } => {
                self.convert(&doing, name, user_id).await?;
            }
            Op::PatchBot { name, user_id } => {
                let spec = d.bot(name).ok_or_else(|| missing(&doing, name))?;
                c.patch_bot(user_id, &spec.display_name, &spec.description)
                    .await
                    .map_err(api)?;
            }
            Op::AddTeamMember { username } => {
                let team_id = self.team_id(&doing)?;
                let user_id = self.user_id(&doing, username)?;
                c.add_team_member(&team_id, &user_id).await.map_err(api)?;
            }
            Op::AddChannelMember { channel, username } => {
                let channel_id = self.channel_id(&doing, channel).await?;
                let user_id = self.user_id(&doing, username)?;
                c.add_channel_member(&channel_id, &user_id)
                    .await
                    .map_err(api)?;
            }
            Op::CreateToken { bot } => {
                let user_id = self.user_id(&doing, bot)?;
                let token = c
                    .create_user_token(&user_id, TOKEN_DESCRIPTION)
                    .await
                    .map_err(api)?;
                self.store(&doing, &StateDir::bot_token_secret_name(bot), &token.token)?;
                self.store(
                    &doing,
                    &StateDir::bot_token_id_secret_name(bot),
                    &Secret::new(token.id),
                )?;
            }
            Op::RevokeToken { token_id, .. } => {
                c.revoke_user_token(token_id).await.map_err(api)?;
            }
            Op::CreateHook { channel } => {
                let spec = d
                    .hook_for(channel)
                    .ok_or_else(|| missing(&doing, channel))?;
                let channel_id = self.channel_id(&doing, channel).await?;
                let user_id = self.user_id(&doing, &spec.bot)?;
                let new = NewIncomingWebhook {
                    channel_id: &channel_id,
                    user_id: &user_id,
                    display_name: &spec.display_name,
                    description: &spec.description,
                    channel_locked: true,
                };
                let mut hook = c.create_incoming_hook(&new).await.map_err(api)?;
                // Store first: the hook exists now, and a rerun must find its URL in the vault.
                self.store(
                    &doing,
                    &StateDir::webhook_secret_name(channel),
                    &Secret::new(d.hook_url(&hook.id)),
                )?;
                if !hook.channel_locked {
                    hook.channel_locked = true;
                    c.update_incoming_hook(&hook).await.map_err(api)?;
                }
            }
            Op::UpdateHook { hook, .. } => {
                c.update_incoming_hook(hook).await.map_err(api)?;
            }
            Op::StoreHookUrl { channel, hook_id } => {
                self.store(
                    &doing,
                    &StateDir::webhook_secret_name(channel),
                    &Secret::new(d.hook_url(hook_id)),
                )?;
            }
            Op::Plugin(_) => {}
        }
        Ok(())
    }

    /// Converts a user into a bot, then gives the bot the city's display name and description.
    async fn convert(&mut self, doing: &str, name: &str, user_id: &str) -> Result<(), ApplyError> {
        let api = |error: ApiError| ApplyError::Api {
            doing: doing.to_string(),
            hint: hint_for(&error),
            error: Box::new(error),
        };
        let spec = self.desired.bot(name).ok_or_else(|| missing(doing, name))?;
        let bot = self
            .client
            .convert_user_to_bot(user_id)
            .await
            .map_err(api)?;
        let description_differs =
            !spec.description.is_empty() && bot.description != spec.description;
        if bot.display_name != spec.display_name || description_differs {
            self.client
                .patch_bot(user_id, &spec.display_name, &spec.description)
                .await
                .map_err(api)?;
        }
        Ok(())
    }

    fn store(&self, doing: &str, name: &str, value: &Secret) -> Result<(), ApplyError> {
        self.vault
            .store(name, value)
            .map(|_| ())
            .map_err(|error| ApplyError::Vault {
                doing: doing.to_string(),
                error,
            })
    }

    fn team_id(&self, doing: &str) -> Result<String, ApplyError> {
        self.ids.team.clone().ok_or_else(|| ApplyError::Missing {
            doing: doing.into(),
            what: format!("team {} does not exist", self.desired.team.name),
        })
    }

    fn user_id(&self, doing: &str, username: &str) -> Result<String, ApplyError> {
        self.ids
            .users
            .get(username)
            .cloned()
            .ok_or_else(|| ApplyError::Missing {
                doing: doing.into(),
                what: format!("user {username} does not exist"),
            })
    }

    /// A channel's id; channels that came with a new team (town-square) are looked up once.
    async fn channel_id(&mut self, doing: &str, name: &str) -> Result<String, ApplyError> {
        if let Some(id) = self.ids.channels.get(name) {
            return Ok(id.clone());
        }
        let team_id = self.team_id(doing)?;
        let found = self
            .client
            .get_channel_by_name(&team_id, name)
            .await
            .map_err(|error| ApplyError::Api {
                doing: doing.into(),
                hint: hint_for(&error),
                error: Box::new(error),
            })?;
        let ch = found.ok_or_else(|| ApplyError::Missing {
            doing: doing.into(),
            what: format!(
                "channel #{name} does not exist in team {}",
                self.desired.team.name
            ),
        })?;
        self.ids.channels.insert(name.into(), ch.id.clone());
        Ok(ch.id)
    }
}

fn missing(doing: &str, name: &str) -> ApplyError {
    ApplyError::Missing {
        doing: doing.into(),
        what: format!("{name} is not in the city description"),
    }
}

/// Extra advice for errors whose cause is known.
fn hint_for(error: &ApiError) -> &'static str {
    match (error.status(), error.app_id()) {
        (_, Some("store.sql_channel.save_channel.exists.app_error")) => {
            "; a channel with this name exists but is archived or private: unarchive it or make it public, then rerun"
        }
        (Some(501), _) => {
            "; check ServiceSettings.EnableIncomingWebhooks (incoming webhooks) and PluginSettings (plugins)"
        }
        (Some(500..), _) => {
            "; rerun `cityd wire` once the server is healthy: it resumes where this run stopped"
        }
        _ => "",
    }
}

/// 64 random characters from the OS random source, with every character class a password
/// policy may demand.
fn throwaway_password() -> Secret {
    let random = Shape::AtLeast(60)
        .generate()
        .expect("generated shapes produce values");
    Secret::new(format!("{}aZ7!", random.expose()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throwaway_passwords_are_long_random_and_mixed() {
        let a = throwaway_password();
        let b = throwaway_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let s = a.expose();
        assert!(s.chars().any(|c| c.is_ascii_uppercase()));
        assert!(s.chars().any(|c| c.is_ascii_lowercase()));
        assert!(s.chars().any(|c| c.is_ascii_digit()));
        assert!(s.chars().any(|c| !c.is_ascii_alphanumeric()));
    }
}
