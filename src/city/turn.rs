//! `[turn]`: coturn's listening port, relay port range, realm and credential lifetime.

use serde::{Deserialize, Serialize};

use super::rules::Problems;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    pub port: u16,
    pub relay_min: u16,
    pub relay_max: u16,
    /// Realm; defaults to the Mattermost hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// Lifetime of the credentials Calls hands to clients, in minutes.
    pub credential_ttl_minutes: u32,
}

impl Turn {
    /// The relay range, when it is not reversed.
    pub(super) fn relay_range(&self) -> Option<std::ops::RangeInclusive<u16>> {
        (self.relay_min <= self.relay_max).then_some(self.relay_min..=self.relay_max)
    }

    pub(super) fn check(&self, out: &mut Problems) {
        out.port("turn.port", self.port);
        if self.relay_min > self.relay_max {
            out.bad(
                "turn.relay_min",
                format!("{}-{}", self.relay_min, self.relay_max),
                "the relay range is reversed: relay_min must not exceed relay_max",
            );
        } else if self.relay_min < 1024 {
            out.bad(
                "turn.relay_min",
                self.relay_min.to_string(),
                "relay ports must be 1024 or above (RFC 8656 §7.2)",
            );
        }
        if self.credential_ttl_minutes == 0 || self.credential_ttl_minutes >= 10080 {
            out.bad(
                "turn.credential_ttl_minutes",
                self.credential_ttl_minutes.to_string(),
                "must be between 1 and 10079 (Calls caps credentials below one week)",
            );
        }
        if let Some(realm) = &self.realm
            && (realm.is_empty() || realm.contains(char::is_whitespace))
        {
            out.bad(
                "turn.realm",
                format!("{realm:?}"),
                "must be a non-empty name without spaces",
            );
        }
    }
}
