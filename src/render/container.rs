//! Paths inside the Mattermost container that the renderer, `cityd up` and the NixOS module agree on.

/// Read-only mount of `<state>/pki` (leaf, key and CA).
pub const CERT_DIR: &str = "/mattermost/certs";
pub const TLS_CERT_FILE: &str = "/mattermost/certs/server.pem";
pub const TLS_KEY_FILE: &str = "/mattermost/certs/server.key";
pub const CA_FILE: &str = "/mattermost/certs/ca.pem";
/// File name of the local-mode socket inside `mattermost.local_socket_dir`.
pub const LOCAL_SOCKET_NAME: &str = "mattermost_local.socket";
/// Port Mattermost's metrics listener binds inside the container; the host publishes it on loopback only.
pub const METRICS_PORT: u16 = 8067;
