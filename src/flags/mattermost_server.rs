//! `--socket | --url --token-file`, `--timeout`: how a verb reaches the Mattermost API (`cityd
//! wire`, `cityd verify webhook`), resolved into a `mattermost::Target`. Reads the token file.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::mattermost::Target;
use crate::mattermost::transport::TransportError;
use crate::secrets::Secret;
use crate::state::StateDir;

/// How cityd reaches Mattermost.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Mattermost's local-mode socket: plain HTTP, no token, needs root or UID 2000 (the socket
    /// is 0600, owned by the container's user). Default: <state>/mattermost/run/mattermost_local.socket,
    /// the host side of the directory bind-mounted at [mattermost] local_socket_dir.
    #[arg(long, value_name = "PATH", conflicts_with = "url")]
    pub socket: Option<PathBuf>,
    /// Reach the API at this URL instead (https:// trusting only <state>/pki/ca.pem; plain
    /// http:// is accepted for loopback addresses only). Needs --token-file.
    #[arg(long, value_name = "URL", requires = "token_file")]
    pub url: Option<String>,
    /// File holding a system admin's access token for --url (tokens never go on the command line).
    #[arg(long, value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// How long to wait for the server to answer GET /api/v4/system/ping (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_wait)]
    pub timeout: Duration,
}

/// The server flags did not resolve into a target; the input is at fault (exit 2).
#[derive(Debug, Error)]
pub enum ServerFlagError {
    #[error("cannot read the token file {path}")]
    ReadTokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} must hold one access token on one line")]
    BadTokenFile { path: PathBuf },
    #[error(transparent)]
    Target(#[from] TransportError),
}

impl crate::exit::ExitCoded for ServerFlagError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

impl ServerArgs {
    /// The socket (default: the state directory's, `StateDir::mattermost_socket`) or the URL,
    /// with the token read from its file.
    pub fn target(&self, state: &StateDir) -> Result<Target, ServerFlagError> {
        if let (Some(url), Some(file)) = (&self.url, &self.token_file) {
            let text =
                std::fs::read_to_string(file).map_err(|source| ServerFlagError::ReadTokenFile {
                    path: file.clone(),
                    source,
                })?;
            let token = text.trim();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(ServerFlagError::BadTokenFile { path: file.clone() });
            }
            return Ok(Target::url(
                url,
                Secret::new(token.to_string()),
                &state.ca_pem(),
            )?);
        }
        Ok(Target::Socket(
            self.socket
                .clone()
                .unwrap_or_else(|| state.mattermost_socket()),
        ))
    }
}

/// A server wait: the one duration grammar, at most a day.
pub fn parse_wait(text: &str) -> Result<Duration, String> {
    crate::duration::parse_at_most(text, Duration::from_secs(86_400))
}
