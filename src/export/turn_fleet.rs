//! `cityd export turn-fleet --servers N`: coturn configurations for N TURN servers sharing the
//! city's static auth secret and peer policy (each rendered by the one coturn renderer), and the
//! ICE server list that names them all, as Calls and rtcd take it.

use thiserror::Error;

use std::path::Path;

use super::{ExportFile, Exported};
use crate::city::City;
use crate::exit::{BAD_INPUT, ExitCoded};
use crate::render::{Inputs, coturn, mattermost_env};
use crate::secrets::Secret;
use crate::secrets::Vault;

/// Largest fleet the command writes (a typo guard, not a limit of coturn).
pub const MAX_SERVERS: usize = 64;

#[derive(Debug, Error)]
pub enum FleetError {
    #[error("--servers must be between 1 and {MAX_SERVERS}")]
    Count,
    #[error(
        "the city lists {listed} TURN server(s) in turn.servers but --servers asks for {asked}; \
         give --servers {listed}, or edit turn.servers"
    )]
    Mismatch { listed: usize, asked: usize },
}

impl ExitCoded for FleetError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// The fleet's servers: the city's `turn.servers` when it lists them, else `turn<i>.<domain>`.
pub fn servers(city: &City, count: Option<usize>) -> Result<Vec<String>, FleetError> {
    let listed = city.turn.servers.len();
    let count = count.unwrap_or(listed);
    if count == 0 || count > MAX_SERVERS {
        return Err(FleetError::Count);
    }
    if listed > 0 {
        if listed != count {
            return Err(FleetError::Mismatch {
                listed,
                asked: count,
            });
        }
        return Ok(city.turn.servers.clone());
    }
    Ok((1..=count)
        .map(|i| format!("turn{i}.{}", city.domain))
        .collect())
}

/// The city as the fleet sees it: its TURN servers are the fleet's.
fn fleet_city(city: &City, servers: &[String]) -> City {
    let mut fleet = city.clone();
    fleet.turn.servers = servers.to_vec();
    fleet
}

/// One configuration per server (`turnserver-<i>.conf`, holding the secret) and `ice-servers.json`.
pub fn files(inputs: &Inputs, servers: &[String], secret: &Secret) -> Vec<ExportFile> {
    let city = fleet_city(inputs.city, servers);
    let fleet_inputs = Inputs {
        city: &city,
        lan: inputs.lan,
        origin: inputs.origin,
    };
    let endpoints = city.turn.endpoints(inputs.lan);
    let mut out = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        // A server named with its own port listens there; the rest of the city stays as it is.
        let mut own = city.clone();
        if let Some(port) = endpoint.rsplit(':').next().and_then(|p| p.parse().ok()) {
            own.turn.port = port;
        }
        let own_inputs = Inputs {
            city: &own,
            ..fleet_inputs
        };
        let text = format!(
            "# TURN server {} of {} ({endpoint}); every server of the fleet shares the static auth secret.\n{}",
            i + 1,
            endpoints.len(),
            coturn::render(&own_inputs, coturn::SecretSource::Inline(secret))
        );
        out.push(ExportFile::secret(
            format!("turnserver-{}.conf", i + 1),
            text,
        ));
    }
    let ice: serde_json::Value =
        serde_json::from_str(&mattermost_env::ice_servers_json(&fleet_inputs))
            .expect("the renderer writes JSON");
    let mut ice_text = serde_json::to_string_pretty(&ice).expect("JSON serializes");
    ice_text.push('\n');
    out.push(ExportFile::plain("ice-servers.json", ice_text));
    out
}

/// `cityd export turn-fleet`: the fleet's configurations and ICE list, written into `dir`.
pub fn export(
    inputs: &Inputs,
    vault: &Vault,
    count: Option<usize>,
    dir: &Path,
    dry_run: bool,
) -> anyhow::Result<(Vec<String>, Exported)> {
    let servers = servers(inputs.city, count)?;
    let secret = crate::turn::secret::from_vault(vault)?;
    let files = files(inputs, &servers, &secret);
    Ok((servers, Exported::write(dir, &files, dry_run)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DefaultCity;

    #[test]
    fn n_servers_share_the_secret_and_the_ice_list_names_them_all() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let secret = Secret::new("f".repeat(64));
        let servers = servers(inputs.city, Some(3)).unwrap();
        assert_eq!(
            servers,
            ["turn1.cicd.local", "turn2.cicd.local", "turn3.cicd.local"]
        );
        let files = files(&inputs, &servers, &secret);
        assert_eq!(files.len(), 4);
        for (i, f) in files[..3].iter().enumerate() {
            assert!(f.secret);
            assert_eq!(f.name, format!("turnserver-{}.conf", i + 1));
            let line = format!("static-auth-secret={}", secret.expose());
            assert!(f.text.lines().any(|l| l == line));
            assert!(
                f.text
                    .lines()
                    .any(|l| l == "denied-peer-ip=10.0.0.0-10.255.255.255")
            );
            assert!(f.text.lines().any(|l| l == "allowed-peer-ip=192.168.1.20"));
        }
        let ice: serde_json::Value = serde_json::from_str(&files[3].text).unwrap();
        let urls = ice[0]["urls"].as_array().unwrap();
        assert_eq!(urls.len(), 6);
        assert_eq!(urls[4], "turn:turn3.cicd.local:3478?transport=udp");
        assert!(!files[3].secret && !files[3].text.contains(secret.expose()));
    }

    #[test]
    fn a_listed_fleet_keeps_its_ports_and_a_mismatch_is_refused() {
        let mut city = City::default_city();
        city.turn.servers = vec!["10.0.0.1".into(), "10.0.0.2:3479".into()];
        assert!(matches!(
            servers(&city, Some(3)),
            Err(FleetError::Mismatch {
                listed: 2,
                asked: 3
            })
        ));
        let listed = servers(&city, None).unwrap();
        let lan = [std::net::IpAddr::from([192, 168, 1, 20])];
        let inputs = Inputs {
            city: &city,
            lan: &lan,
            origin: "t",
        };
        let files = files(&inputs, &listed, &Secret::new("x".repeat(64)));
        assert!(files[0].text.lines().any(|l| l == "listening-port=3478"));
        assert!(files[1].text.lines().any(|l| l == "listening-port=3479"));
        assert!(matches!(
            servers(&City::default_city(), None),
            Err(FleetError::Count)
        ));
    }
}
