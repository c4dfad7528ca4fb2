//! Test doubles for cityd's integration tests. Test infrastructure only: cityd lists this crate
//! under `[dev-dependencies]`, never as a normal dependency.

pub mod gitlab;
pub mod jenkins;
pub mod mattermost;
pub mod registry;
pub mod server;
pub mod sonarqube;
