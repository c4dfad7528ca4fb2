//! Leaves for the city's other TLS servers (the managed PostgreSQL): `<state>/pki/<name>.pem` and
//! `<name>.key`, signed by the city CA, re-issued only when missing, not from this CA, naming other
//! SANs, or within [`RENEW_BELOW_DAYS`] of expiry.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::ca::Ca;
use super::inspect::{SanSet, sans_of};
use super::server::{DEFAULT_VALIDITY_DAYS, RENEW_BELOW_DAYS, issue};
use super::{PkiError, files, pem, read_optional, trust};
use crate::fsx;
use crate::state::StateDir;

/// A service leaf as it is after [`ensure_service_leaf`].
pub struct ServiceLeaf {
    pub cert_pem: Vec<u8>,
    /// Secret: never logged.
    pub key_pem: Vec<u8>,
    /// Whether this run issued it (or, in a dry run, would).
    pub issued: bool,
    /// Why it was (or would be) issued.
    pub why: String,
}

impl std::fmt::Debug for ServiceLeaf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceLeaf")
            .field("issued", &self.issued)
            .field("why", &self.why)
            .finish_non_exhaustive()
    }
}

pub fn service_paths(state: &StateDir, name: &str) -> (PathBuf, PathBuf) {
    let dir = state.pki_dir();
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    )
}

/// Makes sure `<state>/pki/<name>.pem` is a current leaf of the city CA for exactly `sans`. The
/// CA must exist (`pki::ensure` runs first). With `dry_run`, nothing is written and a leaf that
/// would be issued comes back empty.
pub fn ensure_service_leaf(
    state: &StateDir,
    name: &str,
    sans: &SanSet,
    dry_run: bool,
) -> Result<ServiceLeaf, PkiError> {
    let now = OffsetDateTime::now_utc();
    let (cert_path, key_path) = service_paths(state, name);
    let ca_pem = state.ca_pem();
    let ca_cert = read_optional(&ca_pem)?;
    let current = read_optional(&cert_path)?.zip(read_optional(&key_path)?);
    let why = match (&ca_cert, &current) {
        (None, _) => Some("the city CA does not exist yet".to_string()),
        (_, None) => Some("missing".to_string()),
        (Some(ca), Some((cert, _))) => stale(&cert_path, ca, cert, sans, now),
    };
    let Some(why) = why else {
        let (cert_pem, key_pem) = current.expect("a current leaf exists");
        return Ok(ServiceLeaf {
            cert_pem,
            key_pem,
            issued: false,
            why: String::new(),
        });
    };
    if dry_run {
        return Ok(ServiceLeaf {
            cert_pem: Vec::new(),
            key_pem: Vec::new(),
            issued: true,
            why,
        });
    }
    let ca = load_ca(state, now)?;
    let leaf = issue(&ca, sans, DEFAULT_VALIDITY_DAYS, now)?;
    let mut cert_pem = leaf.cert_pem().into_bytes();
    cert_pem.extend_from_slice(ca.cert_pem().as_bytes());
    let key_pem = leaf.key_pem().into_bytes();
    fsx::write_if_changed(&key_path, &key_pem, files::KEY_MODE)?;
    fsx::write_if_changed(&cert_path, &cert_pem, files::CERT_MODE)?;
    Ok(ServiceLeaf {
        cert_pem,
        key_pem,
        issued: true,
        why,
    })
}

/// Why the leaf on disk must be replaced, or `None` when it is current.
fn stale(
    path: &Path,
    ca_pem: &[u8],
    cert_pem: &[u8],
    sans: &SanSet,
    now: OffsetDateTime,
) -> Option<String> {
    let Ok(ca) = pem::certificates(path, ca_pem) else {
        return Some("the city CA does not parse".into());
    };
    let Ok(certs) = pem::certificates(path, cert_pem) else {
        return Some("it does not parse".into());
    };
    let leaf = &certs[0];
    if let Err(why) = trust::leaf_verifies(&ca[0], leaf, now) {
        return Some(format!("it does not verify against the city CA ({why})"));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    if sans_of(&cert) != *sans {
        return Some(format!(
            "its names differ from {}",
            sans.entries().join(", ")
        ));
    }
    let days_left = (cert.validity().not_after.to_datetime() - now).whole_days();
    (days_left < RENEW_BELOW_DAYS).then(|| format!("{days_left} days left"))
}

fn load_ca(state: &StateDir, now: OffsetDateTime) -> Result<Ca, PkiError> {
    let cert_path = state.ca_pem();
    let key_path = state.pki_dir().join(files::CA_KEY);
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| PkiError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_der = pem::certificates(&cert_path, &read(&cert_path)?)?.swap_remove(0);
    let key = pem::private_key(&key_path, &read(&key_path)?, None)?;
    Ca::from_parts(cert_der, key, &cert_path, &key_path, now)
}
