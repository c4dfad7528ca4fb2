//! `cityd secrets import-env`: adopts the secrets of the blog's `cicd.env` so an existing
//! installation keeps its keys. Reads the file the way the blog's scripts do (`source` it: quotes
//! stripped, `export` allowed, the last assignment wins), validates every value before touching the
//! vault, and writes all of them or none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use super::vault::Found;
use super::{Secret, SecretName, Vault, VaultError};

/// The blog's variable for each secret (its `01-setup-database.sh` and `01-setup-mattermost.sh`).
pub const BLOG_VARIABLES: [(&str, SecretName); 7] = [
    ("MATTERMOST_TURN_SECRET", SecretName::TurnStaticAuthSecret),
    (
        "MATTERMOST_AT_REST_KEY",
        SecretName::MattermostAtRestEncryptKey,
    ),
    (
        "MATTERMOST_PUBLIC_LINK_SALT",
        SecretName::MattermostPublicLinkSalt,
    ),
    (
        "MATTERMOST_GITLAB_PLUGIN_SECRET",
        SecretName::GitlabPluginWebhookSecret,
    ),
    (
        "MATTERMOST_GITLAB_PLUGIN_KEY",
        SecretName::GitlabPluginEncryptionKey,
    ),
    (
        "MATTERMOST_JENKINS_PLUGIN_KEY",
        SecretName::JenkinsPluginEncryptionKey,
    ),
    ("MATTERMOST_DB_PASSWORD", SecretName::MattermostDbPassword),
];

/// The blog's cicd.env holds a dozen lines; a file this large is not it.
pub const MAX_ENV_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum ImportError {
    #[error(
        "cannot read {path}; give the path of the blog's cicd.env (its scripts keep it at ~/cicd_stack/cicd.env)"
    )]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not UTF-8 text, so it is not an env file the blog's scripts wrote; check the path"
    )]
    NotText { path: PathBuf },
    /// Not a regular file, or larger than any env file the blog's scripts write.
    #[error("{0}; give the path of the blog's cicd.env (a regular file)")]
    Unusable(crate::owned::Refusal),
    #[error("{}", refusal_message(.0))]
    Refused(Box<ImportReport>),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The input (the file, or its clash with the vault) at fault exits 2, anything else 1.
impl crate::exit::ExitCoded for ImportError {
    fn exit_code(&self) -> u8 {
        crate::exit::failure_code(self.is_bad_input())
    }
}

impl ImportError {
    /// True when the input (the file, or its clash with the vault) is at fault: exit 2.
    pub fn is_bad_input(&self) -> bool {
        match self {
            ImportError::ReadFile { .. }
            | ImportError::Unusable(_)
            | ImportError::NotText { .. }
            | ImportError::Refused(_) => true,
            ImportError::Vault(e) => e.is_bad_input(),
        }
    }
}

/// How the value was written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quoting {
    None,
    Double,
    Single,
}

/// What happened to one variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Written to the vault.
    Taken,
    /// Would be written (dry run).
    WouldTake,
    /// The vault already holds the same value.
    Same,
    /// The vault holds a different value: an error, nothing replaced.
    Conflict,
    /// The value in the file breaks the rule: an error.
    WrongShape,
    /// The vault's own file breaks the rule: an error.
    VaultWrongShape,
    /// Not in the file (or empty there).
    Absent,
}

impl ImportStatus {
    pub fn is_error(self) -> bool {
        matches!(
            self,
            ImportStatus::Conflict | ImportStatus::WrongShape | ImportStatus::VaultWrongShape
        )
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ImportStatus::Taken => "taken",
            ImportStatus::WouldTake => "would take",
            ImportStatus::Same => "same",
            ImportStatus::Conflict => "CONFLICT",
            ImportStatus::WrongShape => "WRONG SHAPE",
            ImportStatus::VaultWrongShape => "VAULT FILE BROKEN",
            ImportStatus::Absent => "absent",
        }
    }
}

/// The report for one variable. Never holds the value.
#[derive(Debug, Clone, Serialize)]
pub struct ImportEntry {
    pub variable: &'static str,
    pub secret: &'static str,
    pub path: PathBuf,
    pub status: ImportStatus,
    /// The line whose value counts (the last assignment, as `source` does).
    pub line: Option<usize>,
    pub quoting: Option<Quoting>,
    pub rule: String,
    /// For errors: what is wrong (a length, a position; never a character of the value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// For errors: what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub file: PathBuf,
    pub vault: PathBuf,
    pub dry_run: bool,
    /// True when something was (or, in a dry run, would be) written.
    pub changed: bool,
    /// False when any variable is an error; then nothing was written.
    pub ok: bool,
    pub variables: Vec<ImportEntry>,
    /// Generated secrets the vault still lacks after the import: `cityd secrets ensure` makes them.
    pub still_missing: Vec<&'static str>,
}

