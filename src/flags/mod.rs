//! Flag groups shared by several verbs: each a clap `Args` struct that resolves itself into the
//! typed value the library takes.

pub mod backup;
pub mod mattermost_server;
pub mod postgres_admin;
