//! `[[bots]]`: the bot accounts `cityd wire` creates (a user converted to a bot, its token in the vault).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rules::{Problems, username_rule};

/// A bot account: a Mattermost user converted to a bot, member of the team and of `channel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotAccount {
    /// Username, e.g. `jenkins-bot` (not `gitlab`: the GitLab plugin creates that bot itself).
    pub name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// The channel the bot posts into (it is made a member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// The names other sections may refer to.
pub(super) fn names(bots: &[BotAccount]) -> BTreeSet<&str> {
    bots.iter().map(|b| b.name.as_str()).collect()
}

pub(super) fn check(
    bots: &[BotAccount],
    admin: &str,
    channels: &BTreeSet<&str>,
    out: &mut Problems,
) {
    let mut seen = BTreeSet::new();
    for (i, b) in bots.iter().enumerate() {
        let field = format!("bots[{i}].name");
        out.rule(field.clone(), &b.name, username_rule(&b.name));
        if b.name == admin {
            out.bad(
                field.clone(),
                &b.name,
                "is the admin's username; a bot needs its own",
            );
        }
        if !seen.insert(b.name.as_str()) {
            out.bad(field, &b.name, "appears twice; bot names must be unique");
        }
        out.length(format!("bots[{i}].display_name"), &b.display_name, 64, None);
        out.at_most(format!("bots[{i}].description"), &b.description, 1024);
        if let Some(ch) = &b.channel {
            out.channel_ref(format!("bots[{i}].channel"), ch, channels);
        }
    }
}
