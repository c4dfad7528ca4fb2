//! `cityd onboard`: a short-lived plain-HTTP page on the LAN address that gets a phone onto the
//! city: the CA's fingerprint as phones show it, the CA as DER (Android), as a configuration
//! profile (iOS/macOS) and as PEM (desktops), per-platform steps, and the Mattermost URL as a QR
//! code. Reads `<state>/pki/ca.pem`; writes nothing. The page carries no secret.

mod escape;
pub mod listen;
mod page;
pub mod profile;
pub mod qr;
mod serve;

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use thiserror::Error;
use time::OffsetDateTime;

use crate::city::City;
use crate::pki::{self, NameScope, PkiError};
use crate::state::StateDir;

pub use listen::{DEFAULT_PORT, ListenError, choose as choose_listen};
pub use serve::{Served, serve};

/// The download paths, fixed so no city name ever reaches a header.
pub mod paths {
    pub const DER: &str = "/city-ca.crt";
    pub const MOBILECONFIG: &str = "/city-ca.mobileconfig";
    pub const PEM: &str = "/city-ca.pem";
    pub const MATTERMOST_QR: &str = "/mattermost-qr.svg";
}

/// Content types: Android's certificate installer takes `application/x-x509-ca-cert`; iOS opens
/// `application/x-apple-aspen-config` as a profile.
pub mod content_types {
    pub const DER: &str = "application/x-x509-ca-cert";
    pub const MOBILECONFIG: &str = "application/x-apple-aspen-config";
    pub const PEM: &str = "application/x-pem-file";
    pub const HTML: &str = "text/html; charset=utf-8";
    pub const SVG: &str = "image/svg+xml";
}

/// The default lifetime of the page.
pub const DEFAULT_FOR: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// The longest `--for` allowed: the page is for a join session, not a service.
pub const MAX_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, Error)]
pub enum OnboardError {
    #[error(
        "no city CA in {dir} yet: run `cityd pki ensure` (or `cityd up`) first, then `cityd onboard`"
    )]
    NoCa { dir: std::path::PathBuf },
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot listen on {addr} for the onboarding page ({source}); is the port in use, or is {ip} not an address of this machine?", ip = addr.ip())]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl crate::exit::ExitCoded for OnboardError {
    fn exit_code(&self) -> u8 {
        match self {
            OnboardError::NoCa { .. } | OnboardError::Listen(_) => crate::exit::BAD_INPUT,
            OnboardError::Pki(e) => crate::exit::failure_code(e.is_bad_input()),
            OnboardError::Bind { .. } => crate::exit::FAILED,
        }
    }
}

/// Everything the page shows, resolved once.
#[derive(Debug, Clone)]
pub struct Onboarding {
    pub domain: String,
    pub team: String,
    pub ca_der: Vec<u8>,
    pub ca_subject: String,
    /// SHA-256 of the CA, `AB:CD:…` (Android, openssl).
    pub sha256: String,
    /// Its NameConstraints; `None` when the CA may vouch for any name.
    pub scope: Option<NameScope>,
    /// `https://<lan-ip>:<port>`: what a phone types into the Mattermost app.
    pub mattermost_url: String,
    /// `mattermost://<lan-ip>:<port>`: opens the app's add-server screen pre-filled.
    pub mattermost_link: String,
    /// `https://<host>:<port>`, the SiteURL, for machines that resolve the city's names.
    pub site_url: String,
    /// Names the LAN wants that the server certificate lacks (a phone using them would be
    /// refused): `cityd pki ensure` (or `cityd up`) fixes it before phones join.
    pub leaf_missing: Vec<String>,
}

/// The SHA-256 fingerprint the way iOS lists it: uppercase hex pairs separated by spaces.
pub fn ios_fingerprint(colon: &str) -> String {
    colon.replace(':', " ")
}

/// The bracketed host of a URL for an IP address.
fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Reads the CA from the state and derives what the page shows for `city` at `lan`.
pub fn prepare(state: &StateDir, city: &City, lan: &[IpAddr]) -> Result<Onboarding, OnboardError> {
    let ca_der = pki::ca_certificate(state)?.ok_or_else(|| OnboardError::NoCa {
        dir: state.pki_dir(),
    })?;
    let summary = pki::summarize(&ca_der, OffsetDateTime::now_utc()).map_err(|detail| {
        PkiError::BadCertificate {
            path: state.ca_pem(),
            detail,
        }
    })?;
    let leaf_missing = match pki::inspect(state)? {
        Some(summary) => pki::leaf_covers(&summary, city, lan).missing,
        None => Vec::new(),
    };
    let host = lan
        .first()
        .map(|ip| url_host(*ip))
        .unwrap_or_else(|| city.mattermost_host());
    let port = city.mattermost.port;
    Ok(Onboarding {
        domain: city.domain.clone(),
        team: city.team.display_name.clone(),
        scope: summary.name_constraints.clone(),
        ca_subject: summary.subject,
        sha256: summary.sha256,
        ca_der,
        mattermost_url: format!("https://{host}:{port}"),
        mattermost_link: format!("mattermost://{host}:{port}"),
        site_url: city.site_url(),
        leaf_missing,
    })
}

/// The bodies the page serves, built once before listening.
#[derive(Debug, Clone)]
pub struct Site {
    pub page: String,
    pub der: Vec<u8>,
    pub pem: String,
    pub mobileconfig: String,
    pub mattermost_qr: String,
}

impl Site {
    pub fn build(o: &Onboarding, expires_at: OffsetDateTime) -> Self {
        Self {
            page: page::render(o, expires_at),
            der: o.ca_der.clone(),
            pem: pki::pem_encode("CERTIFICATE", &o.ca_der),
            mobileconfig: profile::mobileconfig(&o.ca_der, &o.ca_subject, &o.domain),
            mattermost_qr: qr::svg(&o.mattermost_url),
        }
    }
}

/// What `--json` prints (and the terminal shows): the URLs and the fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub page_url: String,
    pub expires_at: String,
    pub sha256: String,
    pub sha256_ios: String,
    pub der_url: String,
    pub mobileconfig_url: String,
    pub pem_url: String,
    pub mattermost_url: String,
    pub mattermost_link: String,
    pub ca_constrained: bool,
    pub profile_identifier: String,
    /// Wanted names the server certificate lacks; empty when phones can connect by every one.
    pub leaf_missing: Vec<String>,
}

impl Announcement {
    pub fn new(o: &Onboarding, listen: SocketAddr, expires_at: OffsetDateTime) -> Self {
        let base = format!("http://{}:{}", url_host(listen.ip()), listen.port());
        Self {
            page_url: format!("{base}/"),
            expires_at: pki::rfc3339(expires_at),
            sha256: o.sha256.clone(),
            sha256_ios: ios_fingerprint(&o.sha256),
            der_url: format!("{base}{}", paths::DER),
            mobileconfig_url: format!("{base}{}", paths::MOBILECONFIG),
            pem_url: format!("{base}{}", paths::PEM),
            mattermost_url: o.mattermost_url.clone(),
            mattermost_link: o.mattermost_link.clone(),
            ca_constrained: o.scope.is_some(),
            profile_identifier: profile::identifier(&o.ca_der),
            leaf_missing: o.leaf_missing.clone(),
        }
    }
}
