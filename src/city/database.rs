//! `[database]`: where Mattermost's PostgreSQL tenant lives, as seen from the Mattermost container.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::rules::{ImagePin, Problems, image_pin, is_dns_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    /// `cityd up` runs the server itself (a PostgreSQL 17 container with TLS from the city CA).
    pub managed: bool,
    /// The managed server's pinned image.
    pub image: String,
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    /// Connect with TLS and verify the server against the city CA (`sslmode=verify-full`).
    pub tls: bool,
}

impl Database {
    /// Whether Mattermost's DSN verifies the server against the city CA: always for a managed
    /// server, as `tls` says for another one.
    pub fn uses_tls(&self) -> bool {
        self.managed || self.tls
    }

    pub(super) fn check(&self, out: &mut Problems) {
        if self.managed {
            if !is_dns_name(&self.host) {
                out.bad(
                    "database.host",
                    &self.host,
                    "with managed = true it is the managed container's name on the city network, so it must be a hostname (or set managed = false for an existing server)",
                );
            }
            match image_pin(&self.image) {
                ImagePin::Tag(tag) if tag != "latest" => {}
                ImagePin::Digest => {}
                _ => out.bad(
                    "database.image",
                    &self.image,
                    "must carry a pinned version tag, e.g. docker.io/library/postgres:17.6",
                ),
            }
        }
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

/// `managed` defaults to true only while the city names no server of its own: a file that sets
/// `database.host` or `database.port` but not `database.managed` means an existing server.
pub(super) fn unmanaged_when_a_server_is_named(
    table: &mut toml::Table,
    from_file: &std::collections::BTreeSet<String>,
) {
    let names_a_server = ["database.host", "database.port"]
        .iter()
        .any(|k| from_file.contains(*k));
    if names_a_server
        && !from_file.contains("database.managed")
        && let Some(toml::Value::Table(db)) = table.get_mut("database")
    {
        db.insert("managed".into(), toml::Value::Boolean(false));
    }
}

#[cfg(test)]
mod tests {
    use crate::city::City;

    #[test]
    fn managed_is_the_default_until_a_city_names_its_own_server() {
        assert!(City::default_city().database.managed);
        let own = City::from_toml("[database]\nhost = \"db.lan\"\n", "t.toml").unwrap();
        assert!(!own.database.managed && !own.database.uses_tls());
        let port = City::from_toml("[database]\nport = 6432\n", "t.toml").unwrap();
        assert!(!port.database.managed);
        let said =
            City::from_toml("[database]\nhost = \"pg\"\nmanaged = true\n", "t.toml").unwrap();
        assert!(said.database.managed && said.database.uses_tls());
        let other = City::from_toml("[database]\nname = \"mm\"\n", "t.toml").unwrap();
        assert!(other.database.managed);
    }

    #[test]
    fn a_managed_server_needs_a_hostname_and_a_pinned_image() {
        let err = City::from_toml(
            "[database]\nmanaged = true\nhost = \"fd00::5\"\nimage = \"postgres\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("database.host") && err.contains("database.image"),
            "{err}"
        );
    }
}
