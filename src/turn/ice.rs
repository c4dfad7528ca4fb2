//! TURN credentials as a WebRTC test page takes them: the REST credential, the city's TURN URLs (its
//! `turn.servers`, else every LAN address; UDP and TCP) and the same as one `RTCIceServer`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::creds::{self, CredentialError, RestCredential};
use crate::city::City;
use crate::secrets::Secret;

/// One entry of `new RTCPeerConnection({iceServers: [...]})`.
#[derive(Debug, Serialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

/// What `cityd turn creds` prints (the static secret is not in it).
#[derive(Debug, Serialize)]
pub struct IssuedCredentials {
    pub username: String,
    pub password: String,
    pub ttl_seconds: u64,
    pub expires_at: u64,
    pub expires_at_utc: String,
    pub realm: String,
    pub urls: Vec<String>,
    pub ice_server: IceServer,
}

/// When an issued credential stops being valid.
#[derive(Debug, Clone, Copy)]
pub enum Lifetime {
    /// This long from now.
    Ttl(Duration),
    /// At this Unix time (seconds), which may be in the past: a test of refusals needs one.
    Until(u64),
}

/// A credential for `user` with `lifetime`, with the URLs that reach the city's TURN servers.
pub fn issue(
    city: &City,
    lan: &[IpAddr],
    secret: &Secret,
    user: &str,
    lifetime: Lifetime,
) -> Result<IssuedCredentials, CredentialError> {
    let expires_at = match lifetime {
        Lifetime::Ttl(ttl) => creds::unix_now() + ttl.as_secs(),
        Lifetime::Until(at) => at,
    };
    let cred = RestCredential::derive(secret.expose(), user, expires_at)?;
    let ttl = Duration::from_secs(expires_at.saturating_sub(creds::unix_now()));
    let urls = turn_urls(&city.turn.endpoints(lan));
    Ok(IssuedCredentials {
        username: cred.username.clone(),
        password: cred.password.clone(),
        ttl_seconds: ttl.as_secs(),
        expires_at: cred.expires_at,
        expires_at_utc: creds::format_utc(cred.expires_at),
        realm: city.turn_realm(),
        urls: urls.clone(),
        ice_server: IceServer {
            urls,
            username: cred.username,
            credential: cred.password,
        },
    })
}

/// `turn:HOST:PORT?transport=udp|tcp` for every endpoint (`host:port`, IPv6 in brackets).
fn turn_urls(endpoints: &[String]) -> Vec<String> {
    let mut urls = Vec::new();
    for endpoint in endpoints {
        for transport in ["udp", "tcp"] {
            urls.push(format!("turn:{endpoint}?transport={transport}"));
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_gets_a_udp_and_a_tcp_url() {
        let lan: Vec<IpAddr> = vec!["192.168.1.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(
            turn_urls(&City::default_city().turn.endpoints(&lan)),
            [
                "turn:192.168.1.5:3478?transport=udp",
                "turn:192.168.1.5:3478?transport=tcp",
                "turn:[fd00::5]:3478?transport=udp",
                "turn:[fd00::5]:3478?transport=tcp",
            ]
        );
    }

    #[test]
    fn the_ice_server_repeats_the_credential_and_urls() {
        let city = City::default_city();
        let lan: Vec<IpAddr> = vec!["10.0.0.2".parse().unwrap()];
        let secret = Secret::new("s".repeat(64));
        let issued = issue(
            &city,
            &lan,
            &secret,
            "tester",
            Lifetime::Ttl(Duration::from_secs(3600)),
        )
        .unwrap();
        assert!((3599..=3600).contains(&issued.ttl_seconds));
        assert!(issued.username.ends_with(":tester"));
        assert_eq!(
            issued.password,
            creds::rest_password(secret.expose(), &issued.username)
        );
        assert_eq!(issued.ice_server.urls, issued.urls);
        assert_eq!(issued.ice_server.username, issued.username);
        assert_eq!(issued.ice_server.credential, issued.password);
        assert_eq!(issued.realm, city.turn_realm());
    }

    #[test]
    fn an_explicit_expiry_is_kept_even_in_the_past() {
        let city = City::default_city();
        let secret = Secret::new("s".repeat(64));
        let issued = issue(&city, &[], &secret, "t", Lifetime::Until(1_000)).unwrap();
        assert_eq!(issued.expires_at, 1_000);
        assert_eq!(issued.ttl_seconds, 0);
        assert_eq!(issued.username, "1000:t");
    }
}
