//! Mattermost: one API client (local-mode unix socket or HTTPS with a token), readiness, the
//! wiring plan (team, channels, members, bots, tokens, incoming webhooks) and plugin installation.

pub mod client;
pub mod error;
pub mod model;
pub mod plugins;
pub mod ready;
pub mod transport;
pub mod webhook_check;
pub mod wiring;

pub use client::ApiClient;
pub use error::{ApiError, ConnectProblem};
pub use transport::Target;
