//! `cityd status` against a managed city on the Docker engine: all lines free of red (green
//! where this machine allows), then each fault turns its own line red with its fix and exit 1:
//! the LAN address moved (a city file with another address), coturn stopped, PostgreSQL stopped,
//! a container restarting, the relay's target down with a backlog.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::run_ok;
use crate::docker::{Lab, TestLan};

/// `cityd status --json` with the lab's city (or `city`), its exit code and report.
fn status(lab: &Lab, city: Option<&std::path::Path>) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cityd"))
        .env_remove("CITYD_CITY")
        .env_remove("CITYD_STATE_DIR")
        .arg("--state-dir")
        .arg(lab.scratch.state())
        .arg("--city")
        .arg(city.unwrap_or(&lab.city))
        .args(["status", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), report)
}

/// The line of `area` whose subject starts with `subject`.
fn line<'a>(report: &'a Value, area: &str, subject: &str) -> &'a Value {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["area"] == area && l["subject"].as_str().unwrap().starts_with(subject))
        .unwrap_or_else(|| panic!("no line {area} {subject} in {report:#}"))
}

fn reds(report: &Value) -> Vec<String> {
    report["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["level"] == "red")
        .map(|l| format!("{} {}: {}", l["area"], l["subject"], l["text"]))
        .collect()
}

fn docker(args: &[&str]) {
    run_ok(Command::new("docker").args(args));
}

/// Polls `docker inspect` until `ready` holds for the container (a condition, not a sleep).
fn until(lab: &Lab, name: &str, what: &str, ready: impl Fn(&Value) -> bool) {
    let started = Instant::now();
    while !ready(&lab.inspect(name)) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{name} never became {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn status_is_free_of_red_on_a_healthy_city_and_each_fault_turns_its_line_red() {
    let mut lab = Lab::managed();
    let (intake, metrics) = (free_port(), free_port());
    lab.edit_city(
        "listen = \"0.0.0.0:9180\"",
        &format!("listen = \"127.0.0.1:{intake}\""),
    );
    lab.edit_city(
        "metrics = \"127.0.0.1:9181\"",
        &format!("metrics = \"127.0.0.1:{metrics}\""),
    );
    lab.up(&[]);
    let healthy = |r: &Value| r["State"]["Health"]["Status"] == "healthy";

    // Healthy: exit 0, nothing red; every check this machine can satisfy is green.
    let (code, report) = status(&lab, None);
    assert_eq!(reds(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(code, 0);
    for (area, subject) in [
        ("container", lab.postgres().as_str()),
        ("container", lab.coturn().as_str()),
        ("container", lab.mattermost().as_str()),
        ("mattermost", "ping"),
        ("mattermost", "version"),
        ("postgres", "server"),
        ("postgres", "database mattermost"),
        ("postgres", "connections"),
        ("coturn", "turn"),
        ("certificate", "server"),
        ("certificate", "lan address"),
        ("vault", ""),
    ] {
        assert_eq!(
            line(&report, area, subject)["level"],
            "green",
            "{area} {subject}: {report:#}"
        );
    }
    assert!(
        line(&report, "mattermost", "version")["text"]
            .as_str()
            .unwrap()
            .starts_with("11.8.5")
    );
    assert!(
        line(&report, "postgres", "server")["text"]
            .as_str()
            .unwrap()
            .contains("PostgreSQL 17")
    );
    assert!(
        line(&report, "coturn", "turn")["text"]
            .as_str()
            .unwrap()
            .contains("round trip in")
    );
    assert!(
        line(&report, "backup", "last")["text"]
            .as_str()
            .unwrap()
            .starts_with("no backups in "),
        "{report}"
    );

    // The LAN address moved: a city file with another address.
    let other = TestLan::new();
    let moved = lab.scratch.write(
        "moved.toml",
        &lab.city_text.replace(
            &format!("addresses = [\"{}\"]", lab.lan.ip),
            &format!("addresses = [\"{}\"]", other.ip),
        ),
    );
    let (code, report) = status(&lab, Some(&moved));
    assert_eq!(code, 1);
    let cert = line(&report, "certificate", "lan address");
    assert_eq!(cert["level"], "red");
    assert!(
        cert["text"]
            .as_str()
            .unwrap()
            .contains(&other.ip.to_string())
    );
    assert!(cert["fix"].as_str().unwrap().contains("cityd up"));

    // coturn stopped.
    docker(&["stop", &lab.coturn()]);
    let (code, report) = status(&lab, None);
    assert_eq!(code, 1);
    assert_eq!(
        line(&report, "coturn", "turn")["level"],
        "red",
        "{report:#}"
    );
    assert!(
        line(&report, "coturn", "turn")["fix"]
            .as_str()
            .unwrap()
            .contains("cityd up")
    );
    assert_eq!(line(&report, "container", &lab.coturn())["level"], "red");
    docker(&["start", &lab.coturn()]);
    until(&lab, &lab.coturn(), "healthy", healthy);

    // PostgreSQL stopped.
    docker(&["stop", &lab.postgres()]);
    let (code, report) = status(&lab, None);
    assert_eq!(code, 1);
    let pg = line(&report, "postgres", "server");
    assert_eq!(pg["level"], "red", "{report:#}");
    assert!(pg["fix"].as_str().unwrap().contains("cityd up"));
    docker(&["start", &lab.postgres()]);
    until(&lab, &lab.postgres(), "healthy", healthy);

    // A container restarting: Mattermost's process dies and the engine restarts it.
    let pid = lab.inspect(&lab.mattermost())["State"]["Pid"]
        .as_i64()
        .unwrap();
    run_ok(Command::new("kill").args(["-9", &pid.to_string()]));
    until(&lab, &lab.mattermost(), "restarted", |c| {
        c["RestartCount"].as_i64().unwrap_or(0) >= 1
    });
    let (code, report) = status(&lab, None);
    assert_eq!(code, 1);
    let mm = line(&report, "container", &lab.mattermost());
    assert_eq!(mm["level"], "red", "{report:#}");
    assert!(mm["fix"].as_str().unwrap().contains("docker logs"), "{mm}");

    // The relay's target down with a backlog: the relay runs, Mattermost stops, an alert comes in.
    until(&lab, &lab.mattermost(), "healthy", healthy);
    let relay = Relay::start(&lab);
    let (_, report) = status(&lab, None);
    assert_eq!(
        line(&report, "relay", "127.0.0.1")["level"],
        "green",
        "{report:#}"
    );
    docker(&["stop", &lab.mattermost()]);
    relay.post_alert(&lab, intake);
    let started = Instant::now();
    let report = loop {
        let (code, report) = status(&lab, None);
        if line(&report, "relay", "127.0.0.1")["level"] == "red" {
            assert_eq!(code, 1);
            break report;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the relay line never turned red: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let relay_line = line(&report, "relay", "127.0.0.1");
    assert!(
        relay_line["text"].as_str().unwrap().contains("backlog 1"),
        "{relay_line}"
    );
    assert!(
        relay_line["fix"].as_str().unwrap().contains("Mattermost"),
        "{relay_line}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `cityd relay serve` for the lab's city, killed on drop.
struct Relay(std::process::Child);

impl Relay {
    fn start(lab: &Lab) -> Self {
        use std::io::BufRead as _;
        let mut child = lab
            .std_cityd()
            .args(["relay", "serve"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().unwrap().unwrap();
        assert!(ready.starts_with("relay ready"), "{ready}");
        Self(child)
    }

    /// A signed SonarQube quality-gate failure, as SonarQube posts it.
    fn post_alert(&self, lab: &Lab, port: u16) {
        use std::io::{Read as _, Write as _};
        let body =
            std::fs::read(crate::common::fixture("sonarqube/webhook-gate-failed.json")).unwrap();
        let secret = run_ok(
            lab.cityd()
                .args(["secrets", "get", "sonarqube-webhook-secret"]),
        );
        let signature = cityd::relay::signature::Verifier::new(&cityd::secrets::Secret::new(
            secret.trim().to_string(),
        ))
        .sign(&body);
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "POST /sonarqube HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nX-Sonar-Webhook-HMAC-SHA256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(&body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
