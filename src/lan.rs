//! Which LAN address(es) the city advertises, and why: `auto` (the IPv4 address of the interface that
//! holds the default route, read from /proc/net/route), interface names, or literal addresses; and
//! the one rule every such address must pass ([`refusal`]): each becomes an `allowed-peer-ip` of
//! coturn (which overrides its deny-list) and a SAN, so loopback, link-local, metadata, broadcast,
//! unspecified, multicast and (for literals, unless the city allows test ranges) documentation
//! addresses are refused, IPv4-mapped IPv6 forms judged as the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LanError {
    #[error(
        "lan.addresses: \"auto\" found no default route in /proc/net/route; give the interface or address explicitly, e.g. addresses = [\"eth0\"] or [\"192.168.1.20\"]"
    )]
    NoDefaultRoute,
    #[error(
        "lan.addresses: \"auto\" found the default route on {interface}, but {interface} has no IPv4 address; give the address explicitly in lan.addresses"
    )]
    NoAddressOnDefaultInterface { interface: String },
    #[error(
        "lan.addresses: interface {interface} has no usable address (known interfaces: {known}); fix the name in lan.addresses"
    )]
    NoAddressOnInterface { interface: String, known: String },
    #[error(
        "lan.addresses: {address} is {why}; it would open coturn's deny-list to it (allowed-peer-ip) and phones cannot use it: give this host's LAN address"
    )]
    Unusable { address: IpAddr, why: &'static str },
    #[error(
        "cannot list network interfaces to resolve lan.addresses; give the addresses explicitly in lan.addresses"
    )]
    Interfaces(#[source] std::io::Error),
}

/// One resolved address and the reason it was chosen, for `cityd config show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LanAddress {
    pub address: IpAddr,
    pub why: String,
}

/// A network interface address as the resolver sees it; a seam so tests need no real interfaces.
#[derive(Debug, Clone)]
pub struct InterfaceAddr {
    pub interface: String,
    pub address: IpAddr,
}

/// What the machine looks like: its interface addresses and its IPv4 route table text.
pub struct HostView {
    pub interfaces: Vec<InterfaceAddr>,
    pub route_table: String,
}

impl HostView {
    pub fn read() -> Result<Self, LanError> {
        let interfaces = if_addrs::get_if_addrs()
            .map_err(LanError::Interfaces)?
            .into_iter()
            .map(|i| InterfaceAddr {
                interface: i.name.clone(),
                address: i.ip(),
            })
            .collect();
        let route_table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        Ok(Self {
            interfaces,
            route_table,
        })
    }
}

/// Resolves the city's `lan.addresses` entries against the real machine.
pub fn resolve(entries: &[String], policy: Policy) -> Result<Vec<LanAddress>, LanError> {
    resolve_with(entries, policy, &HostView::read()?)
}

/// Resolves entries against a given view of the host; deduplicates while keeping the order given.
pub fn resolve_with(
    entries: &[String],
    policy: Policy,
    host: &HostView,
) -> Result<Vec<LanAddress>, LanError> {
    let mut out: Vec<LanAddress> = Vec::new();
    let mut push = |addr: LanAddress| {
        if !out.iter().any(|a| a.address == addr.address) {
            out.push(addr);
        }
    };
    for entry in entries {
        if entry == "auto" {
            let interface =
                default_route_interface(&host.route_table).ok_or(LanError::NoDefaultRoute)?;
            let address = host
                .interfaces
                .iter()
                .filter(|i| i.interface == interface)
                .find_map(|i| match i.address {
                    IpAddr::V4(v4) if refusal(IpAddr::V4(v4), found_on_host()).is_none() => {
                        Some(v4)
                    }
                    _ => None,
                })
                .ok_or_else(|| LanError::NoAddressOnDefaultInterface {
                    interface: interface.clone(),
                })?;
            push(LanAddress {
                address: IpAddr::V4(address),
                why: format!(
                    "auto: IPv4 address of {interface}, the interface holding the default route"
                ),
            });
        } else if let Ok(given) = entry.parse::<IpAddr>() {
            let address = given.to_canonical();
            if let Some(why) = refusal(address, policy) {
                return Err(LanError::Unusable { address, why });
            }
            push(LanAddress {
                address,
                why: "given literally in lan.addresses".into(),
            });
        } else {
            let mut found = false;
            for i in host.interfaces.iter().filter(|i| &i.interface == entry) {
                // Link-local IPv6 (refused too) needs a scope id no URL can carry.
                let keep = refusal(i.address.to_canonical(), found_on_host()).is_none();
                if keep {
                    found = true;
                    push(LanAddress {
                        address: i.address.to_canonical(),
                        why: format!("address of interface {entry} named in lan.addresses"),
                    });
                }
            }
            if !found {
                let mut known: Vec<_> = host
                    .interfaces
                    .iter()
                    .map(|i| i.interface.as_str())
                    .collect();
                known.sort();
                known.dedup();
                return Err(LanError::NoAddressOnInterface {
                    interface: entry.clone(),
                    known: known.join(", "),
                });
            }
        }
    }
    Ok(out)
}

