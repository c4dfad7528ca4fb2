//! Exit codes: 0 success, 1 a check found a problem or an operation failed, 2 bad input
//! (command line, city description, state files, LAN addresses that do not resolve). Commands that need finer codes (the TURN probe)
//! attach a `Failure` to their error.

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

impl ExitCoded for crate::lan::LanError {
    fn exit_code(&self) -> u8 {
        BAD_INPUT
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
    // Each type that implements `ExitCoded`, once.
    first_of!(
        Failure,
        crate::city::CityError,
        crate::state::StateError,
        crate::lan::LanError,
        crate::flags::mattermost_server::ServerFlagError,
        crate::mattermost::webhook_verify::VerifyError,
        crate::integrations::Unset,
        crate::integrations::NeedError,
        crate::integrations::jenkins::JenkinsError,
        crate::integrations::sonarqube::SonarError,
        crate::cmd::verify::tls::TlsInputError,
    );
    None
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
    fn the_outermost_coded_cause_decides_and_plain_errors_fail_with_1() {
        let plain = anyhow::anyhow!("disk full");
        assert_eq!(code_for(&plain), ExitCode::from(FAILED));
        let bad = anyhow::Error::new(crate::state::StateError::NoDefault).context("resolving");
        assert_eq!(code_for(&bad), ExitCode::from(BAD_INPUT));
        let probe = anyhow::Error::new(Failure::new(12, "no relay")).context("turn probe");
        assert_eq!(code_for(&probe), ExitCode::from(12));
    }
}
