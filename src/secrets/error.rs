//! What can go wrong in the vault, each error naming the file and the fix, never a value.

use std::path::PathBuf;

use serde::Serialize;
use thiserror::Error;

use crate::fsx::WriteError;
use crate::state::StateError;

#[derive(Debug, Error)]
pub enum VaultError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{}", shape_problems_message(.0))]
    WrongShape(Vec<ShapeProblem>),
    #[error(
        "secret {name} has not been generated yet (no file {path}); run `cityd secrets ensure`"
    )]
    Missing { name: String, path: PathBuf },
    #[error(
        "cannot read secret file {path}; the user running cityd must own it and be able to search its directory and the parents (cityd writes 0600 files in a 0700 directory), or pass another --state-dir"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot read the vault directory {path}; the user running cityd needs read, write and search permission on it and its parents (cityd creates it 0700), or pass another --state-dir"
    )]
    ReadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file; move it away so the vault can use the name")]
    NotAFile { path: PathBuf },
    #[error(
        "cannot lock the vault at {path}; the user running cityd must be able to write the vault directory"
    )]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{name:?} is not a secret name: names are plain file names in {dir} (no '/', not starting with '.'); `cityd secrets list` shows them"
    )]
    BadName { name: String, dir: PathBuf },
    #[error(
        "no secret named {name:?} in {dir}; the generated ones are {known}, and `cityd secrets list` shows every file the vault holds"
    )]
    UnknownName {
        name: String,
        dir: PathBuf,
        known: String,
    },
    #[error("the value given for {name} is not acceptable: {problem}; the rule is {rule}")]
    BadValue {
        name: String,
        problem: String,
        rule: String,
    },
    #[error(
        "{path} already holds a different value; cityd never replaces a generated secret (rotating it destroys what it protected). Remove the file yourself if you really mean to rotate it"
    )]
    Conflict { path: PathBuf },
    #[error(
        "the operating system's random source failed: {0}; cityd does not generate secrets without it"
    )]
    Random(String),
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A vault file or directory cityd does not trust (a link, a FIFO, another user's file).
    #[error(transparent)]
    Untrusted(#[from] crate::owned::Refusal),
}

impl VaultError {
    /// True when the vault could not be locked for writing because it is read-only to this user.
    pub fn is_write_denied(&self) -> bool {
        match self {
            VaultError::Lock { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            _ => false,
        }
    }

    /// True when the error is about what the user gave or has on disk (exit 2), not a failed operation.
    pub fn is_bad_input(&self) -> bool {
        match self {
            VaultError::State(_)
            | VaultError::WrongShape(_)
            | VaultError::Missing { .. }
            | VaultError::NotAFile { .. }
            | VaultError::BadName { .. }
            | VaultError::UnknownName { .. }
            | VaultError::BadValue { .. }
            | VaultError::Conflict { .. } => true,
            VaultError::Read { source, .. }
            | VaultError::ReadDir { source, .. }
            | VaultError::Lock { source, .. } => {
                source.kind() == std::io::ErrorKind::PermissionDenied
            }
            VaultError::Untrusted(refusal) => refusal.is_bad_input(),
            VaultError::Random(_) | VaultError::Write(_) => false,
        }
    }
}

/// One existing secret file that breaks its rule. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapeProblem {
    pub path: PathBuf,
    /// What is wrong, described without the value (a length, a position).
    pub problem: String,
    pub rule: String,
}

fn shape_problems_message(problems: &[ShapeProblem]) -> String {
    let mut out = String::new();
    if let [p] = problems {
        out.push_str(&format!(
            "secret file {} does not match its shape: {}; the rule is {}. ",
            p.path.display(),
            p.problem,
            p.rule
        ));
    } else {
        out.push_str(&format!(
            "{} secret files do not match their shapes:",
            problems.len()
        ));
        for p in problems {
            out.push_str(&format!(
                "\n  {}: {}; the rule is {}",
                p.path.display(),
                p.problem,
                p.rule
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "cityd never replaces an existing secret (rotating it destroys what it protected): \
fix the file, or remove it to have a new value generated",
    );
    out
}
