//! Mattermost REST v4 DTOs: exactly the fields cityd reads or writes (snake_case JSON). Unknown
//! fields are ignored so newer servers stay compatible; missing optional fields default.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::secrets::Secret;

/// Open (public) team or channel.
pub const OPEN: &str = "O";

#[derive(Debug, Clone, Deserialize)]
pub struct Ping {
    #[serde(default)]
    pub status: String,
}

/// The ping's server status (`cityd status`), plus what the client adds: the build from
/// `X-Version-ID` and how long the answer took.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServerStatus {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub database_status: String,
    #[serde(default)]
    pub filestore_status: String,
    #[serde(skip)]
    pub version: String,
    #[serde(skip)]
    pub millis: f64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusOk {
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub delete_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewTeam<'a> {
    pub name: &'a str,
    pub display_name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamPatch<'a> {
    pub display_name: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TeamMember {
    pub team_id: String,
    pub user_id: String,
    #[serde(default)]
    pub delete_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewTeamMember<'a> {
    pub team_id: &'a str,
    pub user_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Channel {
    pub id: String,
    #[serde(default)]
    pub team_id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub purpose: String,
    #[serde(default)]
    pub delete_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewChannel<'a> {
    pub team_id: &'a str,
    pub name: &'a str,
    pub display_name: &'a str,
    pub purpose: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChannelPatch<'a> {
    pub display_name: &'a str,
    pub purpose: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ChannelMember {
    pub channel_id: String,
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewChannelMember<'a> {
    pub user_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub roles: String,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub delete_at: i64,
}

/// A new user; the password is random and dropped right after the request (bots never log in).
#[derive(Serialize)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub nickname: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Bot {
    pub user_id: String,
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub owner_id: String,
    #[serde(default)]
    pub delete_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewBot<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct BotPatch<'a> {
    pub display_name: &'a str,
    pub description: &'a str,
}

/// A token as listed by GET /users/{id}/tokens (never carries the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UserAccessToken {
    pub id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

/// The answer to POST /users/{id}/tokens: the only time the token value is visible.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    pub id: String,
    pub user_id: String,
    pub token: Secret,
}

#[derive(Deserialize)]
pub(crate) struct RawCreatedToken {
    pub id: String,
    #[serde(default)]
    pub user_id: String,
    pub token: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewToken<'a> {
    pub description: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct RevokeToken<'a> {
    pub token_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingWebhook {
    pub id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub icon_url: String,
    #[serde(default)]
    pub channel_locked: bool,
    #[serde(default)]
    pub delete_at: i64,
    #[serde(default)]
    pub create_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NewIncomingWebhook<'a> {
    pub channel_id: &'a str,
    pub user_id: &'a str,
    pub display_name: &'a str,
    pub description: &'a str,
    pub channel_locked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PluginManifest {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version: String,
}

/// GET /plugins: manifests of running and installed-but-not-running plugins.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Plugins {
    #[serde(default)]
    pub active: Vec<PluginManifest>,
    #[serde(default)]
    pub inactive: Vec<PluginManifest>,
}

impl Plugins {
    pub fn find(&self, id: &str) -> Option<(&PluginManifest, bool)> {
        self.active
            .iter()
            .find(|m| m.id == id)
            .map(|m| (m, true))
            .or_else(|| {
                self.inactive
                    .iter()
                    .find(|m| m.id == id)
                    .map(|m| (m, false))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Post {
    pub id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub create_at: i64,
    /// Free-form properties; `null` and absent both read as `None`.
    #[serde(default)]
    pub props: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Post {
    /// The string property `key`, if the post has one.
    pub fn prop_str(&self, key: &str) -> Option<&str> {
        self.props.as_ref()?.get(key)?.as_str()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PostList {
    #[serde(default)]
    pub order: Vec<String>,
    #[serde(default)]
    pub posts: HashMap<String, Post>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_decode_with_missing_optional_fields() {
        let h: IncomingWebhook =
            serde_json::from_str(r#"{"id":"h1","channel_id":"c1","extra":1}"#).unwrap();
        assert_eq!(h.id, "h1");
        assert!(!h.channel_locked);
        assert_eq!(h.user_id, "");
    }

    #[test]
    fn post_props_read_as_strings_whether_present_null_or_absent() {
        let list: PostList = serde_json::from_str(
            r#"{"order":["a","b","c","d"],"posts":{
                "a":{"id":"a","create_at":5,"props":{"cityd_relay_key":"k1","n":3}},
                "b":{"id":"b","props":null},
                "c":{"id":"c"},
                "d":{"id":"d","props":{}}}}"#,
        )
        .unwrap();
        let a = &list.posts["a"];
        assert_eq!(a.create_at, 5);
        assert_eq!(a.prop_str("cityd_relay_key"), Some("k1"));
        assert_eq!(a.prop_str("n"), None, "a number is not a string");
        for id in ["b", "c", "d"] {
            assert_eq!(list.posts[id].prop_str("cityd_relay_key"), None, "{id}");
        }
    }

    #[test]
    fn plugin_lists_find_active_and_inactive() {
        let p: Plugins = serde_json::from_str(
            r#"{"active":[{"id":"a","version":"1"}],"inactive":[{"id":"b","version":"2"}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.find("a").map(|(m, on)| (m.version.as_str(), on)),
            Some(("1", true))
        );
        assert_eq!(p.find("b").map(|(_, on)| on), Some(false));
        assert!(p.find("c").is_none());
    }
}