/// Whether the documentation and benchmarking ranges count as LAN addresses: only when the city
/// says so (`lan.allow_test_ranges = true`), for labs and tests that use them on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    pub allow_test_ranges: bool,
}

/// The rule for an address read from this host's own interfaces (`auto`, interface names): a
/// documentation or benchmarking address configured on a real interface is this host's address
/// (labs and CI networks use those ranges), so only the never-usable ranges are refused. Typed
/// literals are where an example address slips in, so they need the city's opt-in.
fn found_on_host() -> Policy {
    Policy {
        allow_test_ranges: true,
    }
}

/// Why `address` cannot be a LAN address of the city, or `None` when it can. The one rule for
/// `auto`, interface names and literals. IPv4-mapped forms (`::ffff:a.b.c.d`) are judged as the
/// IPv4 address they carry, and so are NAT64 forms (`64:ff9b::a.b.c.d`), which reach it too.
pub fn refusal(address: IpAddr, policy: Policy) -> Option<&'static str> {
    match address.to_canonical() {
        IpAddr::V4(v4) => refusal_v4(v4, policy),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return refusal_v4(Ipv4Addr::new(a, b, c, d), policy).or(Some(
                    "a NAT64 form of an IPv4 address; give the IPv4 address itself",
                ));
            }
            refusal_v6(v6, policy)
        }
    }
}

fn refusal_v4(v4: Ipv4Addr, policy: Policy) -> Option<&'static str> {
    let [a, b, c, _] = v4.octets();
    Some(if v4.is_unspecified() || a == 0 {
        "an unspecified (\"this network\", 0.0.0.0/8) address"
    } else if v4.is_loopback() {
        "a loopback address"
    } else if v4 == Ipv4Addr::new(169, 254, 169, 254) {
        "the cloud metadata address"
    } else if v4.is_link_local() {
        "a link-local address (169.254.0.0/16)"
    } else if v4.is_broadcast() {
        "the broadcast address"
    } else if v4.is_multicast() {
        "a multicast address"
    } else if a >= 240 {
        "a reserved address (240.0.0.0/4)"
    } else if !policy.allow_test_ranges
        && ((a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113))
    {
        "a documentation address (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24); a lab that uses it on purpose sets lan.allow_test_ranges = true"
    } else if !policy.allow_test_ranges && a == 198 && (b == 18 || b == 19) {
        "a benchmarking address (198.18.0.0/15); a lab that uses it on purpose sets lan.allow_test_ranges = true"
    } else {
        return None;
    })
}

fn refusal_v6(v6: Ipv6Addr, policy: Policy) -> Option<&'static str> {
    let s = v6.segments();
    Some(if v6.is_unspecified() {
        "the unspecified address (::)"
    } else if v6.is_loopback() {
        "the loopback address (::1)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "a link-local address (fe80::/10)"
    } else if v6.is_multicast() {
        "a multicast address (ff00::/8)"
    } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        "the cloud metadata address (fd00:ec2::254)"
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        "an IPv4-compatible address (::a.b.c.d, deprecated); give the IPv4 address itself"
    } else if !policy.allow_test_ranges && s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address (2001:db8::/32); a lab that uses it on purpose sets lan.allow_test_ranges = true"
    } else {
        return None;
    })
}

