//! The errors of the tenant step, each naming the server, the user or the file, and the fix.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum PgError {
    #[error(
        "admin URL {url:?} is not usable: {rule}. Form: postgres://USER@HOST:PORT/DATABASE (the password goes in a file or PGPASSWORD, never in the URL)"
    )]
    BadUrl { url: String, rule: &'static str },
    #[error(
        "cannot reach PostgreSQL at {server}: {detail}; check that it runs and listens on TCP there \
(listen_addresses, port, firewall), or fix --admin-url"
    )]
    Unreachable { server: String, detail: String },
    #[error(
        "PostgreSQL at {server} refused to authenticate {user}: {detail}; check the password \
(--admin-password-file, CITYD_DB_ADMIN_PASSWORD_FILE or PGPASSWORD) and the pg_hba.conf entry for this host"
    )]
    Authentication {
        server: String,
        user: String,
        detail: String,
    },
    #[error(
        "role {user} on {server} may not {what}: {detail}; connect as a superuser, or grant {user} {needed}"
    )]
    Privilege {
        server: String,
        user: String,
        what: String,
        needed: &'static str,
        detail: String,
    },
    #[error("TLS with PostgreSQL at {server} failed: {detail}; {fix}")]
    Tls {
        server: String,
        detail: String,
        fix: &'static str,
    },
    #[error(transparent)]
    Ca(#[from] crate::tls::CaError),
    #[error("PostgreSQL at {server} failed to {what}: {detail}")]
    Query {
        server: String,
        what: String,
        detail: String,
    },
}

/// A URL that cannot be used is bad input (exit 2); everything else is a failed step (exit 1).
impl crate::exit::ExitCoded for PgError {
    fn exit_code(&self) -> u8 {
        crate::exit::failure_code(matches!(self, PgError::BadUrl { .. }))
    }
}
