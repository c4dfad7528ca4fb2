//! A TURN fleet for real: two coturn servers in two network namespaces, each run with the
//! configuration `cityd export turn-fleet` wrote for it, reached from a third namespace (the
//! Mattermost host, where Calls media is published). One credential minted by `cityd turn creds`
//! relays through both; both refuse the peers the city's policy denies; and both refuse that same
//! credential once its lifetime has passed on their clocks (restarted under libfaketime, 20 minutes
//! on, so nothing sleeps), while still taking one that lives longer. A credential minted already
//! expired (`--expires-at` in the past) is refused too.

use std::path::Path;

use serde_json::Value;

use crate::common::run_ok;
use crate::turn_harness::{Coturn, Lab, Netns, echo_peer, require_root, steps};

/// The Mattermost host's address: the city's LAN address, which the fleet's peer policy allows.
const MEDIA: &str = "10.98.0.1";
const SERVERS: [&str; 2] = ["10.98.1.2", "10.98.2.2"];

/// `cityd turn creds --json ARGS` written to `path`; returns the credential's JSON.
fn mint(lab: &Lab, path: &Path, args: &[&str]) -> Value {
    let mut c = lab.cityd(None, &["turn", "creds", "--json", "--user", "fleet-tester"]);
    c.args(args);
    let out = run_ok(&mut c);
    std::fs::write(path, &out).unwrap();
    serde_json::from_str(&out).unwrap()
}

fn probe(lab: &Lab, ns: &Netns, server: &str, peer: &str, credential: &Path) -> (i32, Value) {
    lab.probe(
        Some(ns),
        &[
            "--server",
            &format!("{server}:3478"),
            "--peer",
            peer,
            "--credential",
            credential.to_str().unwrap(),
            "--timeout",
            "10s",
        ],
    )
}

