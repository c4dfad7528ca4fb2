//! Running the planned statements, and nothing else: each alone (CREATE DATABASE cannot run inside
//! a transaction block), with statement logging off first when cityd may turn it off.

use super::PgError;
use super::plan::Action;
use super::session::Session;

/// Role statements carry the password's SCRAM verifier: keep this session's statements out of a
/// server log that records them all. Only a superuser may change these settings.
pub async fn quiet_statement_log(s: &Session) -> Result<(), PgError> {
    s.execute(
        "turn statement logging off for this session",
        "SET log_statement = 'none'; SET log_min_error_statement = 'panic'",
    )
    .await
}

/// Runs `actions` in order, stopping at the first that fails.
pub async fn run(s: &Session, actions: &[Action]) -> Result<(), PgError> {
    for action in actions {
        s.run(action).await?;
    }
    Ok(())
}
