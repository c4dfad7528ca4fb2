//! The objects the double stores, serialised exactly in the field names and shapes of the
//! Mattermost v4 API (Team, Channel, User, Bot, UserAccessToken, IncomingWebhook, Post, members).

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub display_name: String,
    pub name: String,
    pub description: String,
    pub email: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub company_name: String,
    pub allowed_domains: String,
    pub invite_id: String,
    pub allow_open_invite: bool,
    pub last_team_icon_update: i64,
    pub scheme_id: String,
    pub group_constrained: Option<bool>,
    pub policy_id: Option<String>,
    pub cloud_limits_archived: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Channel {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub team_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub display_name: String,
    pub name: String,
    pub header: String,
    pub purpose: String,
    pub last_post_at: i64,
    pub total_msg_count: i64,
    pub extra_update_at: i64,
    pub creator_id: String,
    pub scheme_id: Option<String>,
    pub props: Option<Value>,
    pub group_constrained: Option<bool>,
    pub shared: Option<bool>,
    pub total_msg_count_root: i64,
    pub policy_id: Option<String>,
    pub last_root_post_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub username: String,
    pub auth_data: String,
    pub auth_service: String,
    pub email: String,
    pub email_verified: bool,
    pub nickname: String,
    pub first_name: String,
    pub last_name: String,
    pub position: String,
    pub roles: String,
    pub notify_props: Value,
    pub last_password_update: i64,
    pub locale: String,
    pub timezone: Value,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_bot: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bot_description: String,
    pub disable_welcome_email: bool,
    /// Kept only so the double can tell a password was given; never serialised.
    #[serde(skip)]
    pub has_password: bool,
}

impl User {
    pub fn is_system_admin(&self) -> bool {
        self.roles.split_whitespace().any(|r| r == "system_admin")
    }

    pub fn default_notify_props(username: &str) -> Value {
        json!({
            "channel": "true", "comments": "never", "desktop": "mention", "desktop_sound": "true",
            "email": "true", "first_name": "false", "mention_keys": "", "push": "mention",
            "push_status": "online", "auto_responder_active": "false", "auto_responder_message": "",
            "desktop_notification_sound": "Bing", "username": username,
        })
    }

    pub fn default_timezone() -> Value {
        json!({"automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"})
    }
}

/// `model.Bot`; `display_name` and `description` are `omitempty` on the real server.
#[derive(Debug, Clone, Serialize)]
pub struct Bot {
    pub user_id: String,
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub owner_id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
}

/// `model.UserAccessToken`; `token` is only present in the create response.
#[derive(Debug, Clone, Serialize)]
pub struct AccessToken {
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
    pub user_id: String,
    pub description: String,
    pub is_active: bool,
}

impl AccessToken {
    /// The listing form: the secret is never shown again after creation.
    pub fn sanitized(&self) -> AccessToken {
        AccessToken {
            token: String::new(),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamMember {
    pub team_id: String,
    pub user_id: String,
    pub roles: String,
    pub delete_at: i64,
    pub scheme_guest: bool,
    pub scheme_user: bool,
    pub scheme_admin: bool,
    pub explicit_roles: String,
    pub create_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelMember {
    pub channel_id: String,
    pub user_id: String,
    pub roles: String,
    pub last_viewed_at: i64,
    pub msg_count: i64,
    pub mention_count: i64,
    pub mention_count_root: i64,
    pub urgent_mention_count: i64,
    pub msg_count_root: i64,
    pub notify_props: Value,
    pub last_update_at: i64,
    pub scheme_guest: bool,
    pub scheme_user: bool,
    pub scheme_admin: bool,
    pub explicit_roles: String,
}

impl ChannelMember {
    pub fn new(channel_id: &str, user_id: &str, admin: bool, now: i64) -> ChannelMember {
        ChannelMember {
            channel_id: channel_id.to_owned(),
            user_id: user_id.to_owned(),
            roles: if admin {
                "channel_user channel_admin".into()
            } else {
                "channel_user".into()
            },
            last_viewed_at: 0,
            msg_count: 0,
            mention_count: 0,
            mention_count_root: 0,
            urgent_mention_count: 0,
            msg_count_root: 0,
            notify_props: Self::default_notify_props(),
            last_update_at: now,
            scheme_guest: false,
            scheme_user: true,
            scheme_admin: admin,
            explicit_roles: String::new(),
        }
    }

    pub fn default_notify_props() -> Value {
        json!({"desktop": "default", "email": "default", "ignore_channel_mentions": "default",
               "mark_unread": "all", "push": "default"})
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IncomingWebhook {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub user_id: String,
    pub channel_id: String,
    pub team_id: String,
    pub display_name: String,
    pub description: String,
    pub username: String,
    pub icon_url: String,
    pub channel_locked: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Post {
    pub id: String,
    pub create_at: i64,
    pub update_at: i64,
    pub edit_at: i64,
    pub delete_at: i64,
    pub is_pinned: bool,
    pub user_id: String,
    pub channel_id: String,
    pub root_id: String,
    pub original_id: String,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub props: serde_json::Map<String, Value>,
    pub hashtags: String,
    pub pending_post_id: String,
    pub reply_count: i64,
    pub last_reply_at: i64,
    pub participants: Option<Value>,
    pub metadata: Value,
}

/// Mattermost's plugin states (`model/plugin_status.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum PluginState {
    NotRunning = 0,
    Starting = 1,
    Running = 2,
    FailedToStart = 3,
    FailedToStayRunning = 4,
    Stopping = 5,
}

impl PluginState {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// An installed plugin: the manifest from its bundle and what happened at its last activation.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub id: String,
    pub manifest: Value,
    pub state: PluginState,
    /// Why the last activation failed (empty when running or never started).
    pub error: String,
}

impl Plugin {
    pub fn version(&self) -> String {
        self.manifest
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn name(&self) -> String {
        self.manifest
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn description(&self) -> String {
        self.manifest
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    }

    pub fn status_json(&self) -> Value {
        json!({
            "plugin_id": self.id,
            "cluster_id": "",
            "plugin_path": format!("./plugins/{}", self.id),
            "state": self.state.code(),
            "error": self.error,
            "name": self.name(),
            "description": self.description(),
            "version": self.version(),
        })
    }
}
