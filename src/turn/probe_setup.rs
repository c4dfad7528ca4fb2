//! The probe's inputs: where the server is (a `--server` text, the city's turn.port, the first LAN
//! address) and the [`ProbeConfig`] with the probe's own short-lived credential.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use super::creds::{self, CredentialError, RestCredential};
use super::link::Transport;
use super::probe::{PeerSpec, ProbeConfig, Timing};
use crate::exit::{BAD_INPUT, ExitCoded};
use crate::lan::LanAddress;
use crate::secrets::Secret;

/// How long the probe's own credential stays valid: long enough for the probe, short so a leaked
/// one is useless soon.
const PROBE_CREDENTIAL_TTL: Duration = Duration::from_secs(600);

/// A server that cannot be located.
#[derive(Debug, Error)]
pub enum ServerError {
    #[error("lan.addresses resolved to nothing; give --server HOST[:PORT]")]
    NoLanAddress,
    #[error(
        "--server {0:?} is neither an address nor a resolvable host name; give HOST or HOST:PORT"
    )]
    Unresolvable(String),
    #[error("--server {text:?}: {why}; give HOST, HOST:PORT or [IPv6]:PORT")]
    Malformed { text: String, why: &'static str },
}

/// The input is at fault: exit 2.
impl ExitCoded for ServerError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// The city's first LAN address on `port`.
pub fn first_lan_server(lan: &[LanAddress], port: u16) -> Result<SocketAddr, ServerError> {
    let first = lan.first().ok_or(ServerError::NoLanAddress)?;
    Ok(SocketAddr::new(first.address, port))
}

/// `--server` as a socket address: `IP:PORT`, `[IPv6]:PORT`, a bare IP or a host name (resolved);
/// a missing port means `port`.
pub fn parse_server(text: &str, port: u16) -> Result<SocketAddr, ServerError> {
    let addr = parse_server_text(text, port)?;
    // Port 0 is "any port" to the kernel: no server listens there, so it is a typo, not a probe.
    if addr.port() == 0 {
        return Err(ServerError::Malformed {
            text: text.to_string(),
            why: "port 0 is not a port a server can listen on (1-65535)",
        });
    }
    Ok(addr)
}

fn parse_server_text(text: &str, port: u16) -> Result<SocketAddr, ServerError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    // Brackets come in pairs around an IPv6 address: `[::1` or `::1]` is a typo, not `::1`.
    if text.starts_with('[') != text.contains(']') {
        return Err(ServerError::Malformed {
            text: text.to_string(),
            why: "the brackets around the IPv6 address are unbalanced",
        });
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if text.starts_with('[') {
        return Err(ServerError::Malformed {
            text: text.to_string(),
            why: "only an IPv6 address goes in brackets, as [ADDR] or [ADDR]:PORT",
        });
    }
    let with_port = if text.contains(':') {
        text.to_string()
    } else {
        format!("{text}:{port}")
    };
    with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| ServerError::Unresolvable(text.to_string()))
}

/// What the probe is asked to do, as the flags say it.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    pub server: SocketAddr,
    pub transport: Transport,
    /// An external echo peer; `None`: the probe's own.
    pub peer: Option<SocketAddr>,
    pub user: String,
    pub rto: Duration,
    pub deadline: Duration,
    /// Use a credential that expired a minute ago (to see the 401 diagnosis).
    pub expired: bool,
}

/// Where the probe's credential comes from.
pub enum Credential {
    /// Derived for this run from the static auth secret.
    Minted(Secret),
    /// Given whole (`--credential`): a username and its password, as `cityd turn creds` issued them.
    Given(GivenCredential),
}

/// A REST credential read from a file; the password is kept as a secret so no log shows it.
#[derive(Debug)]
pub struct GivenCredential {
    pub username: String,
    pub password: Secret,
}

/// A credential file that cannot be used.
#[derive(Debug, Error)]
pub enum CredentialFileError {
    #[error(
        "cannot read the credential file {}; give the JSON `cityd turn creds --json` printed",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "credential file {} is not the JSON of `cityd turn creds --json` (it needs string fields \
         \"username\" and \"password\")",
        path.display()
    )]
    Shape { path: PathBuf },
}

/// The file is the input: exit 2.
impl ExitCoded for CredentialFileError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// Reads `username` and `password` from the JSON `cityd turn creds --json` prints.
pub fn credential_from_file(path: &Path) -> Result<GivenCredential, CredentialFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let shape = || CredentialFileError::Shape {
        path: path.to_path_buf(),
    };
    // Parse errors are not shown: serde_json's messages can quote the input, which holds the password.
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|_| shape())?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_string);
    match (field("username"), field("password")) {
        (Some(username), Some(password)) if !username.is_empty() && !password.is_empty() => {
            Ok(GivenCredential {
                username,
                password: Secret::new(password),
            })
        }
        _ => Err(shape()),
    }
}

