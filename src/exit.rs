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

/// The exit code for an error: a `Failure`'s own, `BAD_INPUT` for invalid descriptions, else `FAILED`.
pub fn code_for(error: &anyhow::Error) -> ExitCode {
    for cause in error.chain() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            return ExitCode::from(f.code);
        }
        if cause.downcast_ref::<crate::city::CityError>().is_some()
            || cause.downcast_ref::<crate::state::StateError>().is_some()
            || cause.downcast_ref::<crate::lan::LanError>().is_some()
        {
            return ExitCode::from(BAD_INPUT);
        }
    }
    ExitCode::from(FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_at_fault_exits_2_anything_else_1() {
        assert_eq!(failure_code(true), 2);
        assert_eq!(failure_code(false), 1);
    }
}