impl ImportReport {
    pub fn errors(&self) -> impl Iterator<Item = &ImportEntry> {
        self.variables.iter().filter(|e| e.status.is_error())
    }
}

fn refusal_message(report: &ImportReport) -> String {
    let errors: Vec<&ImportEntry> = report.errors().collect();
    let mut out = format!(
        "import-env refused {} ({} problem{}); nothing was written to {}:",
        report.file.display(),
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        report.vault.display()
    );
    for e in errors {
        let at = e.line.map_or_else(String::new, |l| format!(" on line {l}"));
        let rule = match e.status {
            ImportStatus::Conflict => String::new(),
            _ => format!("; the rule for {} is {}", e.secret, e.rule),
        };
        out.push_str(&format!(
            "\n  {}{at} of {}: {}{rule}. Fix: {}",
            e.variable,
            report.file.display(),
            e.problem.as_deref().unwrap_or("invalid"),
            e.fix.as_deref().unwrap_or("correct the line"),
        ));
    }
    out
}

/// One assignment of one of our variables, as the shell would read it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assignment {
    line: usize,
    /// The value and its quoting, or why the line is not a plain assignment.
    value: Result<(String, Quoting), &'static str>,
}

/// Splits `KEY=rest` off a line (after `export`), or `None` for comments, blanks and other lines.
fn split_assignment(raw: &str) -> Option<(&str, &str)> {
    let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let line = match line.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => line,
    };
    line.split_once('=')
}

/// Reads the value after `=` like a shell word: one pair of quotes stripped, an unquoted value ends
/// at whitespace, a `#` after whitespace starts a comment. Escapes and `$` are left in place: no
/// secret shape accepts them, so such a value is refused rather than guessed.
fn shell_value(rest: &str) -> Result<(String, Quoting), &'static str> {
    let rest = rest.trim_end();
    let comment_or_nothing = |after: &str| {
        after.is_empty() || (after.starts_with([' ', '\t']) && after.trim_start().starts_with('#'))
    };
    for (quote, kind) in [('"', Quoting::Double), ('\'', Quoting::Single)] {
        if let Some(body) = rest.strip_prefix(quote) {
            let Some(close) = body.find(quote) else {
                return Err("the quote opened after '=' is never closed on that line");
            };
            return if comment_or_nothing(&body[close + 1..]) {
                Ok((body[..close].to_string(), kind))
            } else {
                Err("text follows the closing quote")
            };
        }
    }
    let end = rest.find([' ', '\t']).unwrap_or(rest.len());
    if comment_or_nothing(&rest[end..]) {
        Ok((rest[..end].to_string(), Quoting::None))
    } else {
        Err("the unquoted value contains whitespace")
    }
}

/// Every assignment of each of our variables, in file order.
fn scan(text: &str) -> BTreeMap<&'static str, Vec<Assignment>> {
    let mut found: BTreeMap<&'static str, Vec<Assignment>> = BTreeMap::new();
    for (i, raw) in text.split('\n').enumerate() {
        let Some((key, rest)) = split_assignment(raw) else {
            continue;
        };
        let Some(&(variable, _)) = BLOG_VARIABLES.iter().find(|(v, _)| *v == key.trim_end()) else {
            continue;
        };
        let value = if key != variable {
            Err("a space before '=' makes it a command, not an assignment")
        } else {
            shell_value(rest)
        };
        found
            .entry(variable)
            .or_default()
            .push(Assignment { line: i + 1, value });
    }
    found
}

/// How the blog made the value, for the fix text.
fn blog_generator(name: SecretName) -> &'static str {
    match name {
        SecretName::GitlabPluginEncryptionKey | SecretName::JenkinsPluginEncryptionKey => {
            "openssl rand -hex 16"
        }
        _ => "openssl rand -hex 32",
    }
}

fn wrong_shape_fix(name: SecretName, line: usize) -> String {
    let generator = blog_generator(name);
    match name {
        SecretName::MattermostDbPassword => format!(
            "put the password PostgreSQL has for the mattermost role on line {line}, unquoted or in plain quotes; \
if it really is this value, give the role a new password of at least 32 letters or digits \
(ALTER ROLE mattermost PASSWORD ..., e.g. from `{generator}`) and write that on the line"
        ),
        _ => format!(
            "correct the value on line {line} (the blog generates it with `{generator}`), \
or delete the line to have `cityd secrets ensure` generate a new one"
        ),
    }
}

