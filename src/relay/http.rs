//! The relay's HTTP surface (axum): `POST /sonarqube` (the signature header's shape and the
//! announced size before any body byte is read, then the body within its timeout and the shared
//! budget of unverified bytes, then signature, content type, payload, and the synced spool
//! append, answered 202 at once), `GET /healthz` (ready only after the spool is recovered), and
//! `GET /metrics` on its own loopback listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::metrics::{Metrics, RejectReason, now_ms};
use super::payload;
use super::signature::{self, SignatureError, Verifier};
use super::spool::{Appended, Spool};

/// SonarQube's payloads are a few kB; 1 MiB leaves room for huge gates and nothing for abuse.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Why a request is refused, with what the sender should fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Signature(SignatureError),
    ContentType(String),
    TooLarge(usize),
    Malformed(String),
    Unavailable(String),
    /// The body did not arrive within the body timeout.
    Timeout(Duration),
}

impl Rejection {
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
            Rejection::ContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Rejection::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
            Rejection::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn reason(&self) -> RejectReason {
        match self {
            Rejection::Signature(_) => RejectReason::Signature,
            Rejection::ContentType(_) => RejectReason::ContentType,
            Rejection::TooLarge(_) => RejectReason::TooLarge,
            Rejection::Malformed(_) => RejectReason::Malformed,
            Rejection::Unavailable(_) => RejectReason::Unavailable,
            Rejection::Timeout(_) => RejectReason::Timeout,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Rejection::Signature(e) => e.to_string(),
            Rejection::ContentType(got) => format!(
                "Content-Type {got} is not accepted: send application/json (a charset, if any, must be utf-8)"
            ),
            Rejection::TooLarge(limit) => {
                format!("the body exceeds the relay's limit of {limit} bytes")
            }
            Rejection::Malformed(why) => why.clone(),
            Rejection::Unavailable(why) => why.clone(),
            Rejection::Timeout(limit) => {
                format!("the body did not arrive within {}s", limit.as_secs_f64())
            }
        }
    }
}

/// An event that passed every check, with its dedup key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    pub key: String,
}

/// Signature first (nothing about an unauthenticated request is examined further), then the
/// content type, then the payload. Pure: the property tests drive it directly.
pub fn admit(verifier: &Verifier, headers: &HeaderMap, body: &[u8]) -> Result<Admitted, Rejection> {
    verifier
        .verify(
            headers.get(signature::HEADER).map(HeaderValue::as_bytes),
            body,
        )
        .map_err(Rejection::Signature)?;
    check_content_type(headers.get(header::CONTENT_TYPE))?;
    let event = payload::parse(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
    Ok(Admitted {
        key: payload::dedup_key(&event, body),
    })
}

/// `application/json`, optionally with `charset=utf-8` (what SonarQube sends); JSON is UTF-8, so
/// any other charset is refused.
fn check_content_type(value: Option<&HeaderValue>) -> Result<(), Rejection> {
    let Some(value) = value else {
        return Err(Rejection::ContentType("(none)".into()));
    };
    let shown = || {
        String::from_utf8_lossy(value.as_bytes())
            .chars()
            .take(100)
            .collect::<String>()
    };
    let text = value
        .to_str()
        .map_err(|_| Rejection::ContentType(shown()))?;
    let mut parts = text.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Rejection::ContentType(shown()));
    }
    for param in parts {
        let param = param.trim();
        if param.is_empty() {
            continue;
        }
        let (name, val) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = val.trim().trim_matches('"');
            if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")) {
                return Err(Rejection::ContentType(shown()));
            }
        }
    }
    Ok(())
}

/// What the handlers share.
pub struct App {
    pub verifier: Verifier,
    pub spool: Spool,
    pub metrics: Arc<Metrics>,
    /// Set once the spool is recovered and the worker runs.
    pub ready: AtomicBool,
    pub body_limit: usize,
    pub body_timeout: Duration,
    /// Bytes of bodies whose signature is not verified yet, shared by all requests: each takes
    /// its announced length (the body limit when none is announced) before reading.
    pub unverified: Semaphore,
}

impl App {
    /// The budget of unverified body bytes, in semaphore permits.
    pub fn budget(max_unverified_bytes: usize) -> Semaphore {
        Semaphore::new(max_unverified_bytes.min(Semaphore::MAX_PERMITS))
    }
}

/// The public router: `POST /sonarqube`, `GET /healthz`.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/sonarqube", post(sonarqube))
        .route("/healthz", get(healthz))
        .with_state(app)
}

/// The loopback-only metrics router.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .with_state(metrics)
}

fn refuse(app: &App, rejection: Rejection) -> Response {
    app.metrics.reject(rejection.reason());
    tracing::debug!(
        status = rejection.status().as_u16(),
        "{}",
        rejection.message()
    );
    (
        rejection.status(),
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        rejection.message() + "\n",
    )
        .into_response()
}

/// `refuse`, and the connection is closed after the answer: the rest of the body is never read.
fn refuse_and_close(app: &App, rejection: Rejection) -> Response {
    let mut response = refuse(app, rejection);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The body length the request announces: `Ok(None)` without Content-Length (chunked).
fn announced_length(headers: &HeaderMap) -> Result<Option<u64>, Rejection> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| Rejection::Malformed("Content-Length is not a number".into())),
    }
}

/// Why reading a body stopped early.
enum BodyError {
    TooLarge,
    Broken(String),
}

