//! The CA certificate as `cityd pki export` hands it to phones: DER (what installers take) or PEM,
//! with its SHA-256 fingerprint, written to a file only when its bytes differ.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use thiserror::Error;

use super::{PkiError, ca_certificate, files, fingerprint, pem_encode};
use crate::exit::{BAD_INPUT, ExitCoded, failure_code};
use crate::fsx;
use crate::report::Outcome;
use crate::state::StateDir;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaFormat {
    Der,
    Pem,
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("no CA in {} yet; run `cityd pki ensure` first", dir.display())]
    NoCa { dir: PathBuf },
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// No CA yet, or an unusable state, is the input's fault (exit 2); a failed read is not.
impl ExitCoded for ExportError {
    fn exit_code(&self) -> u8 {
        match self {
            ExportError::NoCa { .. } => BAD_INPUT,
            ExportError::Pki(e) => failure_code(e.is_bad_input()),
        }
    }
}

/// The CA certificate's bytes in one format, and its fingerprint (that of the DER).
#[derive(Debug)]
pub struct CaExport {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// The city CA from `<state>/pki/ca.pem` in `format`.
pub fn ca_export(state: &StateDir, format: CaFormat) -> Result<CaExport, ExportError> {
    let der = ca_certificate(state)?.ok_or_else(|| ExportError::NoCa {
        dir: state.pki_dir(),
    })?;
    Ok(encode(&der, format))
}

fn encode(der: &[u8], format: CaFormat) -> CaExport {
    let bytes = match format {
        CaFormat::Der => der.to_vec(),
        CaFormat::Pem => pem_encode("CERTIFICATE", der).into_bytes(),
    };
    CaExport {
        bytes,
        sha256: fingerprint(der),
    }
}

/// Writes the export to `path` (mode 0644, a certificate is public) unless it already holds it.
pub fn write_export(path: &Path, export: &CaExport) -> anyhow::Result<Outcome> {
    fsx::write_if_changed(path, &export.bytes, files::CERT_MODE)
        .with_context(|| format!("exporting the CA certificate to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_is_the_certificate_and_pem_wraps_it_with_the_same_fingerprint() {
        let der = b"not really a certificate".to_vec();
        let as_der = encode(&der, CaFormat::Der);
        let as_pem = encode(&der, CaFormat::Pem);
        assert_eq!(as_der.bytes, der);
        let text = String::from_utf8(as_pem.bytes).unwrap();
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----"), "{text}");
        assert_eq!(as_der.sha256, as_pem.sha256);
        assert_eq!(as_der.sha256, fingerprint(&der));
    }

    #[test]
    fn without_a_ca_there_is_nothing_to_export() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::at(dir.path().to_path_buf()).unwrap();
        let error = ca_export(&state, CaFormat::Der).unwrap_err();
        assert_eq!(error.exit_code(), BAD_INPUT);
        assert_eq!(
            error.to_string(),
            format!(
                "no CA in {} yet; run `cityd pki ensure` first",
                state.pki_dir().display()
            )
        );
    }

    #[test]
    fn a_second_write_of_the_same_bytes_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        let export = encode(b"bytes", CaFormat::Der);
        assert_eq!(write_export(&path, &export).unwrap(), Outcome::Created);
        assert_eq!(write_export(&path, &export).unwrap(), Outcome::Unchanged);
    }
}
