//! What the city CA may vouch for: the NameConstraints a new CA carries (the city's DNS domain,
//! `localhost`, loopback, the private ranges and the LAN's own prefix), reading them back from any
//! CA certificate, and checking a set of names against them, so no public site can be forged.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use serde::Serialize;
use x509_parser::extensions::GeneralName;

use super::SanSet;
use crate::city::City;

/// An IP subtree: an address and a prefix length, the address already masked to the prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpNet {
    pub network: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// The network of `addr` at `prefix` bits (clamped to the family's width).
    pub fn new(addr: IpAddr, prefix: u8) -> Self {
        match addr {
            IpAddr::V4(v4) => {
                let prefix = prefix.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                Self {
                    network: IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask)),
                    prefix,
                }
            }
            IpAddr::V6(v6) => {
                let prefix = prefix.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                Self {
                    network: IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)),
                    prefix,
                }
            }
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                Self::new(ip, self.prefix).network == self.network
            }
            _ => false,
        }
    }

    /// From the 8- or 32-byte address+mask form of RFC 5280 §4.2.1.10; `None` for other shapes
    /// and for masks that are not a run of leading ones.
    fn from_constraint(bytes: &[u8]) -> Option<Self> {
        let (addr, mask) = bytes.split_at(bytes.len() / 2);
        let ones = mask.iter().map(|b| b.count_ones()).sum::<u32>();
        let contiguous = mask
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1))
            .skip(ones as usize)
            .all(|bit| bit == 0);
        let ip = match bytes.len() {
            8 => IpAddr::from(<[u8; 4]>::try_from(addr).ok()?),
            32 => IpAddr::from(<[u8; 16]>::try_from(addr).ok()?),
            _ => return None,
        };
        contiguous.then(|| Self::new(ip, ones as u8))
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl Serialize for IpNet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Loopback, RFC 1918 and unique-local IPv6: where a LAN service lives, never a public site.
pub const PRIVATE_RANGES: [(IpAddr, u8); 6] = [
    (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8),
    (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12),
    (IpAddr::V4(Ipv4Addr::new(192, 168, 0, 0)), 16),
    (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
    (IpAddr::V6(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0)), 7),
];

/// A LAN address outside the private ranges (a documentation or public block) is permitted
/// with the /24 or /64 around it, the usual size of one LAN, so a DHCP move inside it still
/// gets a leaf from the same CA.
pub const LAN_PREFIX_V4: u8 = 24;
pub const LAN_PREFIX_V6: u8 = 64;

/// The permitted subtrees of a CA: DNS names (each matches itself and its subdomains) and IP
/// networks. A name type with no subtree is unconstrained (RFC 5280; every verifier agrees).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameScope {
    pub dns: Vec<String>,
    pub ip: Vec<IpNet>,
    /// The CA also lists excluded subtrees (cityd never writes them; an adopted CA may).
    pub has_exclusions: bool,
}

impl NameScope {
    /// What a new city CA permits: the city's domain, the Mattermost host when it lies outside the
    /// domain, `localhost`, loopback and private ranges, and the prefix of each LAN address that
    /// is not already inside them.
    pub fn for_city(city: &City, lan: &[IpAddr]) -> Self {
        let mut dns = vec![city.domain.to_ascii_lowercase()];
        let host = city.mattermost_host().to_ascii_lowercase();
        if !dns_within(&host, &dns[0]) {
            dns.push(host);
        }
        dns.push("localhost".into());
        // The managed PostgreSQL is reached on the city's network by its host name and its
        // container's name, and its leaf comes from this CA: the CA must be able to vouch for them.
        if city.database.managed {
            let names = crate::docker::spec::Names::new(city);
            for name in [city.database.host.to_ascii_lowercase(), names.postgres()] {
                if name.parse::<IpAddr>().is_err() && !dns.iter().any(|d| dns_within(&name, d)) {
                    dns.push(name);
                }
            }
        }
        let mut scope = Self {
            dns,
            ip: PRIVATE_RANGES
                .iter()
                .map(|(addr, prefix)| IpNet::new(*addr, *prefix))
                .collect(),
            has_exclusions: false,
        };
        for ip in lan {
            if !scope.ip.iter().any(|net| net.contains(*ip)) {
                let prefix = match ip {
                    IpAddr::V4(_) => LAN_PREFIX_V4,
                    IpAddr::V6(_) => LAN_PREFIX_V6,
                };
                scope.ip.push(IpNet::new(*ip, prefix));
            }
        }
        scope
    }

    /// The NameConstraints of a CA certificate: `None` when it has none (it may vouch for any
    /// name), or when it cannot be read (the caller has already parsed the certificate).
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let ext = cert.name_constraints().ok()??;
        let mut scope = Self {
            has_exclusions: ext
                .value
                .excluded_subtrees
                .as_ref()
                .is_some_and(|v| !v.is_empty()),
            ..Self::default()
        };
        for subtree in ext.value.permitted_subtrees.iter().flatten() {
            match &subtree.base {
                GeneralName::DNSName(name) => scope.dns.push(name.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(net) = IpNet::from_constraint(bytes) {
                        scope.ip.push(net);
                    }
                }
                _ => {}
            }
        }
        Some(scope)
    }

    /// The entries of `sans` this scope does not permit (`DNS:name`, `IP:address`), in order.
    pub fn outside(&self, sans: &SanSet) -> Vec<String> {
        let dns = sans
            .dns
            .iter()
            .filter(|d| !self.dns.is_empty() && !self.dns.iter().any(|c| dns_within(d, c)))
            .map(|d| format!("DNS:{d}"));
        let ip = sans
            .ip
            .iter()
            .filter(|ip| !self.ip.is_empty() && !self.ip.iter().any(|n| n.contains(**ip)))
            .map(|ip| format!("IP:{ip}"));
        dns.chain(ip).collect()
    }

    /// The extension rcgen writes (always critical, as RFC 5280 requires of CAs).
    pub(crate) fn to_rcgen(&self) -> NameConstraints {
        let dns = self.dns.iter().map(|d| GeneralSubtree::DnsName(d.clone()));
        let ip = self
            .ip
            .iter()
            .map(|n| GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(n.network, n.prefix)));
        NameConstraints {
            permitted_subtrees: dns.chain(ip).collect(),
            excluded_subtrees: Vec::new(),
        }
    }

    /// One line for people: `DNS cicd.local, localhost; IP 10.0.0.0/8, …`.
    pub fn describe(&self) -> String {
        let ip: Vec<String> = self.ip.iter().map(IpNet::to_string).collect();
        format!(
            "DNS {}; IP {}",
            if self.dns.is_empty() {
                "any".into()
            } else {
                self.dns.join(", ")
            },
            if ip.is_empty() {
                "any".into()
            } else {
                ip.join(", ")
            }
        )
    }
}

