//! coturn's turnserver.conf: TURN REST API authentication (`use-auth-secret`), the relay range, and
//! a peer policy that keeps the relay from becoming an open door into the LAN (deny-list from
//! `coturn-peer-policy.json`, the city's LAN addresses allowed so Calls media still flows).

use std::sync::OnceLock;

use serde::Deserialize;

use crate::render::Inputs;
use crate::secrets::Secret;

const PEER_POLICY_JSON: &str = include_str!("coturn-peer-policy.json");

#[derive(Debug, Deserialize)]
pub struct PeerPolicy {
    pub denied: Vec<DeniedRange>,
}

#[derive(Debug, Deserialize)]
pub struct DeniedRange {
    /// coturn syntax: `IP` or `IP-IP` (coturn refuses CIDR).
    pub range: String,
    pub why: String,
}

/// The deny-list shared with the NixOS module.
pub fn peer_policy() -> &'static PeerPolicy {
    static POLICY: OnceLock<PeerPolicy> = OnceLock::new();
    POLICY.get_or_init(|| {
        serde_json::from_str(PEER_POLICY_JSON).expect("coturn-peer-policy.json is valid")
    })
}

/// How the static auth secret reaches coturn.
pub enum SecretSource<'a> {
    /// Written into the file (the file is then 0600, like the vault).
    Inline(&'a Secret),
    /// Left out: the service manager supplies it (NixOS `static-auth-secret-file`).
    External,
}

pub fn render(inputs: &Inputs, secret: SecretSource) -> String {
    let city = inputs.city;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push('\n');
    };
    line(&format!(
        "# Rendered by cityd from {}. Do not edit: `cityd render coturn` rewrites it.",
        inputs.origin
    ));
    line(&format!("listening-port={}", city.turn.port));
    line(&format!("realm={}", city.turn_realm()));
    line(&format!("min-port={}", city.turn.relay_min));
    line(&format!("max-port={}", city.turn.relay_max));
    line(
        "# TURN REST API: credentials are <expiry>:<user> with an HMAC of the static auth secret,",
    );
    line("# the scheme Mattermost Calls mints. Static --user accounts are ignored in this mode.");
    line("use-auth-secret");
    match secret {
        SecretSource::Inline(s) => line(&format!("static-auth-secret={}", s.expose())),
        SecretSource::External => line(
            "# static-auth-secret is supplied by the service manager (static-auth-secret-file)",
        ),
    }
    line("fingerprint");
    line("no-cli");
    line("no-multicast-peers");
    line(
        "# Calls relays UDP media only; TCP relaying (RFC 6062) would let clients open TCP streams to LAN hosts.",
    );
    line("no-tcp-relay");
    line("no-rfc5780");
    line("no-software-attribute");
    line("stale-nonce=600");
    line("max-allocate-lifetime=3600");
    line("user-quota=12");
    line("total-quota=1200");
    line("log-file=stdout");
    line("# Peers the relay must never reach (coturn takes ranges as a-b, not CIDR).");
    for denied in &peer_policy().denied {
        line(&format!("# {}", denied.why));
        line(&format!("denied-peer-ip={}", denied.range));
    }
    line(
        "# The city's LAN addresses, where Calls media is published; allow wins over deny in coturn.",
    );
    for ip in inputs.lan {
        line(&format!("allowed-peer-ip={ip}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DefaultCity;

    #[test]
    fn denies_the_lan_ranges_and_the_mapped_bypass_but_allows_the_city() {
        let city = DefaultCity::new();
        let inputs = city.inputs();
        let secret = Secret::new("ab".repeat(32));
        let conf = render(&inputs, SecretSource::Inline(&secret));
        for needle in [
            "denied-peer-ip=10.0.0.0-10.255.255.255",
            "denied-peer-ip=127.0.0.0-127.255.255.255",
            "denied-peer-ip=169.254.0.0-169.254.255.255",
            "denied-peer-ip=100.64.0.0-100.127.255.255",
            "denied-peer-ip=::1",
            "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255",
            "denied-peer-ip=fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "denied-peer-ip=fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "allowed-peer-ip=192.168.1.20",
            "use-auth-secret",
            "realm=mattermost.cicd.local",
            "min-port=49152",
            "max-port=65535",
        ] {
            assert!(conf.lines().any(|l| l == needle), "missing {needle}");
        }
        assert!(
            !conf
                .lines()
                .any(|l| l.contains("-peer-ip=") && l.contains('/')),
            "coturn refuses CIDR"
        );
        let external = render(&inputs, SecretSource::External);
        assert!(!external.contains(secret.expose()));
    }

    #[test]
    fn every_denied_range_is_ordered_low_to_high() {
        for d in &peer_policy().denied {
            let mut parts = d.range.split('-');
            let lo: std::net::IpAddr = parts
                .next()
                .unwrap()
                .parse()
                .unwrap_or_else(|_| panic!("{}", d.range));
            if let Some(hi) = parts.next() {
                let hi: std::net::IpAddr = hi.parse().unwrap();
                assert_eq!(lo.is_ipv4(), hi.is_ipv4(), "{}", d.range);
                assert!(lo <= hi, "{}", d.range);
            }
        }
    }
}
