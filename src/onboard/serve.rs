//! The page's HTTP server (axum): five fixed GET routes with fixed headers, stopped when the
//! time is up or on Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Site, content_types, paths};

/// Why the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `--for` ran out.
    Expired,
    /// Ctrl-C or SIGTERM.
    Interrupted,
}

/// No script runs, nothing is framed, nothing is cached or sniffed, and no referrer leaves.
const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

fn respond(
    content_type: &'static str,
    attachment: Option<&'static str>,
    body: Vec<u8>,
) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(disposition) = attachment {
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static(disposition),
        );
    }
    for (name, value) in SECURITY_HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The routes over the prepared bodies.
pub fn router(site: Arc<Site>) -> Router {
    let s = site.clone();
    let page = move || {
        let s = s.clone();
        async move { respond(content_types::HTML, None, s.page.clone().into_bytes()) }
    };
    let s = site.clone();
    let der = move || {
        let s = s.clone();
        async move {
            respond(
                content_types::DER,
                Some("attachment; filename=\"city-ca.crt\""),
                s.der.clone(),
            )
        }
    };
    let s = site.clone();
    let mobileconfig = move || {
        let s = s.clone();
        async move {
            respond(
                content_types::MOBILECONFIG,
                Some("attachment; filename=\"city-ca.mobileconfig\""),
                s.mobileconfig.clone().into_bytes(),
            )
        }
    };
    let s = site.clone();
    let pem = move || {
        let s = s.clone();
        async move {
            respond(
                content_types::PEM,
                Some("attachment; filename=\"city-ca.pem\""),
                s.pem.clone().into_bytes(),
            )
        }
    };
    let s = site;
    let qr = move || {
        let s = s.clone();
        async move {
            respond(
                content_types::SVG,
                None,
                s.mattermost_qr.clone().into_bytes(),
            )
        }
    };
    Router::new()
        .route("/", get(page))
        .route(paths::DER, get(der))
        .route(paths::MOBILECONFIG, get(mobileconfig))
        .route(paths::PEM, get(pem))
        .route(paths::MATTERMOST_QR, get(qr))
}

async fn interrupted() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Serves `site` on `listener` for `lifetime`, or until interrupted.
pub async fn serve(
    listener: tokio::net::TcpListener,
    site: Arc<Site>,
    lifetime: Duration,
) -> std::io::Result<Served> {
    let (tx, rx) = tokio::sync::oneshot::channel::<Served>();
    let stop = async move {
        let why = tokio::select! {
            _ = tokio::time::sleep(lifetime) => Served::Expired,
            _ = interrupted() => Served::Interrupted,
        };
        let _ = tx.send(why);
    };
    axum::serve(listener, router(site))
        .with_graceful_shutdown(stop)
        .await?;
    Ok(rx.await.unwrap_or(Served::Interrupted))
}
