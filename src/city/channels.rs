//! `[[channels]]`: the team's channels (`#builds`, `#code-reviews`, `#alerts`, ...).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rules::Problems;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub purpose: String,
}

fn channel_name_rule(name: &str) -> Option<&'static str> {
    let len = name.len();
    if !(1..=64).contains(&len) {
        return Some("Mattermost channel names are 1-64 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Some("Mattermost channel names use only a-z, 0-9, '-' and '_'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("Mattermost channel names start with a letter or digit");
    }
    if len > 1 && !name.ends_with(|c: char| c.is_ascii_alphanumeric()) && !name.ends_with("__") {
        return Some("Mattermost channel names end with a letter or digit");
    }
    if name.len() == 26 && name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Some("a 26-character alphanumeric name looks like a Mattermost id and is rejected");
    }
    None
}

/// The names other sections may refer to.
pub(super) fn names(channels: &[Channel]) -> BTreeSet<&str> {
    channels.iter().map(|c| c.name.as_str()).collect()
}

pub(super) fn check(channels: &[Channel], out: &mut Problems) {
    let mut names = BTreeSet::new();
    for (i, ch) in channels.iter().enumerate() {
        out.rule(
            format!("channels[{i}].name"),
            &ch.name,
            channel_name_rule(&ch.name),
        );
        out.length(
            format!("channels[{i}].display_name"),
            &ch.display_name,
            64,
            None,
        );
        out.at_most(format!("channels[{i}].purpose"), &ch.purpose, 250);
        if !names.insert(ch.name.as_str()) {
            out.bad(
                format!("channels[{i}].name"),
                &ch.name,
                "appears twice; channel names must be unique",
            );
        }
    }
}
