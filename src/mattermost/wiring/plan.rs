//! The wiring plan: a pure function from the desired objects and the observed server state to an
//! ordered list of items (would create / would update / unchanged per object, as
//! `report::Outcome`s), plus warnings and blockers.
//! Touches nothing; `apply` executes the steps in order.

use serde::Serialize;

use super::desired::{Desired, TOKEN_DESCRIPTION, TOWN_SQUARE};
use super::observe::Observed;
use super::report::change_word;
use crate::mattermost::model::IncomingWebhook;
use crate::report::Outcome;
use crate::state::StateDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Team,
    Channel,
    Bot,
    TeamMember,
    ChannelMember,
    Token,
    Webhook,
    Vault,
    PluginBundle,
    PluginSettings,
    Plugin,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Team => "team",
            Kind::Channel => "channel",
            Kind::Bot => "bot",
            Kind::TeamMember => "team member",
            Kind::ChannelMember => "channel member",
            Kind::Token => "bot token",
            Kind::Webhook => "webhook",
            Kind::Vault => "vault",
            Kind::PluginBundle => "plugin bundle",
            Kind::PluginSettings => "plugin settings",
            Kind::Plugin => "plugin",
        }
    }
}

/// The operation `apply` carries out for one item. Names, not ids, where the object may not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    CreateTeam,
    PatchTeam {
        team_id: String,
    },
    CreateChannel {
        name: String,
    },
    PatchChannel {
        name: String,
        channel_id: String,
    },
    CreateBot {
        name: String,
    },
    ConvertToBot {
        name: String,
        user_id: String,
    },
    PatchBot {
        name: String,
        user_id: String,
    },
    AddTeamMember {
        username: String,
    },
    AddChannelMember {
        channel: String,
        username: String,
    },
    CreateToken {
        bot: String,
    },
    RevokeToken {
        bot: String,
        token_id: String,
    },
    CreateHook {
        channel: String,
    },
    UpdateHook {
        channel: String,
        hook: IncomingWebhook,
    },
    StoreHookUrl {
        channel: String,
        hook_id: String,
    },
    /// Plugin ops are carried out by `plugins::apply`; the index points into its plan's ops.
    Plugin(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub kind: Kind,
    pub name: String,
    /// A plan's item is "would create/update" or unchanged; once applied, "created/updated".
    #[serde(rename = "change", serialize_with = "super::report::serialize_change")]
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    #[serde(skip)]
    pub op: Option<Op>,
}

impl Item {
    /// "creating incoming webhook for #alerts": what failed, for error messages.
    pub fn doing(&self) -> String {
        let verb = match (self.kind, self.outcome, &self.op) {
            (_, _, Some(Op::ConvertToBot { .. })) => {
                return format!("converting user {} to a bot", self.name);
            }
            (_, _, Some(Op::RevokeToken { bot, .. })) => {
                return format!("revoking a stale token of bot {bot}");
            }
            (Kind::TeamMember | Kind::ChannelMember, _, _) => {
                return format!("adding {}", self.name.replacen(" in ", " to ", 1));
            }
            (Kind::Vault, _, _) => return format!("storing {} in the vault", self.name),
            (Kind::Webhook, Outcome::WouldCreate | Outcome::Created, _) => {
                return format!("creating incoming webhook for {}", self.name);
            }
            (Kind::Webhook, _, _) => {
                return format!("updating incoming webhook for {}", self.name);
            }
            (Kind::Token, _, _) => return format!("creating the token of bot {}", self.name),
            (Kind::PluginBundle, _, _) => {
                return format!("uploading the bundle of plugin {}", self.name);
            }
            (Kind::PluginSettings, _, _) => {
                return format!("writing the settings of plugin {}", self.name);
            }
            (Kind::Plugin, _, _) => return format!("enabling plugin {}", self.name),
            (_, Outcome::WouldCreate | Outcome::Created, _) => "creating",
            _ => "updating",
        };
        format!("{verb} {} {}", self.kind.label(), self.name)
    }

    pub fn is_change(&self) -> bool {
        self.outcome.changes_something()
    }

