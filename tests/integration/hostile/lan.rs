//! Defect 5: a literal `lan.addresses` entry can no longer open coturn's deny-list. Every address
//! becomes an `allowed-peer-ip` line (which overrides the deny-list) and a SAN, so the forms the
//! red-team pass used are refused by `config check` naming the field, no coturn config can be
//! rendered with them, and coturn (real, in a network namespace) refuses a relay to the metadata
//! address with 403 even while an echo peer listens there.

use std::time::Duration;

use super::*;
use crate::turn_harness::{Coturn, Lab, Netns, echo_peer, require_root};

const LIMIT: Duration = Duration::from_secs(30);

/// The forms issue 12 found accepted, and a few more spellings of the same ranges.
const REFUSED: &[&str] = &[
    "169.254.169.254",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "255.255.255.255",
    "0.0.0.1",
    "fe80::1",
    "127.0.0.1",
    "::1",
    "0.0.0.0",
    "224.0.0.1",
    "ff02::1",
    "fd00:ec2::254",
];

fn city_with(s: &Scratch, addresses: &[&str], allow_test_ranges: bool) -> PathBuf {
    let list: Vec<String> = addresses.iter().map(|a| format!("{a:?}")).collect();
    // The opt-in is written only when wanted: false is the default.
    let opt_in = if allow_test_ranges {
        "allow_test_ranges = true\n"
    } else {
        ""
    };
    s.write(
        "city.toml",
        &format!("[lan]\naddresses = [{}]\n{opt_in}", list.join(", ")),
    )
}

#[test]
fn config_check_and_render_refuse_addresses_that_would_open_the_deny_list() {
    let s = ensured();
    for &bad in REFUSED {
        // Listed after a good address: the good one must not hide the bad one.
        let city = city_with(&s, &["10.20.30.40", bad], false);
        let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(code(&out), 2, "{bad}: {all}");
        assert!(all.contains("lan.addresses[1]"), "{bad}: {all}");
        let conf = s.path().join("turnserver.conf");
        let out = finishes(
            cityd_cmd(
                &s,
                Some(&city),
                &["render", "coturn", "--out", conf.to_str().unwrap()],
            ),
            LIMIT,
        );
        assert_eq!(code(&out), 2, "render with {bad}: {}", stderr(&out));
        assert!(!conf.exists(), "{bad}: a coturn config was rendered");
        let out = finishes(
            cityd_cmd(&s, Some(&city), &["pki", "ensure", "--dry-run"]),
            LIMIT,
        );
        assert_eq!(code(&out), 2, "pki with {bad}: {}", stderr(&out));
    }
}

#[test]
fn documentation_ranges_need_the_explicit_opt_in() {
    let s = ensured();
    for doc in ["192.0.2.10", "198.51.100.7", "203.0.113.9", "2001:db8::20"] {
        let city = city_with(&s, &[doc], false);
        let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(code(&out), 2, "{doc}: {all}");
        assert!(
            all.contains("lan.addresses[0]") && all.contains("lan.allow_test_ranges"),
            "{all}"
        );
        let city = city_with(&s, &[doc], true);
        let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
        assert_eq!(code(&out), 0, "{doc} with the opt-in: {}", stderr(&out));
    }
    // An IPv4-mapped LAN address is normalised to the IPv4 address it carries.
    let city = city_with(&s, &["::ffff:10.20.30.40"], false);
    let conf = s.path().join("turnserver.conf");
    let out = finishes(
        cityd_cmd(
            &s,
            Some(&city),
            &["render", "coturn", "--out", conf.to_str().unwrap()],
        ),
        LIMIT,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("allowed-peer-ip=10.20.30.40\n"), "{text}");
    assert!(!text.contains("allowed-peer-ip=::ffff:"), "{text}");
}

/// coturn run with the rendered config in a namespace where 169.254.169.254 is a local address
/// with an echo peer on it: the relay there is refused (403) and the peer hears nothing. The same
/// config with the `allowed-peer-ip=169.254.169.254` line a city listing that address used to
/// produce relays to it, which shows the refusal is the rule at work and not the lab.
#[test]
fn coturn_with_the_rendered_config_refuses_a_relay_to_the_metadata_address() {
    require_root();
    let lab = Lab::new("10.97.0.1", 3478, 61200, 61299);
    let conf = lab.scratch.path().join("turnserver.conf");
    let out = lab
        .cityd(None, &["render", "coturn", "--out", conf.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(!text.contains("allowed-peer-ip=169.254"), "{text}");
    let ns = Netns::new("meta");
    ns.veth("lan0", &ns, "lan1");
    ns.addr("lan0", "10.97.0.1/24");
    ns.addr("lan0", "169.254.169.254/32");
    let _peer = echo_peer(Some(&ns), "169.254.169.254", 5555, lab.scratch.path());
    let peer = "169.254.169.254:5555";
    {
        let coturn = Coturn::in_netns(&ns, &conf, 3478);
        let (code, report) = lab.probe(Some(&ns), &["--peer", peer]);
        assert_eq!(code, 12, "{report:#}\n{}", coturn.log_text());
        assert_eq!(report["verdict"], "peer-forbidden", "{report:#}");
        assert_eq!(report["steps"][3]["error_code"], 403, "{report:#}");
        assert!(
            coturn
                .log_text()
                .contains("A peer IP 169.254.169.254 denied")
        );
    }
    // The control: what the old rendering of a city listing the metadata address allowed.
    let opened = lab.scratch.path().join("opened.conf");
    std::fs::write(&opened, format!("{text}allowed-peer-ip=169.254.169.254\n")).unwrap();
    let coturn = Coturn::in_netns(&ns, &opened, 3478);
    let (code, report) = lab.probe(Some(&ns), &["--peer", peer]);
    assert_eq!(code, 0, "{report:#}\n{}", coturn.log_text());
    assert_eq!(report["verdict"], "relay-works", "{report:#}");
}
