//! Which LAN address(es) the city advertises, and why: `auto` (the IPv4 address of the interface that
//! holds the default route, read from /proc/net/route), interface names, or literal addresses.

use std::net::{IpAddr, Ipv4Addr};

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
        "lan.addresses: {address} is a loopback, unspecified or multicast address; phones cannot reach it, give the LAN address"
    )]
    Unusable { address: IpAddr },
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
pub fn resolve(entries: &[String]) -> Result<Vec<LanAddress>, LanError> {
    resolve_with(entries, &HostView::read()?)
}

/// Resolves entries against a given view of the host; deduplicates while keeping the order given.
pub fn resolve_with(entries: &[String], host: &HostView) -> Result<Vec<LanAddress>, LanError> {
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
                    IpAddr::V4(v4) if usable_v4(v4) => Some(v4),
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
        } else if let Ok(address) = entry.parse::<IpAddr>() {
            if address.is_loopback() || address.is_unspecified() || address.is_multicast() {
                return Err(LanError::Unusable { address });
            }
            push(LanAddress {
                address,
                why: "given literally in lan.addresses".into(),
            });
        } else {
            let mut found = false;
            for i in host.interfaces.iter().filter(|i| &i.interface == entry) {
                let keep = match i.address {
                    IpAddr::V4(v4) => usable_v4(v4),
                    // Link-local IPv6 needs a scope id no URL can carry.
                    IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
                };
                if keep {
                    found = true;
                    push(LanAddress {
                        address: i.address,
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

fn usable_v4(v4: Ipv4Addr) -> bool {
    !v4.is_loopback() && !v4.is_unspecified() && !v4.is_link_local() && !v4.is_multicast()
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
        let got = resolve_with(&["auto".into()], &host()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].address.to_string(), "10.0.0.5");
        assert!(got[0].why.contains("eth0"));
    }

    #[test]
    fn interfaces_literals_and_auto_combine_without_duplicates() {
        let got = resolve_with(
            &["auto".into(), "eth0".into(), "192.168.1.20".into()],
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
        let err = resolve_with(&["auto".into()], &h).unwrap_err().to_string();
        assert!(
            err.contains("no default route") && err.contains("lan.addresses"),
            "{err}"
        );
    }

    #[test]
    fn unknown_interface_lists_the_known_ones() {
        let err = resolve_with(&["eth9".into()], &host())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("eth9") && err.contains("docker0, eth0, lo, wlan0"),
            "{err}"
        );
    }

    #[test]
    fn loopback_literal_is_refused() {
        assert!(matches!(
            resolve_with(&["127.0.0.1".into()], &host()),
            Err(LanError::Unusable { .. })
        ));
    }
}
