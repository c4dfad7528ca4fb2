//! `ensure` and its dry run `plan`: generate every missing secret once, validate the rest, and
//! report what was (or would be) created and kept.

use std::path::PathBuf;

use serde::{Serialize, Serializer};

use super::{Vault, VaultError};
use crate::fsx;
use crate::report::Outcome;

/// This verb's word for an outcome: a secret that already exists is "kept" (never rotated); the
/// others use the shared words. The one place `cityd secrets` maps [`Outcome`] to its output; its
/// JSON uses the same word in snake_case ("would_create").
pub fn action_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Unchanged => "kept",
        other => other.as_str(),
    }
}

fn serialize_action<S: Serializer>(outcome: &Outcome, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&action_word(*outcome).replace(' ', "_"))
}

/// One secret `ensure` looked at.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureEntry {
    pub name: &'static str,
    pub path: PathBuf,
    /// `Created`, `WouldCreate` in a dry run, or `Unchanged` for a secret kept as it was.
    #[serde(serialize_with = "serialize_action")]
    pub action: Outcome,
    pub length: usize,
}

/// The result of `ensure` (or its dry run), plus what it noticed but does not change.
#[derive(Debug, Clone, Serialize)]
pub struct EnsureReport {
    pub vault: PathBuf,
    pub dry_run: bool,
    pub changed: bool,
    pub secrets: Vec<EnsureEntry>,
    /// Temp files of killed runs that were removed (never finished values).
    pub removed_temp_files: usize,
    /// Files or the directory readable by others: reported, never silently re-moded.
    pub warnings: Vec<String>,
}

impl Vault {
    /// Generates every missing secret; existing ones are validated and never rewritten. When any
    /// existing secret breaks its shape, nothing is created.
    pub fn ensure(&self) -> Result<EnsureReport, VaultError> {
        self.converge(false)
    }

    /// What `ensure` would do, without creating anything (not even the directory).
    pub fn plan(&self) -> Result<EnsureReport, VaultError> {
        self.converge(true)
    }

    /// `ensure`, or under `dry_run` its plan: one survey, one report, and only the generation of a
    /// missing secret (with the lock and the clean-up of killed runs' temp files) left out of a dry run.
    pub fn converge(&self, dry_run: bool) -> Result<EnsureReport, VaultError> {
        // A vault this user cannot write (mounted read-only, or made read-only by its owner) can
        // still be checked: a no-op ensure needs only a shared lock. Anything to create then fails
        // with the error of the exclusive lock.
        let (_lock, read_only) = if dry_run {
            (None, None)
        } else {
            match self.lock() {
                Ok(lock) => (Some(lock), None),
                Err(e) if e.is_write_denied() => (self.lock_shared()?, Some(e)),
                Err(e) => return Err(e),
            }
        };
        let survey = self.survey()?;
        let missing = survey.iter().any(|(_, existing)| existing.is_none());
        let read_only = match read_only {
            Some(e) if missing => return Err(e),
            other => other.is_some(),
        };
        let removed_temp_files = if dry_run || read_only {
            0
        } else {
            fsx::remove_stale_temps(&self.dir)
        };
        let mut secrets = Vec::new();
        for (name, existing) in survey {
            let file = name.file_name();
            let length = match &existing {
                Some(s) => s.len(),
                None if dry_run => name.shape().generated_length(),
                None => {
                    let value = name.generate()?;
                    self.create(file, &value)?;
                    tracing::info!(secret = file, "generated a new secret");
                    value.len()
                }
            };
            secrets.push(EnsureEntry {
                name: file,
                path: self.path_of(file),
                action: Outcome::created_if(existing.is_none(), dry_run),
                length,
            });
        }
        Ok(EnsureReport {
            vault: self.dir.clone(),
            dry_run,
            changed: secrets.iter().any(|e| e.action.changes_something()),
            secrets,
            removed_temp_files,
            warnings: self.permission_warnings(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretName;
    use crate::secrets::vault::scratch_vault as vault;

    #[test]
    fn ensure_creates_then_keeps() {
        let (_d, vault) = vault();
        let first = vault.ensure().unwrap();
        assert!(first.changed);
        assert!(first.secrets.iter().all(|e| e.action == Outcome::Created));
        let before = vault.get(SecretName::TurnStaticAuthSecret).unwrap();
        let second = vault.ensure().unwrap();
        assert!(!second.changed);
        assert!(
            second
                .secrets
                .iter()
                .all(|e| e.action == Outcome::Unchanged)
        );
        assert_eq!(before, vault.get(SecretName::TurnStaticAuthSecret).unwrap());
        assert!(second.warnings.is_empty(), "{:?}", second.warnings);
    }

    #[test]
    fn converge_plans_under_dry_run_and_ensures_otherwise() {
        let (_d, vault) = vault();
        let planned = vault.converge(true).unwrap();
        assert!(planned.dry_run);
        assert!(
            planned
                .secrets
                .iter()
                .all(|e| e.action == Outcome::WouldCreate)
        );
        assert!(!vault.dir().exists(), "a dry run writes nothing");
        let done = vault.converge(false).unwrap();
        assert!(!done.dry_run);
        assert!(done.secrets.iter().all(|e| e.action == Outcome::Created));
    }

    #[test]
    fn plan_creates_nothing() {
        let (d, vault) = vault();
        let plan = vault.plan().unwrap();
        assert!(plan.changed);
        assert!(
            plan.secrets
                .iter()
                .all(|e| e.action == Outcome::WouldCreate)
        );
        assert!(!d.path().join("state").exists());
    }

    #[test]
    fn wrong_shape_is_an_error_and_nothing_is_created() {
        let (_d, vault) = vault();
        std::fs::create_dir_all(vault.dir()).unwrap();
        let p = vault.path_of("jenkins-plugin-encryption-key");
        std::fs::write(&p, "tooshort\n").unwrap();
        let err = vault.ensure().unwrap_err();
        assert!(err.is_bad_input());
        let err = err.to_string();
        assert!(
            err.contains("jenkins-plugin-encryption-key")
                && err.contains("exactly 32")
                && err.contains("8 characters")
                && !err.contains("tooshort"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "tooshort\n");
        assert!(!vault.path_of("turn-static-auth-secret").exists());
    }

    #[test]
    fn an_existing_secret_is_kept_in_text_and_json() {
        let entry = |action| EnsureEntry {
            name: "turn-static-auth-secret",
            path: PathBuf::from("/s/turn-static-auth-secret"),
            action,
            length: 64,
        };
        for (outcome, text, json) in [
            (Outcome::Unchanged, "kept", "kept"),
            (Outcome::Created, "created", "created"),
            (Outcome::WouldCreate, "would create", "would_create"),
        ] {
            assert_eq!(action_word(outcome), text);
            assert_eq!(
                serde_json::to_value(entry(outcome)).unwrap()["action"],
                json
            );
        }
    }
}
