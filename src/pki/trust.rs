//! Trusting only the city CA: checking a leaf against the verifier `crate::tls` roots in `ca.pem`
//! alone (no system roots), before an issued leaf is written and by `cityd verify tls`; and
//! plain-words explanations of what a failed verification means and how to fix it.

use std::time::Duration;

use rustls::CertificateError;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;

use crate::tls::CityCa;

/// Verifies `leaf` (with optional intermediates) for TLS server use as `name` at `now`, trusting only `ca_der`.
pub fn verify_leaf(
    ca_der: &[u8],
    leaf: &[u8],
    intermediates: &[Vec<u8>],
    name: &ServerName<'_>,
    now: OffsetDateTime,
) -> Result<(), rustls::Error> {
    let ca = CityCa::from_der(ca_der).map_err(rustls::Error::General)?;
    let intermediates: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|d| CertificateDer::from(d.as_slice()))
        .collect();
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    ca.verifier()
        .verify_server_cert(
            &CertificateDer::from(leaf),
            &intermediates,
            name,
            &[],
            UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
        )
        .map(|_| ())
}

/// Checks that `leaf` chains to `ca_der` as a server certificate for each of its own names.
/// The error says why not, in words.
pub(crate) fn leaf_verifies(ca_der: &[u8], leaf: &[u8], now: OffsetDateTime) -> Result<(), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the certificate does not parse ({e})"))?;
    let sans = super::inspect::sans_of(&cert);
    let names: Vec<ServerName<'static>> = sans
        .dns
        .iter()
        .filter_map(|d| ServerName::try_from(d.clone()).ok())
        .chain(sans.ip.iter().map(|ip| ServerName::IpAddress((*ip).into())))
        .collect();
    if names.is_empty() {
        return Err("it has no DNS or IP subject alternative names".into());
    }
    for name in &names {
        verify_leaf(ca_der, leaf, &[], name, now).map_err(|e| explain(&e, name))?;
    }
    Ok(())
}

/// One sentence: what the verification error means for the city, and the command that fixes it.
pub fn explain(error: &rustls::Error, name: &ServerName<'_>) -> String {
    let shown = name.to_str();
    let ensure = "run `cityd pki ensure` and restart Mattermost";
    match error {
        rustls::Error::InvalidCertificate(cert_error) => match cert_error {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names = match cert_error {
                    CertificateError::NotValidForNameContext { presented, .. } => {
                        format!(" (it names {})", presented.join(", "))
                    }
                    _ => String::new(),
                };
                match name {
                    ServerName::IpAddress(_) => format!(
                        "certificate not valid for {shown}{names}: the LAN address moved or is not in the certificate; {ensure}"
                    ),
                    _ => format!(
                        "certificate not valid for {shown}{names}: the hostname is not in the certificate (did mattermost.host or domain change?); {ensure}"
                    ),
                }
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("the server certificate has expired; {ensure}")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server certificate is not valid yet: check this machine's clock".to_string()
            }
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server certificate was not issued by the city CA (ca.pem): is the server using <state>/pki/server.pem, or was the CA replaced? run `cityd pki ensure` and restart Mattermost".to_string()
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                format!(
                    "the server certificate lacks the serverAuth extended key usage (iOS refuses it); {ensure}"
                )
            }
            other => format!("the server certificate was rejected: {other}"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the peer does not speak TLS on this port: is Mattermost's ConnectionSecurity set to TLS?"
                .to_string()
        }
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the handshake (alert {alert:?})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}
