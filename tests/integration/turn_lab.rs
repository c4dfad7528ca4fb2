//! TURN in network namespaces the tests create (root): coturn run with the configuration `cityd
//! render coturn` writes, its peer policy and a firewalled relay range, and the double-NAT lab —
//! a phone behind a NAT router reaching a "container" behind Docker-style NAT only through the relay.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::run_ok;
use crate::turn_harness::{Coturn, Lab, Netns, addr_of, echo_peer, require_root, steps};

/// Renders coturn's configuration for the lab's city and returns its path.
fn render_coturn(lab: &Lab) -> std::path::PathBuf {
    let conf = lab.scratch.path().join("turnserver.conf");
    run_ok(&mut lab.cityd(None, &["render", "coturn", "--out", conf.to_str().unwrap()]));
    conf
}

/// A namespace holding the city's LAN address (and an IPv6 address, so coturn can hand out an
/// IPv6 relay and the IPv4-mapped deny range is exercised), with coturn on it.
fn relay_namespace(lab: &Lab) -> (Netns, Coturn) {
    let conf = render_coturn(lab);
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("allowed-peer-ip=10.99.0.1"), "{text}");
    assert!(text.contains("use-auth-secret"), "{text}");
    let ns = Netns::new("relay");
    ns.veth("lan0", &ns, "lan1");
    ns.addr("lan0", "10.99.0.1/24");
    ns.addr("lan0", "fd99::1/64");
    let coturn = Coturn::in_netns(&ns, &conf, 3478);
    (ns, coturn)
}

#[test]
fn rendered_coturn_config_relays_to_the_lan_address_and_refuses_private_peers() {
    require_root();
    let lab = Lab::new("10.99.0.1", 3478, 61000, 61099);
    let (ns, coturn) = relay_namespace(&lab);

    // The default probe: the city's LAN address on turn.port, the vault's secret, our own peer
    // on the LAN address — the Calls media address, which allowed-peer-ip lets through.
    let (code, report) = lab.probe(Some(&ns), &[]);
    assert_eq!(code, 0, "{report:#}\ncoturn log:\n{}", coturn.log_text());
    assert_eq!(report["server"], "10.99.0.1:3478");
    let relayed = addr_of(&report, "relayed");
    assert_eq!(relayed.ip().to_string(), "10.99.0.1");
    assert!((61000..=61099).contains(&relayed.port()), "{relayed}");
    assert_eq!(addr_of(&report, "peer").ip().to_string(), "10.99.0.1");
    assert_eq!(
        report["peer_heard_from"],
        serde_json::json!([relayed.to_string()])
    );

    // Private, loopback, IPv4-mapped loopback and metadata peers: 403 at CreatePermission, so the
    // probe sends them nothing (and nothing could leave this namespace anyway).
    for peer in [
        "127.0.0.1:7",
        "[::ffff:127.0.0.1]:7",
        "10.0.0.1:7",
        "172.16.0.1:7",
        "192.168.0.1:7",
        "169.254.169.254:80",
    ] {
        let (code, report) = lab.probe(Some(&ns), &["--peer", peer]);
        assert_eq!(code, 12, "{peer}: {report:#}");
        assert_eq!(report["verdict"], "peer-forbidden", "{peer}");
        let names: Vec<String> = steps(&report).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "binding",
                "allocate-challenge",
                "allocate",
                "create-permission",
                "refresh"
            ],
            "{peer}"
        );
        assert_eq!(report["steps"][3]["error_code"], 403, "{peer}");
        if peer.starts_with('[') {
            // The IPv4-mapped check ran against an IPv6 relay (CVE-2026-27624's precondition).
            assert!(addr_of(&report, "relayed").is_ipv6(), "{report:#}");
        }
    }
    let log = coturn.log_text();
    assert!(log.contains("A peer IP ::ffff:127.0.0.1 denied"), "{log}");
    assert!(log.contains("A peer IP 169.254.169.254 denied"), "{log}");
}

#[test]
fn firewalled_relay_ports_give_no_data_back_and_say_where_it_got_lost() {
    require_root();
    let lab = Lab::new("10.99.0.1", 3478, 61000, 61099);
    let (ns, coturn) = relay_namespace(&lab);
    // Drop what peers send to the relay ports (above the ephemeral range, so nothing else matches).
    ns.exec(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "--dport",
        "61000:61099",
        "-j",
        "DROP",
    ]);
    let (code, report) = lab.probe(Some(&ns), &[]);
    assert_eq!(code, 14, "{report:#}\n{}", coturn.log_text());
    assert_eq!(report["verdict"], "no-data-back");
    let relayed = addr_of(&report, "relayed");
    // Our peer heard the relay, so the loss is on the way back into the relay ports.
    assert_eq!(
        report["peer_heard_from"],
        serde_json::json!([relayed.to_string()])
    );
    let diagnosis = report["diagnosis"].as_str().unwrap();
    assert!(
        diagnosis.contains("drops inbound UDP to the relay ports"),
        "{diagnosis}"
    );
    assert_eq!(
        steps(&report).last().unwrap(),
        &("refresh".into(), "ok".into())
    );
}

