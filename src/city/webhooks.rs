//! `[[webhooks]]`: the incoming webhooks `cityd wire` creates, one per channel, each owned by a bot.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rules::Problems;

/// An incoming webhook: identified by channel + owning bot + display name; its URL goes to the
/// vault as `webhook-<channel>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingHook {
    pub channel: String,
    pub bot: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
}

pub(super) fn check(
    hooks: &[IncomingHook],
    bots: &BTreeSet<&str>,
    channels: &BTreeSet<&str>,
    out: &mut Problems,
) {
    let mut hooked = BTreeSet::new();
    for (i, h) in hooks.iter().enumerate() {
        out.channel_ref(format!("webhooks[{i}].channel"), &h.channel, channels);
        if !bots.contains(h.bot.as_str()) {
            out.bad(
                format!("webhooks[{i}].bot"),
                &h.bot,
                "names no bot of the city; add it under [[bots]] (webhooks are owned by bots)",
            );
        }
        if !hooked.insert(h.channel.as_str()) {
            out.bad(
                format!("webhooks[{i}].channel"),
                &h.channel,
                "has a second webhook; one per channel (its URL is stored as webhook-<channel>)",
            );
        }
        out.length(
            format!("webhooks[{i}].display_name"),
            &h.display_name,
            64,
            Some("it identifies the hook together with channel and bot"),
        );
        out.at_most(format!("webhooks[{i}].description"), &h.description, 500);
    }
}
