//! Container specs as pure data: what the coturn and Mattermost containers of a city must look
//! like (image, network, ports, mounts, env, restart policy), their names, and the SHA-256 that
//! labels each container so `cityd up` can tell "same spec" from "changed" without guessing.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType,
    NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::city::City;
use crate::render::container;

/// Label holding the spec digest; `up` compares it, `doctor` reports it.
pub const LABEL_SPEC: &str = "org.cityd.spec";
/// Label naming the city's prefix (empty for the default names), so `down` never touches others.
pub const LABEL_CITY: &str = "org.cityd.city";
/// Label naming the container's role (`mattermost`, `coturn`, `postgres`).
pub const LABEL_ROLE: &str = "org.cityd.role";

/// Where coturn reads its configuration (the coturn/coturn image's documented path).
pub const COTURN_CONFIG: &str = "/etc/coturn/turnserver.conf";
/// coturn runs as nobody, the coturn/coturn image's user; its configuration copy is owned by it.
pub const COTURN_UID: u32 = 65534;
/// The Mattermost image runs as UID/GID 2000; its bind mounts must belong to it.
pub const MATTERMOST_UID: u32 = 2000;
/// The bundle every Go program in the distroless Mattermost image trusts for outgoing TLS.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const MATTERMOST_CONFIG_DIR: &str = "/mattermost/config";

/// The named volumes of Mattermost, with where they are mounted.
pub const VOLUMES: [(&str, &str); 4] = [
    ("mattermost-data", "/mattermost/data"),
    ("mattermost-logs", "/mattermost/logs"),
    ("mattermost-plugins", "/mattermost/plugins"),
    ("mattermost-client-plugins", "/mattermost/client/plugins"),
];

/// Docker object names of one city: the blog's names behind an optional prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
    network: String,
}

impl Names {
    pub fn new(city: &City) -> Self {
        Self {
            prefix: city.docker.prefix.clone(),
            network: city.docker.network.clone(),
        }
    }
    pub fn mattermost(&self) -> String {
        format!("{}mattermost", self.prefix)
    }
    pub fn coturn(&self) -> String {
        format!("{}coturn", self.prefix)
    }
    /// The managed PostgreSQL's container (`[database] managed = true`).
    pub fn postgres(&self) -> String {
        format!("{}postgres", self.prefix)
    }
    /// The managed PostgreSQL's data volume; `down` keeps it unless `--purge`.
    pub fn postgres_volume(&self) -> String {
        format!("{}postgres-data", self.prefix)
    }
    pub fn network(&self) -> String {
        format!("{}{}", self.prefix, self.network)
    }
    pub fn volume(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }
    pub fn volumes(&self) -> Vec<String> {
        VOLUMES.iter().map(|(v, _)| self.volume(v)).collect()
    }
    pub fn containers(&self) -> [String; 2] {
        [self.coturn(), self.mattermost()]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Coturn,
    Mattermost,
    Postgres,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coturn => "coturn",
            Role::Mattermost => "mattermost",
            Role::Postgres => "postgres",
        }
    }
}

/// A container's health check: a command that exists in the image, run in exec form (no shell:
/// the Mattermost image has none since 10.12), with its timing in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub command: Vec<String>,
    pub interval_s: u32,
    pub timeout_s: u32,
    pub retries: u32,
    /// Failures during this time after start do not count (a first migration can be slow).
    pub start_period_s: u32,
}

