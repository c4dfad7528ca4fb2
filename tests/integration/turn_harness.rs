//! Fixtures for the TURN tests: real coturn and turnutils_peer processes (on loopback or inside a
//! namespace) stopped by PID on drop, network namespaces and veth links created per test and
//! deleted on drop, a scratch city with its vault, and helpers to run `cityd turn probe`.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cityd::turn::{Class, Message, Method, decode};

use crate::common::{Scratch, require_tool, run_ok};

/// A child process killed by its PID when dropped, panics included.
pub struct Spawned {
    pub child: Child,
    pub what: String,
}

impl Spawned {
    pub fn start(mut cmd: Command, what: &str, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("create a log file");
        let err = file.try_clone().expect("clone the log file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Self {
            child,
            what: what.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails the test with the log when the process already exited.
    pub fn assert_running(&mut self, log: &Path) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); its log:\n{}",
                self.what,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Child::kill signals exactly this PID (SIGKILL); coturn has no state worth a graceful stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP on `ip` (coturn listens on both).
pub fn free_port(ip: Ipv4Addr) -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((ip, 0)).expect("bind a UDP socket on loopback");
        let port = udp.local_addr().unwrap().port();
        let next = port.checked_add(1).unwrap_or(port);
        if TcpListener::bind((ip, port)).is_ok()
            && UdpSocket::bind((ip, next)).is_ok()
            && TcpListener::bind((ip, next)).is_ok()
        {
            return port;
        }
    }
    panic!("no free UDP+TCP port pair on {ip}");
}

/// A coturn 4.6.1 from Debian.
pub struct Coturn {
    pub process: Spawned,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// coturn on 127.0.0.1 with a free port, the REST secret, and `extra` flags.
    /// `--allow-loopback-peers` is here only because the tests' peers live on loopback.
    pub fn loopback(secret: &str, extra: &[&str]) -> Self {
        let bin = require_tool("turnserver", "coturn");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port(Ipv4Addr::LOCALHOST);
        let mut cmd = Command::new(bin);
        cmd.arg("-n")
            .arg("--listening-ip=127.0.0.1")
            .arg(format!("--listening-port={port}"))
            .arg("--realm=cityd.test")
            .arg("--use-auth-secret")
            // A test-only secret, generated per run.
            .arg(format!("--static-auth-secret={secret}"))
            .args([
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--allow-loopback-peers",
            ])
            .args(["--no-multicast-peers", "--fingerprint", "--verbose"])
            .arg("--log-file=stdout")
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .args(extra);
        let log = dir.path().join("turnserver.log");
        let process = Spawned::start(cmd, "turnserver", &log);
        let mut coturn = Self {
            process,
            port,
            log,
            _dir: dir,
        };
        coturn.wait_ready_loopback();
        coturn
    }

    /// coturn inside a namespace, configured by `config` (`-c`), listening on `port`.
    pub fn in_netns(ns: &Netns, config: &Path, port: u16) -> Self {
        Self::in_netns_with_env(ns, config, port, &[])
    }

