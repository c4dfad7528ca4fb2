//! Behaviour of the Mattermost double: each documented server quirk, asserted on status and body.

mod common;
mod harness;
mod local_mode;
mod openapi;
mod plugins;
mod session;
mod teams_channels;
mod webhooks;
