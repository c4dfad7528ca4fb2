//! Rendering: pure renderers (the city plus its secrets and LAN addresses in, file contents out:
//! `coturn`, `mattermost_env`, `container`) and `files`, the one place that reads the vault for them
//! and writes the rendered files under the state directory.

pub mod container;
pub mod coturn;
pub mod files;
pub mod mattermost_env;

use std::net::IpAddr;

use crate::city::City;

/// Everything a renderer may read. Secrets are borrowed so nothing copies them around.
pub struct Inputs<'a> {
    pub city: &'a City,
    /// The resolved LAN addresses, in the order the city gave them.
    pub lan: &'a [IpAddr],
    /// Where the description came from, named in the header of rendered files.
    pub origin: &'a str,
}

/// `host` for use in a URL: IPv6 in brackets.
pub fn url_host(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The renderers' test input: the default city on one LAN address (192.168.1.20).
#[cfg(test)]
pub(crate) struct DefaultCity {
    city: City,
    lan: [IpAddr; 1],
}

#[cfg(test)]
impl DefaultCity {
    pub fn new() -> Self {
        Self {
            city: City::default_city(),
            lan: [IpAddr::from([192, 168, 1, 20])],
        }
    }

    pub fn inputs(&self) -> Inputs<'_> {
        Inputs {
            city: &self.city,
            lan: &self.lan,
            origin: "test",
        }
    }
}