/// Sends "ping" over UDP from inside `ns` and returns what came back within 2 s, if anything.
fn udp_ping(ns: &Netns, to: &str, port: u16) -> Option<String> {
    let script = format!("exec 3<>/dev/udp/{to}/{port}; printf ping >&3; head -c 4 <&3");
    let out = ns.run_raw(&["timeout", "2", "bash", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Polls until a UDP socket listens on `port` inside `ns`.
fn wait_udp_listener(ns: &Netns, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let filter = format!("sport = :{port}");
    while ns.output(&["ss", "-Hlnu", &filter]).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on UDP {port} in {}",
            ns.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn double_nat_lab_phone_reaches_the_container_only_through_the_relay() {
    require_root();
    // LAN 10.77.0.0/24: host (coturn, Docker-style NAT) at .1, the home router's WAN side at .2.
    // phone 192.168.50.2 behind the router; container 172.20.0.2 behind the host's bridge.
    let lab = Lab::new("10.77.0.1", 3478, 61000, 61099);
    let conf = render_coturn(&lab);
    let phone = Netns::new("phone");
    let router = Netns::new("router");
    let host = Netns::new("host");
    let container = Netns::new("ctr");

    phone.veth("eth0", &router, "lan0");
    phone.addr("eth0", "192.168.50.2/24");
    router.addr("lan0", "192.168.50.1/24");
    phone.ip(&["route", "add", "default", "via", "192.168.50.1"]);

    router.veth("wan0", &host, "lan0");
    router.addr("wan0", "10.77.0.2/24");
    host.addr("lan0", "10.77.0.1/24");
    router.sysctl("net.ipv4.ip_forward", "1");
    router.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "wan0",
        "-j",
        "MASQUERADE",
    ]);

    host.veth("br0", &container, "eth0");
    host.addr("br0", "172.20.0.1/24");
    container.addr("eth0", "172.20.0.2/24");
    container.ip(&["route", "add", "default", "via", "172.20.0.1"]);
    host.sysctl("net.ipv4.ip_forward", "1");
    // Docker's port publishing: 10.77.0.1:40999/udp -> 172.20.0.2:5000, from outside
    // (PREROUTING) and from the host itself (OUTPUT, where the relay's packets come from).
    for chain in ["PREROUTING", "OUTPUT"] {
        host.exec(&[
            "iptables",
            "-t",
            "nat",
            "-A",
            chain,
            "-d",
            "10.77.0.1",
            "-p",
            "udp",
            "--dport",
            "40999",
            "-j",
            "DNAT",
            "--to-destination",
            "172.20.0.2:5000",
        ]);
    }
    host.exec(&[
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-s",
        "172.20.0.0/24",
        "!",
        "-o",
        "br0",
        "-j",
        "MASQUERADE",
    ]);

    let _peer = echo_peer(Some(&container), "172.20.0.2", 5000, lab.scratch.path());
    wait_udp_listener(&container, 5000);
    let coturn = Coturn::in_netns(&host, &conf, 3478);

    // The container's private address answers on its own bridge...
    assert_eq!(udp_ping(&host, "172.20.0.2", 5000).as_deref(), Some("ping"));
    // ...but a phone behind its NAT cannot send to it: that is the blog's broken call.
    assert_eq!(udp_ping(&phone, "172.20.0.2", 5000), None);

    // Through the relay on the host's LAN address, to the container's published port, it works.
    for transport in ["udp", "tcp"] {
        let (code, report) = lab.probe(
            Some(&phone),
            &["--transport", transport, "--peer", "10.77.0.1:40999"],
        );
        assert_eq!(
            code,
            0,
            "{transport}: {report:#}\ncoturn:\n{}",
            coturn.log_text()
        );
        assert_eq!(report["server"], "10.77.0.1:3478");
        assert_eq!(addr_of(&report, "local").ip().to_string(), "192.168.50.2");
        // The server sees the router's WAN address: the phone is NATed.
        assert_eq!(addr_of(&report, "mapped").ip().to_string(), "10.77.0.2");
        let relayed: SocketAddr = addr_of(&report, "relayed");
        assert_eq!(relayed.ip().to_string(), "10.77.0.1");
        assert_eq!(report["peer"], "10.77.0.1:40999");
        let names: Vec<String> = steps(&report).into_iter().map(|(n, _)| n).collect();
        assert!(names.contains(&"send-data".into()) && names.contains(&"channel-data".into()));
    }

    // Everything this test created goes away with its guards.
    let names: Vec<String> = [&phone, &router, &host, &container]
        .iter()
        .map(|n| n.name.clone())
        .collect();
    drop(coturn);
    drop(_peer);
    drop((phone, router, host, container));
    let listed = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    for name in names {
        assert!(!listed.contains(&name), "{name} still exists:\n{listed}");
    }
}
