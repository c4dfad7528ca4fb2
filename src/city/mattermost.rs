//! `[mattermost]`: the pinned image, its hostname and ports, CORS origins and the local-mode socket.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::rules::{ImagePin, Problems, image_pin, is_dns_name, is_http_url};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mattermost {
    /// Pinned image reference, `repository:tag` (never a moving tag like `release-11`).
    pub image: String,
    /// Hostname; defaults to `mattermost.<domain>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    /// Prometheus listener; must stay on loopback.
    pub metrics: SocketAddr,
    /// Calls RTC port, TCP and UDP (the blog moved it off 8443, which Artifactory holds).
    pub calls_port: u16,
    /// Extra CORS origins. Empty means exactly the city's own origins; `["*"]` must be asked for explicitly.
    pub allow_cors_from: Vec<String>,
    /// Directory inside the container that holds the local-mode socket (bind-mounted from the host).
    pub local_socket_dir: String,
    /// An rtcd service that carries Calls media instead of the Mattermost nodes (Enterprise), e.g.
    /// `http://rtcd.cicd.local:8045`. Unset: Calls' integrated SFU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcd_url: Option<String>,
}

impl Mattermost {
    pub(super) fn check(&self, out: &mut Problems) {
        if let Some(host) = &self.host
            && !is_dns_name(host)
        {
            out.bad(
                "mattermost.host",
                host,
                "must be a DNS name (e.g. mattermost.cicd.local)",
            );
        }
        self.check_image(out);
        out.port("mattermost.port", self.port);
        out.port("mattermost.calls_port", self.calls_port);
        // Calls refuses ports outside 80-49151 at config load.
        if !(80..=49151).contains(&self.calls_port) {
            out.bad(
                "mattermost.calls_port",
                self.calls_port.to_string(),
                "the Calls plugin accepts only ports 80-49151",
            );
        }
        if !self.metrics.ip().is_loopback() {
            out.bad(
                "mattermost.metrics",
                self.metrics.to_string(),
                "must be a loopback address (127.0.0.1:8067): metrics are unauthenticated and must not reach the LAN",
            );
        }
        for origin in &self.allow_cors_from {
            if origin != "*" && !is_http_url(origin) {
                out.bad(
                    "mattermost.allow_cors_from",
                    origin,
                    "must be an origin like https://host:port, or \"*\"",
                );
            }
        }
        if let Some(url) = &self.rtcd_url
            && !is_http_url(url)
        {
            out.bad(
                "mattermost.rtcd_url",
                url,
                "must be an http(s) URL of the rtcd API, e.g. http://rtcd.cicd.local:8045",
            );
        }
        if !self.local_socket_dir.starts_with('/') {
            out.bad(
                "mattermost.local_socket_dir",
                &self.local_socket_dir,
                "must be an absolute path inside the container",
            );
        }
    }

    fn check_image(&self, out: &mut Problems) {
        match image_pin(&self.image) {
            ImagePin::Tag(tag) if tag == "latest" || tag.starts_with("release-") => out.bad(
                "mattermost.image",
                &self.image,
                "moving tags (latest, release-X) do not receive patch releases predictably; pin a version like 11.8.5",
            ),
            ImagePin::Tag(_) | ImagePin::Digest => {}
            ImagePin::Unpinned => out.bad(
                "mattermost.image",
                &self.image,
                "must carry a pinned version tag, e.g. mattermost/mattermost-enterprise-edition:11.8.5",
            ),
        }
    }
}
