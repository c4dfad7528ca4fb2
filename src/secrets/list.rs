//! `list`: every generated secret (present or not) and every other vault file, with metadata only.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::vault::Found;
use super::{SecretName, Vault, VaultError, rule_of};

/// How a vault file looks to `list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListStatus {
    Ok,
    WrongShape,
    Missing,
    Unreadable,
}

/// Metadata that `list` prints: never the value.
#[derive(Debug, Clone, Serialize)]
pub struct ListEntry {
    pub name: String,
    /// `generated` for the secrets cityd makes, `stored` for values it learned.
    pub kind: &'static str,
    pub status: ListStatus,
    pub length: Option<usize>,
    pub path: PathBuf,
    pub age_seconds: Option<u64>,
    /// Octal permission bits, e.g. `0600`.
    pub mode: Option<String>,
    pub rule: String,
    /// Why the file could not be read (a link, a FIFO, another user's file), with the fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Vault {
    /// Every generated secret (present or not) and every other file in the vault, sorted by name.
    pub fn list(&self) -> Result<Vec<ListEntry>, VaultError> {
        self.trusted_dirs()?;
        let mut names: Vec<String> = SecretName::ALL
            .iter()
            .map(|n| n.file_name().to_string())
            .collect();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries {
                    let entry = entry.map_err(|source| VaultError::ReadDir {
                        path: self.dir.clone(),
                        source,
                    })?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.starts_with('.') && !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(VaultError::ReadDir {
                    path: self.dir.clone(),
                    source,
                });
            }
        }
        names.sort();
        Ok(names.into_iter().map(|name| self.describe(name)).collect())
    }

    fn describe(&self, name: String) -> ListEntry {
        let path = self.path_of(&name);
        let meta = std::fs::symlink_metadata(&path).ok();
        let (status, length, problem) = match self.find(&name) {
            Ok(Found::Absent) => (ListStatus::Missing, None, None),
            Ok(Found::Valid(s)) => (ListStatus::Ok, Some(s.len()), None),
            Ok(Found::Invalid { length, .. }) => (ListStatus::WrongShape, Some(length), None),
            Err(e) => (ListStatus::Unreadable, None, Some(e.to_string())),
        };
        ListEntry {
            kind: if SecretName::from_file_name(&name).is_some() {
                "generated"
            } else {
                "stored"
            },
            status,
            length,
            age_seconds: meta.as_ref().and_then(|m| m.modified().ok()).map(|m| {
                SystemTime::now()
                    .duration_since(m)
                    .map_or(0, |d| d.as_secs())
            }),
            mode: meta.map(|m| format!("{:04o}", m.mode() & 0o7777)),
            rule: rule_of(&name),
            problem,
            path,
            name,
        }
    }
}

/// An age as `list` prints it: seconds under two minutes, then minutes, hours, days.
pub fn human_age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::human_age;

    #[test]
    fn ages_switch_unit_at_two_of_the_next() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (7199, "119m"),
            (7200, "2h"),
            (172_799, "47h"),
            (172_800, "2d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_age(secs), want, "{secs}");
        }
    }
}
