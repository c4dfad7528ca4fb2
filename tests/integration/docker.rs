//! `cityd up` / `down` / `doctor` against this machine's real Docker engine, with the local images
//! from `testcontainers/images/build.sh`: coturn from Debian, the Mattermost double standing in for
//! Mattermost (through the city description), PostgreSQL 17 from Debian trixie. Each test gets its
//! own name prefix, LAN address (a veth pair the test creates: traffic to it stays on this host)
//! and ports, so tests run in parallel; everything is removed on drop. Containers are inspected
//! with the docker CLI, independently of the bollard code under test.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use testcontainers::core::{ContainerPort, Mount, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::common::{Scratch, require_tool, run_ok, stderr_of_exit, stdout_of_success};

pub const COTURN_IMAGE: &str = "cityd-test/coturn:4.6.1";
pub const POSTGRES_IMAGE: (&str, &str) = ("cityd-test/postgres", "17");

/// The double's image tag: the version of the cityd-testcontainers crate.
pub fn double_image() -> String {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("testcontainers/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("read testcontainers/Cargo.toml");
    let doc: toml::Table = text.parse().expect("testcontainers/Cargo.toml is TOML");
    let version = doc["package"]["version"]
        .as_str()
        .expect("a package version");
    format!("cityd-test/mattermost-double:{version}")
}

/// Fails loudly when an image the tests need was not built.
pub fn require_image(image: &str) {
    require_tool("docker", "docker.io");
    let ok = Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "image {image} is missing: run testcontainers/images/build.sh (scripts/test.sh does) to build it"
    );
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{:x}{:x}",
        std::process::id() & 0xffff,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn sh(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn docker(args: &[&str]) -> Output {
    sh(Command::new("docker").args(args))
}

/// A LAN address for one test: a veth pair with an address from 10.213.0.0/16 on one end. The
/// address is local to this host, so everything sent to it stays here. Deleted on drop.
pub struct TestLan {
    pub ip: Ipv4Addr,
    link: String,
}

impl TestLan {
    pub fn new() -> Self {
        require_tool("ip", "iproute2");
        let id = unique();
        let link = format!("cdl{id}");
        let peer = format!("cdp{id}");
        let used =
            String::from_utf8_lossy(&sh(Command::new("ip").args(["-o", "-4", "addr"])).stdout)
                .into_owned();
        let mut n = u32::from_str_radix(&id, 16).unwrap_or(1);
        let ip = loop {
            let candidate = Ipv4Addr::new(10, 213, ((n >> 8) % 250 + 1) as u8, (n % 250 + 1) as u8);
            if !used.contains(&format!("{candidate}/")) {
                break candidate;
            }
            n += 7;
        };
        for args in [
            vec!["link", "add", &link, "type", "veth", "peer", "name", &peer],
            vec!["addr", "add", &format!("{ip}/32"), "dev", &link],
            vec!["link", "set", &link, "up"],
            vec!["link", "set", &peer, "up"],
        ] {
            let out = sh(Command::new("ip").args(&args));
            assert!(
                out.status.success(),
                "ip {args:?} failed (the Docker tests need root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self { ip, link }
    }
}

impl Drop for TestLan {
    fn drop(&mut self) {
        // Deleting one end removes the pair.
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

/// PostgreSQL 17 in a container (testcontainers), reachable on 127.0.0.1, superuser `postgres`.
pub struct Pg {
    /// Kept for its Drop, which removes the container.
    _container: Container<GenericImage>,
    pub port: u16,
    pub password_file: PathBuf,
}

impl Pg {
    pub const PASSWORD: &'static str = "Adm1nPassw0rdForTests";

    pub fn start(scratch: &Scratch) -> Self {
        Self::start_with(scratch, None)
    }

    /// With `certs`, a directory holding server.pem and server.key, the server offers TLS.
    pub fn start_with(scratch: &Scratch, certs: Option<&Path>) -> Self {
        require_image(&format!("{}:{}", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1));
        let mut image = GenericImage::new(POSTGRES_IMAGE.0, POSTGRES_IMAGE.1)
            .with_exposed_port(ContainerPort::Tcp(5432))
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_env_var("POSTGRES_PASSWORD", Self::PASSWORD);
        if let Some(dir) = certs {
            image = image.with_mount(Mount::bind_mount(dir.display().to_string(), "/certs"));
        }
        let container = image
            .with_startup_timeout(Duration::from_secs(120))
            .start()
            .expect("start PostgreSQL 17 (cityd-test/postgres:17)");
        let port = container
            .get_host_port_ipv4(5432)
            .expect("PostgreSQL's published port");
        let password_file = scratch.write(
            &format!("pg-admin-{port}"),
            &format!("{}\n", Self::PASSWORD),
        );
        Self {
            _container: container,
            port,
            password_file,
        }
    }

    /// The container's ID (`docker exec` target; the backup tests dump through it).
    pub fn container_id(&self) -> &str {
        self._container.id()
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `--admin-url ... --admin-password-file ...` for `cityd up` and `cityd db ensure`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--admin-url".into(),
            self.admin_url(),
            "--admin-password-file".into(),
            self.password_file.display().to_string(),
        ]
    }
}

/// A port for coturn on the host network: free on every address for UDP and TCP (and the next one,
/// which coturn may also take), and below the relay range 49152-65535 the city keeps.
fn turn_port() -> u16 {
    use std::net::UdpSocket;
    let seed = u32::from_str_radix(&unique(), 16).unwrap_or(0);
    for i in 0..2000u32 {
        let port = 20000 + ((seed.wrapping_mul(7919) + i * 13) % 20000) as u16;
        let free = |p: u16| {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok()
                && TcpListener::bind((Ipv4Addr::UNSPECIFIED, p)).is_ok()
        };
        if free(port) && free(port + 1) {
            return port;
        }
    }
    panic!("no free port pair between 20000 and 40000 for coturn");
}

/// One city on this Docker host: scratch state, a city file, its LAN address and ports. Drop
/// removes its containers, volumes, network and LAN address.
pub struct Lab {
    pub scratch: Scratch,
    pub prefix: String,
    pub lan: TestLan,
    pub metrics_port: u16,
    pub turn_port: u16,
    pub city: PathBuf,
    pub city_text: String,
}

impl Lab {
    pub fn new() -> Self {
        require_image(COTURN_IMAGE);
        require_image(&double_image());
        let scratch = Scratch::new();
        let prefix = format!("t{}-", unique());
        let lan = TestLan::new();
        let metrics_port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let turn_port = turn_port();
        let city_text = cityd::city::DEFAULT_CITY_TOML
            .to_string()
            .replace(
                "addresses = [\"auto\"]",
                &format!("addresses = [\"{}\"]", lan.ip),
            )
            .replace(
                "image = \"mattermost/mattermost-enterprise-edition:11.8.5\"",
                &format!("image = \"{}\"", double_image()),
            )
            .replace("prefix = \"\"", &format!("prefix = \"{prefix}\""))
            .replace(
                "coturn_image = \"coturn/coturn:4.6.3\"",
                &format!("coturn_image = \"{COTURN_IMAGE}\""),
            )
            .replace(
                "metrics = \"127.0.0.1:8067\"",
                &format!("metrics = \"127.0.0.1:{metrics_port}\""),
            )
            .replace("\nport = 3478", &format!("\nport = {turn_port}"))
            // These cities bring their own PostgreSQL (Pg, --admin-url); Lab::managed() does not.
            .replace("\nmanaged = true\n", "\nmanaged = false\n")
            .replace(
                "image = \"docker.io/library/postgres:17.6\"",
                &format!("image = \"{}:{}\"", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1),
            );
        assert!(city_text.contains(&prefix) && city_text.contains(&double_image()));
        let city = scratch.write("city.toml", &city_text);
        Self {
            scratch,
            prefix,
            lan,
            metrics_port,
            turn_port,
            city,
            city_text,
        }
    }

    /// A city whose PostgreSQL cityd runs itself (`[database] managed = true`, the local image).
    pub fn managed() -> Self {
        require_image(&format!("{}:{}", POSTGRES_IMAGE.0, POSTGRES_IMAGE.1));
        let mut lab = Self::new();
        lab.edit_city("\nmanaged = false\n", "\nmanaged = true\n");
        lab
    }

    pub fn postgres(&self) -> String {
        format!("{}postgres", self.prefix)
    }

    /// Rewrites the city file with one textual replacement.
    pub fn edit_city(&mut self, from: &str, to: &str) {
        assert!(self.city_text.contains(from), "the city has no {from:?}");
        self.city_text = self.city_text.replacen(from, to, 1);
        std::fs::write(&self.city, &self.city_text).unwrap();
    }

    pub fn cityd(&self) -> assert_cmd::Command {
        let mut c = self.scratch.cityd();
        c.arg("--city").arg(&self.city);
        c
    }

    pub fn std_cityd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_cityd"));
        c.env_remove("CITYD_CITY")
            .env_remove("CITYD_STATE_DIR")
            .arg("--state-dir")
            .arg(self.scratch.state())
            .arg("--city")
            .arg(&self.city);
        c
    }

    pub fn mattermost(&self) -> String {
        format!("{}mattermost", self.prefix)
    }
    pub fn coturn(&self) -> String {
        format!("{}coturn", self.prefix)
    }
    pub fn network(&self) -> String {
        format!("{}cicd-net", self.prefix)
    }
    pub fn volumes(&self) -> Vec<String> {
        ["data", "logs", "plugins", "client-plugins"]
            .iter()
            .map(|v| format!("{}mattermost-{v}", self.prefix))
            .collect()
    }

    /// `cityd up --json` with `extra` args; fails the test with its output unless it succeeds,
    /// and unless the run (wiring included) read and validated the city description exactly once.
    pub fn up(&self, extra: &[String]) -> Value {
        let out = self
            .cityd()
            .arg("up")
            .arg("--json")
            .args(extra)
            .env("CITYD_LOG", "cityd::city=debug")
            .timeout(Duration::from_secs(300))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "cityd up failed ({}):\n{}\n{stderr}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
        );
        assert_eq!(
            stderr
                .matches("city description read and validated")
                .count(),
            1,
            "cityd up must read the city description once:\n{stderr}"
        );
        serde_json::from_slice(&out.stdout).expect("cityd up --json prints JSON")
    }

    pub fn inspect(&self, name: &str) -> Value {
        let out = run_ok(Command::new("docker").args(["inspect", name]));
        let all: Value = serde_json::from_str(&out).unwrap();
        all[0].clone()
    }

    pub fn exists(&self, kind: &str, name: &str) -> bool {
        docker(&[kind, "inspect", name]).status.success()
    }

    /// Names of every container carrying this city's label.
    pub fn labelled_containers(&self) -> Vec<String> {
        let out = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label=org.cityd.city={}", self.prefix),
            "--format",
            "{{.Names}}",
        ]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// (container ID, StartedAt, spec label) of a container.
    pub fn identity(&self, name: &str) -> (String, String, String) {
        let c = self.inspect(name);
        (
            c["Id"].as_str().unwrap().to_string(),
            c["State"]["StartedAt"].as_str().unwrap().to_string(),
            c["Config"]["Labels"]["org.cityd.spec"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in [self.mattermost(), self.coturn(), self.postgres()] {
            let _ = Command::new("docker").args(["rm", "-f", "-v", &c]).output();
        }
        for v in self
            .volumes()
            .into_iter()
            .chain([format!("{}postgres-data", self.prefix)])
        {
            let _ = Command::new("docker")
                .args(["volume", "rm", "-f", &v])
                .output();
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network()])
            .output();
    }
}

pub fn steps(report: &Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["subject"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn outcome_of(report: &Value, step: &str, subject: &str) -> String {
    steps(report)
        .into_iter()
        .find(|(s, subj, _)| s == step && subj == subject)
        .map(|(_, _, o)| o)
        .unwrap_or_else(|| panic!("no step {step} {subject} in {report:#}"))
}

pub fn port_bindings(c: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(map) = c["HostConfig"]["PortBindings"].as_object() {
        for (key, list) in map {
            for b in list.as_array().unwrap() {
                out.push(format!(
                    "{}:{}->{key}",
                    b["HostIp"].as_str().unwrap(),
                    b["HostPort"].as_str().unwrap()
                ));
            }
        }
    }
    out.sort();
    out
}

fn mounts(c: &Value) -> Vec<String> {
    let mut out: Vec<String> = c["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {} -> {} {}",
                m["Type"].as_str().unwrap(),
                m["Name"].as_str().or(m["Source"].as_str()).unwrap(),
                m["Destination"].as_str().unwrap(),
                if m["RW"].as_bool().unwrap() {
                    "rw"
                } else {
                    "ro"
                }
            )
        })
        .collect();
    out.sort();
    out
}

fn owner_mode(path: &Path) -> (u32, u32) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.permissions().mode() & 0o7777)
}

#[test]
fn up_creates_exactly_the_specified_containers_and_a_second_up_changes_nothing() {
    let lab = Lab::new();
    let pg = Pg::start(&lab.scratch);
    let first = lab.up(&pg.args());
    let state = lab.scratch.state();
    let ip = lab.lan.ip.to_string();

    // Exactly two containers carry this city's label.
    let mut expected = vec![lab.coturn(), lab.mattermost()];
    expected.sort();
    assert_eq!(lab.labelled_containers(), expected);
    assert_eq!(outcome_of(&first, "container", &lab.coturn()), "created");
    assert_eq!(
        outcome_of(&first, "container", &lab.mattermost()),
        "created"
    );
    assert_eq!(outcome_of(&first, "network", &lab.network()), "created");
    for v in lab.volumes() {
        assert_eq!(outcome_of(&first, "volume", &v), "created");
        assert!(lab.exists("volume", &v));
    }
    assert!(lab.exists("network", &lab.network()));
    assert!(
        !first["database"]["actions"].as_array().unwrap().is_empty(),
        "the first run creates the tenant"
    );

    // coturn: host network, nothing published, config read-only, as nobody, init, restart policy.
    let coturn = lab.inspect(&lab.coturn());
    assert_eq!(coturn["HostConfig"]["NetworkMode"], "host");
    assert!(port_bindings(&coturn).is_empty());
    assert_eq!(coturn["Config"]["Image"], COTURN_IMAGE);
    assert_eq!(coturn["Config"]["User"], "65534:65534");
    assert_eq!(coturn["HostConfig"]["Init"], true);
    assert_eq!(
        coturn["HostConfig"]["RestartPolicy"]["Name"],
        "unless-stopped"
    );
    assert_eq!(
        mounts(&coturn),
        [format!(
            "bind {} -> /etc/coturn/turnserver.conf ro",
            state.join("coturn/turnserver.conf").display()
        )]
    );
    let coturn_conf = state.join("coturn/turnserver.conf");
    assert_eq!(owner_mode(&coturn_conf), (65534, 0o400));
    assert_eq!(
        std::fs::read_to_string(&coturn_conf).unwrap(),
        std::fs::read_to_string(state.join("render/turnserver.conf")).unwrap(),
        "coturn reads exactly the rendered configuration"
    );
    assert_eq!(
        coturn["Config"]["Labels"]["org.cityd.spec"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // Mattermost: every port binding, metrics on loopback only.
    let mm = lab.inspect(&lab.mattermost());
    let mut want_ports = vec![
        format!("{ip}:8065->8065/tcp"),
        format!("{ip}:8444->8444/tcp"),
        format!("{ip}:8444->8444/udp"),
        format!("127.0.0.1:{}->8067/tcp", lab.metrics_port),
    ];
    want_ports.sort();
    assert_eq!(port_bindings(&mm), want_ports);
    assert_eq!(mm["HostConfig"]["NetworkMode"], lab.network());
    assert_eq!(mm["HostConfig"]["RestartPolicy"]["Name"], "unless-stopped");
    assert_eq!(mm["Config"]["Image"], double_image());
    assert_eq!(mm["Config"]["Hostname"], "mattermost.cicd.local");
    assert_eq!(mm["Config"]["User"], "2000:2000");
    let mmdir = state.join("mattermost");
    let mut want_mounts = vec![
        format!(
            "bind {} -> /mattermost/config rw",
            mmdir.join("config").display()
        ),
        format!(
            "bind {} -> /mattermost/certs ro",
            mmdir.join("certs").display()
        ),
        format!(
            "bind {} -> /etc/ssl/certs/ca-certificates.crt ro",
            mmdir.join("ca-certificates.crt").display()
        ),
        format!("bind {} -> /mattermost/run rw", mmdir.join("run").display()),
        format!(
            "volume {}mattermost-data -> /mattermost/data rw",
            lab.prefix
        ),
        format!(
            "volume {}mattermost-logs -> /mattermost/logs rw",
            lab.prefix
        ),
        format!(
            "volume {}mattermost-plugins -> /mattermost/plugins rw",
            lab.prefix
        ),
        format!(
            "volume {}mattermost-client-plugins -> /mattermost/client/plugins rw",
            lab.prefix
        ),
    ];
    want_mounts.sort();
    assert_eq!(mounts(&mm), want_mounts);
    // Bind mounts belong to UID 2000; the CA key never reaches the container.
    for dir in ["config", "run", "certs"] {
        assert_eq!(owner_mode(&mmdir.join(dir)), (2000, 0o700), "{dir}");
    }
    assert_eq!(owner_mode(&mmdir.join("certs/server.key")), (2000, 0o400));
    let mut certs: Vec<String> = std::fs::read_dir(mmdir.join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    certs.sort();
    assert_eq!(certs, ["ca.pem", "server.key", "server.pem"]);
    let bundle = std::fs::read_to_string(mmdir.join("ca-certificates.crt")).unwrap();
    let ca = std::fs::read_to_string(state.join("pki/ca.pem")).unwrap();
    assert!(bundle.ends_with(&ca), "the bundle ends with the city CA");
    assert!(
        bundle.len() > ca.len() * 3,
        "the bundle keeps the host's roots"
    );
    // The environment is the rendered env file, every line of it.
    let env: Vec<&str> = mm["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let rendered = std::fs::read_to_string(state.join("render/mattermost.env")).unwrap();
    let entries: Vec<&str> = rendered
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(entries.len() > 20);
    for line in &entries {
        assert!(
            env.contains(line),
            "env lacks {}",
            line.split('=').next().unwrap()
        );
    }
    let extra: Vec<_> = env.iter().filter(|e| !entries.contains(e)).collect();
    assert!(
        extra.iter().all(|e| e.starts_with("PATH=")),
        "unexpected env entries: {extra:?}"
    );
    // Wire ran and built the city in the double.
    assert!(
        first["wire"]["created"].as_u64().unwrap() > 0,
        "{:#}",
        first["wire"]
    );

    // A second up: same containers, not restarted, no mutating Mattermost request, no DDL.
    let before = (lab.identity(&lab.coturn()), lab.identity(&lab.mattermost()));
    let second = lab.up(&pg.args());
    let after = (lab.identity(&lab.coturn()), lab.identity(&lab.mattermost()));
    assert_eq!(before, after, "IDs, start times and specs stay");
    assert_eq!(second["changed"], false, "{second:#}");
    for (step, subject, outcome) in steps(&second) {
        assert_eq!(outcome, "unchanged", "{step} {subject}");
    }
    assert_eq!(second["database"]["actions"], serde_json::json!([]));
    assert_eq!(
        second["wire"]["requests"]["mutating"], 0,
        "{:#}",
        second["wire"]
    );
    assert_eq!(second["wire"]["created"], 0);
    assert_eq!(second["wire"]["updated"], 0);
    assert_eq!(
        lab.inspect(&lab.mattermost())["RestartCount"],
        0,
        "Mattermost never restarted"
    );

    // Doctor finds nothing wrong with the containers or the schema.
    let doctor = lab
        .cityd()
        .args(["doctor", "--json"])
        .env("CITYD_DB_ADMIN_URL", pg.admin_url())
        .env("CITYD_DB_ADMIN_PASSWORD_FILE", &pg.password_file)
        .output()
        .unwrap();
    let findings: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let codes: Vec<&str> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.is_empty(), "doctor found {codes:?}: {findings:#}");
}

#[test]
fn changing_one_setting_recreates_only_the_container_it_affects() {
    let mut lab = Lab::new();
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    let coturn = lab.identity(&lab.coturn());
    let mm = lab.identity(&lab.mattermost());

    // The relay range is coturn's alone.
    lab.edit_city("relay_max = 65535", "relay_max = 65000");
    let report = lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    assert_eq!(outcome_of(&report, "container", &lab.coturn()), "updated");
    assert_eq!(
        outcome_of(&report, "container", &lab.mattermost()),
        "unchanged"
    );
    let coturn2 = lab.identity(&lab.coturn());
    assert_ne!(coturn2.0, coturn.0, "coturn was recreated");
    assert_ne!(coturn2.2, coturn.2, "with a new spec");
    assert_eq!(
        lab.identity(&lab.mattermost()),
        mm,
        "Mattermost was not touched"
    );

    // An extra CORS origin is Mattermost's alone.
    lab.edit_city(
        "allow_cors_from = []",
        "allow_cors_from = [\"https://ops.cicd.local\"]",
    );
    let report = lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    assert_eq!(outcome_of(&report, "container", &lab.coturn()), "unchanged");
    assert_eq!(
        outcome_of(&report, "container", &lab.mattermost()),
        "updated"
    );
    assert_eq!(
        lab.identity(&lab.coturn()),
        coturn2,
        "coturn was not touched"
    );
    let mm2 = lab.inspect(&lab.mattermost());
    assert_ne!(mm2["Id"].as_str().unwrap(), mm.0);
    assert!(
        mm2["Config"]["Env"].as_array().unwrap().iter().any(|e| e
            .as_str()
            .unwrap()
            .starts_with("MM_SERVICESETTINGS_ALLOWCORSFROM=")
            && e.as_str().unwrap().contains("https://ops.cicd.local")),
        "the new container has the new setting"
    );
}

#[test]
fn a_stopped_container_is_started_and_a_foreign_one_replaced() {
    let lab = Lab::new();
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    let mm = lab.identity(&lab.mattermost());
    stdout_of_success(&docker(&["stop", &lab.mattermost()]));
    // A container of the blog's making under coturn's name: bridge network, a published port.
    stdout_of_success(&docker(&["rm", "-f", &lab.coturn()]));
    stdout_of_success(&docker(&[
        "run",
        "-d",
        "--name",
        &lab.coturn(),
        "-p",
        &format!("127.0.0.1:{}:3478/udp", lab.turn_port),
        COTURN_IMAGE,
    ]));
    let doctor: Value = serde_json::from_slice(
        &lab.cityd()
            .args(["doctor", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let codes: Vec<&str> = doctor
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    for code in [
        "container-not-running",
        "coturn-not-host-network",
        "container-spec-outdated",
        "ports-differ",
    ] {
        assert!(codes.contains(&code), "doctor misses {code}: {doctor:#}");
    }

    let report = lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    let started = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subject"] == lab.mattermost().as_str() && s["step"] == "container")
        .unwrap()
        .clone();
    assert_eq!(started["outcome"], "updated");
    assert!(started["detail"].as_str().unwrap().starts_with("started"));
    assert_eq!(
        lab.identity(&lab.mattermost()).0,
        mm.0,
        "a stopped container with the current spec is started, not recreated"
    );
    assert_eq!(
        lab.inspect(&lab.coturn())["HostConfig"]["NetworkMode"],
        "host"
    );
}

#[test]
fn down_keeps_volumes_and_state_and_purge_removes_them() {
    let lab = Lab::new();
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    // Data in a volume survives down.
    run_ok(lab.cityd().args(["down"]));
    assert!(lab.labelled_containers().is_empty());
    for v in lab.volumes() {
        assert!(lab.exists("volume", &v), "{v} was kept");
    }
    let state = lab.scratch.state();
    assert!(state.join("secrets").is_dir() && state.join("pki/ca.pem").is_file());
    assert!(state.join("mattermost/config").is_dir());

    // A second down has nothing to do; up brings the same city back.
    let again = lab.cityd().args(["down", "--json"]).output().unwrap();
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        again["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["outcome"] == "unchanged")
    );
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);

    run_ok(lab.cityd().args(["down", "--purge", "--dry-run"]));
    assert_eq!(
        lab.labelled_containers().len(),
        2,
        "a dry run removes nothing"
    );

    run_ok(lab.cityd().args(["down", "--purge"]));
    assert!(lab.labelled_containers().is_empty());
    for v in lab.volumes() {
        assert!(!lab.exists("volume", &v), "{v} was purged");
    }
    assert!(!lab.exists("network", &lab.network()));
    assert!(!state.join("mattermost").exists() && !state.join("coturn").exists());
    assert!(
        state.join("secrets").is_dir() && state.join("pki/ca.pem").is_file(),
        "the vault and the PKI are never purged"
    );
}

#[test]
fn dry_run_on_a_fresh_host_changes_nothing() {
    let lab = Lab::new();
    let stdout = run_ok(lab.cityd().args(["up", "--dry-run", "--json", "--skip-db"]));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(
        outcome_of(&report, "container", &lab.mattermost()),
        "would-create"
    );
    assert_eq!(
        outcome_of(&report, "network", &lab.network()),
        "would-create"
    );
    assert!(lab.labelled_containers().is_empty());
    assert!(!lab.exists("network", &lab.network()));
    assert!(
        !lab.scratch.state().join("secrets").exists(),
        "not even the vault"
    );
}

#[test]
fn verify_webhook_succeeds_through_the_published_port() {
    let lab = Lab::new();
    lab.up(&["--skip-db".into()]);
    let stdout = run_ok(
        lab.cityd()
            .args(["verify", "webhook", "--json", "--base-url"])
            .arg(format!("http://{}:8065", lab.lan.ip)),
    );
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let outcomes = report.as_array().expect("one outcome per channel");
    assert_eq!(outcomes.len(), 3, "{report:#}");
    assert!(outcomes.iter().all(|o| o["ok"] == true), "{report:#}");
}

#[test]
fn turn_probe_relays_through_coturn_on_the_host_network() {
    let lab = Lab::new();
    lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    // The probe's default server is the city's first LAN address on turn.port, which only a
    // host-network coturn answers; its default peer is its own echo socket on that address.
    let stdout = run_ok(lab.cityd().args(["turn", "probe", "--json"]));
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let server = format!("{}:{}", lab.lan.ip, lab.turn_port);
    assert_eq!(report["server"], server, "{report:#}");
    let relayed = report["relayed"].as_str().unwrap();
    assert!(
        relayed.starts_with(&format!("{}:", lab.lan.ip)),
        "coturn relays on the LAN address itself (no Docker NAT): {relayed}"
    );
}

#[test]
fn up_killed_at_any_step_converges_when_run_again() {
    let lab = Lab::new();
    let pg = Pg::start(&lab.scratch);
    // A reference run in another state directory is not comparable (new secrets); instead the
    // final state must equal what a clean second run reports as fully unchanged.
    let mut k = 1;
    loop {
        let mut child = lab
            .std_cityd()
            .arg("up")
            .args(pg.args())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let mut finished = true;
        while let Some(Ok(_)) = lines.next() {
            seen += 1;
            if seen == k {
                finished = false;
                // SIGKILL, by this child's PID.
                child.kill().unwrap();
                break;
            }
        }
        let _ = child.wait();
        // Whatever was interrupted, the next run converges.
        let report = lab.up(&pg.args());
        assert!(
            report["wire"].is_object(),
            "after a kill at line {k}: {report:#}"
        );
        if finished {
            // The run completed before printing k lines: every step has been interrupted once.
            break;
        }
        k += 1;
        assert!(k < 80, "up prints a bounded number of lines");
    }
    assert!(k > 15, "up was interrupted at {k} points");
    let last = lab.up(&pg.args());
    assert_eq!(last["changed"], false, "{last:#}");
    for (step, subject, outcome) in steps(&last) {
        assert_eq!(outcome, "unchanged", "{step} {subject}");
    }
    let mut expected = vec![lab.coturn(), lab.mattermost()];
    expected.sort();
    assert_eq!(lab.labelled_containers(), expected);
}

#[test]
fn an_unreachable_docker_engine_is_named_with_the_fix() {
    let lab = Lab::new();
    let started = Instant::now();
    let out = lab
        .cityd()
        .args(["up", "--skip-db"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent"),
        "{err}"
    );
    assert!(err.contains("DOCKER_HOST"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));

    // For scripts: the JSON report still comes, with the steps done before the engine and why
    // the run stopped.
    let out = lab
        .cityd()
        .args(["up", "--skip-db", "--json"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .output()
        .unwrap();
    stderr_of_exit(&out, 1);
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on failure");
    let done: Vec<String> = steps(&report)
        .into_iter()
        .map(|(step, _, _)| step)
        .collect();
    assert_eq!(
        done,
        ["vault", "pki", "render", "render", "postgres"],
        "{report:#}"
    );
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the Docker engine at unix:///nonexistent")),
        "{report:#}"
    );
    let down = lab
        .cityd()
        .args(["down"])
        .env("DOCKER_HOST", "unix:///nonexistent")
        .output()
        .unwrap();
    assert!(stderr_of_exit(&down, 1).contains("cannot reach the Docker engine"));
}

/// Removes an image tag on drop (what a test pulled).
struct PulledImage(String);

impl Drop for PulledImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn a_missing_image_is_pulled_with_progress_and_kept_by_the_next_up() {
    let mut lab = Lab::new();
    let repository = format!("cityd-pull-{}/coturn", lab.prefix.trim_end_matches('-'));
    let registry = cityd_testcontainers::registry::RegistryDouble::serve_local_image(
        COTURN_IMAGE,
        &repository,
        "4.6.1",
    )
    .unwrap();
    let image = registry.image_ref();
    let _pulled = PulledImage(image.clone());
    assert!(!lab.exists("image", &image), "{image} is already here");
    lab.edit_city(
        &format!("coturn_image = \"{COTURN_IMAGE}\""),
        &format!("coturn_image = \"{image}\""),
    );

    let out = lab
        .cityd()
        .args(["up", "--json", "--skip-db", "--skip-wire"])
        .timeout(Duration::from_secs(300))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cityd up failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome_of(&report, "image", &image), "created");
    // Progress: the pull is announced, then one line per layer state.
    assert!(stderr.contains(&format!("pulling {image}")), "{stderr}");
    assert!(stderr.contains("Pull complete"), "{stderr}");
    assert!(stderr.contains("Downloaded newer image"), "{stderr}");
    let requests = registry.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path == format!("/v2/{repository}/manifests/4.6.1") && r.status == 200),
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.method == "GET"
            && r.path
                .starts_with(&format!("/v2/{repository}/blobs/sha256:"))
            && r.status == 200),
        "{requests:?}"
    );
    // The coturn container runs from the pulled image.
    assert!(lab.exists("image", &image));
    let coturn = lab.inspect(&lab.coturn());
    assert_eq!(coturn["Config"]["Image"], image.as_str());
    assert_eq!(coturn["State"]["Running"], true);

    // The next up finds the image here and asks the registry nothing.
    let asked = registry.requests().len();
    let second = lab.up(&["--skip-db".into(), "--skip-wire".into()]);
    assert_eq!(outcome_of(&second, "image", &image), "unchanged");
    assert_eq!(
        registry.requests().len(),
        asked,
        "{:?}",
        registry.requests()
    );
}

#[test]
fn a_missing_image_that_cannot_be_pulled_says_how_to_load_it() {
    let mut lab = Lab::new();
    lab.edit_city(
        &format!("coturn_image = \"{COTURN_IMAGE}\""),
        "coturn_image = \"cityd-test/not-built:0.0.1\"",
    );
    let out = lab.cityd().args(["up", "--skip-db"]).output().unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(err.contains("cityd-test/not-built:0.0.1"), "{err}");
    assert!(err.contains("docker load -i"), "{err}");
    assert!(lab.labelled_containers().is_empty());
}

#[test]
fn up_names_an_unreachable_postgres_and_a_wrong_admin_password() {
    let lab = Lab::new();
    let closed = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = lab
        .cityd()
        .args(["up", "--admin-url"])
        .arg(format!("postgres://postgres@127.0.0.1:{closed}/postgres"))
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(
        lab.labelled_containers().is_empty(),
        "nothing ran after the failed step"
    );

    let pg = Pg::start(&lab.scratch);
    let wrong = lab.scratch.write("wrong-pw", "NotThePassword\n");
    let out = lab
        .cityd()
        .args([
            "up",
            "--admin-url",
            &pg.admin_url(),
            "--admin-password-file",
        ])
        .arg(&wrong)
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains(&format!(
            "PostgreSQL at 127.0.0.1:{} refused to authenticate postgres",
            pg.port
        )),
        "{err}"
    );
    assert!(!err.contains("NotThePassword"));
}
