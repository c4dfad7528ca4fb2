//! The vault line: every secret cityd generates is present and of its shape.

use super::Line;
use crate::secrets::{SecretName, Vault};

pub fn line(vault: &Vault) -> Line {
    let missing: Vec<&str> = SecretName::ALL
        .iter()
        .filter(|n| vault.get(**n).is_err())
        .map(|n| n.file_name())
        .collect();
    if missing.is_empty() {
        Line::green(
            "vault",
            vault.dir().display().to_string(),
            format!("complete ({} secrets)", SecretName::ALL.len()),
        )
    } else {
        Line::red(
            "vault",
            vault.dir().display().to_string(),
            format!("missing or malformed: {}", missing.join(", ")),
            "`cityd secrets ensure` generates what is missing (and never rotates what exists)",
        )
    }
}