/// A value from the file that has its shape, waiting for pass 2: (index of its entry, name, value).
pub type Candidate = (usize, SecretName, Secret);

/// Pass 1, the file's bytes alone: every variable's entry (wrong shapes with the line, the
/// problem and the fix) and the values that have their shape. The vault is only used for paths;
/// nothing is read or written. Exposed for the fuzz target `import_env`.
pub fn examine(
    vault: &Vault,
    file: &Path,
    bytes: Vec<u8>,
) -> Result<(Vec<ImportEntry>, Vec<Candidate>), ImportError> {
    let text = String::from_utf8(bytes).map_err(|_| ImportError::NotText {
        path: file.to_path_buf(),
    })?;
    let assignments = scan(&text);

    let mut entries = Vec::new();
    let mut candidates: Vec<(usize, SecretName, Secret)> = Vec::new();
    for (variable, name) in BLOG_VARIABLES {
        let mut entry = ImportEntry {
            variable,
            secret: name.file_name(),
            path: vault.path_of(name.file_name()),
            status: ImportStatus::Absent,
            line: None,
            quoting: None,
            rule: name.rule(),
            problem: None,
            fix: None,
            notes: Vec::new(),
        };
        let all = assignments.get(variable).map_or(&[][..], Vec::as_slice);
        if let Some((last, earlier)) = all.split_last() {
            entry.line = Some(last.line);
            for e in earlier.iter().filter(|e| e.value != last.value) {
                entry.notes.push(format!(
                    "line {} assigns it too, differently; the blog's scripts `source` the file, so the last assignment (line {}) is the one in use",
                    e.line, last.line
                ));
            }
            match &last.value {
                Err(why) => {
                    entry.status = ImportStatus::WrongShape;
                    entry.problem = Some(format!("the line is not a plain assignment: {why}"));
                    entry.fix = Some(format!(
                        "write it as {variable}=\"VALUE\" on line {}",
                        last.line
                    ));
                }
                Ok((value, _)) if value.is_empty() => {
                    entry.notes.push(format!(
                        "line {} assigns an empty value, which the blog's scripts treat as missing",
                        last.line
                    ));
                }
                Ok((value, quoting)) => {
                    entry.quoting = Some(*quoting);
                    match name.shape().violation(value) {
                        Some(problem) => {
                            entry.status = ImportStatus::WrongShape;
                            entry.problem = Some(problem);
                            entry.fix = Some(wrong_shape_fix(name, last.line));
                        }
                        None => candidates.push((entries.len(), name, Secret::new(value.clone()))),
                    }
                }
            }
        }
        entries.push(entry);
    }
    Ok((entries, candidates))
}

