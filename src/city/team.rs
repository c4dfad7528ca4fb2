//! `[team]`: the Mattermost team the city's channels, bots and admin belong to.

use serde::{Deserialize, Serialize};

use super::rules::Problems;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub name: String,
    pub display_name: String,
}

/// Mattermost reserves these team-name prefixes and names (model/team.go).
const RESERVED_TEAM_NAMES: &[&str] = &[
    "admin",
    "api",
    "channel",
    "claim",
    "error",
    "files",
    "help",
    "landing",
    "login",
    "mfa",
    "oauth",
    "plug",
    "plugins",
    "post",
    "signup",
    "boards",
    "playbooks",
];

fn team_name_rule(name: &str) -> Option<&'static str> {
    let len = name.len();
    if !(2..=64).contains(&len) {
        return Some("Mattermost team names are 2-64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Some("Mattermost team names use only a-z, 0-9 and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Some("Mattermost team names start and end with a letter or digit");
    }
    if RESERVED_TEAM_NAMES.iter().any(|r| name.starts_with(r)) {
        return Some("Mattermost reserves this team name prefix (admin, api, login, plugins, ...)");
    }
    None
}

impl Team {
    pub(super) fn check(&self, out: &mut Problems) {
        out.rule("team.name", &self.name, team_name_rule(&self.name));
        out.length("team.display_name", &self.display_name, 64, None);
    }
}
