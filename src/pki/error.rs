//! Everything that can go wrong in the PKI, each message naming the file (or flag) and the fix.

use std::path::PathBuf;

use thiserror::Error;

use crate::fsx::WriteError;
use crate::state::StateError;

#[derive(Debug, Error)]
pub enum PkiError {
    #[error(
        "cannot read {path}; check that the path is right and readable by this user (the state directory must be a directory, not a file)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a usable certificate: {detail}; give a PEM file with a -----BEGIN CERTIFICATE----- block (or a DER .crt)"
    )]
    BadCertificate { path: PathBuf, detail: String },
    #[error(
        "{path} is not a usable private key: {detail}; give the PEM key (PKCS#8 PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY) that belongs to the certificate"
    )]
    BadKey { path: PathBuf, detail: String },
    #[error(
        "{path} is an encrypted PKCS#8 key; pass its passphrase in a file with --ca-key-passphrase-file FILE"
    )]
    PassphraseNeeded { path: PathBuf },
    #[error(
        "cannot decrypt {path} with the passphrase in {passphrase_file}: the passphrase is wrong or the cipher is not PBES2 (PBKDF2 or scrypt with AES); check the file, or re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`"
    )]
    WrongPassphrase {
        path: PathBuf,
        passphrase_file: PathBuf,
    },
    #[error("passphrase file {path} is empty; put the key's passphrase on its first line")]
    EmptyPassphrase { path: PathBuf },
    #[error(
        "{path} uses OpenSSL's legacy PEM encryption (Proc-Type: 4,ENCRYPTED); convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in {path} -out ca-key.p8` and adopt ca-key.p8 with --ca-key-passphrase-file"
    )]
    LegacyEncryptedKey { path: PathBuf },
    #[error(
        "{path} is not a CA certificate (basicConstraints CA:TRUE is missing): a server certificate cannot sign others; adopt the root CA's own certificate"
    )]
    NotACa { path: PathBuf },
    #[error(
        "{path} is a CA certificate whose key usage does not allow keyCertSign, so nothing it signs would be trusted; adopt a CA that may sign certificates"
    )]
    CaCannotSign { path: PathBuf },
    #[error(
        "{path} expired on {not_after}; adopt a CA that is still valid, or move it aside and let `cityd pki ensure` create a new one"
    )]
    CaExpired { path: PathBuf, not_after: String },
    #[error(
        "{key} does not belong to {cert} (their public keys differ); give the key that was generated with this certificate"
    )]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error(
        "{cert} exists but its key {key} does not; cityd never replaces a CA: restore {key} from your backup, or move {dir} aside to start a new CA (every phone must then install the new ca.crt)"
    )]
    CaKeyMissing {
        cert: PathBuf,
        key: PathBuf,
        dir: PathBuf,
    },
    #[error(
        "{dir} already holds a CA (SHA-256 {existing}) and {adopted_path} is a different one (SHA-256 {adopted}); cityd never replaces a CA. Move {dir} aside first if you really mean to switch CAs"
    )]
    CaConflict {
        dir: PathBuf,
        existing: String,
        adopted_path: PathBuf,
        adopted: String,
    },
    #[error(
        "the subject name of {path} cannot be reproduced as an issuer name ({detail}); adopt a CA whose subject has one attribute per RDN in a common string type"
    )]
    IssuerName { path: PathBuf, detail: String },
    #[error(
        "--validity-days {days} is more than 825, the longest validity Apple platforms accept for a TLS server certificate; choose 825 or fewer (default 397)"
    )]
    ValidityTooLong { days: u32 },
    #[error("--validity-days 0 issues a certificate that is already expired; choose 1 to 825")]
    ValidityZero,
    #[error(
        "the server certificate just signed with {ca} does not verify against it ({detail}); nothing was written. Check that the CA certificate and key belong together"
    )]
    LeafDoesNotVerify { ca: PathBuf, detail: String },
    #[error(
        "the city CA {ca} may vouch only for {scope}, and the server certificate needs {names} (lan.addresses moved outside the LAN the CA was made for); nothing was written. Give lan.addresses an address inside that scope, or move <state>/pki aside and run `cityd pki ensure` for a new CA (every phone must then trust it again)"
    )]
    OutsideCaScope {
        ca: PathBuf,
        names: String,
        scope: String,
    },
    #[error("cannot generate {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("cannot lock {path}; check that the PKI directory is writable")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    State(#[from] StateError),
    /// A PKI file or directory cityd does not trust (a link, a FIFO, another user's file).
    #[error(transparent)]
    Untrusted(#[from] crate::owned::Refusal),
}

impl PkiError {
    /// True when the user's input (a file, a flag, the state directory) is at fault: exit code 2.
    pub fn is_bad_input(&self) -> bool {
        if let PkiError::Untrusted(refusal) = self {
            return refusal.is_bad_input();
        }
        !matches!(
            self,
            PkiError::LeafDoesNotVerify { .. }
                | PkiError::Generate { .. }
                | PkiError::Lock { .. }
                | PkiError::Write(_)
        )
    }
}
