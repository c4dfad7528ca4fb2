//! `[turn]`: coturn's listening port, relay port range, realm, credential lifetime, and the TURN
//! servers Calls hands to clients (this host's coturn by default, or a fleet sharing the secret).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::rules::{Problems, is_dns_name};

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
    /// TURN servers sharing the static auth secret, `HOST` or `HOST:PORT` (port default `port`).
    /// Empty: this host's coturn on every LAN address. Left out of `config show` when empty, so
    /// a single-host city reads as before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
}

/// One `turn.servers` entry split into host and port; `None` when it is neither `HOST`,
/// `HOST:PORT`, an IP address nor `[IPv6]:PORT`.
fn split_server(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip.to_string(), default_port));
    }
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return (addr.port() != 0).then(|| (addr.ip().to_string(), addr.port()));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (text, default_port),
    };
    (is_dns_name(host) || host.parse::<std::net::Ipv4Addr>().is_ok())
        .then(|| (host.to_string(), port))
}

impl Turn {
    /// Where clients reach TURN, as `host:port` with IPv6 in brackets: the `servers` when given,
    /// else this host's coturn on every LAN address.
    pub fn endpoints(&self, lan: &[IpAddr]) -> Vec<String> {
        let pairs: Vec<(String, u16)> = if self.servers.is_empty() {
            lan.iter().map(|ip| (ip.to_string(), self.port)).collect()
        } else {
            self.servers
                .iter()
                .filter_map(|s| split_server(s, self.port))
                .collect()
        };
        pairs
            .into_iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect()
    }

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
        for (i, server) in self.servers.iter().enumerate() {
            if split_server(server, self.port).is_none() {
                out.bad(
                    format!("turn.servers[{i}]"),
                    server,
                    "must be HOST, HOST:PORT, an IP address or [IPv6]:PORT (e.g. turn1.cicd.local:3478)",
                );
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(servers: &[&str]) -> Turn {
        Turn {
            port: 3478,
            relay_min: 49152,
            relay_max: 65535,
            realm: None,
            credential_ttl_minutes: 240,
            servers: servers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn endpoints_are_the_lan_addresses_unless_servers_are_named() {
        let lan: Vec<IpAddr> = vec!["192.168.1.20".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(
            turn(&[]).endpoints(&lan),
            ["192.168.1.20:3478", "[fd00::5]:3478"]
        );
        assert_eq!(
            turn(&[
                "turn1.cicd.local",
                "turn2.cicd.local:5349",
                "10.0.0.7",
                "[fd00::7]:3479",
                "fd00::8"
            ])
            .endpoints(&lan),
            [
                "turn1.cicd.local:3478",
                "turn2.cicd.local:5349",
                "10.0.0.7:3478",
                "[fd00::7]:3479",
                "[fd00::8]:3478"
            ]
        );
    }

    #[test]
    fn a_bad_server_names_its_index() {
        for bad in ["", "turn 1", "host:0", "host:port", "http://turn1"] {
            let mut out = Problems::default();
            turn(&["ok.example", bad]).check(&mut out);
            let problems = out.into_vec();
            assert!(
                problems.iter().any(|p| p.field == "turn.servers[1]"),
                "{bad:?}: {problems:?}"
            );
        }
    }
}