/// The probe's configuration, with a credential derived from the static secret for this run, or
/// the one given.
pub fn config(
    request: &ProbeRequest,
    credential: &Credential,
) -> Result<ProbeConfig, CredentialError> {
    let (username, password) = match credential {
        Credential::Given(given) => (given.username.clone(), given.password.clone()),
        Credential::Minted(secret) => {
            let minted = if request.expired {
                RestCredential::derive(secret.expose(), &request.user, creds::unix_now() - 60)
            } else {
                RestCredential::for_ttl(secret.expose(), &request.user, PROBE_CREDENTIAL_TTL)
            }?;
            (minted.username, Secret::new(minted.password))
        }
    };
    Ok(ProbeConfig {
        server: request.server,
        transport: request.transport,
        peer: request.peer.map_or(PeerSpec::Own, PeerSpec::Given),
        username,
        password,
        timing: Timing {
            rto: request.rto,
            deadline: request.deadline,
            ..Timing::default()
        },
        software: format!("cityd {}", env!("CARGO_PKG_VERSION")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_without_port_gets_the_citys() {
        let cases = [
            ("192.168.1.5", "192.168.1.5:3478"),
            ("192.168.1.5:5349", "192.168.1.5:5349"),
            ("[fd00::5]", "[fd00::5]:3478"),
            ("fd00::5", "[fd00::5]:3478"),
            ("[fd00::5]:5349", "[fd00::5]:5349"),
            ("localhost:9", "127.0.0.1:9"),
        ];
        for (text, want) in cases {
            let got = parse_server(text, 3478).unwrap();
            if text.starts_with("localhost") {
                assert_eq!(got.port(), 9, "{text}");
            } else {
                assert_eq!(got, want.parse().unwrap(), "{text}");
            }
        }
    }

    #[test]
    fn an_unresolvable_server_is_bad_input() {
        let error = parse_server("no such host.invalid", 3478).unwrap_err();
        assert!(matches!(error, ServerError::Unresolvable(_)));
        assert_eq!(error.exit_code(), BAD_INPUT);
    }

    #[test]
    fn without_lan_addresses_there_is_no_default_server() {
        assert!(matches!(
            first_lan_server(&[], 3478),
            Err(ServerError::NoLanAddress)
        ));
        let lan = [LanAddress {
            address: "10.0.0.2".parse().unwrap(),
            why: "given".into(),
        }];
        assert_eq!(
            first_lan_server(&lan, 3478).unwrap(),
            "10.0.0.2:3478".parse().unwrap()
        );
    }

    #[test]
    fn the_probe_credential_is_short_lived_or_already_expired() {
        let secret = Secret::new("s".repeat(64));
        let request = ProbeRequest {
            server: "127.0.0.1:3478".parse().unwrap(),
            transport: Transport::Udp,
            peer: None,
            user: "cityd-probe".into(),
            rto: Duration::from_millis(100),
            deadline: Duration::from_secs(5),
            expired: false,
        };
        let minted = Credential::Minted(secret);
        let fresh = config(&request, &minted).unwrap();
        let expiry = creds::username_expiry(&fresh.username).unwrap();
        assert!(expiry > creds::unix_now() && expiry <= creds::unix_now() + 600);
        assert_eq!(fresh.peer, PeerSpec::Own);
        assert_eq!(fresh.timing.rto, Duration::from_millis(100));
        assert_eq!(fresh.timing.deadline, Duration::from_secs(5));
        let expired = config(
            &ProbeRequest {
                expired: true,
                ..request
            },
            &minted,
        )
        .unwrap();
        assert!(creds::username_expiry(&expired.username).unwrap() < creds::unix_now());
    }

    #[test]
    fn a_given_credential_is_used_as_is_and_a_bad_file_hides_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cred.json");
        std::fs::write(
            &path,
            r#"{"username":"1000:alice","password":"cGFzc3dvcmQ=","expires_at":1000}"#,
        )
        .unwrap();
        let given = credential_from_file(&path).unwrap();
        assert_eq!(given.username, "1000:alice");
        assert_eq!(given.password.expose(), "cGFzc3dvcmQ=");
        for bad in [
            r#"{"username":"u"}"#,
            "username=u password=hunter2",
            r#"{"username":"","password":"x"}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let error = credential_from_file(&path).unwrap_err();
            assert!(matches!(error, CredentialFileError::Shape { .. }), "{bad}");
            assert!(!error.to_string().contains("hunter2"));
            assert_eq!(error.exit_code(), BAD_INPUT);
        }
    }
}
