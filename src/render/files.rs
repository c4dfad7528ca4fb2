//! The rendered files under the state directory: each target's text from the city, its LAN
//! addresses and the vault, and writing it only when it changed (0600: the files hold secrets),
//! reported as one `Step` with the names (never the values) of the settings that changed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::{Inputs, coturn, mattermost_env};
use crate::fsx;
use crate::report::{Outcome, Step};
use crate::secrets::{SecretName, Vault};
use crate::state::StateDir;

/// A file cityd renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    MattermostEnv,
    Coturn,
}

impl Target {
    /// Every target, in the order `cityd up` and `cityd render all` write them.
    pub const ALL: [Target; 2] = [Target::MattermostEnv, Target::Coturn];

    /// Where the target lives under the state directory.
    pub fn default_path(self, state: &StateDir) -> PathBuf {
        match self {
            Target::MattermostEnv => state.rendered_mattermost_env(),
            Target::Coturn => state.rendered_turnserver_conf(),
        }
    }

    /// The command that writes this target alone (the fix doctor names).
    pub fn command(self) -> &'static str {
        match self {
            Target::MattermostEnv => "cityd render mattermost-env",
            Target::Coturn => "cityd render coturn",
        }
    }
}

/// Whether coturn's static auth secret goes into its file or comes from elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnSecret {
    /// Written into the file, from the vault.
    Inline,
    /// Left out: NixOS supplies it from `static-auth-secret-file`.
    External,
}

/// Renders one target, reading the secrets it needs from the vault.
pub fn text(
    target: Target,
    inputs: &Inputs,
    vault: &Vault,
    turn_secret: TurnSecret,
) -> anyhow::Result<String> {
    match target {
        Target::MattermostEnv => {
            let get = |n| vault.get(n).context("the env file needs the vault");
            let db = get(SecretName::MattermostDbPassword)?;
            let at = get(SecretName::MattermostAtRestEncryptKey)?;
            let salt = get(SecretName::MattermostPublicLinkSalt)?;
            let turn = get(SecretName::TurnStaticAuthSecret)?;
            let secrets = mattermost_env::MattermostSecrets {
                db_password: &db,
                at_rest_encrypt_key: &at,
                public_link_salt: &salt,
                turn_static_auth_secret: &turn,
            };
            Ok(mattermost_env::render(inputs, &secrets)?)
        }
        Target::Coturn => match turn_secret {
            TurnSecret::External => Ok(coturn::render(inputs, coturn::SecretSource::External)),
            TurnSecret::Inline => {
                let secret = vault
                    .get(SecretName::TurnStaticAuthSecret)
                    .context("the coturn config needs the TURN secret")?;
                Ok(coturn::render(
                    inputs,
                    coturn::SecretSource::Inline(&secret),
                ))
            }
        },
    }
}

/// One rendered file and what writing it did (or would do, in a dry run). Its text holds secrets
/// (the database password, the TURN secret), so `Debug` shows everything but the text.
pub struct Rendered {
    pub path: PathBuf,
    pub outcome: Outcome,
    /// Settings (env keys or config lines' names) that differ from the file that was on disk.
    pub changed: Vec<String>,
    pub text: String,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("path", &self.path)
            .field("outcome", &self.outcome)
            .field("changed", &self.changed)
            .field(
                "text",
                &format_args!("<{} bytes, not shown>", self.text.len()),
            )
            .finish()
    }
}

impl Rendered {
    /// The file as one step of a larger converge (`cityd up`).
    pub fn step(&self) -> Step {
        Step::new("render", self.path.display().to_string(), self.outcome)
            .detail(self.changed.join(", "))
    }
}

/// Renders `target` and writes it to `path` if it changed (compares only, with `dry_run`).
pub fn render(
    target: Target,
    inputs: &Inputs,
    vault: &Vault,
    turn_secret: TurnSecret,
    path: &Path,
    dry_run: bool,
) -> anyhow::Result<Rendered> {
    let text = text(target, inputs, vault, turn_secret)?;
    let (outcome, changed) = write(path, &text, dry_run)?;
    Ok(Rendered {
        path: path.to_path_buf(),
        outcome,
        changed,
        text,
    })
}

/// Writes (or, in a dry run, compares) one rendered file. Returns the outcome and the names of
/// the settings that differ from what was on disk.
pub fn write(path: &Path, text: &str, dry_run: bool) -> anyhow::Result<(Outcome, Vec<String>)> {
    let old = std::fs::read_to_string(path).ok();
    // A new file changes every setting; listing them all would say nothing.
    let changed = old
        .as_deref()
        .map(|o| changed_settings(o, text))
        .unwrap_or_default();
    if dry_run {
        return Ok((fsx::planned_write(path, text.as_bytes(), 0o600)?, changed));
    }
    if let Some(dir) = path.parent() {
        StateDir::create_private_dir(dir)?;
    }
    let outcome = fsx::write_if_changed(path, text.as_bytes(), 0o600)?;
    Ok((outcome, changed))
}

/// Names of settings that differ between two renderings, never their values.
fn changed_settings(old: &str, new: &str) -> Vec<String> {
    let names = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.to_string(), String::new()),
            })
            .collect()
    };
    let (old, new) = (names(old), names(new));
    let mut out: Vec<String> = Vec::new();
    for (k, v) in &new {
        if !old.iter().any(|(ok, ov)| ok == k && ov == v) && !out.contains(k) {
            out.push(k.clone());
        }
    }
    for (k, v) in &old {
        if !new.iter().any(|(nk, nv)| nk == k && nv == v) && !out.contains(k) {
            out.push(k.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_rendered_text() {
        let rendered = Rendered {
            path: PathBuf::from("/s/render/mattermost.env"),
            outcome: Outcome::Created,
            changed: vec!["MM_SQLSETTINGS_DATASOURCE".into()],
            text: "MM_SQLSETTINGS_DATASOURCE=postgres://mm:s3cr3tpass@db/mm\n".into(),
        };
        let shown = format!("{rendered:?}");
        assert!(!shown.contains("s3cr3tpass"), "{shown}");
        assert!(shown.contains("MM_SQLSETTINGS_DATASOURCE") && shown.contains("not shown"));
    }

    #[test]
    fn changed_settings_names_keys_not_values() {
        let got = changed_settings("A=1\nB=secret1\n# c\n", "A=1\nB=secret2\nC=3\n");
        assert_eq!(got, ["B", "C"]);
    }

    #[test]
    fn a_write_reports_created_then_unchanged_then_updated_and_a_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("render/f.env");
        assert_eq!(
            write(&path, "A=1\n", true).unwrap(),
            (Outcome::WouldCreate, vec![])
        );
        assert!(!path.exists());
        assert_eq!(write(&path, "A=1\n", false).unwrap().0, Outcome::Created);
        assert_eq!(write(&path, "A=1\n", true).unwrap().0, Outcome::Unchanged);
        assert_eq!(
            write(&path, "A=2\n", true).unwrap(),
            (Outcome::WouldUpdate, vec!["A".to_string()])
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "A=1\n");
        assert_eq!(
            write(&path, "A=2\n", false).unwrap(),
            (Outcome::Updated, vec!["A".to_string()])
        );
        assert_eq!(write(&path, "A=2\n", false).unwrap().0, Outcome::Unchanged);
    }
}
