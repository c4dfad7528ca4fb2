//! Errors of the Mattermost client: a structured AppError from the server kept apart from opaque
//! HTTP failures and connection problems. Every message names the socket or URL and the endpoint.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use super::transport::TransportError;

/// Mattermost's error body: `{id, message, detailed_error, request_id, status_code}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AppError {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub detailed_error: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub status_code: u16,
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message.trim_end_matches('.'))?;
        if !self.detailed_error.is_empty() {
            write!(f, " ({})", self.detailed_error)?;
        }
        write!(f, " [{}]", self.id)
    }
}

/// Why a connection could not be made, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectProblem {
    /// ENOENT on the socket path.
    SocketMissing(PathBuf),
    /// EACCES on the socket or a directory above it.
    PermissionDenied(PathBuf),
    /// ECONNREFUSED: a stale socket file, or nothing listening on the port.
    Refused,
    /// The request timed out.
    Timeout,
    /// Anything else reqwest/hyper reported.
    Other(String),
}

impl std::fmt::Display for ConnectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectProblem::SocketMissing(p) => write!(
                f,
                "the socket {} does not exist: is Mattermost running, is the socket directory bind-mounted, is EnableLocalMode on (MM_SERVICESETTINGS_ENABLELOCALMODE=true, MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION pointing into that directory)?",
                p.display()
            ),
            ConnectProblem::PermissionDenied(p) => write!(
                f,
                "permission denied on the socket {}: the socket is 0600 owned by UID 2000 (the container's mattermost user): run as root or UID 2000",
                p.display()
            ),
            ConnectProblem::Refused => write!(
                f,
                "connection refused: nothing listens there (a stale socket file, or the container is stopped or the port not published)"
            ),
            ConnectProblem::Timeout => write!(f, "no answer before the request timed out"),
            ConnectProblem::Other(reason) => write!(f, "{reason}"),
        }
    }
}

impl ConnectProblem {
    /// Problems that waiting will not fix.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectProblem::PermissionDenied(_))
    }

    /// Classifies an I/O error from connecting to `socket` (or a TCP address when `None`).
    pub fn from_io(error: &std::io::Error, socket: Option<&std::path::Path>) -> Self {
        use std::io::ErrorKind;
        match (error.kind(), socket) {
            (ErrorKind::NotFound, Some(p)) => ConnectProblem::SocketMissing(p.to_path_buf()),
            (ErrorKind::PermissionDenied, Some(p)) => {
                ConnectProblem::PermissionDenied(p.to_path_buf())
            }
            (ErrorKind::ConnectionRefused, _) => ConnectProblem::Refused,
            (ErrorKind::TimedOut, _) => ConnectProblem::Timeout,
            _ => ConnectProblem::Other(error.to_string()),
        }
    }

    /// Classifies a reqwest error by the I/O error at the bottom of its chain.
    pub fn from_reqwest(error: &reqwest::Error, socket: Option<&std::path::Path>) -> Self {
        if error.is_timeout() {
            return ConnectProblem::Timeout;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        let mut text = error.to_string();
        while let Some(c) = cause {
            if let Some(io) = c.downcast_ref::<std::io::Error>() {
                return Self::from_io(io, socket);
            }
            let here = c.to_string();
            if !text.contains(&here) {
                text = format!("{text}: {here}");
            }
            cause = c.source();
        }
        ConnectProblem::Other(text)
    }
}

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{endpoint} on {target}: Mattermost answered {status}: {error}{hint}")]
    App {
        target: String,
        endpoint: String,
        status: u16,
        error: Box<AppError>,
        hint: &'static str,
    },
    #[error("{endpoint} on {target}: HTTP {status}: {body}")]
    Http {
        target: String,
        endpoint: String,
        status: u16,
        body: String,
    },
    #[error("{endpoint} on {target}: {problem}")]
    Connect {
        target: String,
        endpoint: String,
        problem: ConnectProblem,
    },
    #[error("{endpoint} on {target}: the answer is not the JSON cityd expects: {reason}")]
    Decode {
        target: String,
        endpoint: String,
        reason: String,
    },
    #[error(
        "Mattermost at {target} did not answer GET /api/v4/system/ping with OK within {}; last problem: {last} — check that the container is running (docker ps), that {what}; raise --timeout if it is still starting",
        human(*timeout)
    )]
    NotReady {
        target: String,
        timeout: Duration,
        last: String,
        what: &'static str,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl ApiError {
    /// The HTTP status when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::App { status, .. } | ApiError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Mattermost's error id when the server sent an AppError.
    pub fn app_id(&self) -> Option<&str> {
        match self {
            ApiError::App { error, .. } => Some(&error.id),
            _ => None,
        }
    }
}

/// `2s`, `1.5s`, `500ms`.
pub fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A short, single-line excerpt of a non-JSON body for error messages.
pub fn excerpt(body: &str) -> String {
    excerpt_of(body, 200)
}

/// `body` on one line (control characters become spaces), trimmed, and cut after `max_chars`
/// characters with an ellipsis marking the cut. Shared by every client that quotes an answer.
pub fn excerpt_of(body: &str, max_chars: usize) -> String {
    let one_line: String = body
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = one_line.trim();
    if trimmed.is_empty() {
        return "(empty body)".into();
    }
    match trimmed.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::path::Path;

    #[test]
    fn socket_errors_map_to_their_fix() {
        let sock = Path::new("/var/lib/cityd/mattermost/run/mattermost_local.socket");
        let missing =
            ConnectProblem::from_io(&io::Error::from(io::ErrorKind::NotFound), Some(sock));
        let text = missing.to_string();
        assert!(text.contains(&sock.display().to_string()), "{text}");
        assert!(text.contains("is Mattermost running"), "{text}");
        assert!(text.contains("bind-mounted"), "{text}");
        assert!(!missing.is_permanent());

        let denied = ConnectProblem::from_io(
            &io::Error::from_raw_os_error(13), // EACCES
            Some(sock),
        );
        let text = denied.to_string();
        assert!(text.contains("0600 owned by UID 2000"), "{text}");
        assert!(text.contains("run as root or UID 2000"), "{text}");
        assert!(denied.is_permanent());

        assert_eq!(
            ConnectProblem::from_io(&io::Error::from_raw_os_error(111), Some(sock)),
            ConnectProblem::Refused
        );
    }

    #[test]
    fn app_errors_show_message_and_id() {
        let body = r#"{"id":"store.sql_channel.save_channel.exists.app_error","message":"A channel with that name already exists on the same team.","detailed_error":"","request_id":"r1","status_code":400}"#;
        let app: AppError = serde_json::from_str(body).unwrap();
        let e = ApiError::App {
            target: "unix socket /s".into(),
            endpoint: "POST /api/v4/channels".into(),
            status: 400,
            error: Box::new(app),
            hint: "",
        };
        assert_eq!(
            e.to_string(),
            "POST /api/v4/channels on unix socket /s: Mattermost answered 400: A channel with that name already exists on the same team [store.sql_channel.save_channel.exists.app_error]"
        );
        assert_eq!(e.status(), Some(400));
    }

    #[test]
    fn excerpts_are_short_and_single_line() {
        assert_eq!(excerpt(""), "(empty body)");
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt(&"x".repeat(500)).chars().count(), 201);
        assert_eq!(
            excerpt(&"é".repeat(200)),
            "é".repeat(200),
            "exactly 200: no cut"
        );
        assert_eq!(excerpt_of("abcdef", 3), "abc…");
    }
}
