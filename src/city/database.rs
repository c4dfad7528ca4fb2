//! `[database]`: where Mattermost's PostgreSQL tenant lives, as seen from the Mattermost container.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::rules::{Problems, is_dns_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    /// Connect with TLS and verify the server against the city CA (`sslmode=verify-full`).
    pub tls: bool,
}

impl Database {
    pub(super) fn check(&self, out: &mut Problems) {
        if !is_dns_name(&self.host) && self.host.parse::<IpAddr>().is_err() {
            out.bad(
                "database.host",
                &self.host,
                "must be a hostname or an IP address",
            );
        }
        for (field, value) in [("database.name", &self.name), ("database.user", &self.user)] {
            let identifier = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !identifier {
                out.bad(
                    field,
                    value,
                    "must be a PostgreSQL identifier of a-z, 0-9 and '_'",
                );
            }
        }
    }
}
