//! The desired Docker state of a city, computed without side effects from the city, its LAN
//! addresses, the rendered files and the PKI: both container specs and the host files they mount.
//! Shared by `cityd up` (to converge) and `cityd doctor` (to compare).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::DockerError;
use super::host::{self, Prepared};
use super::spec::{self, ContainerSpec, Env, HostPaths, Names};
use crate::city::City;
use crate::envfile;
use crate::state::StateDir;

pub struct Desired {
    pub names: Names,
    pub paths: HostPaths,
    pub coturn: ContainerSpec,
    pub coturn_files: Prepared,
    pub mattermost: ContainerSpec,
    pub mattermost_files: Prepared,
}

/// What the desired state is computed from. Image IDs are `None` when the image is not on the host.
#[derive(Clone)]
pub struct Sources<'a> {
    pub city: &'a City,
    pub lan: &'a [IpAddr],
    pub state: &'a StateDir,
    /// `<state>/render/mattermost.env` as rendered now.
    pub mattermost_env: &'a str,
    /// `<state>/render/turnserver.conf` as rendered now.
    pub coturn_config: &'a str,
    pub coturn_image_id: Option<String>,
    pub mattermost_image_id: Option<String>,
}

fn with_image(
    mut inputs: BTreeMap<String, String>,
    id: Option<String>,
) -> BTreeMap<String, String> {
    inputs.insert("image".into(), id.unwrap_or_else(|| "absent".into()));
    inputs
}

pub fn desired(s: &Sources) -> Result<Desired, DockerError> {
    let names = Names::new(s.city);
    let paths = HostPaths::new(s.state);
    let entries = envfile::parse_docker(s.mattermost_env).map_err(|e| DockerError::HostFile {
        path: s.state.rendered_mattermost_env(),
        container: "mattermost",
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    let env = Env(entries
        .into_iter()
        .map(|e| format!("{}={}", e.key, e.value))
        .collect());

    let coturn_files = host::coturn(&paths, s.coturn_config);
    let coturn = spec::coturn(
        s.city,
        &names,
        &paths,
        with_image(coturn_files.digests(), s.coturn_image_id.clone()),
    );
    let mattermost_files = host::mattermost(&paths, &s.state.pki_dir())?;
    let mattermost = spec::mattermost(
        s.city,
        s.lan,
        &names,
        &paths,
        env,
        with_image(mattermost_files.digests(), s.mattermost_image_id.clone()),
    );
    Ok(Desired {
        names,
        paths,
        coturn,
        coturn_files,
        mattermost,
        mattermost_files,
    })
}
