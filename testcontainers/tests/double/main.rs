//! Behaviour of the Mattermost double: each documented server quirk, asserted on status and body.

mod common;
// checks against upstream specifications kept beside the repository, skipped by name without them
mod conformance {
    mod openapi;
}
mod harness;
mod local_mode;
mod plugins;
mod session;
mod teams_channels;
mod webhooks;
