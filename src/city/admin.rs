//! `[admin]`: the human system admin `cityd wire` adds to the team and its channels.

use serde::{Deserialize, Serialize};

use super::rules::{Problems, username_rule};

/// The human admin account (created by the operator, e.g. `mmctl user create --system-admin`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub username: String,
}

impl Admin {
    pub(super) fn check(&self, out: &mut Problems) {
        out.rule(
            "admin.username",
            &self.username,
            username_rule(&self.username),
        );
    }
}