/// RFC 5280 DNS subtree matching: `name` equals `constraint` or ends in `.constraint`; a
/// constraint written with a leading dot matches subdomains only.
fn dns_within(name: &str, constraint: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let constraint = constraint.to_ascii_lowercase();
    if let Some(sub) = constraint.strip_prefix('.') {
        return name.ends_with(&format!(".{sub}"));
    }
    name == constraint || name.ends_with(&format!(".{constraint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_masked_and_contain_their_addresses() {
        let net = IpNet::new(ip("192.0.2.77"), 24);
        assert_eq!(net.to_string(), "192.0.2.0/24");
        assert!(net.contains(ip("192.0.2.1")) && !net.contains(ip("192.0.3.1")));
        assert!(!net.contains(ip("::1")));
        assert_eq!(IpNet::new(ip("fd12::1"), 7).to_string(), "fc00::/7");
        assert_eq!(IpNet::new(ip("1.2.3.4"), 0).to_string(), "0.0.0.0/0");
    }

    #[test]
    fn the_city_scope_permits_its_names_and_lan_but_no_public_site() {
        let city = City::default_city();
        let scope = NameScope::for_city(&city, &[ip("192.0.2.10"), ip("10.1.2.3")]);
        // The default city runs its own PostgreSQL, named "postgres" on the city network.
        assert_eq!(scope.dns, ["cicd.local", "localhost", "postgres"]);
        assert!(scope.ip.contains(&IpNet::new(ip("192.0.2.0"), 24)));
        assert_eq!(
            scope.ip.len(),
            PRIVATE_RANGES.len() + 1,
            "10.1.2.3 is in 10/8"
        );
        let wanted = super::super::wanted_sans(&city, &[ip("192.0.2.10"), ip("192.0.2.99")]);
        assert!(
            scope.outside(&wanted).is_empty(),
            "{:?}",
            scope.outside(&wanted)
        );
        let mut forged = SanSet::default();
        forged.add_dns("example.com");
        forged.add_dns("evilcicd.local");
        forged.add_ip(ip("93.184.216.34"));
        forged.add_ip(ip("2001:db8::1"));
        assert_eq!(
            scope.outside(&forged),
            [
                "DNS:evilcicd.local",
                "DNS:example.com",
                "IP:93.184.216.34",
                "IP:2001:db8::1"
            ]
        );
    }

    #[test]
    fn a_host_outside_the_domain_is_permitted_by_name() {
        let city = City::from_toml(
            "domain = \"cicd.local\"\n[mattermost]\nhost = \"chat.example.org\"\n",
            "test",
        )
        .unwrap();
        let scope = NameScope::for_city(&city, &[]);
        assert_eq!(
            scope.dns,
            ["cicd.local", "chat.example.org", "localhost", "postgres"]
        );
    }

    #[test]
    fn a_managed_database_is_permitted_by_its_names_and_an_existing_server_is_not() {
        let managed = City::from_toml(
            "[docker]\nprefix = \"lab-\"\n[database]\nmanaged = true\nhost = \"db\"\n",
            "test",
        )
        .unwrap();
        let scope = NameScope::for_city(&managed, &[]);
        assert_eq!(scope.dns, ["cicd.local", "localhost", "db", "lab-postgres"]);
        let existing = City::from_toml("[database]\nhost = \"pg.example.org\"\n", "test").unwrap();
        assert_eq!(
            NameScope::for_city(&existing, &[]).dns,
            ["cicd.local", "localhost"]
        );
    }

    #[test]
    fn leading_dot_constraints_match_subdomains_only() {
        assert!(dns_within("a.b.c", "b.c") && dns_within("b.c", "b.c"));
        assert!(dns_within("a.b.c", ".b.c") && !dns_within("b.c", ".b.c"));
        assert!(!dns_within("xb.c", "b.c"));
    }

    #[test]
    fn constraints_read_back_from_the_eight_and_thirty_two_byte_forms() {
        assert_eq!(
            IpNet::from_constraint(&[192, 168, 0, 0, 255, 255, 0, 0]),
            Some(IpNet::new(ip("192.168.0.0"), 16))
        );
        assert_eq!(IpNet::from_constraint(&[1, 2, 3, 4, 255, 0, 255, 0]), None);
        assert_eq!(IpNet::from_constraint(&[1, 2, 3]), None);
        let mut v6 = [0u8; 32];
        v6[0] = 0xfc;
        v6[16] = 0xfe;
        assert_eq!(
            IpNet::from_constraint(&v6),
            Some(IpNet::new(ip("fc00::"), 7))
        );
    }
}
