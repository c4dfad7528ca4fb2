//! Where the Mattermost API is reached and how: the local-mode unix socket (plain HTTP/1.1,
//! `Host: _`), or a URL with a bearer token, over HTTPS trusting only the city CA (plain HTTP only
//! on loopback). The clients themselves come from `crate::tls`, which knows the city CA.

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::secrets::Secret;
use crate::tls::{self, CaError, CityCa, Trust};

/// The base URL every local-mode request uses; the socket replaces DNS and TCP (mmctl does the same).
pub const LOCAL_BASE_URL: &str = "http://_";

/// How long one request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum TransportError {
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(
        "{url} is not a usable Mattermost URL: {reason} (expected https://host:port, or http://127.0.0.1:port for a loopback test server)"
    )]
    BadUrl { url: String, reason: String },
    #[error(
        "refusing to send a token over plain HTTP to {url}: use https:// (plain http is allowed only for loopback addresses)"
    )]
    PlainHttpOffLoopback { url: String },
    #[error("cannot build the HTTP client for {target}: {reason}")]
    Build { target: String, reason: String },
}

/// Where the API lives.
#[derive(Clone)]
pub enum Target {
    /// Local mode: requests are authenticated by being on the socket (root or UID 2000 only).
    Socket(PathBuf),
    /// A URL (no trailing slash) with a personal access or bot token.
    Url {
        base: String,
        token: Secret,
        ca_pem: Option<PathBuf>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Socket(p) => write!(f, "unix socket {}", p.display()),
            Target::Url { base, .. } => write!(f, "{base}"),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

impl Target {
    /// A URL target; `https` needs the CA file, `http` is accepted only for loopback hosts.
    pub fn url(url: &str, token: Secret, ca_pem: &Path) -> Result<Self, TransportError> {
        let parsed = parse_base_url(url)?;
        let base = url.trim_end_matches('/').to_string();
        match parsed.scheme {
            Scheme::Https => Ok(Target::Url {
                base,
                token,
                ca_pem: Some(ca_pem.to_path_buf()),
            }),
            Scheme::Http if parsed.loopback => Ok(Target::Url {
                base,
                token,
                ca_pem: None,
            }),
            Scheme::Http => Err(TransportError::PlainHttpOffLoopback { url: url.into() }),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Target::Socket(_))
    }

    pub fn base_url(&self) -> &str {
        match self {
            Target::Socket(_) => LOCAL_BASE_URL,
            Target::Url { base, .. } => base,
        }
    }

    pub fn token(&self) -> Option<&Secret> {
        match self {
            Target::Socket(_) => None,
            Target::Url { token, .. } => Some(token),
        }
    }

    /// A reqwest client for this target. `timeout` bounds each request.
    pub fn http_client(&self, timeout: Duration) -> Result<reqwest::Client, TransportError> {
        let ca = match self {
            Target::Url {
                ca_pem: Some(path), ..
            } => Some(CityCa::load(path)?),
            _ => None,
        };
        let builder = tls::http_builder(ca.as_ref().map_or(Trust::System, Trust::CityCa))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy()
            .user_agent(concat!("cityd/", env!("CARGO_PKG_VERSION")));
        let builder = match self {
            Target::Socket(path) => builder.unix_socket(path.as_path()).http1_only(),
            Target::Url { .. } => builder,
        };
        builder.build().map_err(|e| TransportError::Build {
            target: self.to_string(),
            reason: e.to_string(),
        })
    }
}

/// A plain client for webhook posts: HTTPS trusting only the city CA, or plain HTTP.
pub fn hook_client(
    ca_pem: Option<&Path>,
    timeout: Duration,
) -> Result<reqwest::Client, TransportError> {
    let ca = ca_pem.map(CityCa::load).transpose()?;
    tls::http_builder(ca.as_ref().map_or(Trust::System, Trust::CityCa))
        .timeout(timeout)
        .no_proxy()
        .user_agent(concat!("cityd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| TransportError::Build {
            target: "webhook client".into(),
            reason: e.to_string(),
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The parts of `scheme://host[:port][/path]` cityd needs to check and rewrite URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub scheme: Scheme,
    /// `host[:port]` exactly as written (IPv6 in brackets).
    pub authority: String,
    /// Everything after the authority, starting with `/` (or empty).
    pub path: String,
    pub loopback: bool,
}

/// Parses an http(s) URL without a URL crate: we only need scheme, authority and path.
pub fn parse_base_url(url: &str) -> Result<BaseUrl, TransportError> {
    let bad = |reason: &str| TransportError::BadUrl {
        url: url.into(),
        reason: reason.into(),
    };
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(bad("the scheme must be https:// or http://"));
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
        return Err(bad("the host is missing or contains credentials or spaces"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, rest)) if rest.is_empty() || rest.starts_with(':') => {
                (h, rest.strip_prefix(':'))
            }
            _ => return Err(bad("an IPv6 host must be written [addr] or [addr]:port")),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(bad("the port is not a number between 0 and 65535"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok(BaseUrl {
        scheme,
        authority: authority.to_string(),
        path: path.to_string(),
        loopback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let u = parse_base_url("https://mattermost.cicd.local:8065/hooks/abc").unwrap();
        assert_eq!(u.scheme, Scheme::Https);
        assert_eq!(u.authority, "mattermost.cicd.local:8065");
        assert_eq!(u.path, "/hooks/abc");
        assert!(!u.loopback);
        let u = parse_base_url("http://127.0.0.1:9000").unwrap();
        assert!(u.loopback);
        assert_eq!(u.path, "");
        let u = parse_base_url("http://[::1]:9000/x").unwrap();
        assert!(u.loopback);
        assert_eq!(u.authority, "[::1]:9000");
        for bad in [
            "ftp://x",
            "https://",
            "https://user:pw@host/",
            "https://host:notaport/",
            "http://[::1]:x/",
            "http://[::1/",
            "mattermost.cicd.local",
        ] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_never_go_over_plain_http_off_loopback() {
        let token = Secret::new("t".into());
        let err = Target::url("http://192.0.2.1:8065", token.clone(), Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("https://"), "{err}");
        assert!(Target::url("http://127.0.0.1:8065/", token, Path::new("/x")).is_ok());
    }

    #[test]
    fn targets_name_themselves_without_the_token() {
        let t = Target::url(
            "http://localhost:1/",
            Secret::new("sekrit-token".into()),
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(t.to_string(), "http://localhost:1");
        assert!(!format!("{t:?}").contains("sekrit"));
        assert_eq!(
            Target::Socket("/run/mm.sock".into()).to_string(),
            "unix socket /run/mm.sock"
        );
    }
}
