//! Reading certificates back: SAN sets, validity, fingerprints, and the state of `<state>/pki/` as a
//! whole (`inspect`), for `cityd pki show`, `cityd doctor` and the decision to re-issue.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

use super::{PkiError, files};
use crate::state::StateDir;

/// The subject alternative names of a server certificate, as sets so order never matters.
/// DNS names are kept lowercase: DNS comparisons ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SanSet {
    pub dns: BTreeSet<String>,
    pub ip: BTreeSet<IpAddr>,
}

impl SanSet {
    pub fn add_dns(&mut self, name: &str) {
        self.dns.insert(name.to_ascii_lowercase());
    }
    pub fn add_ip(&mut self, ip: IpAddr) {
        self.ip.insert(ip);
    }
    /// `DNS:name` and `IP:address` entries, the way openssl prints them.
    pub fn entries(&self) -> Vec<String> {
        self.dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(self.ip.iter().map(|i| format!("IP:{i}")))
            .collect()
    }
    /// Entries of `self` that `other` lacks.
    pub fn missing_from(&self, other: &SanSet) -> Vec<String> {
        self.dns
            .difference(&other.dns)
            .map(|d| format!("DNS:{d}"))
            .chain(self.ip.difference(&other.ip).map(|i| format!("IP:{i}")))
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ip.is_empty()
    }
}

/// What a phone user (or `doctor`) needs to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    /// Serial number, colon-separated hex.
    pub serial: String,
    pub sans: SanSet,
    /// RFC 3339, UTC.
    pub not_before: String,
    pub not_after: String,
    pub not_after_unix: i64,
    /// Whole days until `not_after` (negative once expired).
    pub days_left: i64,
    /// Whole days between `not_before` and `not_after`.
    pub validity_days: i64,
    /// SHA-256 of the DER certificate, colon-separated uppercase hex (what iOS and `openssl x509
    /// -fingerprint -sha256` show).
    pub sha256: String,
    pub is_ca: bool,
    pub path_len: Option<u32>,
    /// The extended key usage allows TLS server authentication (Apple requires it).
    pub server_auth: bool,
    /// A CA's NameConstraints: what it may vouch for. `None` on a CA means any name at all.
    pub name_constraints: Option<super::NameScope>,
}

/// Colon-separated uppercase hex of the SHA-256 of `der`.
pub fn fingerprint(der: &[u8]) -> String {
    colon_hex(&Sha256::digest(der))
}

pub(crate) fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// RFC 3339 text of a UTC time, without pulling in `time`'s formatting feature.
pub fn rfc3339(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The SAN set of a parsed certificate (IP SANs of 4 and 16 bytes; other lengths are ignored).
pub fn sans_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> SanSet {
    let mut sans = SanSet::default();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.add_dns(d),
                GeneralName::IPAddress(bytes) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*bytes) {
                        sans.add_ip(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*bytes) {
                        sans.add_ip(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    sans
}

/// Parses a DER certificate into its summary, with days counted from `now`.
pub fn summarize(der: &[u8], now: OffsetDateTime) -> Result<CertSummary, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("it is not a DER X.509 certificate ({e})"))?;
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    let constraints = cert
        .basic_constraints()
        .ok()
        .flatten()
        .map(|e| (e.value.ca, e.value.path_len_constraint));
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: colon_hex(cert.raw_serial()),
        sans: sans_of(&cert),
        not_before: rfc3339(not_before),
        not_after: rfc3339(not_after),
        not_after_unix: not_after.unix_timestamp(),
        days_left: (not_after - now).whole_days(),
        validity_days: (not_after - not_before).whole_days(),
        sha256: fingerprint(der),
        is_ca: constraints.is_some_and(|(ca, _)| ca),
        path_len: constraints.and_then(|(_, len)| len),
        server_auth: cert
            .extended_key_usage()
            .ok()
            .flatten()
            .is_some_and(|e| e.value.server_auth || e.value.any),
        name_constraints: super::NameScope::of_certificate(der),
    })
}

/// One of the five PKI files as found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStatus {
    pub name: &'static str,
    pub path: PathBuf,
    pub present: bool,
    /// Permission bits as octal text, e.g. "0600".
    pub mode: Option<String>,
    /// The mode cityd writes: 0600 for keys, 0644 for certificates.
    pub expected_mode: String,
    /// Present with exactly the expected mode.
    pub mode_ok: bool,
}

/// The PKI directory as `cityd pki show` and `cityd doctor` see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PkiSummary {
    pub dir: PathBuf,
    /// `ca.pem`, when present.
    pub ca: Option<CertSummary>,
    /// The leaf of `server.pem`, when present.
    pub server: Option<CertSummary>,
    /// Whether the leaf chains to `ca.pem` for TLS server use right now (signature, validity, EKU);
    /// `None` when either certificate is missing.
    pub server_verifies: Option<bool>,
    /// Why it does not, when it does not.
    pub server_problem: Option<String>,
    pub files: Vec<FileStatus>,
}