/// The interface of the default route with the lowest metric in /proc/net/route text.
pub fn default_route_interface(route_table: &str) -> Option<String> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
            if cols.len() < 8 || cols[1] != "00000000" || cols[7] != "00000000" {
                return None;
            }
            let flags = u32::from_str_radix(cols[3], 16).ok()?;
            const RTF_UP: u32 = 0x1;
            if flags & RTF_UP == 0 {
                return None;
            }
            let metric: u32 = cols[6].parse().ok()?;
            Some((metric, cols[0].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";

    fn host() -> HostView {
        let a = |i: &str, ip: &str| InterfaceAddr {
            interface: i.into(),
            address: ip.parse().unwrap(),
        };
        HostView {
            // docker0 comes first, as `hostname -I` would print it: auto must not pick it.
            interfaces: vec![
                a("lo", "127.0.0.1"),
                a("docker0", "172.17.0.1"),
                a("wlan0", "192.168.1.20"),
                a("eth0", "10.0.0.5"),
                a("eth0", "fe80::1"),
                a("eth0", "2001:db8::5"),
            ],
            route_table: ROUTES.into(),
        }
    }

    #[test]
    fn auto_follows_the_lowest_metric_default_route() {
        let got = resolve_with(&["auto".into()], Policy::default(), &host()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].address.to_string(), "10.0.0.5");
        assert!(got[0].why.contains("eth0"));
    }

    #[test]
    fn interfaces_literals_and_auto_combine_without_duplicates() {
        let got = resolve_with(
            &["auto".into(), "eth0".into(), "192.168.1.20".into()],
            Policy {
                allow_test_ranges: true,
            },
            &host(),
        )
        .unwrap();
        let addrs: Vec<String> = got.iter().map(|a| a.address.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.5", "2001:db8::5", "192.168.1.20"]);
    }

    #[test]
    fn no_default_route_is_a_clear_error() {
        let mut h = host();
        h.route_table = ROUTES.lines().take(2).collect::<Vec<_>>().join("\n");
        let err = resolve_with(&["auto".into()], Policy::default(), &h)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no default route") && err.contains("lan.addresses"),
            "{err}"
        );
    }

    #[test]
    fn unknown_interface_lists_the_known_ones() {
        let err = resolve_with(&["eth9".into()], Policy::default(), &host())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eth9") && err.contains("docker0, eth0, lo, wlan0"),
            "{err}"
        );
    }

    /// Issue 12: each of these became an `allowed-peer-ip` line of coturn and opened its deny-list.
    #[test]
    fn literals_that_would_open_the_deny_list_are_refused_in_every_spelling() {
        for (literal, why) in [
            ("169.254.169.254", "metadata"),
            ("::ffff:169.254.169.254", "metadata"),
            ("64:ff9b::a9fe:a9fe", "metadata"),
            ("::ffff:127.0.0.1", "loopback"),
            ("127.0.0.2", "loopback"),
            ("::1", "loopback"),
            ("255.255.255.255", "broadcast"),
            ("0.0.0.1", "unspecified"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("fe80::1", "link-local"),
            ("169.254.1.1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("240.0.0.1", "reserved"),
            ("fd00:ec2::254", "metadata"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("192.0.2.10", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("2001:db8::1", "documentation"),
            ("198.18.0.1", "benchmarking"),
        ] {
            let err = resolve_with(&[literal.into()], Policy::default(), &host())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(why) && err.contains("lan.addresses"),
                "{literal}: {err}"
            );
        }
    }

    #[test]
    fn test_ranges_need_the_explicit_opt_in_and_nothing_else_does() {
        let allow = Policy {
            allow_test_ranges: true,
        };
        for literal in ["192.0.2.10", "198.51.100.7", "203.0.113.9", "2001:db8::1"] {
            assert!(
                resolve_with(&[literal.into()], allow, &host()).is_ok(),
                "{literal}"
            );
        }
        for literal in [
            "169.254.169.254",
            "::ffff:127.0.0.1",
            "255.255.255.255",
            "fe80::1",
        ] {
            assert!(
                resolve_with(&[literal.into()], allow, &host()).is_err(),
                "{literal}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_lan_addresses_are_normalised() {
        let got = resolve_with(&["::ffff:10.1.2.3".into()], Policy::default(), &host()).unwrap();
        assert_eq!(got[0].address.to_string(), "10.1.2.3");
        for ok in [
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.20",
            "fd12::1",
            "2a01:4f8::1",
        ] {
            assert!(
                refusal(ok.parse().unwrap(), Policy::default()).is_none(),
                "{ok}"
            );
        }
    }

    #[test]
    fn loopback_literal_is_refused() {
        assert!(matches!(
            resolve_with(&["127.0.0.1".into()], Policy::default(), &host()),
            Err(LanError::Unusable { .. })
        ));
    }
}
