//! The local root CA and the mobile-ready server certificate in `<state>/pki/`: create or adopt the CA,
//! issue and renew the leaf only when its names or remaining days require it, and read it all back.
//!
//! Files (see [`files`]): `ca.pem`, `ca.crt` (DER, what a phone's installer takes), `ca.key` (0600),
//! `server.pem` (leaf + CA), `server.key` (0600). The CA is never regenerated or replaced; a re-run
//! that finds everything current writes nothing (same bytes, same mtime).
//!
//! Library entry points: [`ensure`] (converge, or plan with `dry_run`), [`inspect`] (read-only
//! summary for `show` and `doctor`), [`show_report`] (that summary against the wanted names),
//! [`wanted_sans`], [`ca_certificate`] and [`ca_export`] (for `export`), and
//! [`probe`] for TLS handshakes that trust only the city CA, and [`leaf_covers`] (does the leaf on
//! disk still name every LAN address, and may the CA vouch for them).
//!
//! A CA created here carries a critical NameConstraints extension ([`NameScope::for_city`]): the
//! city's domain, `localhost`, loopback, the private ranges and the LAN's prefix. A CA adopted with
//! `--ca-cert`, or made by a cityd from before the constraints, is kept as it is (the CA is never
//! replaced: phones trust it); `doctor` warns that it may vouch for any site.

mod ca;
mod covers;
mod ensure;
mod error;
mod export;
mod inspect;
mod pem;
pub mod probe;
mod scope;
mod server;
mod service;
mod show;
mod trust;

use std::path::Path;

pub use ca::{CA_VALIDITY_DAYS, Ca, common_name, random_serial};
pub use covers::{LeafCoverage, leaf_covers};
pub use ensure::{Action, AdoptCa, EnsureOptions, EnsureReport, FileChange, ensure, ensure_in};
pub use error::PkiError;
pub use export::{CaExport, CaFormat, ExportError, ca_export, write_export};
pub use inspect::{
    CertSummary, FileStatus, PkiSummary, SanSet, fingerprint, inspect, rfc3339, summarize,
};
pub use pem::{Passphrase, encode as pem_encode, read_passphrase};
pub use scope::{IpNet, LAN_PREFIX_V4, LAN_PREFIX_V6, NameScope, PRIVATE_RANGES};
pub use server::{
    DEFAULT_VALIDITY_DAYS, Leaf, MAX_VALIDITY_DAYS, RENEW_BELOW_DAYS, check_validity_days, issue,
    wanted_sans,
};
pub use service::{ServiceLeaf, ensure_service_leaf, service_paths};
pub use show::{ShowReport, show_report};
pub use trust::{explain, verify_leaf};

use crate::state::StateDir;

/// File names under `<state>/pki/` and the modes cityd gives them.
pub mod files {
    pub const CA_PEM: &str = "ca.pem";
    pub const CA_CRT: &str = "ca.crt";
    pub const CA_KEY: &str = "ca.key";
    pub const SERVER_PEM: &str = "server.pem";
    pub const SERVER_KEY: &str = "server.key";
    /// Serialises concurrent `ensure` runs.
    pub const LOCK: &str = ".lock";
    pub const CERT_MODE: u32 = 0o644;
    pub const KEY_MODE: u32 = 0o600;
    /// Every PKI file with its mode, in the order `ensure` writes them.
    pub const ALL: [(&str, u32); 5] = [
        (CA_KEY, KEY_MODE),
        (CA_PEM, CERT_MODE),
        (CA_CRT, CERT_MODE),
        (SERVER_KEY, KEY_MODE),
        (SERVER_PEM, CERT_MODE),
    ];
}

/// The DER of the CA certificate in `<state>/pki/ca.pem`, or `None` before `ensure` made one.
pub fn ca_certificate(state: &StateDir) -> Result<Option<Vec<u8>>, PkiError> {
    inspect::read_first_cert(&state.ca_pem())
}

/// The first certificate of a PEM (or DER) file, e.g. a CA given with `cityd verify tls --ca`.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, PkiError> {
    let bytes = std::fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(pem::certificates(path, &bytes)?.swap_remove(0))
}

/// Reads a file, `None` when it does not exist; any other failure names the file.
/// A file of the state's PKI directory is read only when the directory and the file can be
/// trusted (`crate::owned`): never through a link, never a FIFO, never another user's file.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    if let Some(dir) = path.parent() {
        crate::owned::check_dir(dir)?;
    }
    crate::owned::read_file(path, MAX_PKI_FILE_BYTES).map_err(|refusal| match refusal {
        crate::owned::Refusal::Io { path, source } => PkiError::Read { path, source },
        other => PkiError::Untrusted(other),
    })
}

/// No certificate chain or key cityd writes comes near this; a larger file is not ours.
const MAX_PKI_FILE_BYTES: u64 = 1 << 20;
