//! `[relay]`: the SonarQube -> Mattermost alert relay (`cityd relay serve`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::rules::{Problems, is_http_url};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Where SonarQube's webhook reaches the relay (`POST /sonarqube`).
    pub listen: SocketAddr,
    /// Prometheus listener; must stay on loopback.
    pub metrics: SocketAddr,
    /// Also post passed quality gates (to `#builds`); failures always go to `#alerts`.
    pub post_passes: bool,
    /// Public SonarQube root for the links in messages, e.g. `https://sonarqube.cicd.local`.
    /// Unset: the links SonarQube put in the payload (its `sonar.core.serverBaseURL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

impl Relay {
    pub(super) fn check(&self, out: &mut Problems) {
        if !self.metrics.ip().is_loopback() {
            out.bad(
                "relay.metrics",
                self.metrics.to_string(),
                "must be a loopback address (127.0.0.1:9181): metrics are unauthenticated",
            );
        }
        if self.listen == self.metrics {
            out.bad(
                "relay.listen",
                self.listen.to_string(),
                "must differ from relay.metrics",
            );
        }
        if let Some(url) = &self.dashboard_url
            && !is_http_url(url)
        {
            out.bad(
                "relay.dashboard_url",
                url,
                "must be an http(s) URL such as https://sonarqube.cicd.local",
            );
        }
    }
}
