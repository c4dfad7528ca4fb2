//! Where the onboarding page may listen: on the LAN address (or loopback), never a wildcard or a
//! public address unless the operator says so, because a phone that trusts nothing yet reads it
//! over plain HTTP.

use std::net::{IpAddr, SocketAddr};

use thiserror::Error;

/// The page's default port (next to Mattermost's 8065, and free in the blog's lab).
pub const DEFAULT_PORT: u16 = 8090;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ListenError {
    #[error(
        "--listen {addr}: a wildcard address serves the page on every interface, public ones included; give the LAN address (e.g. --listen {example}) or add --listen-public to mean it"
    )]
    Wildcard { addr: SocketAddr, example: String },
    #[error(
        "--listen {addr}: {ip} is a public address, so the page would be on the internet; give a LAN address or add --listen-public to mean it"
    )]
    Public { addr: SocketAddr, ip: IpAddr },
    #[error(
        "the city has no LAN address to serve the page on; give one with --listen ADDR:PORT or set lan.addresses"
    )]
    NoLan,
}

impl crate::exit::ExitCoded for ListenError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// Loopback, private (RFC 1918, unique-local), link-local, shared (RFC 6598) and documentation
/// addresses: none is reachable from the internet.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || (a == 100 && (64..128).contains(&b))
                || (a, b, c) == (192, 0, 2)
                || (a, b, c) == (198, 51, 100)
                || (a, b, c) == (203, 0, 113)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0], s[1]) == (0x2001, 0x0db8)
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_non_public(IpAddr::V4(v4)))
        }
    }
}

/// The address to listen on: `given` if any, else the first LAN address on [`DEFAULT_PORT`];
/// refused when it is a wildcard or public and `public` was not given.
pub fn choose(
    given: Option<SocketAddr>,
    lan: &[IpAddr],
    public: bool,
) -> Result<SocketAddr, ListenError> {
    let addr = match given {
        Some(addr) => addr,
        None => SocketAddr::new(*lan.first().ok_or(ListenError::NoLan)?, DEFAULT_PORT),
    };
    if public {
        return Ok(addr);
    }
    if addr.ip().is_unspecified() {
        let example = lan
            .first()
            .map(|ip| SocketAddr::new(*ip, addr.port()).to_string())
            .unwrap_or_else(|| format!("192.168.1.20:{}", addr.port()));
        return Err(ListenError::Wildcard { addr, example });
    }
    if !is_non_public(addr.ip()) {
        return Err(ListenError::Public {
            addr,
            ip: addr.ip(),
        });
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_is_the_first_lan_address() {
        let lan = ["192.168.1.20".parse().unwrap()];
        assert_eq!(choose(None, &lan, false), Ok(sa("192.168.1.20:8090")));
        assert_eq!(choose(None, &[], false), Err(ListenError::NoLan));
    }

    #[test]
    fn wildcards_and_public_addresses_need_the_explicit_flag() {
        let lan = ["10.0.0.5".parse().unwrap()];
        for addr in ["0.0.0.0:8090", "[::]:8090"] {
            let err = choose(Some(sa(addr)), &lan, false).unwrap_err();
            assert!(err.to_string().contains("--listen 10.0.0.5:8090"), "{err}");
            assert_eq!(choose(Some(sa(addr)), &lan, true), Ok(sa(addr)));
        }
        for addr in [
            "93.184.216.34:80",
            "[2a00:1450::1]:80",
            "[::ffff:8.8.8.8]:80",
        ] {
            assert!(matches!(
                choose(Some(sa(addr)), &lan, false),
                Err(ListenError::Public { .. })
            ));
        }
        for addr in [
            "127.0.0.1:1",
            "192.0.2.10:1",
            "172.16.0.1:1",
            "100.64.1.1:1",
            "[fd00::1]:1",
            "[::1]:1",
            "[2001:db8::1]:1",
        ] {
            assert_eq!(choose(Some(sa(addr)), &lan, false), Ok(sa(addr)));
        }
    }
}
