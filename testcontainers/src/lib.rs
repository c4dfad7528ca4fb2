//! Test doubles for cityd's integration tests. Test infrastructure only: cityd lists this crate
//! under `[dev-dependencies]`, never as a normal dependency.

pub mod mattermost;
