//! Mattermost: one API client (local-mode unix socket or HTTPS with a token), readiness, the
//! wiring (team, channels, members, bots, tokens, incoming webhooks; `wiring::converge` runs it
//! all, plugins included), the plugins, and the webhook delivery proof (`webhook_verify`).

pub mod client;
pub mod error;
pub mod model;
pub mod plugins;
pub mod ready;
pub mod transport;
pub mod webhook_check;
pub mod webhook_verify;
pub mod wiring;

pub use client::ApiClient;
pub use error::{ApiError, ConnectProblem};
pub use transport::Target;

/// The id of an incoming webhook from its URL's path (`…/hooks/<id>`, a trailing slash allowed):
/// letters and digits only, as Mattermost makes them. The id is the secret part of the URL.
pub fn incoming_hook_id(path: &str) -> Option<&str> {
    path.trim_end_matches('/')
        .rsplit_once("/hooks/")
        .map(|(_, id)| id)
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::incoming_hook_id;

    #[test]
    fn hook_ids_come_only_from_a_hooks_segment() {
        assert_eq!(incoming_hook_id("/hooks/abc123"), Some("abc123"));
        assert_eq!(incoming_hook_id("/mm/hooks/abc123/"), Some("abc123"));
        for path in ["/hooks/", "/xhooks/abc", "/hooks/ab-c", "/api/v4/posts", ""] {
            assert_eq!(incoming_hook_id(path), None, "{path:?}");
        }
    }
}
