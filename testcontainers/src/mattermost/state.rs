//! The double's in-memory server state (`World`) and the bookkeeping around it (`Shared`):
//! request log, mutation counter, fault injection, readiness.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Value, json};

use super::config;
use super::errors::{ApiResult, AppError};
use super::ids::{new_id, now_millis};
use super::model::*;

/// Username of the system admin that exists from the start (see [`super::MattermostDouble`]).
pub const SEED_ADMIN: &str = "admin";

/// Everything a Mattermost server would keep in its database and config store.
#[derive(Debug)]
pub struct World {
    pub teams: Vec<Team>,
    pub channels: Vec<Channel>,
    pub users: Vec<User>,
    pub bots: Vec<Bot>,
    pub tokens: Vec<AccessToken>,
    pub team_members: Vec<TeamMember>,
    pub channel_members: Vec<ChannelMember>,
    pub hooks: Vec<IncomingWebhook>,
    pub posts: Vec<Post>,
    pub plugins: Vec<Plugin>,
    pub config: Value,
    /// Bearer token → user id: the seed admin's session and every user access token.
    pub sessions: HashMap<String, String>,
    /// Plugin ids the test asked to fail at their next activation.
    pub failing_plugins: BTreeSet<String>,
}

impl World {
    /// A fresh server: default config merged with `overrides`, one system admin with a session.
    pub fn new(overrides: &Value) -> (World, String) {
        let mut world = World {
            teams: vec![],
            channels: vec![],
            users: vec![],
            bots: vec![],
            tokens: vec![],
            team_members: vec![],
            channel_members: vec![],
            hooks: vec![],
            posts: vec![],
            plugins: vec![],
            config: config::merge(&config::default_config(), overrides),
            sessions: HashMap::new(),
            failing_plugins: BTreeSet::new(),
        };
        let admin = world.insert_user(
            SEED_ADMIN,
            "admin@localhost",
            "system_admin system_user",
            true,
        );
        let token = new_id();
        world.sessions.insert(token.clone(), admin);
        (world, token)
    }

    pub fn cfg_bool(&self, path: &str) -> bool {
        config::get_bool(&self.config, path)
    }

    /// Stores a user that already passed validation; returns its id.
    pub fn insert_user(
        &mut self,
        username: &str,
        email: &str,
        roles: &str,
        has_password: bool,
    ) -> String {
        let now = now_millis();
        let user = User {
            id: new_id(),
            create_at: now,
            update_at: now,
            delete_at: 0,
            username: username.to_owned(),
            auth_data: String::new(),
            auth_service: String::new(),
            email: email.to_owned(),
            email_verified: false,
            nickname: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            position: String::new(),
            roles: roles.to_owned(),
            notify_props: User::default_notify_props(username),
            last_password_update: now,
            locale: "en".into(),
            timezone: User::default_timezone(),
            is_bot: false,
            bot_description: String::new(),
            disable_welcome_email: false,
            has_password,
        };
        let id = user.id.clone();
        self.users.push(user);
        id
    }

    pub fn team(&self, id: &str) -> ApiResult<&Team> {
        self.teams
            .iter()
            .find(|t| t.id == id && t.delete_at == 0)
            .ok_or_else(|| {
                AppError::not_found(
                    "app.team.get.find.app_error",
                    "Unable to find the existing team.",
                )
            })
    }

    pub fn team_by_name(&self, name: &str) -> ApiResult<&Team> {
        self.teams
            .iter()
            .find(|t| t.name == name && t.delete_at == 0)
            .ok_or_else(|| {
                AppError::not_found(
                    "app.team.get_by_name.missing.app_error",
                    "Unable to find the existing team.",
                )
            })
    }

    pub fn channel(&self, id: &str) -> ApiResult<&Channel> {
        self.channels
            .iter()
            .find(|c| c.id == id && c.delete_at == 0)
            .ok_or_else(|| {
                AppError::not_found(
                    "app.channel.get.existing.app_error",
                    "Unable to find the existing channel.",
                )
            })
    }

    pub fn channel_by_name(&self, team_id: &str, name: &str) -> ApiResult<&Channel> {
        self.channels
            .iter()
            .find(|c| c.team_id == team_id && c.name == name && c.delete_at == 0)
            .ok_or_else(|| {
                AppError::not_found(
                    "app.channel.get_by_name.missing.app_error",
                    "Channel does not exist.",
                )
            })
    }

    pub fn user(&self, id: &str) -> ApiResult<&User> {
        self.users.iter().find(|u| u.id == id).ok_or_else(|| {
            AppError::not_found("app.user.missing_account.const", "Unable to find the user.")
        })
    }