#[test]
fn one_credential_relays_through_every_server_of_the_fleet_until_it_expires() {
    require_root();
    let lab = Lab::new(MEDIA, 3478, 61000, 61099);
    let city = std::fs::read_to_string(&lab.city).unwrap().replace(
        "servers = []",
        &format!("servers = [\"{}\", \"{}\"]", SERVERS[0], SERVERS[1]),
    );
    assert!(
        city.contains("servers = [\"10.98.1.2\""),
        "the default city changed shape"
    );
    std::fs::write(&lab.city, city).unwrap();

    let dir = lab.scratch.path().join("fleet");
    let printed = run_ok(&mut lab.cityd(
        None,
        &["export", "turn-fleet", "--out", dir.to_str().unwrap()],
    ));
    assert!(!printed.contains(&lab.secret()), "the secret is on stdout");
    assert!(
        printed.contains("turnserver-2.conf  (holds secrets, 0600)"),
        "{printed}"
    );
    let ice: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("ice-servers.json")).unwrap())
            .unwrap();
    assert_eq!(
        ice[0]["urls"],
        serde_json::json!([
            "turn:10.98.1.2:3478?transport=udp",
            "turn:10.98.1.2:3478?transport=tcp",
            "turn:10.98.2.2:3478?transport=udp",
            "turn:10.98.2.2:3478?transport=tcp",
        ])
    );
    let secret_line = format!("static-auth-secret={}", lab.secret());
    for i in 1..=2 {
        let conf = std::fs::read_to_string(dir.join(format!("turnserver-{i}.conf"))).unwrap();
        assert!(
            conf.lines().any(|l| l == secret_line),
            "server {i} shares the secret"
        );
        let path = dir.join(format!("turnserver-{i}.conf"));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            conf.lines()
                .any(|l| l == format!("allowed-peer-ip={MEDIA}"))
        );
    }

    // The Mattermost host, with a veth to each TURN server's namespace.
    let mm = Netns::new("mm");
    mm.addr("lo", &format!("{MEDIA}/32"));
    let mut fleet = Vec::new();
    for (i, server) in SERVERS.iter().enumerate() {
        let ns = Netns::new(&format!("turn{}", i + 1));
        let link = format!("t{}", i + 1);
        mm.veth(&link, &ns, "eth0");
        mm.addr(&link, &format!("10.98.{}.1/24", i + 1));
        ns.addr("eth0", &format!("{server}/24"));
        ns.ip(&["route", "add", MEDIA, "via", &format!("10.98.{}.1", i + 1)]);
        let coturn = Coturn::in_netns(&ns, &dir.join(format!("turnserver-{}.conf", i + 1)), 3478);
        fleet.push((ns, coturn));
    }
    let _peer = echo_peer(Some(&mm), MEDIA, 7000, lab.scratch.path());
    let peer = format!("{MEDIA}:7000");

    let valid = lab.scratch.path().join("valid.json");
    let minted = mint(&lab, &valid, &["--ttl", "10m"]);
    let username = minted["username"].as_str().unwrap();
    assert!(username.ends_with(":fleet-tester"));
    for ((_, coturn), server) in fleet.iter().zip(SERVERS) {
        let (code, report) = probe(&lab, &mm, server, &peer, &valid);
        assert_eq!(
            code,
            0,
            "{server}: {report:#}\ncoturn log:\n{}",
            coturn.log_text()
        );
        assert_eq!(
            report["username"], username,
            "{server} used the minted credential"
        );
        assert_eq!(report["server"], format!("{server}:3478"));
        assert!(
            report["relayed"].as_str().unwrap().starts_with(server),
            "{server}: {report:#}"
        );
    }

    // The peers the city's policy denies, with the valid credential: 403 from both.
    for server in SERVERS {
        for denied in [
            "127.0.0.1:7",
            "10.0.0.1:7",
            "192.168.0.1:7",
            "169.254.169.254:80",
        ] {
            let (code, report) = probe(&lab, &mm, server, denied, &valid);
            assert_eq!(code, 12, "{server} -> {denied}: {report:#}");
            assert_eq!(report["verdict"], "peer-forbidden");
            let names: Vec<String> = steps(&report).into_iter().map(|(n, _)| n).collect();
            assert!(
                names.contains(&"create-permission".to_string()),
                "{names:?}"
            );
        }
    }
    for (ns, coturn) in &fleet {
        let log = coturn.log_text();
        assert!(
            log.contains("A peer IP 169.254.169.254 denied"),
            "{}: {log}",
            ns.name
        );
    }

    // The very same credential after its lifetime: both servers restarted with their clocks 20
    // minutes on (libfaketime; the credential lives 10), so no test waits it out.
    let faketime = faketime_library();
    let moved_on = [
        ("LD_PRELOAD", faketime.as_str()),
        ("FAKETIME", "+20m"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    let namespaces: Vec<Netns> = fleet
        .into_iter()
        .map(|(ns, coturn)| {
            drop(coturn); // stopped by its PID before the later one binds the port
            ns
        })
        .collect();
    let fleet: Vec<(&Netns, Coturn)> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let conf = dir.join(format!("turnserver-{}.conf", i + 1));
            (ns, Coturn::in_netns_with_env(ns, &conf, 3478, &moved_on))
        })
        .collect();
    for ((_, coturn), server) in fleet.iter().zip(SERVERS) {
        let (code, report) = probe(&lab, &mm, server, &peer, &valid);
        assert_eq!(
            code,
            11,
            "{server}: {report:#}\ncoturn log:\n{}",
            coturn.log_text()
        );
        assert_eq!(report["verdict"], "unauthorized", "{server}");
        assert_eq!(report["username"], username);
    }
    // The moved-on servers still take a credential that lives past their clock: the refusal above
    // is the expiry, nothing else.
    let later = lab.scratch.path().join("later.json");
    mint(
        &lab,
        &later,
        &["--expires-at", &(unix_now() + 3600).to_string()],
    );
    for ((_, coturn), server) in fleet.iter().zip(SERVERS) {
        let (code, report) = probe(&lab, &mm, server, &peer, &later);
        assert_eq!(code, 0, "{server}: {report:#}\n{}", coturn.log_text());
    }

    // A credential minted already expired by the real clock (an explicit expiry in the past):
    // refused as well, and the probe's diagnosis, which reads the expiry, says why.
    let expired = lab.scratch.path().join("expired.json");
    let past = unix_now() - 60;
    let minted = mint(&lab, &expired, &["--expires-at", &past.to_string()]);
    assert_eq!(minted["expires_at"], past);
    for server in SERVERS {
        let (code, report) = probe(&lab, &mm, server, &peer, &expired);
        assert_eq!(code, 11, "{server}: {report:#}");
        assert_eq!(report["verdict"], "unauthorized", "{server}: {report:#}");
        let diagnosis = report["diagnosis"].as_str().unwrap();
        assert!(diagnosis.contains("expired"), "{server}: {diagnosis}");
    }
}

/// libfaketime's preload library; a missing one fails the test with the package to install.
fn faketime_library() -> String {
    for arch in ["x86_64-linux-gnu", "aarch64-linux-gnu"] {
        let path = format!("/usr/lib/{arch}/faketime/libfaketime.so.1");
        if Path::new(&path).exists() {
            return path;
        }
    }
    panic!(
        "libfaketime is required by this test; run scripts/test.sh (it installs libfaketime) or `apt-get install libfaketime`"
    );
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
