//! Every TLS client of cityd is built here: the city CA read from its file, one rustls client
//! configuration that trusts it alone (ring, the one crypto provider, installed once), the reqwest
//! client builders (city CA only, system roots plus the city CA, or system roots) and the
//! tokio-postgres connector. Callers add their own timeouts, redirect policy and user agent.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The one crypto provider of cityd: ring (rcgen and bollard use it too; rcgen cannot do RSA with
/// it, so every key is ECDSA P-256).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Installs ring as rustls' process-wide crypto provider, once. reqwest is built with
/// `rustls-no-provider`, so a client that uses its own TLS set-up (the system roots) needs this
/// first; a provider installed earlier by someone else is fine.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Why the city CA file cannot be trusted. Each names the file and the fix.
#[derive(Debug, Error)]
pub enum CaError {
    #[error(
        "cannot read the city CA certificate {path}; run `cityd pki ensure` to create it, or point at the right file"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the city CA file {path} is not usable: {reason}; restore the city's ca.pem, or point at the right file"
    )]
    Unusable { path: PathBuf, reason: String },
}

impl CaError {
    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            CaError::Read { path, .. } | CaError::Unusable { path, .. } => path,
        }
    }
}

/// The city CA as a trust anchor: its certificates, the verifier rooted in them alone (no system
/// roots) and the client configuration built on that verifier.
#[derive(Clone)]
pub struct CityCa {
    certs: Vec<CertificateDer<'static>>,
    verifier: Arc<WebPkiServerVerifier>,
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for CityCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CityCa({} certificate(s))", self.certs.len())
    }
}

/// Whom a reqwest client built by [`http_builder`] trusts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// The city CA alone: Mattermost, its webhooks, anything cityd set up itself.
    CityCa(&'a CityCa),
    /// The system's roots plus the city CA: products a user may run behind either (integrations).
    SystemAndCityCa(&'a CityCa),
    /// The system's roots: downloads from the internet, and plain-HTTP loopback targets.
    System,
}

impl CityCa {
    /// Reads the PEM file at `path` (e.g. `StateDir::ca_pem()`); every certificate in it is trusted.
    pub fn load(path: &Path) -> Result<Self, CaError> {
        let pem = std::fs::read(path).map_err(|source| CaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(path, &pem)
    }

    /// The PEM text `pem`, read from `path` (named in errors).
    pub fn from_pem(path: &Path, pem: &[u8]) -> Result<Self, CaError> {
        let unusable = |reason: String| CaError::Unusable {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(format!("its PEM does not parse ({e})")))?;
        if certs.is_empty() {
            return Err(unusable(
                "it holds no -----BEGIN CERTIFICATE----- block".into(),
            ));
        }
        Self::trusting(certs).map_err(unusable)
    }

    /// One DER certificate already read by the caller; the error is the reason alone, for the
    /// caller to name where the bytes came from.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        Self::trusting(vec![CertificateDer::from(der.to_vec())])
    }

    fn trusting(certs: Vec<CertificateDer<'static>>) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|e| format!("the CA certificate is not a usable trust anchor ({e})"))?;
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("cannot build a verifier from the CA certificate ({e})"))?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("the TLS provider refuses TLS 1.2 and 1.3 ({e})"))?
            .with_webpki_verifier(verifier.clone())
            .with_no_client_auth();
        Ok(Self {
            certs,
            verifier,
            config: Arc::new(config),
        })
    }

    /// The verifier trusting this CA alone, to check a certificate without a connection.
    pub fn verifier(&self) -> &WebPkiServerVerifier {
        &self.verifier
    }

    /// A rustls client configuration trusting this CA alone, without ALPN.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The tokio-postgres connector: verify-full (chain and host name) against this CA alone.
    pub fn postgres_connector(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new((*self.config).clone())
    }
}

/// A reqwest client builder trusting `trust`, with the crypto provider installed. No other option
/// is set: each caller chooses its timeouts, redirect policy, proxy and user agent.
pub fn http_builder(trust: Trust<'_>) -> reqwest::ClientBuilder {
    install_crypto_provider();
    let builder = reqwest::Client::builder();
    match trust {
        Trust::CityCa(ca) => {
            let mut config = (*ca.config).clone();
            // What reqwest (built without HTTP/2) offers when it builds the configuration itself.
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder.tls_backend_preconfigured(config)
        }
        Trust::SystemAndCityCa(ca) => builder.tls_certs_merge(ca.certs.iter().map(|der| {
            reqwest::Certificate::from_der(der)
                .expect("reqwest's rustls backend takes any DER and parses it when building")
        })),
        Trust::System => builder,
    }
}