impl PkiSummary {
    /// The file statuses whose mode is wrong (a key readable by others, for instance).
    pub fn bad_modes(&self) -> impl Iterator<Item = &FileStatus> {
        self.files.iter().filter(|f| f.present && !f.mode_ok)
    }
}

/// Reads `<state>/pki/` without changing anything. `Ok(None)` when none of the PKI files exist yet.
/// A file that exists but cannot be read or parsed is an error naming it.
///
/// `doctor` compares `summary.server.sans` with [`super::wanted_sans`] to spot a LAN address
/// that moved, and reads `days_left`, the fingerprints and `bad_modes()`.
pub fn inspect(state: &StateDir) -> Result<Option<PkiSummary>, PkiError> {
    inspect_dir(&state.pki_dir(), OffsetDateTime::now_utc())
}

pub(crate) fn inspect_dir(dir: &Path, now: OffsetDateTime) -> Result<Option<PkiSummary>, PkiError> {
    let mut statuses = Vec::new();
    for (name, mode) in files::ALL {
        statuses.push(file_status(dir, name, mode)?);
    }
    if statuses.iter().all(|s| !s.present) {
        return Ok(None);
    }
    let ca_der = read_first_cert(&dir.join(files::CA_PEM))?;
    let leaf_chain = match super::read_optional(&dir.join(files::SERVER_PEM))? {
        Some(bytes) => Some(super::pem::certificates(
            &dir.join(files::SERVER_PEM),
            &bytes,
        )?),
        None => None,
    };
    let summary_of = |path: &Path, der: &[u8]| {
        summarize(der, now).map_err(|detail| PkiError::BadCertificate {
            path: path.to_path_buf(),
            detail,
        })
    };
    let ca = ca_der
        .as_deref()
        .map(|der| summary_of(&dir.join(files::CA_PEM), der))
        .transpose()?;
    let server = leaf_chain
        .as_ref()
        .and_then(|chain| chain.first())
        .map(|der| summary_of(&dir.join(files::SERVER_PEM), der))
        .transpose()?;
    let verdict = match (&ca_der, &leaf_chain) {
        (Some(ca_der), Some(chain)) if !chain.is_empty() => {
            Some(super::trust::leaf_verifies(ca_der, &chain[0], now))
        }
        _ => None,
    };
    Ok(Some(PkiSummary {
        dir: dir.to_path_buf(),
        ca,
        server,
        server_verifies: verdict.as_ref().map(|v| v.is_ok()),
        server_problem: verdict.and_then(|v| v.err()),
        files: statuses,
    }))
}

pub(super) fn read_first_cert(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    let Some(bytes) = super::read_optional(path)? else {
        return Ok(None);
    };
    let mut certs = super::pem::certificates(path, &bytes)?;
    Ok(Some(certs.swap_remove(0)))
}

fn file_status(dir: &Path, name: &'static str, expected: u32) -> Result<FileStatus, PkiError> {
    let path = dir.join(name);
    let mode = match std::fs::metadata(&path) {
        Ok(meta) => Some(meta.permissions().mode() & 0o7777),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => return Err(PkiError::Read { path, source }),
    };
    Ok(FileStatus {
        name,
        present: mode.is_some(),
        mode: mode.map(|m| format!("{m:04o}")),
        expected_mode: format!("{expected:04o}"),
        mode_ok: mode == Some(expected),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_colon_separated_uppercase_sha256() {
        let fp = fingerprint(b"abc");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("BA:78:16:BF:"), "{fp}");
    }

    #[test]
    fn rfc3339_is_utc_with_a_z() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        assert_eq!(rfc3339(at), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn san_differences_name_each_entry() {
        let mut a = SanSet::default();
        a.add_dns("Mattermost.Example");
        a.add_ip("10.0.0.5".parse().unwrap());
        let mut b = SanSet::default();
        b.add_dns("mattermost.example");
        b.add_ip("10.0.0.6".parse().unwrap());
        assert_eq!(a.missing_from(&b), ["IP:10.0.0.5"]);
        assert_eq!(b.missing_from(&a), ["IP:10.0.0.6"]);
    }

    #[test]
    fn an_empty_directory_has_no_summary() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            inspect_dir(dir.path(), OffsetDateTime::now_utc())
                .unwrap()
                .is_none()
        );
        assert!(
            inspect_dir(&dir.path().join("absent"), OffsetDateTime::now_utc())
                .unwrap()
                .is_none()
        );
    }
}
