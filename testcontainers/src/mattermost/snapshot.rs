//! A serialisable view of the double's state for assertions (names instead of ids where it helps).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::model::PluginState;
use super::state::World;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub teams: Vec<SnapTeam>,
    pub channels: Vec<SnapChannel>,
    pub users: Vec<SnapUser>,
    pub bots: Vec<SnapBot>,
    /// Number of user access tokens (all users).
    pub tokens: usize,
    pub hooks: Vec<SnapHook>,
    pub posts: Vec<SnapPost>,
    pub plugins: Vec<SnapPlugin>,
    /// The raw (unsanitised) configuration.
    pub config: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapTeam {
    pub id: String,
    pub name: String,
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Usernames of the members.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapChannel {
    pub id: String,
    /// Team name (empty for direct-message channels).
    pub team: String,
    pub name: String,
    pub display_name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapUser {
    pub id: String,
    pub username: String,
    pub email: String,
    pub roles: String,
    pub is_bot: bool,
    /// How many access tokens this user has.
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapBot {
    pub user_id: String,
    pub username: String,
    /// Username of the owner.
    pub owner: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapHook {
    pub id: String,
    pub team: String,
    pub channel: String,
    /// Username of the owner.
    pub owner: String,
    pub display_name: String,
    pub description: String,
    pub channel_locked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapPost {
    pub id: String,
    pub team: String,
    pub channel: String,
    pub user: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub props: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapPlugin {
    pub id: String,
    pub version: String,
    /// `PluginStates[id].Enable`.
    pub enabled: bool,
    pub state: PluginState,
    /// Numeric state as `/plugins/statuses` reports it (2 running, 3 failed to start).
    pub state_code: u8,
    pub error: String,
}

impl Snapshot {
    pub fn of(world: &World) -> Snapshot {
        let username = |id: &str| {
            world
                .users
                .iter()
                .find(|u| u.id == id)
                .map(|u| u.username.clone())
                .unwrap_or_default()
        };
        let team_name = |id: &str| {
            world
                .teams
                .iter()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
                .unwrap_or_default()
        };
        let channel = |id: &str| world.channels.iter().find(|c| c.id == id);
        Snapshot {
            teams: world
                .teams
                .iter()
                .map(|t| SnapTeam {
                    id: t.id.clone(),
                    name: t.name.clone(),
                    display_name: t.display_name.clone(),
                    kind: t.kind.clone(),
                    members: world
                        .team_members
                        .iter()
                        .filter(|m| m.team_id == t.id)
                        .map(|m| username(&m.user_id))
                        .collect(),
                })
                .collect(),
            channels: world
                .channels
                .iter()
                .map(|c| SnapChannel {
                    id: c.id.clone(),
                    team: team_name(&c.team_id),
                    name: c.name.clone(),
                    display_name: c.display_name.clone(),
                    kind: c.kind.clone(),
                    members: world
                        .channel_members
                        .iter()
                        .filter(|m| m.channel_id == c.id)
                        .map(|m| username(&m.user_id))
                        .collect(),
                })
                .collect(),
            users: world
                .users
                .iter()
                .map(|u| SnapUser {
                    id: u.id.clone(),
                    username: u.username.clone(),
                    email: u.email.clone(),
                    roles: u.roles.clone(),
                    is_bot: u.is_bot,
                    tokens: world.tokens.iter().filter(|t| t.user_id == u.id).count(),
                })
                .collect(),
            bots: world
                .bots
                .iter()
                .map(|b| SnapBot {
                    user_id: b.user_id.clone(),
                    username: b.username.clone(),
                    owner: username(&b.owner_id),
                })
                .collect(),
            tokens: world.tokens.len(),
            hooks: world
                .hooks
                .iter()
                .map(|h| SnapHook {
                    id: h.id.clone(),
                    team: team_name(&h.team_id),
                    channel: channel(&h.channel_id)
                        .map(|c| c.name.clone())
                        .unwrap_or_default(),
                    owner: username(&h.user_id),
                    display_name: h.display_name.clone(),
                    description: h.description.clone(),
                    channel_locked: h.channel_locked,
                })
                .collect(),
            posts: world
                .posts
                .iter()
                .map(|p| {
                    let c = channel(&p.channel_id);
                    SnapPost {
                        id: p.id.clone(),
                        team: c.map(|c| team_name(&c.team_id)).unwrap_or_default(),
                        channel: c.map(|c| c.name.clone()).unwrap_or_default(),
                        user: username(&p.user_id),
                        message: p.message.clone(),
                        kind: p.kind.clone(),
                        props: p.props.clone(),
                    }
                })
                .collect(),
            plugins: world
                .plugins
                .iter()
                .map(|p| SnapPlugin {
                    id: p.id.clone(),
                    version: p.version(),
                    enabled: super::config::plugin_enabled(&world.config, &p.id),
                    state: p.state,
                    state_code: p.state.code(),
                    error: p.error.clone(),
                })
                .collect(),
            config: world.config.clone(),
        }
    }

    pub fn team(&self, name: &str) -> Option<&SnapTeam> {
        self.teams.iter().find(|t| t.name == name)
    }

    pub fn channel(&self, team: &str, name: &str) -> Option<&SnapChannel> {
        self.channels
            .iter()
            .find(|c| c.team == team && c.name == name)
    }

    pub fn user(&self, username: &str) -> Option<&SnapUser> {
        self.users.iter().find(|u| u.username == username)
    }

    pub fn plugin(&self, id: &str) -> Option<&SnapPlugin> {
        self.plugins.iter().find(|p| p.id == id)
    }

    /// Posts in one channel, oldest first.
    pub fn posts_in(&self, team: &str, channel: &str) -> Vec<&SnapPost> {
        self.posts
            .iter()
            .filter(|p| p.team == team && p.channel == channel)
            .collect()
    }
}
