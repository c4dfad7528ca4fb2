//! `[lan]`: which addresses the city serves phones and browsers on (resolved later by `crate::lan`).

use serde::{Deserialize, Serialize};

use super::rules::Problems;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    /// `auto`, interface names, or literal addresses. Several are allowed.
    pub addresses: Vec<String>,
    /// Accept the documentation and benchmarking ranges (192.0.2.0/24, 198.51.100.0/24,
    /// 203.0.113.0/24, 198.18.0.0/15, 2001:db8::/32) as LAN addresses: only labs and tests use them.
    pub allow_test_ranges: bool,
}

impl Lan {
    /// The rule `crate::lan` applies to every address, as this city sets it.
    pub fn policy(&self) -> crate::lan::Policy {
        crate::lan::Policy {
            allow_test_ranges: self.allow_test_ranges,
        }
    }
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
            } else if let Ok(ip) = a.parse::<std::net::IpAddr>()
                && let Some(why) = crate::lan::refusal(ip, self.policy())
            {
                // The same rule `auto` and interface names pass: each address becomes an
                // allowed-peer-ip of coturn, which overrides its deny-list (issue 12).
                out.bad(
                    format!("lan.addresses[{i}]"),
                    a,
                    format!("is {why}; a LAN address must be one phones reach this host on"),
                );
            }
        }
    }
}