    /// The item once applied: "would create" becomes "created", "would update" "updated".
    pub fn applied(&self) -> Outcome {
        match self.outcome {
            Outcome::WouldCreate => Outcome::Created,
            Outcome::WouldUpdate => Outcome::Updated,
            Outcome::WouldRemove => Outcome::Removed,
            done => done,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub items: Vec<Item>,
    /// Problems that do not stop the run (e.g. the admin user is missing).
    pub warnings: Vec<String>,
    /// Problems that stop the run before any change.
    pub blockers: Vec<String>,
}

impl Plan {
    pub fn push(
        &mut self,
        kind: Kind,
        name: String,
        outcome: Outcome,
        detail: &str,
        op: Option<Op>,
    ) {
        self.items.push(Item {
            kind,
            name,
            outcome,
            detail: detail.to_string(),
            op,
        });
    }

    pub fn changes(&self) -> usize {
        self.items.iter().filter(|i| i.is_change()).count()
    }

    /// Appends another plan's items, warnings and blockers (the plugin plan).
    pub fn extend(&mut self, other: Plan) {
        self.items.extend(other.items);
        self.warnings.extend(other.warnings);
        self.blockers.extend(other.blockers);
    }

    /// How many items `change_word` calls `word` ("create", "update", "unchanged").
    pub fn count(&self, word: &str) -> usize {
        self.items
            .iter()
            .filter(|i| change_word(i.outcome) == word)
            .count()
    }
}

/// Compares what the city wants with what the server holds. Pure.
pub fn plan(d: &Desired, o: &Observed) -> Plan {
    let mut p = Plan::default();
    if !d.hooks.is_empty() && !o.incoming_webhooks_enabled {
        p.blockers.push(
            "incoming webhooks are disabled on the server (ServiceSettings.EnableIncomingWebhooks = false): \
             set MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS=true in Mattermost's environment (or System Console > \
             Integrations > Integration Management), restart it, then rerun `cityd wire`"
                .into(),
        );
    }

    plan_team(d, o, &mut p);
    plan_channels(d, o, &mut p);
    plan_bots(d, o, &mut p);
    plan_memberships(d, o, &mut p);
    plan_tokens(d, o, &mut p);
    plan_hooks(d, o, &mut p);
    p
}

fn plan_team(d: &Desired, o: &Observed, p: &mut Plan) {
    let name = d.team.name.clone();
    match &o.team {
        None => p.push(Kind::Team, name, Outcome::WouldCreate, "", Some(Op::CreateTeam)),
        Some(t) if t.delete_at != 0 => p.blockers.push(format!(
            "team {} exists but is archived: restore it (System Console > Teams, or `mmctl team restore {}`) and rerun",
            t.name, t.name
        )),
        Some(t) if t.display_name != d.team.display_name => p.push(
            Kind::Team,
            name,
            Outcome::WouldUpdate,
            "display name",
            Some(Op::PatchTeam {
                team_id: t.id.clone(),
            }),
        ),
        Some(_) => p.push(Kind::Team, name, Outcome::Unchanged, "", None),
    }
}

fn plan_channels(d: &Desired, o: &Observed, p: &mut Plan) {
    for spec in &d.channels {
        let name = format!("#{}", spec.name);
        match o.channels.get(&spec.name) {
            None if o.team.is_none() && spec.name == TOWN_SQUARE => p.push(
                Kind::Channel,
                name,
                Outcome::Unchanged,
                "comes with the team",
                None,
            ),
            None => p.push(
                Kind::Channel,
                name,
                Outcome::WouldCreate,
                "",
                Some(Op::CreateChannel {
                    name: spec.name.clone(),
                }),
            ),
            Some(ch) => {
                let mut differs = Vec::new();
                if ch.display_name != spec.display_name {
                    differs.push("display name");
                }
                // An empty purpose in the city means "not managed" (town-square has none of ours).
                if !spec.purpose.is_empty() && ch.purpose != spec.purpose {
                    differs.push("purpose");
                }
                if differs.is_empty() {
                    p.push(Kind::Channel, name, Outcome::Unchanged, "", None);
                } else {
                    p.push(
                        Kind::Channel,
                        name,
                        Outcome::WouldUpdate,
                        &differs.join(", "),
                        Some(Op::PatchChannel {
                            name: spec.name.clone(),
                            channel_id: ch.id.clone(),
                        }),
                    );
                }
            }
        }
    }
}

fn plan_bots(d: &Desired, o: &Observed, p: &mut Plan) {
    if !o.users.contains_key(&d.admin) {
        p.warnings.push(format!(
            "the admin user `{}` does not exist on the server, so it is not added to the team and channels: \
             create it (System Console, or `mmctl --local user create --system-admin --username {} --email … --password …` \
             inside the container) or set [admin] username in the city to an existing admin, then rerun `cityd wire`",
            d.admin, d.admin
        ));
    }
    for spec in &d.bots {
        let name = spec.name.clone();
        match o.users.get(&spec.name) {
            None => p.push(
                Kind::Bot,
                name.clone(),
                Outcome::WouldCreate,
                "",
                Some(Op::CreateBot { name }),
            ),
            Some(u) if u.delete_at != 0 => p.blockers.push(format!(
                "the account {} exists but is deactivated: reactivate it (`mmctl --local bot enable {}` or `mmctl --local user activate {}`) and rerun",
                u.username, u.username, u.username
            )),
            Some(u) if !u.is_bot && u.email == spec.email => p.push(
                Kind::Bot,
                name.clone(),
                Outcome::WouldUpdate,
                "finish converting the user an interrupted run created into a bot",
                Some(Op::ConvertToBot {
                    name,
                    user_id: u.id.clone(),
                }),
            ),
            Some(u) if !u.is_bot => p.blockers.push(format!(
                "a regular user named {} exists (email {}); cityd does not turn a person's account into a bot: \
                 rename the bot in the city ([[bots]] name) or remove that user",
                u.username, u.email
            )),
            Some(u) => {
                let bot = o.bots.get(&u.id);
                let display = bot.map(|b| b.display_name.as_str()).unwrap_or_default();
                let description = bot.map(|b| b.description.as_str()).unwrap_or_default();
                let mut differs = Vec::new();
                if display != spec.display_name {
                    differs.push("display name");
                }
                if !spec.description.is_empty() && description != spec.description {
                    differs.push("description");
                }
                if differs.is_empty() {
                    p.push(Kind::Bot, name, Outcome::Unchanged, "", None);
                } else {
                    p.push(
                        Kind::Bot,
                        name.clone(),
                        Outcome::WouldUpdate,
                        &differs.join(", "),
                        Some(Op::PatchBot {
                            name,
                            user_id: u.id.clone(),
                        }),
                    );
                }
            }
        }
    }
}

fn plan_memberships(d: &Desired, o: &Observed, p: &mut Plan) {
    let admin_exists = o.users.contains_key(&d.admin);
    let wanted = |user: &str| user != d.admin || admin_exists;
    let user_id = |user: &str| o.users.get(user).map(|u| u.id.as_str());

    let team_users =
        std::iter::once(d.admin.as_str()).chain(d.bots.iter().map(|b| b.name.as_str()));
    for user in team_users.filter(|u| wanted(u)) {
        let name = format!("{user} in team {}", d.team.name);
        let member = user_id(user).is_some_and(|id| o.team_members.contains(id));
        if member {
            p.push(Kind::TeamMember, name, Outcome::Unchanged, "", None);
        } else {
            p.push(
                Kind::TeamMember,
                name,
                Outcome::WouldCreate,
                "",
                Some(Op::AddTeamMember {
                    username: user.to_string(),
                }),
            );
        }
    }
    for spec in &d.channels {
        for user in d
            .channel_members(&spec.name)
            .into_iter()
            .filter(|u| wanted(u))
        {
            let name = format!("{user} in #{}", spec.name);
            let member = user_id(user).is_some_and(|id| {
                o.channel_members
                    .get(&spec.name)
                    .is_some_and(|m| m.contains(id))
            });
            let joins_team = !user_id(user).is_some_and(|id| o.team_members.contains(id));
            if member {
                p.push(Kind::ChannelMember, name, Outcome::Unchanged, "", None);
            } else if spec.name == TOWN_SQUARE && joins_team {
                // Mattermost puts every new team member into town-square (JoinUserToTeam).
                p.push(
                    Kind::ChannelMember,
                    name,
                    Outcome::WouldCreate,
                    "joins with the team",
                    None,
                );
            } else {
                p.push(
                    Kind::ChannelMember,
                    name,
                    Outcome::WouldCreate,
                    "",
                    Some(Op::AddChannelMember {
                        channel: spec.name.clone(),
                        username: user.to_string(),
                    }),
                );
            }
        }
    }
}

fn plan_tokens(d: &Desired, o: &Observed, p: &mut Plan) {
    for spec in &d.bots {
        let ours: Vec<_> = o
            .tokens
            .get(&spec.name)
            .into_iter()
            .flatten()
            .filter(|t| t.description == TOKEN_DESCRIPTION && t.is_active)
            .collect();
        let stored = o.vault.token_ids.get(&spec.name);
        let valid = stored.is_some_and(|id| ours.iter().any(|t| &t.id == id));
        let vault_name = StateDir::bot_token_secret_name(&spec.name);
        if valid {
            p.push(Kind::Token, spec.name.clone(), Outcome::Unchanged, "", None);
        } else {
            let detail = if stored.is_some() {
                format!(
                    "the token in the vault ({vault_name}) is not active on the server; a new one replaces it"
                )
            } else {
                format!("stored in the vault as {vault_name}")
            };
            p.push(
                Kind::Token,
                spec.name.clone(),
                Outcome::WouldCreate,
                &detail,
                Some(Op::CreateToken {
                    bot: spec.name.clone(),
                }),
            );
        }
        for stale in ours.iter().filter(|t| stored != Some(&t.id) || !valid) {
            p.push(
                Kind::Token,
                spec.name.clone(),
                Outcome::WouldUpdate,
                "revoke a token an earlier run created whose value is not in the vault",
                Some(Op::RevokeToken {
                    bot: spec.name.clone(),
                    token_id: stale.id.clone(),
                }),
            );
        }
    }
}

fn plan_hooks(d: &Desired, o: &Observed, p: &mut Plan) {
    for spec in &d.hooks {
        let name = format!("#{}", spec.channel);
        let vault_name = StateDir::webhook_secret_name(&spec.channel);
        let channel = o.channels.get(&spec.channel);
        let owner = o.users.get(&spec.bot).filter(|u| u.is_bot);
        let mut matching: Vec<&IncomingWebhook> = match (channel, owner) {
            (Some(c), Some(u)) => o
                .hooks
                .iter()
                .filter(|h| {
                    h.channel_id == c.id
                        && h.user_id == u.id
                        && h.display_name == spec.display_name
                        && h.delete_at == 0
                })
                .collect(),
            _ => Vec::new(),
        };
        matching.sort_by(|a, b| (a.create_at, &a.id).cmp(&(b.create_at, &b.id)));
        let detail = format!(
            "owner {}, \"{}\", locked to the channel",
            spec.bot, spec.display_name
        );
        let Some(hook) = matching.first() else {
            p.push(
                Kind::Webhook,
                name,
                Outcome::WouldCreate,
                &detail,
                Some(Op::CreateHook {
                    channel: spec.channel.clone(),
                }),
            );
            p.push(
                Kind::Vault,
                vault_name,
                Outcome::WouldCreate,
                "the new hook's URL",
                None,
            );
            continue;
        };
        if matching.len() > 1 {
            p.warnings.push(format!(
                "{} incoming webhooks for #{} are owned by {} and named \"{}\"; cityd uses the oldest: \
                 delete the others (System Console > Integrations > Incoming Webhooks)",
                matching.len(),
                spec.channel,
                spec.bot,
                spec.display_name
            ));
        }
        let mut differs = Vec::new();
        if !hook.channel_locked {
            differs.push("lock to the channel");
        }
        if !spec.description.is_empty() && hook.description != spec.description {
            differs.push("description");
        }
        if differs.is_empty() {
            p.push(Kind::Webhook, name, Outcome::Unchanged, &detail, None);
        } else {
            let mut updated = (*hook).clone();
            updated.channel_locked = true;
            if !spec.description.is_empty() {
                updated.description = spec.description.clone();
            }
            p.push(
                Kind::Webhook,
                name,
                Outcome::WouldUpdate,
                &differs.join(", "),
                Some(Op::UpdateHook {
                    channel: spec.channel.clone(),
                    hook: updated,
                }),
            );
        }
        let expected = d.hook_url(&hook.id);
        let step = Some(Op::StoreHookUrl {
            channel: spec.channel.clone(),
            hook_id: hook.id.clone(),
        });
        match o.vault.hook_urls.get(&spec.channel) {
            Some(v) if v.expose() == expected => {
                p.push(Kind::Vault, vault_name, Outcome::Unchanged, "", None)
            }
            Some(_) => p.push(
                Kind::Vault,
                vault_name,
                Outcome::WouldUpdate,
                "the stored URL names another hook or site",
                step,
            ),
            None => p.push(Kind::Vault, vault_name, Outcome::WouldCreate, "", step),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::city::City;
    use crate::mattermost::model::{Bot, Channel, Team, User, UserAccessToken};
    use crate::mattermost::wiring::desired::{Desired, TOKEN_DESCRIPTION};
    use crate::secrets::Secret;

    fn desired() -> Desired {
        Desired::from_city(&City::default_city())
    }

    fn user(name: &str, is_bot: bool) -> User {
        User {
            id: format!("id-{name}"),
            username: name.into(),
            email: format!("{name}@bots.cicd.local"),
            roles: String::new(),
            is_bot,
            delete_at: 0,
        }
    }

    /// A server on which everything the default city wants already exists.
    fn wired(d: &Desired) -> Observed {
        let mut o = Observed {
            team: Some(Team {
                id: "team".into(),
                name: d.team.name.clone(),
                display_name: d.team.display_name.clone(),
                kind: "O".into(),
                delete_at: 0,
            }),
            incoming_webhooks_enabled: true,
            ..Default::default()
        };
        o.users.insert("admin".into(), user("admin", false));
        o.team_members.insert("id-admin".into());
        for c in &d.channels {
            o.channels.insert(
                c.name.clone(),
                Channel {
                    id: format!("ch-{}", c.name),
                    team_id: "team".into(),
                    name: c.name.clone(),
                    display_name: c.display_name.clone(),
                    kind: "O".into(),
                    purpose: c.purpose.clone(),
                    delete_at: 0,
                },
            );
            let members = d
                .channel_members(&c.name)
                .into_iter()
                .map(|u| format!("id-{u}"))
                .collect();
            o.channel_members.insert(c.name.clone(), members);
        }
        for b in &d.bots {
            o.users.insert(b.name.clone(), user(&b.name, true));
            o.team_members.insert(format!("id-{}", b.name));
            o.bots.insert(
                format!("id-{}", b.name),
                Bot {
                    user_id: format!("id-{}", b.name),
                    username: b.name.clone(),
                    display_name: b.display_name.clone(),
                    description: b.description.clone(),
                    owner_id: format!("id-{}", b.name),
                    delete_at: 0,
                },
            );
            o.tokens.insert(
                b.name.clone(),
                vec![UserAccessToken {
                    id: format!("tok-{}", b.name),
                    user_id: format!("id-{}", b.name),
                    description: TOKEN_DESCRIPTION.into(),
                    is_active: true,
                }],
            );
            o.vault
                .token_ids
                .insert(b.name.clone(), format!("tok-{}", b.name));
        }
        for (i, h) in d.hooks.iter().enumerate() {
            let id = format!("hook{i}");
            o.hooks.push(IncomingWebhook {
                id: id.clone(),
                channel_id: format!("ch-{}", h.channel),
                team_id: "team".into(),
                user_id: format!("id-{}", h.bot),
                display_name: h.display_name.clone(),
                description: h.description.clone(),
                username: String::new(),
                icon_url: String::new(),
                channel_locked: true,
                delete_at: 0,
                create_at: 1,
            });
            o.vault
                .hook_urls
                .insert(h.channel.clone(), Secret::new(d.hook_url(&id)));
        }
        o
    }

    fn changes(p: &Plan) -> Vec<(Kind, String, Outcome)> {
        p.items
            .iter()
            .filter(|i| i.is_change())
            .map(|i| (i.kind, i.name.clone(), i.outcome))
            .collect()
    }

    #[test]
    fn a_wired_server_needs_nothing() {
        let d = desired();
        let p = plan(&d, &wired(&d));
        assert_eq!(changes(&p), vec![]);
        assert!(p.warnings.is_empty() && p.blockers.is_empty(), "{p:?}");
        assert!(p.items.iter().all(|i| i.op.is_none()));
    }

    #[test]
    fn an_empty_server_gets_everything_but_town_square() {
        let d = desired();
        let mut o = Observed {
            incoming_webhooks_enabled: true,
            ..Default::default()
        };
        o.users.insert("admin".into(), user("admin", false));
        let p = plan(&d, &o);
        let created: Vec<String> = p
            .items
            .iter()
            .filter(|i| i.outcome == Outcome::WouldCreate)
            .map(|i| format!("{} {}", i.kind.label(), i.name))
            .collect();
        assert_eq!(
            created,
            [
                "team engineering",
                "channel #builds",
                "channel #code-reviews",
                "channel #alerts",
                "bot jenkins-bot",
                "bot gitlab-bot",
                "bot sonarqube-bot",
                "team member admin in team engineering",
                "team member jenkins-bot in team engineering",
                "team member gitlab-bot in team engineering",
                "team member sonarqube-bot in team engineering",
                "channel member admin in #builds",
                "channel member jenkins-bot in #builds",
                "channel member admin in #code-reviews",
                "channel member gitlab-bot in #code-reviews",
                "channel member admin in #alerts",
                "channel member sonarqube-bot in #alerts",
                "channel member admin in #town-square",
                "bot token jenkins-bot",
                "bot token gitlab-bot",
                "bot token sonarqube-bot",
                "webhook #builds",
                "vault webhook-builds",
                "webhook #alerts",
                "vault webhook-alerts",
                "webhook #code-reviews",
                "vault webhook-code-reviews",
            ]
        );
        let joins = p
            .items
            .iter()
            .find(|i| i.name == "admin in #town-square")
            .unwrap();
        assert_eq!(
            (joins.detail.as_str(), joins.op.is_none()),
            ("joins with the team", true)
        );
        let ts = p.items.iter().find(|i| i.name == "#town-square").unwrap();
        assert_eq!(
            (ts.outcome, ts.detail.as_str()),
            (Outcome::Unchanged, "comes with the team")
        );
    }

    #[test]
    fn a_missing_admin_is_a_warning_and_gets_no_memberships() {
        let d = desired();
        let mut o = wired(&d);
        o.users.remove("admin");
        let p = plan(&d, &o);
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].contains("`admin` does not exist"),
            "{:?}",
            p.warnings
        );
        assert!(p.warnings[0].contains("[admin] username"));
        assert!(!p.items.iter().any(|i| i.name.starts_with("admin in")));
        assert_eq!(changes(&p), vec![]);
    }

    #[test]
    fn half_wired_servers_get_exactly_the_missing_objects() {
        let d = desired();
        let mut o = wired(&d);
        o.channels.remove("alerts");
        o.channel_members.remove("alerts");
        o.hooks.retain(|h| h.channel_id != "ch-alerts");
        o.vault.hook_urls.remove("alerts");
        o.channel_members
            .get_mut("builds")
            .unwrap()
            .remove("id-jenkins-bot");
        let p = plan(&d, &o);
        assert_eq!(
            changes(&p),
            vec![
                (Kind::Channel, "#alerts".into(), Outcome::WouldCreate),
                (
                    Kind::ChannelMember,
                    "jenkins-bot in #builds".into(),
                    Outcome::WouldCreate
                ),
                (
                    Kind::ChannelMember,
                    "admin in #alerts".into(),
                    Outcome::WouldCreate
                ),
                (
                    Kind::ChannelMember,
                    "sonarqube-bot in #alerts".into(),
                    Outcome::WouldCreate
                ),
                (Kind::Webhook, "#alerts".into(), Outcome::WouldCreate),
                (Kind::Vault, "webhook-alerts".into(), Outcome::WouldCreate),
            ]
        );
    }

    #[test]
    fn hooks_match_on_channel_owner_and_name_and_get_locked() {
        let d = desired();
        let mut o = wired(&d);
        // Someone else's hook in #builds does not count; ours is unlocked.
        o.hooks[0].channel_locked = false;
        let mut foreign = o.hooks[0].clone();
        foreign.id = "foreign".into();
        foreign.user_id = "id-admin".into();
        o.hooks.push(foreign);
        let p = plan(&d, &o);
        let update = p
            .items
            .iter()
            .find(|i| i.kind == Kind::Webhook && i.outcome == Outcome::WouldUpdate)
            .unwrap();
        assert_eq!(update.name, "#builds");
        match &update.op {
            Some(Op::UpdateHook { hook, .. }) => {
                assert!(hook.channel_locked);
                assert_eq!(hook.id, "hook0");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(changes(&p).len(), 1);
    }

    #[test]
    fn duplicates_warn_and_the_oldest_wins() {
        let d = desired();
        let mut o = wired(&d);
        let mut dup = o.hooks[0].clone();
        dup.id = "hookdup".into();
        dup.create_at = 0; // older than hook0
        o.hooks.push(dup);
        let p = plan(&d, &o);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("2 incoming webhooks for #builds"))
        );
        // The vault holds hook0's URL, but the oldest is hookdup: the vault entry is updated.
        let v = p.items.iter().find(|i| i.name == "webhook-builds").unwrap();
        assert_eq!(v.outcome, Outcome::WouldUpdate);
        assert_eq!(
            v.op,
            Some(Op::StoreHookUrl {
                channel: "builds".into(),
                hook_id: "hookdup".into()
            })
        );
        // No URL in any plan text.
        let text = format!("{:?}", p.warnings);
        assert!(!text.contains("hookdup"));
    }

    #[test]
    fn tokens_are_tied_to_the_vault() {
        let d = desired();
        let mut o = wired(&d);
        // Vault lost jenkins-bot's token: create a new one and revoke the one we can no longer use.
        o.vault.token_ids.remove("jenkins-bot");
        // A human-made token of gitlab-bot is never touched.
        o.tokens
            .get_mut("gitlab-bot")
            .unwrap()
            .push(UserAccessToken {
                id: "manual".into(),
                user_id: "id-gitlab-bot".into(),
                description: "made by hand".into(),
                is_active: true,
            });
        let p = plan(&d, &o);
        let steps: Vec<_> = p.items.iter().filter_map(|i| i.op.clone()).collect();
        assert_eq!(
            steps,
            vec![
                Op::CreateToken {
                    bot: "jenkins-bot".into()
                },
                Op::RevokeToken {
                    bot: "jenkins-bot".into(),
                    token_id: "tok-jenkins-bot".into()
                },
            ]
        );
    }

    #[test]
    fn half_created_bots_are_finished_but_people_are_left_alone() {
        let d = desired();
        let mut o = wired(&d);
        o.users
            .insert("jenkins-bot".into(), user("jenkins-bot", false));
        let mut person = user("gitlab-bot", false);
        person.email = "someone@example.org".into();
        o.users.insert("gitlab-bot".into(), person);
        let p = plan(&d, &o);
        assert!(p.items.iter().any(|i| matches!(
            &i.op,
            Some(Op::ConvertToBot { name, .. }) if name == "jenkins-bot"
        )));
        assert_eq!(p.blockers.len(), 1);
        assert!(p.blockers[0].contains("regular user named gitlab-bot"));
    }

    #[test]
    fn disabled_incoming_webhooks_block_the_run() {
        let d = desired();
        let mut o = wired(&d);
        o.incoming_webhooks_enabled = false;
        let p = plan(&d, &o);
        assert!(p.blockers[0].contains("EnableIncomingWebhooks"));
        assert!(p.blockers[0].contains("MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS=true"));
    }

    #[test]
    fn drift_in_names_is_an_update() {
        let d = desired();
        let mut o = wired(&d);
        o.team.as_mut().unwrap().display_name = "Eng".into();
        o.channels.get_mut("builds").unwrap().purpose = "old".into();
        o.bots.get_mut("id-jenkins-bot").unwrap().display_name = "jenkins-bot".into();
        let p = plan(&d, &o);
        assert_eq!(
            changes(&p),
            vec![
                (Kind::Team, "engineering".into(), Outcome::WouldUpdate),
                (Kind::Channel, "#builds".into(), Outcome::WouldUpdate),
                (Kind::Bot, "jenkins-bot".into(), Outcome::WouldUpdate),
            ]
        );
    }

    #[test]
    fn failure_descriptions_name_the_object() {
        let d = desired();
        let o = Observed {
            incoming_webhooks_enabled: true,
            ..Default::default()
        };
        let p = plan(&d, &o);
        let doing: Vec<String> = p
            .items
            .iter()
            .filter(|i| i.op.is_some())
            .map(Item::doing)
            .collect();
        assert!(
            doing.contains(&"creating team engineering".to_string()),
            "{doing:?}"
        );
        assert!(doing.contains(&"creating channel #builds".to_string()));
        assert!(doing.contains(&"creating bot jenkins-bot".to_string()));
        assert!(doing.contains(&"adding jenkins-bot to #builds".to_string()));
        assert!(doing.contains(&"creating incoming webhook for #alerts".to_string()));
        assert!(doing.contains(&"creating the token of bot sonarqube-bot".to_string()));
    }
}
