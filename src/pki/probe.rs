//! TLS handshakes that trust only the city CA: connect to an address, verify the server certificate
//! for a given name (an IP address, as a phone on the LAN would, or the hostname) and report the
//! outcome in words, with the fix. Used by `cityd verify tls`.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection};
use rustls_pki_types::ServerName;
use serde::Serialize;
use time::OffsetDateTime;

/// The CA or the city's hostname cannot be used: the input is at fault (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum TlsInputError {
    #[error("without a CA there is nothing to verify against; run `cityd pki ensure` first")]
    NoCa(#[source] super::PkiError),
    #[error("{path}: {reason}")]
    BadCa {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("hostname {host}")]
    BadHostname {
        host: String,
        #[source]
        source: rustls_pki_types::InvalidDnsNameError,
    },
}

impl crate::exit::ExitCoded for TlsInputError {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

use super::trust;
use crate::tls::CityCa;

/// A client configuration whose only trust anchor is the city CA.
#[derive(Clone)]
pub struct TlsProbe {
    config: Arc<ClientConfig>,
    timeout: Duration,
}

/// The outcome of one handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsCheck {
    pub target: SocketAddr,
    /// The name the certificate was checked against (an IP address or a DNS name).
    pub name: String,
    pub ok: bool,
    /// Negotiated protocol, e.g. `TLSv1_3`.
    pub protocol: Option<String>,
    pub leaf_sha256: Option<String>,
    pub leaf_days_left: Option<i64>,
    /// What went wrong and how to fix it.
    pub error: Option<String>,
}

impl TlsProbe {
    /// Trusts `ca_der` and nothing else; each connection and read gives up after `timeout`.
    pub fn trusting(ca_der: &[u8], timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            config: CityCa::from_der(ca_der)?.client_config(),
            timeout,
        })
    }

    /// Connects to `target` and completes a handshake verifying the certificate for `name`.
    pub fn check(&self, target: SocketAddr, name: ServerName<'static>) -> TlsCheck {
        let mut check = TlsCheck {
            target,
            name: name.to_str().into_owned(),
            ok: false,
            protocol: None,
            leaf_sha256: None,
            leaf_days_left: None,
            error: None,
        };
        match self.handshake(target, &name) {
            Ok(conn) => {
                check.ok = true;
                check.protocol = conn.protocol_version().map(|v| format!("{v:?}"));
                if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
                    check.leaf_sha256 = Some(super::fingerprint(leaf));
                    check.leaf_days_left = super::summarize(leaf, OffsetDateTime::now_utc())
                        .ok()
                        .map(|s| s.days_left);
                }
            }
            Err(reason) => check.error = Some(reason),
        }
        check
    }

    fn handshake(
        &self,
        target: SocketAddr,
        name: &ServerName<'static>,
    ) -> Result<ClientConnection, String> {
        let seconds = self.timeout.as_secs_f32();
        let mut sock = TcpStream::connect_timeout(&target, self.timeout).map_err(|e| {
            format!(
                "cannot connect to {target}: {e}; is Mattermost listening on this address and port?"
            )
        })?;
        let _ = sock.set_read_timeout(Some(self.timeout));
        let _ = sock.set_write_timeout(Some(self.timeout));
        let _ = sock.set_nodelay(true);
        let mut conn = ClientConnection::new(self.config.clone(), name.clone())
            .map_err(|e| format!("cannot start a TLS session for {}: {e}", name.to_str()))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                if let Some(tls) = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    return Err(trust::explain(tls, name));
                }
                return Err(match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
                        "no TLS handshake from {target} within {seconds}s: is this port serving TLS (Mattermost ConnectionSecurity=TLS)?"
                    ),
                    ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset => format!(
                        "{target} closed the connection during the handshake: is this port serving TLS (Mattermost ConnectionSecurity=TLS)?"
                    ),
                    _ => format!("TLS handshake with {target} failed: {e}"),
                });
            }
        }
        // Flush our Finished and a close_notify without waiting for anything more from the server.
        conn.send_close_notify();
        while conn.wants_write() {
            if conn.write_tls(&mut sock).is_err() {
                break;
            }
        }
        Ok(conn)
    }
}