    pub fn user_by_username(&self, username: &str) -> ApiResult<&User> {
        let wanted = username.to_lowercase();
        self.users
            .iter()
            .find(|u| u.username == wanted)
            .ok_or_else(|| {
                AppError::not_found(
                    "app.user.get_by_username.app_error",
                    "Unable to find an existing account matching your username for this team. \
                 This team may require an invite from the team owner to join.",
                )
            })
    }

    pub fn is_team_member(&self, team_id: &str, user_id: &str) -> bool {
        self.team_members
            .iter()
            .any(|m| m.team_id == team_id && m.user_id == user_id && m.delete_at == 0)
    }

    pub fn is_channel_member(&self, channel_id: &str, user_id: &str) -> bool {
        self.channel_members
            .iter()
            .any(|m| m.channel_id == channel_id && m.user_id == user_id)
    }

    /// Creates a team's default channels, as `App.CreateTeam` does.
    pub fn create_default_channels(&mut self, team_id: &str) {
        for (name, display) in [("town-square", "Town Square"), ("off-topic", "Off-Topic")] {
            self.insert_channel(team_id, name, display, "O", "", "", "");
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_channel(
        &mut self,
        team_id: &str,
        name: &str,
        display_name: &str,
        kind: &str,
        purpose: &str,
        header: &str,
        creator_id: &str,
    ) -> Channel {
        let now = now_millis();
        let channel = Channel {
            id: new_id(),
            create_at: now,
            update_at: now,
            delete_at: 0,
            team_id: team_id.to_owned(),
            kind: kind.to_owned(),
            display_name: display_name.to_owned(),
            name: name.to_owned(),
            header: header.to_owned(),
            purpose: purpose.to_owned(),
            last_post_at: now,
            total_msg_count: 0,
            extra_update_at: 0,
            creator_id: creator_id.to_owned(),
            scheme_id: None,
            props: None,
            group_constrained: None,
            shared: None,
            total_msg_count_root: 0,
            policy_id: None,
            last_root_post_at: now,
        };
        self.channels.push(channel.clone());
        channel
    }

    /// Adds a user to a team (and to its default channels, like `JoinUserToTeam`); an existing
    /// membership is returned unchanged.
    pub fn join_team(
        &mut self,
        team_id: &str,
        user_id: &str,
        admin: bool,
    ) -> ApiResult<TeamMember> {
        if let Some(m) = self
            .team_members
            .iter()
            .find(|m| m.team_id == team_id && m.user_id == user_id)
        {
            return Ok(m.clone());
        }
        let max = config::get_i64(&self.config, "TeamSettings.MaxUsersPerTeam");
        let count = self
            .team_members
            .iter()
            .filter(|m| m.team_id == team_id && m.delete_at == 0)
            .count();
        if count as i64 >= max {
            return Err(AppError::bad_request(
                "app.team.join_user_to_team.max_accounts.app_error",
                "This team has reached the maximum number of allowed accounts. \
                 Contact your System Administrator to set a higher limit.",
            ));
        }
        let member = TeamMember {
            team_id: team_id.to_owned(),
            user_id: user_id.to_owned(),
            roles: if admin {
                "team_user team_admin".into()
            } else {
                "team_user".into()
            },
            delete_at: 0,
            scheme_guest: false,
            scheme_user: true,
            scheme_admin: admin,
            explicit_roles: String::new(),
            create_at: now_millis(),
        };
        self.team_members.push(member.clone());
        let defaults: Vec<String> = self
            .channels
            .iter()
            .filter(|c| c.team_id == team_id && (c.name == "town-square" || c.name == "off-topic"))
            .map(|c| c.id.clone())
            .collect();
        for channel_id in defaults {
            self.join_channel(&channel_id, user_id, false)?;
        }
        Ok(member)
    }

    /// Adds a user to a channel of a team they belong to, posting the `system_join_channel`
    /// message the real server writes; an existing membership is returned unchanged.
    pub fn join_channel(
        &mut self,
        channel_id: &str,
        user_id: &str,
        admin: bool,
    ) -> ApiResult<ChannelMember> {
        if let Some(m) = self
            .channel_members
            .iter()
            .find(|m| m.channel_id == channel_id && m.user_id == user_id)
        {
            return Ok(m.clone());
        }
        let channel = self.channel(channel_id)?.clone();
        if !channel.team_id.is_empty() && !self.is_team_member(&channel.team_id, user_id) {
            return Err(AppError::not_found(
                "app.team.get_member.missing.app_error",
                "No team member found for that user ID and team ID.",
            ));
        }
        let username = self.user(user_id)?.username.clone();
        let now = now_millis();
        let member = ChannelMember::new(channel_id, user_id, admin, now);
        self.channel_members.push(member.clone());
        let mut props = serde_json::Map::new();
        props.insert("username".into(), json!(username));
        self.insert_post(
            channel_id,
            user_id,
            &format!("{username} joined the channel."),
            "system_join_channel",
            props,
            None,
        );
        Ok(member)
    }

    /// Stores a post and updates the channel's counters.
    pub fn insert_post(
        &mut self,
        channel_id: &str,
        user_id: &str,
        message: &str,
        kind: &str,
        props: serde_json::Map<String, Value>,
        priority: Option<Value>,
    ) -> Post {
        let now = now_millis();
        let metadata = match priority {
            Some(p) => json!({"priority": p}),
            None => json!({}),
        };
        let post = Post {
            id: new_id(),
            create_at: now,
            update_at: now,
            edit_at: 0,
            delete_at: 0,
            is_pinned: false,
            user_id: user_id.to_owned(),
            channel_id: channel_id.to_owned(),
            root_id: String::new(),
            original_id: String::new(),
            message: message.to_owned(),
            kind: kind.to_owned(),
            props,
            hashtags: String::new(),
            pending_post_id: String::new(),
            reply_count: 0,
            last_reply_at: 0,
            participants: None,
            metadata,
        };
        if let Some(channel) = self.channels.iter_mut().find(|c| c.id == channel_id) {
            channel.last_post_at = now;
            channel.last_root_post_at = now;
            channel.total_msg_count += 1;
            channel.total_msg_count_root += 1;
        }
        self.posts.push(post.clone());
        post
    }

    /// The direct-message channel between two users (`<id1>__<id2>`, ids sorted), created on first use.
    pub fn direct_channel(&mut self, a: &str, b: &str) -> Channel {
        let (first, second) = if a <= b { (a, b) } else { (b, a) };
        let name = format!("{first}__{second}");
        if let Some(c) = self
            .channels
            .iter()
            .find(|c| c.kind == "D" && c.name == name)
        {
            return c.clone();
        }
        let channel = self.insert_channel("", &name, "", "D", "", "", a);
        for user_id in [first, second] {
            if self.is_channel_member(&channel.id, user_id) {
                continue;
            }
            self.channel_members.push(ChannelMember::new(
                &channel.id,
                user_id,
                false,
                channel.create_at,
            ));
        }
        channel
    }

    pub fn plugin(&self, id: &str) -> ApiResult<&Plugin> {
        self.plugins.iter().find(|p| p.id == id).ok_or_else(|| {
            AppError::not_found(
                "app.plugin.not_installed.app_error",
                "Plugin is not installed.",
            )
        })
    }

    /// `(plugin id, setting key)` of every setting an installed manifest marks `secret`.
    pub fn plugin_secret_settings(&self) -> config::SecretSettings {
        let mut out = vec![];
        for plugin in &self.plugins {
            let settings = plugin
                .manifest
                .pointer("/settings_schema/settings")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for s in settings {
                if s.get("secret").and_then(Value::as_bool) == Some(true)
                    && let Some(key) = s.get("key").and_then(Value::as_str)
                {
                    out.push((plugin.id.clone(), key.to_lowercase()));
                }
            }
        }
        out
    }
}

/// Transport a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Transport {
    /// The TCP listener (session auth).
    Tcp,
    /// The local-mode unix socket (no auth, local routes only).
    Socket,
}

/// One request as the double saw it, in arrival-completion order.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string, e.g. `/api/v4/plugins/jenkins/enable`.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub transport: Transport,
}

/// State shared by both listeners and the test-facing handle.
#[derive(Debug)]
pub struct Shared {
    world: Mutex<World>,
    pub admin_token: String,
    pub ready: AtomicBool,
    /// Mutating requests seen so far (module docs of `routes::gate`).
    pub mutations: AtomicU64,
    /// The mutation number that must fail; 0 = none pending.
    pub fail_at: AtomicU64,
    pub deliveries: AtomicU64,
    pub log: Mutex<Vec<RecordedRequest>>,
}

impl Shared {
    pub fn new(overrides: &Value) -> Shared {
        let (world, admin_token) = World::new(overrides);
        Shared {
            world: Mutex::new(world),
            admin_token,
            ready: AtomicBool::new(true),
            mutations: AtomicU64::new(0),
            fail_at: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            log: Mutex::new(vec![]),
        }
    }

    /// Locks the world; a handler that panicked mid-update must not wedge every later test request.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn record(&self, request: RecordedRequest) {
        self.log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