/// The body, refusing it as soon as it passes `limit` bytes.
async fn read_body(body: Body, limit: usize, announced: usize) -> Result<Bytes, BodyError> {
    let mut body = body;
    let mut buf = Vec::with_capacity(announced.min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// The body of a request whose header passed: within the body timeout and the shared budget of
/// unverified bytes (the permits are returned once the caller has verified the signature).
async fn receive<'a>(
    app: &'a App,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, tokio::sync::SemaphorePermit<'a>), Rejection> {
    let deadline = Instant::now() + app.body_timeout;
    let announced = announced_length(headers)?;
    let limit = app.body_limit;
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(Rejection::TooLarge(limit));
    }
    let want = announced.map_or(limit, |n| n as usize);
    let permits = u32::try_from(want).unwrap_or(u32::MAX);
    let permit = match tokio::time::timeout_at(deadline, app.unverified.acquire_many(permits)).await
    {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(Rejection::Unavailable("the relay is stopping".into())),
        Err(_) => {
            return Err(Rejection::Unavailable(
                "the relay is receiving too many bodies at once; retry shortly".into(),
            ));
        }
    };
    match tokio::time::timeout_at(deadline, read_body(body, limit, want)).await {
        Ok(Ok(bytes)) => Ok((bytes, permit)),
        Ok(Err(BodyError::TooLarge)) => Err(Rejection::TooLarge(limit)),
        Ok(Err(BodyError::Broken(why))) => {
            Err(Rejection::Malformed(format!("cannot read the body: {why}")))
        }
        Err(_) => Err(Rejection::Timeout(app.body_timeout)),
    }
}

async fn sonarqube(State(app): State<Arc<App>>, request: Request) -> Response {
    app.metrics.received.fetch_add(1, Relaxed);
    if !app.ready.load(Relaxed) {
        return refuse_and_close(
            &app,
            Rejection::Unavailable("the relay is recovering its spool; retry shortly".into()),
        );
    }
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // A request that cannot be authentic is refused on its header alone: no body byte is read.
    if let Err(e) =
        signature::parse_header(headers.get(signature::HEADER).map(HeaderValue::as_bytes))
    {
        return refuse_and_close(&app, Rejection::Signature(e));
    }
    let (body, permit) = match receive(&app, &headers, body).await {
        Ok(received) => received,
        Err(rejection) => return refuse_and_close(&app, rejection),
    };
    let admitted = admit(&app.verifier, &headers, &body);
    drop(permit);
    let admitted = match admitted {
        Ok(a) => a,
        Err(rejection) => return refuse(&app, rejection),
    };
    let key = admitted.key.clone();
    match app.spool.append(key, body).await {
        Ok(appended) => {
            let duplicate = matches!(appended, Appended::Duplicate);
            let key = serde_json::Value::String(admitted.key);
            (
                StatusCode::ACCEPTED,
                [(header::CONTENT_TYPE, "application/json")],
                format!("{{\"accepted\":true,\"duplicate\":{duplicate},\"key\":{key}}}"),
            )
                .into_response()
        }
        Err(e) => refuse(&app, Rejection::Unavailable(e.to_string())),
    }
}

async fn healthz(State(app): State<Arc<App>>) -> Response {
    if app.ready.load(Relaxed) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "recovering the spool\n").into_response()
    }
}

async fn render_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics.render(now_ms()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Secret;
    use proptest::prelude::*;

    fn verifier() -> Verifier {
        Verifier::new(&Secret::new("cityd-test-secret-0123456789".into()))
    }

    fn headers(signature: Option<&str>, content_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(s) = signature {
            h.insert(signature::HEADER, HeaderValue::from_str(s).unwrap());
        }
        if let Some(c) = content_type {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn content_types_with_and_without_charset() {
        let v = verifier();
        let body = br#"{"project":{"key":"p"},"taskId":"t"}"#;
        let sig = v.sign(body);
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=\"UTF-8\"",
        ] {
            assert!(
                admit(&v, &headers(Some(&sig), Some(ok)), body).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json; charset=iso-8859-1",
            "application/jsonx",
        ] {
            let r = admit(&v, &headers(Some(&sig), Some(bad)), body).unwrap_err();
            assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{bad}");
        }
        let r = admit(&v, &headers(Some(&sig), None), body).unwrap_err();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn the_signature_is_checked_before_anything_else() {
        let v = verifier();
        let r = admit(&v, &headers(None, Some("text/plain")), b"garbage").unwrap_err();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let sig = v.sign(b"{}");
        let r = admit(&v, &headers(Some(&sig), Some("application/json")), b"{}").unwrap_err();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    proptest! {
        #[test]
        fn arbitrary_signed_bodies_get_400_or_are_admitted(
            body in proptest::collection::vec(any::<u8>(), 0..1024),
        ) {
            let v = verifier();
            let sig = v.sign(&body);
            match admit(&v, &headers(Some(&sig), Some("application/json; charset=utf-8")), &body) {
                Ok(a) => prop_assert!(!a.key.is_empty()),
                Err(r) => prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST),
            }
        }

        #[test]
        fn mutated_real_payloads_never_panic(
            cut in 0usize..1200,
            flip in 0usize..1200,
            byte in any::<u8>(),
        ) {
            let mut body = crate::relay::payload::fixtures::GATE_FAILED.to_vec();
            if flip < body.len() { body[flip] = byte; }
            body.truncate(cut.max(1));
            let v = verifier();
            let sig = v.sign(&body);
            match admit(&v, &headers(Some(&sig), Some("application/json")), &body) {
                Ok(_) => {}
                Err(r) => prop_assert_eq!(r.status(), StatusCode::BAD_REQUEST),
            }
        }
    }
}
