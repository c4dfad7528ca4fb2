//! The managed PostgreSQL 17 container (`[database] managed = true`), as pure data plus its host
//! files: the image's entrypoint initialises the named volume with the vault's superuser password
//! on first start; TLS is on with a leaf from the city CA; the port is published on 127.0.0.1 only,
//! on a port the engine picks (cityd reads it back), so nothing beyond this host reaches it and it
//! never collides with a PostgreSQL the host already runs. Mattermost reaches it on the city
//! network by `[database] host`, a network alias.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::host::{Item, Prepared};
use super::spec::{
    ContainerSpec, Env, Health, MountKind, MountSpec, Names, Network, Protocol, Publish, Role,
};
use crate::city::City;
use crate::pki::SanSet;
use crate::state::StateDir;

/// The postgres user of the official image (docker-library `postgres`, Debian flavour) and of the
/// test image, which is built to match: the files below are handed to it.
pub const POSTGRES_UID: u32 = 999;
/// Where the server keeps its cluster in PostgreSQL 17 images (docker-library's PGDATA).
pub const PGDATA: &str = "/var/lib/postgresql/data";
/// Where the container sees `<state>/postgres/` (read-only).
pub const FILES_DIR: &str = "/cityd";
pub const PORT: u16 = 5432;
/// The leaf's name under `<state>/pki/` (`postgres.pem`, `postgres.key`).
pub const LEAF: &str = "postgres";
pub const SUPERUSER: &str = "postgres";

/// The names the server's certificate carries: the alias Mattermost uses, the container's own
/// name, and loopback (how cityd connects through the published port).
pub fn sans(city: &City) -> SanSet {
    let names = Names::new(city);
    let mut sans = SanSet::default();
    sans.add_dns(&city.database.host);
    sans.add_dns(&names.postgres());
    sans.add_dns("localhost");
    sans.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    sans
}

/// `<state>/postgres/`: the leaf, its key and the superuser's password, for UID 999 only.
pub fn host_files(state: &StateDir, cert_pem: &[u8], key_pem: &[u8], password: &str) -> Prepared {
    let dir = state.postgres_dir();
    let file = |name: &str, bytes: &[u8], mode| Item::File {
        path: dir.join(name),
        bytes: bytes.to_vec(),
        mode,
        uid: POSTGRES_UID,
    };
    Prepared {
        container: "postgres",
        items: vec![
            Item::Dir {
                path: dir.clone(),
                mode: 0o700,
                uid: POSTGRES_UID,
            },
            file("server.pem", cert_pem, 0o644),
            file("server.key", key_pem, 0o600),
            file(
                "superuser-password",
                format!("{password}\n").as_bytes(),
                0o400,
            ),
        ],
    }
}

/// `pg_isready` against the TCP listener: during the entrypoint's first initialisation only a
/// socket-only server runs, so the container turns healthy only once the real server listens.
pub fn health() -> Health {
    Health {
        command: vec![
            "pg_isready".into(),
            "-q".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            PORT.to_string(),
            "-U".into(),
            SUPERUSER.into(),
            "-d".into(),
            "postgres".into(),
        ],
        interval_s: 2,
        timeout_s: 5,
        retries: 5,
        start_period_s: 120,
    }
}

pub fn spec(city: &City, state: &StateDir, inputs: BTreeMap<String, String>) -> ContainerSpec {
    let names = Names::new(city);
    let file = |name: &str| format!("{FILES_DIR}/{name}");
    ContainerSpec {
        name: names.postgres(),
        role: Role::Postgres,
        image: city.database.image.clone(),
        hostname: None,
        // The image's own: the official entrypoint starts as root and drops to postgres.
        user: None,
        // Arguments starting with `-` go to postgres (both images' entrypoints).
        cmd: Some(vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", file("server.pem")),
            "-c".into(),
            format!("ssl_key_file={}", file("server.key")),
        ]),
        env: Env(vec![format!(
            "POSTGRES_PASSWORD_FILE={}",
            file("superuser-password")
        )]),
        network: Network::Bridge(names.network()),
        ports: vec![Publish {
            container_port: PORT,
            protocol: Protocol::Tcp,
            host_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            host_port: 0,
        }],
        mounts: vec![
            MountSpec {
                kind: MountKind::Bind,
                source: state.postgres_dir().display().to_string(),
                target: FILES_DIR.into(),
                read_only: true,
            },
            MountSpec {
                kind: MountKind::Volume,
                source: names.postgres_volume(),
                target: PGDATA.into(),
                read_only: false,
            },
        ],
        restart: "unless-stopped",
        init: false,
        inputs,
        health: Some(health()),
        aliases: vec![city.database.host.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_managed_server_publishes_on_loopback_only_and_answers_to_the_database_host() {
        let city = City::default_city();
        let state = StateDir::at("/var/lib/cityd".into()).unwrap();
        let spec = spec(&city, &state, BTreeMap::new());
        assert_eq!(spec.name, "postgres");
        assert_eq!(spec.aliases, ["postgres"]);
        assert!(spec.ports.iter().all(|p| p.host_ip.is_loopback()));
        let body = spec.create_body("");
        let bindings = body.host_config.unwrap().port_bindings.unwrap();
        let binding = &bindings["5432/tcp"].as_ref().unwrap()[0];
        assert_eq!(binding.host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            binding.host_port.as_deref(),
            Some(""),
            "the engine picks the port"
        );
        let test = body.healthcheck.unwrap().test.unwrap();
        assert_eq!(test[0], "CMD", "exec form: no shell");
        assert_eq!(test[1], "pg_isready");
        let endpoints = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            endpoints["cicd-net"].aliases.as_deref(),
            Some(&["postgres".to_string()][..])
        );
        assert!(
            spec.env
                .0
                .iter()
                .all(|e| !e.starts_with("POSTGRES_PASSWORD="))
        );
    }

    #[test]
    fn the_certificate_names_the_alias_the_container_and_loopback() {
        let city = City::default_city();
        assert_eq!(
            sans(&city).entries(),
            ["DNS:localhost", "DNS:postgres", "IP:127.0.0.1"]
        );
    }
}