impl Health {
    fn config(&self) -> HealthConfig {
        let ns = |s: u32| i64::from(s) * 1_000_000_000;
        let mut test = vec!["CMD".to_string()];
        test.extend(self.command.iter().cloned());
        HealthConfig {
            test: Some(test),
            interval: Some(ns(self.interval_s)),
            timeout: Some(ns(self.timeout_s)),
            retries: Some(i64::from(self.retries)),
            start_period: Some(ns(self.start_period_s)),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network stack (coturn: relay ports and the client's real address).
    Host,
    /// A user-defined bridge network, by name.
    Bridge(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One published port: `host_ip:host_port -> container_port/protocol`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Publish {
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

impl Publish {
    /// The key Docker uses in `PortBindings`, e.g. `8065/tcp`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Volume,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountSpec {
    pub kind: MountKind,
    /// Host path (bind) or volume name.
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// The container's environment. It carries secrets, so `Debug` shows only the names.
#[derive(Clone, PartialEq, Eq, Serialize, Default)]
pub struct Env(pub Vec<String>);

impl Env {
    pub fn names(&self) -> Vec<&str> {
        self.0
            .iter()
            .map(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k))
            .collect()
    }
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// Everything that defines a container. Two equal specs have equal digests; anything that would
/// need a new container to take effect is in here, including digests of the files it mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub role: Role,
    pub image: String,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub cmd: Option<Vec<String>>,
    pub env: Env,
    pub network: Network,
    pub ports: Vec<Publish>,
    pub mounts: Vec<MountSpec>,
    pub restart: &'static str,
    /// Run Docker's init as PID 1: coturn ignores SIGTERM as PID 1, so `docker stop` would wait
    /// out its whole timeout before killing it.
    pub init: bool,
    /// SHA-256 of each mounted file and of the image, by name: new contents mean a new container
    /// (a file bind mount keeps showing the old inode after an atomic replace).
    pub inputs: BTreeMap<String, String>,
    pub health: Option<Health>,
    /// Extra names on its bridge network (the managed PostgreSQL answers to `[database] host`).
    pub aliases: Vec<String>,
}

impl ContainerSpec {
    /// Lowercase hex SHA-256 of the spec's canonical JSON.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).expect("a container spec always serialises");
        hex::encode(Sha256::digest(&json))
    }

    pub fn labels(&self, prefix: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SPEC.to_string(), self.digest()),
            (LABEL_CITY.to_string(), prefix.to_string()),
            (LABEL_ROLE.to_string(), self.role.as_str().to_string()),
        ])
    }

    /// The body of `POST /containers/create`.
    pub fn create_body(&self, prefix: &str) -> ContainerCreateBody {
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for p in &self.ports {
            bindings
                .entry(p.key())
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: Some(p.host_ip.to_string()),
                    // 0: the engine picks a free port (the managed PostgreSQL's loopback publish).
                    host_port: Some(if p.host_port == 0 {
                        String::new()
                    } else {
                        p.host_port.to_string()
                    }),
                });
        }
        let mut exposed: Vec<String> = self.ports.iter().map(Publish::key).collect();
        exposed.dedup();
        let mounts = self
            .mounts
            .iter()
            .map(|m| Mount {
                target: Some(m.target.clone()),
                source: Some(m.source.clone()),
                typ: Some(match m.kind {
                    MountKind::Bind => MountType::BIND,
                    MountKind::Volume => MountType::VOLUME,
                }),
                read_only: Some(m.read_only),
                ..Default::default()
            })
            .collect();
        let network_mode = match &self.network {
            Network::Host => "host".to_string(),
            Network::Bridge(name) => name.clone(),
        };
        let networking_config = match &self.network {
            Network::Bridge(name) if !self.aliases.is_empty() => Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    name.clone(),
                    EndpointSettings {
                        aliases: Some(self.aliases.clone()),
                        ..Default::default()
                    },
                )])),
            }),
            _ => None,
        };
        ContainerCreateBody {
            healthcheck: self.health.as_ref().map(Health::config),
            networking_config,
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            env: Some(self.env.0.clone()),
            cmd: self.cmd.clone(),
            image: Some(self.image.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            labels: Some(self.labels(prefix)),
            host_config: Some(HostConfig {
                network_mode: Some(network_mode),
                port_bindings: (!bindings.is_empty()).then_some(bindings),
                mounts: Some(mounts),
                init: self.init.then_some(true),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// Host-side paths the containers mount, all under the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    /// `<state>/mattermost/config`, read-write, owned by 2000.
    pub mattermost_config: PathBuf,
    /// `<state>/mattermost/run`: the local-mode socket appears here (owned by 2000).
    pub mattermost_run: PathBuf,
    /// `<state>/mattermost/certs`: copies of the leaf, its key and the CA, readable by 2000 only.
    /// The CA's private key is never in it.
    pub mattermost_certs: PathBuf,
    /// `<state>/mattermost/ca-certificates.crt`: the host's CA bundle plus the city CA.
    pub mattermost_ca_bundle: PathBuf,
    /// `<state>/coturn/turnserver.conf`: the rendered configuration, readable by coturn's user only.
    pub coturn_config: PathBuf,
}

impl HostPaths {
    pub fn new(state: &crate::state::StateDir) -> Self {
        let mm = state.mattermost_dir();
        Self {
            mattermost_config: mm.join("config"),
            mattermost_run: state.mattermost_run_dir(),
            mattermost_certs: mm.join("certs"),
            mattermost_ca_bundle: mm.join("ca-certificates.crt"),
            coturn_config: state.coturn_config(),
        }
    }
}

fn bind(source: &std::path::Path, target: &str, read_only: bool) -> MountSpec {
    MountSpec {
        kind: MountKind::Bind,
        source: source.display().to_string(),
        target: target.to_string(),
        read_only,
    }
}

/// coturn on the host network: its configuration read-only, as nobody, restarted unless stopped.
pub fn coturn(
    city: &City,
    names: &Names,
    paths: &HostPaths,
    inputs: BTreeMap<String, String>,
) -> ContainerSpec {
    ContainerSpec {
        name: names.coturn(),
        role: Role::Coturn,
        image: city.docker.coturn_image.clone(),
        // Docker refuses a hostname on the host network.
        hostname: None,
        user: Some(format!("{COTURN_UID}:{COTURN_UID}")),
        cmd: Some(vec!["-c".into(), COTURN_CONFIG.into()]),
        env: Env::default(),
        network: Network::Host,
        ports: Vec::new(),
        mounts: vec![bind(&paths.coturn_config, COTURN_CONFIG, true)],
        restart: "unless-stopped",
        init: true,
        inputs,
        health: Some(coturn_health(city)),
        aliases: Vec::new(),
    }
}

/// Mattermost on the city's network: the API on every LAN address, Calls on TCP and UDP on every
/// LAN address, metrics on loopback only; env from the rendered file; volumes and bind mounts.
pub fn mattermost(
    city: &City,
    lan: &[IpAddr],
    names: &Names,
    paths: &HostPaths,
    env: Env,
    inputs: BTreeMap<String, String>,
) -> ContainerSpec {
    let mm = &city.mattermost;
    let mut ports = Vec::new();
    for ip in lan {
        ports.push(Publish {
            container_port: mm.port,
            protocol: Protocol::Tcp,
            host_ip: *ip,
            host_port: mm.port,
        });
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            ports.push(Publish {
                container_port: mm.calls_port,
                protocol,
                host_ip: *ip,
                host_port: mm.calls_port,
            });
        }
    }
    ports.push(Publish {
        container_port: container::METRICS_PORT,
        protocol: Protocol::Tcp,
        host_ip: mm.metrics.ip(),
        host_port: mm.metrics.port(),
    });
    ports.sort();
    let mut mounts = vec![
        bind(&paths.mattermost_config, MATTERMOST_CONFIG_DIR, false),
        bind(&paths.mattermost_certs, container::CERT_DIR, true),
        bind(&paths.mattermost_ca_bundle, CA_BUNDLE, true),
        bind(
            &paths.mattermost_run,
            mm.local_socket_dir.trim_end_matches('/'),
            false,
        ),
    ];
    for (volume, target) in VOLUMES {
        mounts.push(MountSpec {
            kind: MountKind::Volume,
            source: names.volume(volume),
            target: target.to_string(),
            read_only: false,
        });
    }
    ContainerSpec {
        name: names.mattermost(),
        role: Role::Mattermost,
        image: mm.image.clone(),
        hostname: Some(city.mattermost_host()),
        // The image's own user (2000); stated so an image built differently cannot surprise us.
        user: Some(format!("{MATTERMOST_UID}:{MATTERMOST_UID}")),
        cmd: None,
        env,
        network: Network::Bridge(names.network()),
        ports,
        mounts,
        restart: "unless-stopped",
        init: false,
        inputs,
        health: Some(mattermost_health(city)),
        aliases: Vec::new(),
    }
}

/// coturn's health: a STUN binding request to itself with `turnutils_stunclient`, which the
/// coturn images ship (Debian's coturn package and coturn/coturn both install the turnutils).
pub fn coturn_health(city: &City) -> Health {
    Health {
        command: vec![
            "turnutils_stunclient".into(),
            "-p".into(),
            city.turn.port.to_string(),
            "127.0.0.1".into(),
        ],
        interval_s: 5,
        timeout_s: 5,
        retries: 3,
        start_period_s: 30,
    }
}

/// Mattermost's health, as the image's own HEALTHCHECK since 10.12 (distroless, no shell, no
/// curl): `mmctl system status --local`, pointed at the city's socket path. It fails unless the
/// server, its database and its file store all report OK (../shared/reference/lifecycle.md §2.5
/// and §3, from mattermost/mattermost `server/build/Dockerfile`).
pub fn mattermost_health(city: &City) -> Health {
    let socket = format!(
        "{}/{}",
        city.mattermost.local_socket_dir.trim_end_matches('/'),
        container::LOCAL_SOCKET_NAME
    );
    Health {
        command: vec![
            MMCTL.into(),
            "system".into(),
            "status".into(),
            "--local".into(),
            "--local-socket-path".into(),
            socket,
        ],
        interval_s: 5,
        timeout_s: 10,
        retries: 3,
        start_period_s: 300,
    }
}

/// mmctl in the Mattermost image (`server/build/release.mk` puts both binaries in /mattermost/bin).
pub const MMCTL: &str = "/mattermost/bin/mmctl";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateDir;

    fn fixture() -> (City, Vec<IpAddr>, Names, HostPaths) {
        let city = City::default_city();
        let lan = vec!["192.168.1.20".parse().unwrap()];
        let names = Names::new(&city);
        let paths = HostPaths::new(&StateDir::at("/var/lib/cityd".into()).unwrap());
        (city, lan, names, paths)
    }

    #[test]
    fn default_names_are_the_blogs() {
        let (_, _, names, _) = fixture();
        assert_eq!(names.mattermost(), "mattermost");
        assert_eq!(names.coturn(), "coturn");
        assert_eq!(names.network(), "cicd-net");
        assert_eq!(
            names.volumes(),
            [
                "mattermost-data",
                "mattermost-logs",
                "mattermost-plugins",
                "mattermost-client-plugins"
            ]
        );
    }

    #[test]
    fn mattermost_publishes_api_and_calls_on_the_lan_and_metrics_on_loopback_only() {
        let (city, lan, names, paths) = fixture();
        let spec = mattermost(&city, &lan, &names, &paths, Env::default(), BTreeMap::new());
        let got: Vec<String> = spec
            .ports
            .iter()
            .map(|p| format!("{}:{}->{}", p.host_ip, p.host_port, p.key()))
            .collect();
        assert_eq!(
            got,
            [
                "192.168.1.20:8065->8065/tcp",
                "127.0.0.1:8067->8067/tcp",
                "192.168.1.20:8444->8444/tcp",
                "192.168.1.20:8444->8444/udp",
            ]
        );
        let body = spec.create_body("");
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("cicd-net"));
        assert_eq!(
            host.restart_policy.unwrap().name,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        );
        let bindings = host.port_bindings.unwrap();
        assert_eq!(bindings.len(), 4);
        assert_eq!(
            bindings["8067/tcp"].as_ref().unwrap()[0].host_ip.as_deref(),
            Some("127.0.0.1")
        );
    }

    #[test]
    fn mattermost_mounts_certs_and_ca_read_only_and_config_read_write() {
        let (city, lan, names, paths) = fixture();
        let spec = mattermost(&city, &lan, &names, &paths, Env::default(), BTreeMap::new());
        let by_target = |t: &str| spec.mounts.iter().find(|m| m.target == t).unwrap();
        assert!(by_target("/mattermost/certs").read_only);
        assert!(by_target(CA_BUNDLE).read_only);
        assert!(!by_target("/mattermost/config").read_only);
        assert_eq!(
            by_target("/mattermost/run").source,
            "/var/lib/cityd/mattermost/run"
        );
        assert_eq!(by_target("/mattermost/data").kind, MountKind::Volume);
        assert!(
            spec.mounts
                .iter()
                .all(|m| !m.source.ends_with("ca.key") && !m.source.ends_with("/pki")),
            "the CA's private key must never reach the container"
        );
    }

    #[test]
    fn coturn_runs_on_the_host_network_with_its_config_read_only() {
        let (city, _, names, paths) = fixture();
        let spec = coturn(&city, &names, &paths, BTreeMap::new());
        assert_eq!(spec.network, Network::Host);
        assert!(spec.ports.is_empty());
        assert!(spec.hostname.is_none());
        assert_eq!(spec.mounts.len(), 1);
        assert!(spec.mounts[0].read_only);
        assert_eq!(spec.mounts[0].target, COTURN_CONFIG);
        let body = spec.create_body("");
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("host"));
        assert_eq!(
            host.init,
            Some(true),
            "coturn needs an init to stop promptly"
        );
    }

    #[test]
    fn the_digest_changes_with_any_setting_and_only_then() {
        let (city, lan, names, paths) = fixture();
        let base = mattermost(
            &city,
            &lan,
            &names,
            &paths,
            Env(vec!["A=1".into()]),
            BTreeMap::new(),
        );
        assert_eq!(base.digest(), base.clone().digest());
        assert_eq!(base.digest().len(), 64);
        let mut env = base.clone();
        env.env = Env(vec!["A=2".into()]);
        let mut input = base.clone();
        input.inputs.insert("server.pem".into(), "x".into());
        let mut image = base.clone();
        image.image = "mattermost/mattermost-enterprise-edition:11.8.6".into();
        for changed in [env, input, image] {
            assert_ne!(changed.digest(), base.digest());
        }
    }

    #[test]
    fn env_debug_shows_names_never_values() {
        let env = Env(vec![
            "MM_SQLSETTINGS_DATASOURCE=postgres://u:hunter2@h/db".into(),
        ]);
        let shown = format!("{env:?}");
        assert!(shown.contains("MM_SQLSETTINGS_DATASOURCE"));
        assert!(!shown.contains("hunter2"));
    }
}
