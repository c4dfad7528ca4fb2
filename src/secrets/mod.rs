//! The vault: one 0600 file per secret under `<state>/secrets/`, generated once from the OS random
//! source, validated by shape, never rotated, written atomically and serialised by a lock file.
//!
//! One module per noun: [`Secret`] (the redacting value), [`Shape`] (the rule a value must
//! satisfy), [`SecretName`] (what cityd generates), [`Vault`] (files, lock, atomic writes),
//! `ensure` and `list` (the reports), and [`import_env`] (the blog's `cicd.env`).

mod ensure;
mod error;
pub mod import_env;
mod list;
mod name;
mod secret;
mod shape;
mod vault;

pub use ensure::{EnsureEntry, EnsureReport, action_word};
pub use error::{ShapeProblem, VaultError};
pub use list::{ListEntry, ListStatus, human_age};
pub use name::{SecretName, rule_of, shape_of};
pub use secret::Secret;
pub use shape::Shape;
pub(crate) use vault::is_plain_file_name;
pub use vault::{Vault, VaultLock};