/// A reqwest client trusting `trust`, with the caller's `options`. Where `trust` includes the
/// system's roots and the host has none at all (a build sandbox, a minimal container), the client
/// trusts the city CA alone (or nothing, without one) instead of failing to build: plain http and
/// city-signed servers still work there.
pub fn http_client(
    trust: Trust<'_>,
    options: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> reqwest::Result<reqwest::Client> {
    let built = options(http_builder(trust)).build();
    match (built, trust) {
        (Ok(client), _) => Ok(client),
        (Err(_), Trust::SystemAndCityCa(ca)) => options(http_builder(Trust::CityCa(ca))).build(),
        (Err(_), Trust::System) => options(http_builder(Trust::System).tls_certs_only([])).build(),
        (Err(e), Trust::CityCa(_)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

    use rustls::ServerConnection;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use time::OffsetDateTime;

    use super::*;
    use crate::pki::{self, Ca, Leaf, SanSet};

    fn ca(name: &str) -> Ca {
        Ca::generate(name, OffsetDateTime::now_utc()).unwrap()
    }

    fn leaf_for_loopback(ca: &Ca) -> Leaf {
        let mut sans = SanSet::default();
        sans.add_dns("localhost");
        sans.ip.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
        pki::issue(ca, &sans, 30, OffsetDateTime::now_utc()).unwrap()
    }

    fn city_ca(ca: &Ca) -> CityCa {
        CityCa::from_pem(Path::new("ca.pem"), ca.cert_pem().as_bytes()).unwrap()
    }

    fn server_config(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        let key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.serialized_der().to_vec()));
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(leaf.cert_der.clone())], key)
            .unwrap();
        Arc::new(config)
    }

    /// An HTTPS server on loopback presenting `leaf` to one client and answering `200 ok`. The
    /// listener is bound before the client starts, so there is no readiness to wait for.
    fn serve_once(leaf: &Leaf) -> SocketAddr {
        let config = server_config(leaf);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let Ok((sock, _)) = listener.accept() else {
                return;
            };
            let conn = ServerConnection::new(config).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, sock);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        });
        addr
    }

    /// GETs `https://127.0.0.1:<port>/` with a client trusting `trust`: the body, or the error chain.
    fn get(trust: Trust<'_>, addr: SocketAddr) -> Result<String, String> {
        let client = http_builder(trust).no_proxy().build().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let chain = |e: reqwest::Error| {
                let mut text = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    text.push_str(&format!(": {s}"));
                    source = s.source();
                }
                text
            };
            let response = client
                .get(format!("https://{addr}/"))
                .send()
                .await
                .map_err(chain)?;
            response.text().await.map_err(chain)
        })
    }

    #[test]
    fn a_client_of_the_city_ca_trusts_its_leaf_and_refuses_another_cas() {
        let city = ca("city");
        let other = ca("other");
        let trusted = city_ca(&city);

        let good = serve_once(&leaf_for_loopback(&city));
        assert_eq!(get(Trust::CityCa(&trusted), good).as_deref(), Ok("ok"));

        let foreign = serve_once(&leaf_for_loopback(&other));
        let err = get(Trust::CityCa(&trusted), foreign).unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn system_roots_plus_the_city_ca_trust_its_leaf_but_not_an_unknown_ca() {
        let city = ca("city");
        let other = ca("other");
        let trusted = city_ca(&city);

        let good = serve_once(&leaf_for_loopback(&city));
        assert_eq!(
            get(Trust::SystemAndCityCa(&trusted), good).as_deref(),
            Ok("ok")
        );
        let foreign = serve_once(&leaf_for_loopback(&other));
        let err = get(Trust::SystemAndCityCa(&trusted), foreign).unwrap_err();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    /// Drives a client and a server connection against each other in memory until both are done
    /// or one fails.
    fn handshake(client: Arc<ClientConfig>, leaf: &Leaf) -> Result<(), rustls::Error> {
        let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
        let mut client = rustls::ClientConnection::new(client, name)?;
        let mut server = ServerConnection::new(server_config(leaf))?;
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets()?;
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        Ok(())
    }

    #[test]
    fn the_rustls_configuration_trusts_only_the_city_ca() {
        let city = ca("city");
        let trusted = CityCa::from_der(city.cert_der()).unwrap();
        assert!(handshake(trusted.client_config(), &leaf_for_loopback(&city)).is_ok());
        let refused = handshake(trusted.client_config(), &leaf_for_loopback(&ca("other")));
        assert!(
            matches!(
                refused,
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::UnknownIssuer
                ))
            ),
            "{refused:?}"
        );
        // The connector for tokio-postgres is built from the same configuration.
        let _ = trusted.postgres_connector();
    }

    #[test]
    fn a_missing_or_garbled_ca_file_is_an_error_naming_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("pki/ca.pem");
        let err = CityCa::load(&missing).unwrap_err();
        assert!(matches!(err, CaError::Read { .. }), "{err:?}");
        assert_eq!(err.path(), missing);
        let text = err.to_string();
        assert!(
            text.contains(missing.to_str().unwrap()) && text.contains("cityd pki ensure"),
            "{text}"
        );

        let cases: [(&str, &[u8], &str); 3] = [
            (
                "no PEM at all",
                b"not a certificate\n",
                "no -----BEGIN CERTIFICATE-----",
            ),
            (
                "broken base64",
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "does not parse",
            ),
            (
                "valid base64, not a certificate",
                b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
                "not a usable trust anchor",
            ),
        ];
        for (case, pem, why) in cases {
            let path = dir.path().join("ca.pem");
            std::fs::write(&path, pem).unwrap();
            let err = CityCa::load(&path).unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(path.to_str().unwrap()) && text.contains(why),
                "{case}: {text}"
            );
            assert_eq!(err.path(), path, "{case}");
        }
    }

    #[test]
    fn every_certificate_of_a_bundle_is_trusted() {
        let first = ca("first");
        let second = ca("second");
        let bundle = format!("{}{}", first.cert_pem(), second.cert_pem());
        let both = CityCa::from_pem(Path::new("bundle.pem"), bundle.as_bytes()).unwrap();
        for issuer in [&first, &second] {
            assert!(handshake(both.client_config(), &leaf_for_loopback(issuer)).is_ok());
        }
    }
}
