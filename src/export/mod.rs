//! `cityd export`: the city handed to the engines that scale past one host — manifests for the
//! Mattermost Operator (`k8s`), a standalone rtcd (`rtcd`), a coturn fleet sharing the static
//! auth secret (`turn_fleet`) and a sizing estimate from Mattermost's published figures
//! (`sizing`) — and the writing of those files: the ones holding secrets 0600, the rest 0644, each
//! rewritten only when it changed, so a re-run on an unchanged city leaves identical bytes.

pub mod k8s;
pub mod rtcd;
pub mod sizing;
pub mod turn_fleet;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::fsx;
use crate::report::Outcome;
use crate::state::StateDir;

/// Mode of an exported file that holds a secret value.
pub const SECRET_MODE: u32 = 0o600;
/// Mode of every other exported file.
pub const PLAIN_MODE: u32 = 0o644;

/// One file an export writes. Its text may hold secrets, so `Debug` leaves the text out.
pub struct ExportFile {
    /// File name inside the output directory.
    pub name: String,
    pub text: String,
    /// Holds a secret value (written 0600, named in the warning).
    pub secret: bool,
}

impl std::fmt::Debug for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportFile")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .field(
                "text",
                &format_args!("<{} bytes, not shown>", self.text.len()),
            )
            .finish()
    }
}

impl ExportFile {
    pub fn plain(name: impl Into<String>, text: String) -> Self {
        Self {
            name: name.into(),
            text,
            secret: false,
        }
    }

    pub fn secret(name: impl Into<String>, text: String) -> Self {
        Self {
            name: name.into(),
            text,
            secret: true,
        }
    }

    pub fn mode(&self) -> u32 {
        if self.secret { SECRET_MODE } else { PLAIN_MODE }
    }
}

/// What writing one file did (or would do, in a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub outcome: Outcome,
    pub secret: bool,
}

/// Writes every file into `dir` (created 0700 when missing: it holds secrets), each only when its
/// bytes or mode differ; with `dry_run` compares and writes nothing.
pub fn write(dir: &Path, files: &[ExportFile], dry_run: bool) -> anyhow::Result<Vec<Written>> {
    if !dry_run {
        StateDir::create_private_dir(dir)?;
    }
    let mut written = Vec::new();
    for file in files {
        let path = dir.join(&file.name);
        let outcome = if dry_run {
            fsx::planned_write(&path, file.text.as_bytes(), file.mode())?
        } else {
            fsx::write_if_changed(&path, file.text.as_bytes(), file.mode())?
        };
        written.push(Written {
            path,
            outcome,
            secret: file.secret,
        });
    }
    Ok(written)
}

/// What an export wrote (or would write), and the warning about the files that hold secrets.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub files: Vec<Written>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Exported {
    /// Writes `files` into `dir` and words the secrets warning.
    pub fn write(dir: &Path, files: &[ExportFile], dry_run: bool) -> anyhow::Result<Self> {
        let files = write(dir, files, dry_run)?;
        // A dry run writes nothing, so there is nothing to seal yet; its listing marks the secrets.
        let warning = if dry_run {
            None
        } else {
            secrets_warning(&files)
        };
        Ok(Self { files, warning })
    }
}

/// The warning printed after an export that wrote secret files: which, and how to seal them.
pub fn secrets_warning(written: &[Written]) -> Option<String> {
    let names: Vec<String> = written
        .iter()
        .filter(|w| w.secret)
        .map(|w| w.path.display().to_string())
        .collect();
    if names.is_empty() {
        return None;
    }
    Some(format!(
        "these files hold secrets from the vault in clear (mode 0600): {}. Do not commit them; \
         seal them before they leave this host, e.g. `kubeseal --format yaml < FILE > sealed-FILE` \
         (Sealed Secrets) or `sops --encrypt --in-place FILE`, or apply them directly and delete them.",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_0600_the_rest_0644_and_a_rerun_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let files = [
            ExportFile::secret("s.yaml", "password: x\n".into()),
            ExportFile::plain("p.yaml", "kind: x\n".into()),
        ];
        let planned = write(&out, &files, true).unwrap();
        assert!(planned.iter().all(|w| w.outcome == Outcome::WouldCreate));
        assert!(!out.exists());
        let first = write(&out, &files, false).unwrap();
        assert!(first.iter().all(|w| w.outcome == Outcome::Created));
        assert_eq!(fsx::mode_of(&out.join("s.yaml")).unwrap(), 0o600);
        assert_eq!(fsx::mode_of(&out.join("p.yaml")).unwrap(), 0o644);
        let again = write(&out, &files, false).unwrap();
        assert!(again.iter().all(|w| w.outcome == Outcome::Unchanged));
        let warning = secrets_warning(&again).unwrap();
        assert!(warning.contains("s.yaml") && !warning.contains("p.yaml"));
        assert!(!format!("{:?}", files[0]).contains("password"));
    }
}
