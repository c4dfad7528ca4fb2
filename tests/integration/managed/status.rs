//! `cityd status` against a managed city on the Docker engine: all lines free of red (green
//! where this machine allows), then each fault turns its own line red with its fix and exit 1:
//! the LAN address moved (a city file with another address), coturn stopped, PostgreSQL stopped,
//! a container restarting.

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
    let lab = Lab::managed();
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
    assert_eq!(line(&report, "backup", "last")["text"], "no backups yet");

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
}