    /// `in_netns` with extra environment variables for coturn (e.g. libfaketime's, to run it with
    /// its clock moved on).
    pub fn in_netns_with_env(ns: &Netns, config: &Path, port: u16, env: &[(&str, &str)]) -> Self {
        let bin = require_tool("turnserver", "coturn");
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = ns.command(&bin);
        cmd.envs(env.iter().copied());
        cmd.arg("-c")
            .arg(config)
            .arg(format!(
                "--pidfile={}",
                dir.path().join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", dir.path().join("turndb").display()))
            .args(["--no-tls", "--no-dtls", "--verbose"]);
        let log = dir.path().join("turnserver.log");
        let process = Spawned::start(cmd, "turnserver (in a namespace)", &log);
        let mut coturn = Self {
            process,
            port,
            log,
            _dir: dir,
        };
        coturn.wait_ready_in(ns);
        coturn
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls with a STUN Binding request until coturn answers, and its TCP listener accepts.
    fn wait_ready_loopback(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.connect(self.addr()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        loop {
            self.process.assert_running(&self.log);
            assert!(
                Instant::now() < deadline,
                "coturn did not answer a Binding request within 15 s; log:\n{}",
                self.log_text()
            );
            let request = Message::request(Method::BINDING);
            let _ = socket.send(&request.encode(None, false).unwrap());
            let mut buf = [0u8; 1500];
            if let Ok(n) = socket.recv(&mut buf)
                && let Ok(d) = decode(&buf[..n])
                // Any of our earlier requests' answers will do: answers may lag a poll behind.
                && d.message.method == Method::BINDING
                && d.message.class == Class::Success
                && TcpStream::connect(self.addr()).is_ok()
            {
                return;
            }
        }
    }

    /// Polls the namespace's socket table until coturn listens on its port over UDP and TCP.
    fn wait_ready_in(&mut self, ns: &Netns) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let filter = format!("sport = :{}", self.port);
        loop {
            self.process.assert_running(&self.log);
            assert!(
                Instant::now() < deadline,
                "coturn did not listen on port {} within 15 s; log:\n{}",
                self.port,
                self.log_text()
            );
            let udp = ns.output(&["ss", "-Hlnu", &filter]);
            let tcp = ns.output(&["ss", "-Hlnt", &filter]);
            if !udp.trim().is_empty() && !tcp.trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A UDP echo peer (coturn's turnutils_peer), which also answers on port + 1.
pub fn echo_peer(ns: Option<&Netns>, ip: &str, port: u16, log_dir: &Path) -> Spawned {
    let bin = require_tool("turnutils_peer", "coturn");
    let mut cmd = match ns {
        Some(ns) => ns.command(&bin),
        None => Command::new(&bin),
    };
    cmd.args(["-L", ip, "-p", &port.to_string()]);
    Spawned::start(
        cmd,
        "turnutils_peer",
        &log_dir.join(format!("peer-{port}.log")),
    )
}

/// Fails the test unless it runs as root: namespaces and NAT need it. Never a silent skip.
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test creates network namespaces and NAT rules and must run as root (scripts/test.sh runs as root in CI)"
    );
    require_tool("ip", "iproute2");
    require_tool("iptables", "iptables");
}

static NEXT_NS: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a unique name per run, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Self {
        let n = NEXT_NS.fetch_add(1, Ordering::SeqCst);
        let name = format!("cityd-{}-{n}-{role}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"]);
        // Only router namespaces forward; set explicitly since a new namespace may inherit 1.
        ns.sysctl("net.ipv4.ip_forward", "0");
        ns
    }

    /// `ip -n <ns> ARGS`.
    pub fn ip(&self, args: &[&str]) {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    /// Sets a sysctl of this namespace (/proc/sys/net is per namespace); no procps needed.
    pub fn sysctl(&self, key: &str, value: &str) {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        self.exec(&["sh", "-c", &format!("echo {value} > {path}")]);
        assert_eq!(
            self.exec(&["cat", &path]).trim(),
            value,
            "{key} in {}",
            self.name
        );
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace and fails the test if it fails.
    pub fn exec(&self, args: &[&str]) -> String {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        run_ok(&mut c)
    }

    /// Runs a command inside the namespace and returns its stdout whatever its status.
    pub fn output(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command in the namespace; returns its full output.
    pub fn run_raw(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .expect("run ip netns exec")
    }

    /// A veth pair from this namespace (`here`) to `other` (`there`), both up.
    pub fn veth(&self, here: &str, other: &Netns, there: &str) {
        self.ip(&[
            "link",
            "add",
            here,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            &other.name,
        ]);
        self.ip(&["link", "set", here, "up"]);
        other.ip(&["link", "set", there, "up"]);
    }

    pub fn addr(&self, dev: &str, cidr: &str) {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
        } else {
            self.ip(&["addr", "add", cidr, "dev", dev]);
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The embedded default city with `lan` as its only LAN address and the given TURN settings;
/// derived from the default so it follows the description's schema as it grows.
pub fn city_toml(lan: &str, turn_port: u16, relay_min: u16, relay_max: u16) -> String {
    let mut text = String::new();
    let mut section = String::new();
    for line in cityd::city::DEFAULT_CITY_TOML.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let replaced = match (section.as_str(), key) {
            ("[lan]", "addresses") => format!("addresses = [\"{lan}\"]"),
            // The labs use documentation addresses (192.0.2.10, ...) on purpose.
            ("[lan]", "allow_test_ranges") => "allow_test_ranges = true".to_string(),
            ("[turn]", "port") => format!("port = {turn_port}"),
            ("[turn]", "relay_min") => format!("relay_min = {relay_min}"),
            ("[turn]", "relay_max") => format!("relay_max = {relay_max}"),
            _ => line.to_string(),
        };
        text.push_str(&replaced);
        text.push('\n');
    }
    for expected in [
        format!("addresses = [\"{lan}\"]"),
        format!("port = {turn_port}"),
        format!("relay_min = {relay_min}"),
    ] {
        assert!(
            text.contains(&expected),
            "the default city changed shape:\n{text}"
        );
    }
    text
}

/// A scratch state dir with a vault (`cityd secrets ensure`) and a city file.
pub struct Lab {
    pub scratch: Scratch,
    pub city: PathBuf,
}

impl Lab {
    pub fn new(lan: &str, turn_port: u16, relay_min: u16, relay_max: u16) -> Self {
        let scratch = Scratch::new();
        let city = scratch.write(
            "city.toml",
            &city_toml(lan, turn_port, relay_min, relay_max),
        );
        scratch
            .cityd()
            .args(["secrets", "ensure"])
            .assert()
            .success();
        Self { scratch, city }
    }

    /// The vault's TURN secret (the test hands it to coturn).
    pub fn secret(&self) -> String {
        std::fs::read_to_string(
            self.scratch
                .state()
                .join("secrets")
                .join("turn-static-auth-secret"),
        )
        .expect("the vault holds the TURN secret")
        .trim_end()
        .to_string()
    }

    /// `cityd --city <lab> --state-dir <lab> ARGS` as a plain command, optionally inside a namespace.
    pub fn cityd(&self, ns: Option<&Netns>, args: &[&str]) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_cityd"));
        let mut c = match ns {
            Some(ns) => ns.command(bin),
            None => Command::new(bin),
        };
        c.env_remove("CITYD_CITY")
            .env_remove("CITYD_STATE_DIR")
            .arg("--city")
            .arg(&self.city)
            .arg("--state-dir")
            .arg(self.scratch.state())
            .args(args);
        c
    }

    /// Runs `cityd turn probe ARGS --json` and returns (exit code, report).
    pub fn probe(&self, ns: Option<&Netns>, args: &[&str]) -> (i32, serde_json::Value) {
        let mut c = self.cityd(ns, &["turn", "probe", "--json"]);
        c.args(args);
        let out = c.output().expect("run cityd turn probe");
        let code = out.status.code().expect("cityd exited normally");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "cityd turn probe printed no JSON report ({e}); exit {code}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (code, report)
    }
}

/// Step names of a probe report, with their status.
pub fn steps(report: &serde_json::Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .expect("steps array")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn addr_of(report: &serde_json::Value, field: &str) -> SocketAddr {
    report[field]
        .as_str()
        .unwrap_or_else(|| panic!("report has no {field}: {report:#}"))
        .parse()
        .unwrap()
}
