//! The TURN static auth secret (coturn's `static-auth-secret`): from a file the user names, else
//! from the vault. Its value is never printed; only credentials derived from it are.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use thiserror::Error;

use crate::exit::{BAD_INPUT, ExitCoded};
use crate::secrets::{Secret, SecretName, Vault};

/// A secret file that cannot serve as the static auth secret.
#[derive(Debug, Error)]
pub enum SecretFileError {
    #[error(
        "cannot read the secret file {}; give a readable file holding the static auth secret",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("secret file {} must hold the secret on one line", path.display())]
    NotOneLine { path: PathBuf },
}

/// The file is the input: exit 2.
impl ExitCoded for SecretFileError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// The static auth secret as the vault holds it.
pub fn from_vault(vault: &Vault) -> anyhow::Result<Secret> {
    vault
        .get(SecretName::TurnStaticAuthSecret)
        .context("reading the TURN static auth secret from the vault")
}

/// The static auth secret from a file (e.g. coturn's copy): one non-empty line; a trailing line break is not part of the secret.
pub fn from_file(path: &Path) -> Result<Secret, SecretFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() || value.contains('\n') {
        return Err(SecretFileError::NotOneLine {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret::new(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_holds_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\r\n").unwrap();
        assert_eq!(from_file(&path).unwrap().expose(), "s3cret");
        for bad in ["", "\n", "one\ntwo\n"] {
            std::fs::write(&path, bad).unwrap();
            assert!(
                matches!(from_file(&path), Err(SecretFileError::NotOneLine { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_unreadable_file_names_itself_and_is_bad_input() {
        let error = from_file(Path::new("/nonexistent/secret")).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/secret"), "{error}");
        assert_eq!(error.exit_code(), BAD_INPUT);
    }
}
