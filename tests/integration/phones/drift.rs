//! The certificate follows the LAN: the city names an interface whose address moves from A to B
//! (DHCP gave the server a new lease). The next `cityd up` re-issues the leaf for B with the same
//! CA, re-renders what names the address, recreates the Mattermost container once, and a second
//! run changes nothing. On the real Docker engine with the local images, so the interface lives
//! in the host's namespace, where Docker publishes ports; it is this test's own veth pair.

use std::net::Ipv4Addr;
use std::process::Command;

use serde_json::Value;

use crate::common::{run_ok, stdout_of_success};
use crate::docker::Lab;

/// A veth pair in the host namespace whose one end carries a /32 that the test moves; deleted on drop.
struct MovingLan {
    link: String,
}

impl MovingLan {
    fn new(ip: Ipv4Addr) -> Self {
        let id = format!("{:x}", std::process::id() ^ (ip.octets()[3] as u32) << 16);
        let link = format!("cdm{}", &id[id.len().saturating_sub(8)..]);
        let peer = format!("cdn{}", &id[id.len().saturating_sub(8)..]);
        run_ok(
            Command::new("ip").args(["link", "add", &link, "type", "veth", "peer", "name", &peer]),
        );
        let lan = Self { link };
        run_ok(Command::new("ip").args(["link", "set", &lan.link, "up"]));
        run_ok(Command::new("ip").args(["link", "set", &peer, "up"]));
        lan.set(None, ip);
        lan
    }

    /// Moves the interface's address from `from` to `to`.
    fn set(&self, from: Option<Ipv4Addr>, to: Ipv4Addr) {
        if let Some(from) = from {
            run_ok(Command::new("ip").args([
                "addr",
                "del",
                &format!("{from}/32"),
                "dev",
                &self.link,
            ]));
        }
        run_ok(Command::new("ip").args(["addr", "add", &format!("{to}/32"), "dev", &self.link]));
    }
}

impl Drop for MovingLan {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

fn outcomes(report: &Value) -> Vec<(String, String, String)> {
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

fn outcome(report: &Value, step: &str, subject_contains: &str) -> String {
    outcomes(report)
        .into_iter()
        .find(|(s, subject, _)| s == step && subject.contains(subject_contains))
        .map(|(_, _, o)| o)
        .unwrap_or_else(|| panic!("no step {step} {subject_contains} in {report:#}"))
}

fn leaf_text(lab: &Lab) -> String {
    run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(lab.scratch.state().join("pki/server.pem")),
    )
}

fn ca_fingerprint(lab: &Lab) -> String {
    let der = cityd::pki::read_certificate(&lab.scratch.state().join("pki/ca.pem")).unwrap();
    cityd::pki::fingerprint(&der)
}

#[test]
fn a_moved_lan_address_reissues_the_leaf_rerenders_and_recreates_mattermost_once() {
    let mut lab = Lab::new();
    // Two addresses of one /24 next to the lab's own (10.213.0.0/16 is the lab's; 10.214 is ours).
    let [_, _, c, d] = lab.lan.ip.octets();
    let a = Ipv4Addr::new(10, 214, c, d);
    let b = Ipv4Addr::new(10, 214, c, d.wrapping_add(1).max(1));
    let moving = MovingLan::new(a);
    lab.edit_city(
        &format!("addresses = [\"{}\"]", lab.lan.ip),
        &format!("addresses = [\"{}\"]", moving.link),
    );
    let skip = ["--skip-db".to_string(), "--skip-wire".to_string()];
    lab.up(&skip);
    let fingerprint = ca_fingerprint(&lab);
    let mattermost = lab.identity(&lab.mattermost());
    let coturn = lab.identity(&lab.coturn());
    assert!(leaf_text(&lab).contains(&format!("IP Address:{a}")));

    // DHCP moves the server: doctor sees the leaf no longer names the LAN address.
    moving.set(Some(a), b);
    let out = lab.cityd().args(["doctor", "--json"]).output().unwrap();
    let findings: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stale = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "cert-sans-stale")
        .unwrap_or_else(|| panic!("doctor misses the moved address: {findings:#}"));
    assert!(
        stale["problem"]
            .as_str()
            .unwrap()
            .contains(&format!("IP:{b}"))
    );

    let moved = lab.up(&skip);
    assert_eq!(outcome(&moved, "pki", "pki"), "updated");
    let leaf = leaf_text(&lab);
    assert!(leaf.contains(&format!("IP Address:{b}")), "{leaf}");
    assert!(!leaf.contains(&format!("IP Address:{a}")), "{leaf}");
    assert_eq!(ca_fingerprint(&lab), fingerprint, "the CA is kept");
    let verified = stdout_of_success(
        &Command::new("openssl")
            .current_dir(lab.scratch.state().join("pki"))
            .args([
                "verify",
                "-purpose",
                "sslserver",
                "-CAfile",
                "ca.pem",
                "-verify_ip",
            ])
            .arg(b.to_string())
            .arg("server.pem")
            .output()
            .unwrap(),
    );
    assert_eq!(verified.trim(), "server.pem: OK");

    // What names the address is rendered again with B, nowhere with A.
    let env = std::fs::read_to_string(lab.scratch.state().join("render/mattermost.env")).unwrap();
    assert!(
        env.contains(&format!("MM_CALLS_ICE_HOST_OVERRIDE={b}\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!("https://{b}:8065")),
        "CORS origin: {env}"
    );
    assert!(!env.contains(&a.to_string()), "{env}");
    let conf = std::fs::read_to_string(lab.scratch.state().join("render/turnserver.conf")).unwrap();
    assert!(conf.contains(&format!("allowed-peer-ip={b}\n")), "{conf}");
    assert!(!conf.contains(&a.to_string()));

    // Mattermost is recreated (published on B, new env and certificate); coturn too, because its
    // allowed-peer-ip names the address and it reads its configuration only at start.
    assert_eq!(outcome(&moved, "container", &lab.mattermost()), "updated");
    let mattermost_b = lab.inspect(&lab.mattermost());
    assert_ne!(mattermost_b["Id"].as_str().unwrap(), mattermost.0);
    let bindings = mattermost_b["HostConfig"]["PortBindings"].to_string();
    assert!(
        bindings.contains(&b.to_string()) && !bindings.contains(&a.to_string()),
        "{bindings}"
    );
    assert_eq!(outcome(&moved, "container", &lab.coturn()), "updated");
    assert_ne!(lab.identity(&lab.coturn()).0, coturn.0);
    let mattermost_b = lab.identity(&lab.mattermost());
    let coturn_b = lab.identity(&lab.coturn());

    // The next run changes nothing at all.
    let again = lab.up(&skip);
    let changed: Vec<_> = outcomes(&again)
        .into_iter()
        .filter(|(_, _, o)| o != "unchanged" && o != "skipped")
        .collect();
    assert!(changed.is_empty(), "a second run changed {changed:?}");
    assert_eq!(
        lab.identity(&lab.mattermost()),
        mattermost_b,
        "recreated only once"
    );
    assert_eq!(lab.identity(&lab.coturn()), coturn_b);
    assert_eq!(ca_fingerprint(&lab), fingerprint);
}
