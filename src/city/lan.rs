//! `[lan]`: which addresses the city serves phones and browsers on (resolved later by `crate::lan`).

use serde::{Deserialize, Serialize};

use super::rules::Problems;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// `auto`, interface names, or literal addresses. Several are allowed.
    pub addresses: Vec<String>,
}

impl Lan {
    pub(super) fn check(&self, out: &mut Problems) {
        if self.addresses.is_empty() {
            out.bad(
                "lan.addresses",
                "[]",
                "needs at least one entry: \"auto\", an interface name or an IP address",
            );
        }
        for (i, a) in self.addresses.iter().enumerate() {
            if a.trim().is_empty() || a.contains(char::is_whitespace) {
                out.bad(
                    format!("lan.addresses[{i}]"),
                    format!("{a:?}"),
                    "must be \"auto\", an interface name or an IP address",
                );
            }
        }
    }
}