/// Reads `file` and adopts its secrets into `vault`; all or nothing. In a dry run nothing is
/// created, not even the vault directory.
pub fn import(vault: &Vault, file: &Path, dry_run: bool) -> Result<ImportReport, ImportError> {
    // Bounded, and only a regular file: /dev/zero or a FIFO is refused at once (issue 12).
    let bytes =
        crate::owned::read_input(file, MAX_ENV_FILE_BYTES).map_err(|refusal| match refusal {
            crate::owned::Refusal::Io { path, source } => ImportError::ReadFile { path, source },
            other => ImportError::Unusable(other),
        })?;
    let (entries, candidates) = examine(vault, file, bytes)?;
    let mut report = ImportReport {
        file: file.to_path_buf(),
        vault: vault.dir().to_path_buf(),
        dry_run,
        changed: false,
        ok: true,
        variables: entries,
        still_missing: Vec::new(),
    };
    // A bad value in the file means nothing is written, and the vault is only read (not even
    // created) to report on the other variables.
    let writing = !dry_run && report.errors().next().is_none();

    // Pass 2, under the lock when writing: compare with what the vault holds, then write all or nothing.
    let _lock = if writing { Some(vault.lock()?) } else { None };
    let mut to_write = Vec::new();
    for (index, name, value) in candidates {
        let entry = &mut report.variables[index];
        match vault.find(name.file_name())? {
            Found::Absent => {
                entry.status = if writing {
                    ImportStatus::Taken
                } else {
                    ImportStatus::WouldTake
                };
                to_write.push((name, value));
            }
            Found::Valid(existing) if existing == value => entry.status = ImportStatus::Same,
            Found::Valid(_) => {
                entry.status = ImportStatus::Conflict;
                entry.problem = Some(format!(
                    "the vault already holds a different value in {}, and cityd never replaces a secret",
                    entry.path.display()
                ));
                entry.fix = Some(format!(
                    "if the running installation uses the value from the file, remove {} and import again; \
otherwise delete line {} from the file",
                    entry.path.display(),
                    entry.line.unwrap_or(0)
                ));
            }
            Found::Invalid { problem, .. } => {
                entry.status = ImportStatus::VaultWrongShape;
                entry.problem = Some(format!(
                    "the vault's file {} breaks its rule: {problem}",
                    entry.path.display()
                ));
                entry.fix = Some(format!(
                    "remove {} (it is unusable as it is) and import again",
                    entry.path.display()
                ));
            }
        }
    }
    if report.errors().next().is_some() {
        report.ok = false;
        return Err(ImportError::Refused(Box::new(report)));
    }
    report.changed = !to_write.is_empty();
    if writing {
        for (name, value) in &to_write {
            vault.create(name.file_name(), value)?;
            tracing::info!(secret = name.file_name(), "imported a secret");
        }
    }
    // In a dry run the values that would be taken count as present.
    let written: Vec<SecretName> = to_write.iter().map(|(n, _)| *n).collect();
    for name in SecretName::ALL {
        if !written.contains(&name) && matches!(vault.find(name.file_name())?, Found::Absent) {
            report.still_missing.push(name.file_name());
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_values_the_way_source_does() {
        let text = "# cicd.env\n\
export MATTERMOST_TURN_SECRET=\"aa\"\n\
MATTERMOST_AT_REST_KEY='bb'   # comment\r\n\
\tMATTERMOST_PUBLIC_LINK_SALT=cc\n\
export\tMATTERMOST_DB_PASSWORD=dd # db\n\
MATTERMOST_GITLAB_PLUGIN_KEY=\n\
MATTERMOST_GITLAB_PLUGIN_KEY=\"ee\"\n\
# MATTERMOST_JENKINS_PLUGIN_KEY=commented\n\
MATTERMOST_GITLAB_PLUGIN_SECRET = \"x\"\n\
OTHER=\"zz\"\n";
        let found = scan(text);
        let last = |v: &str| found[v].last().unwrap().value.clone();
        assert_eq!(
            last("MATTERMOST_TURN_SECRET"),
            Ok(("aa".into(), Quoting::Double))
        );
        assert_eq!(
            last("MATTERMOST_AT_REST_KEY"),
            Ok(("bb".into(), Quoting::Single))
        );
        assert_eq!(
            last("MATTERMOST_PUBLIC_LINK_SALT"),
            Ok(("cc".into(), Quoting::None))
        );
        assert_eq!(
            last("MATTERMOST_DB_PASSWORD"),
            Ok(("dd".into(), Quoting::None))
        );
        assert_eq!(found["MATTERMOST_GITLAB_PLUGIN_KEY"].len(), 2);
        assert_eq!(
            last("MATTERMOST_GITLAB_PLUGIN_KEY"),
            Ok(("ee".into(), Quoting::Double))
        );
        assert!(!found.contains_key("MATTERMOST_JENKINS_PLUGIN_KEY"));
        assert!(last("MATTERMOST_GITLAB_PLUGIN_SECRET").is_err());
    }

    #[test]
    fn odd_quoting_is_refused_not_guessed() {
        assert!(shell_value("\"abc").is_err());
        assert!(shell_value("\"abc\"def").is_err());
        assert!(shell_value("abc def").is_err());
        assert_eq!(shell_value(""), Ok((String::new(), Quoting::None)));
        assert_eq!(
            shell_value("\"a b\" # c"),
            Ok(("a b".into(), Quoting::Double))
        );
    }

    proptest! {
        /// A letters-and-digits value comes back exactly, however the blog style wrote it.
        #[test]
        fn any_quoting_round_trips(
            value in "[A-Za-z0-9]{1,80}",
            quote in 0usize..3,
            export in any::<bool>(),
            comment in any::<bool>(),
            crlf in any::<bool>(),
        ) {
            let q = ["", "\"", "'"][quote];
            let line = format!(
                "{}MATTERMOST_TURN_SECRET={q}{value}{q}{}{}",
                if export { "export " } else { "" },
                if comment { "  # the TURN secret" } else { "" },
                if crlf { "\r" } else { "" },
            );
            let found = scan(&format!("# header\n{line}\n"));
            let got = &found["MATTERMOST_TURN_SECRET"][0];
            prop_assert_eq!(got.line, 2);
            prop_assert_eq!(&got.value.as_ref().unwrap().0, &value);
        }

        /// The reader never panics, whatever the file holds.
        #[test]
        fn scanning_never_panics(text in any::<String>()) {
            let _ = scan(&text);
        }
    }
}
