//! Exit codes and the one error discipline: 0 success, 1 a check found a problem or an operation
//! failed, 2 bad input (command line, city description, state files, LAN addresses that do not
//! resolve), and the TURN probe's own codes. Each typed error carries its code (`ExitCoded`);
//! `code_for` finds it in an error's chain.

use std::process::ExitCode;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const BAD_INPUT: u8 = 2;

/// An error that carries its exit code; found anywhere in an anyhow chain.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// `BAD_INPUT` when the input is at fault (the error says so), else `FAILED`.
pub fn failure_code(bad_input: bool) -> u8 {
    if bad_input { BAD_INPUT } else { FAILED }
}

/// An error that knows its exit code. Every typed error that is not a plain failure (exit 1)
/// implements it and is listed once in `code_for`, so the code travels with the error itself
/// instead of being decided where it is printed.
pub trait ExitCoded {
    fn exit_code(&self) -> u8;
}

impl ExitCoded for Failure {
    fn exit_code(&self) -> u8 {
        self.code
    }
}

impl ExitCoded for crate::city::CityError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

impl ExitCoded for crate::state::StateError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

impl ExitCoded for crate::owned::Refusal {
    fn exit_code(&self) -> u8 {
        failure_code(self.is_bad_input())
    }
}

impl ExitCoded for crate::lan::LanError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
    }
}

/// A typed error with the exit code the verb reporting it decides, for error types whose code
/// depends on the verb: the vault's "not generated yet" is bad input to `cityd secrets get` (exit 2)
/// but a failed step to `cityd render` (exit 1). It prints exactly as the error it carries, and
/// that error's causes stay in the chain, so `{:#}` shows each once.
#[derive(Debug)]
pub struct Coded {
    code: u8,
    error: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Coded {
    pub fn new(code: u8, error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            code,
            error: Box::new(error),
        }
    }
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for Coded {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl ExitCoded for Coded {
    fn exit_code(&self) -> u8 {
        self.code
    }
}

/// The first exit code a cause in the chain carries (outermost first), if any.
fn coded(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    macro_rules! first_of {
        ($($ty:ty),* $(,)?) => {
            $(if let Some(e) = cause.downcast_ref::<$ty>() {
                return Some(e.exit_code());
            })*
        };
    }
    // A file or directory cityd does not trust (a link, a FIFO, another user's file) is bad input
    // to every verb, whichever error carries it (issue 12).
    if let Some(crate::secrets::VaultError::Untrusted(r)) = cause.downcast_ref() {
        return Some(r.exit_code());
    }
    if let Some(crate::pki::PkiError::Untrusted(r)) = cause.downcast_ref() {
        return Some(r.exit_code());
    }
    // Each type that implements `ExitCoded`, once.
    first_of!(
        crate::owned::Refusal,
        Failure,
        Coded,
        crate::city::CityError,
        crate::state::StateError,
        crate::lan::LanError,
        crate::postgres::PgError,
        crate::flags::postgres_admin::AdminFlagError,
        crate::duration::DurationError,
        crate::secrets::import_env::ImportError,
        crate::turn::creds::CredentialError,
        crate::relay::settings::SettingsError,
        crate::turn::secret::SecretFileError,
        crate::turn::probe_setup::ServerError,
        crate::pki::ExportError,
        crate::flags::mattermost_server::ServerFlagError,
        crate::mattermost::webhook_verify::VerifyError,
        crate::integrations::Unset,
        crate::integrations::NeedError,
        crate::integrations::jenkins::JenkinsError,
        crate::integrations::sonarqube::SonarError,
        crate::pki::probe::TlsInputError,
        crate::onboard::OnboardError,
        crate::turn::probe_setup::CredentialFileError,
        crate::export::sizing::SizingError,
        crate::export::turn_fleet::FleetError,
        crate::backup::BackupError,
    );
    None
}

/// An error and its causes as one line, as `{:#}` prints an anyhow chain, each text once: a cause
/// whose text the line already holds is left out (tokio-postgres, reqwest and hyper repeat their
/// cause in their own message). For an error that embeds another in its own text instead of
/// keeping it as its source.
pub fn causes_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The exit code for an error: that of the outermost cause that carries one, else `FAILED`.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    let code = error.chain().find_map(coded).unwrap_or(FAILED);
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_at_fault_exits_2_anything_else_1() {
        assert_eq!(failure_code(true), 2);
        assert_eq!(failure_code(false), 1);
    }

    #[test]
    fn causes_text_joins_each_cause_once() {
        let io = std::io::Error::other("disk full");
        let state = crate::state::StateError::Create {
            path: "/x".into(),
            source: io,
        };
        let text = causes_text(&state);
        assert!(text.starts_with("cannot create /x"), "{text}");
        assert!(text.ends_with(": disk full"), "{text}");
        assert_eq!(text.matches("disk full").count(), 1, "{text}");
    }

    #[test]
    fn the_outermost_coded_cause_decides_and_plain_errors_fail_with_1() {
        let plain = anyhow::anyhow!("disk full");
        assert_eq!(code_for(&plain), ExitCode::from(FAILED));
        let bad = anyhow::Error::new(crate::state::StateError::NoDefault).context("resolving");
        assert_eq!(code_for(&bad), ExitCode::from(BAD_INPUT));
        let probe = anyhow::Error::new(Failure::new(12, "no relay")).context("turn probe");
        assert_eq!(code_for(&probe), ExitCode::from(12));
    }

    #[test]
    fn a_coded_error_prints_as_its_error_with_each_cause_once() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let error = crate::state::StateError::Create {
            path: "/s".into(),
            source: missing,
        };
        let coded = anyhow::Error::new(Coded::new(BAD_INPUT, error)).context("the vault");
        assert_eq!(code_for(&coded), ExitCode::from(BAD_INPUT));
        let shown = format!("{coded:#}");
        assert!(shown.starts_with("the vault: cannot create /s;"), "{shown}");
        assert_eq!(shown.matches("no such file").count(), 1, "{shown}");
    }
}
