//! Request-body forms: `multipart/form-data` parts and the media type of a `Content-Type`.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Request, header};

/// One multipart part.
pub struct Part {
    pub name: String,
    pub data: Bytes,
}

/// The media type of a request (`mime.ParseMediaType`): lower-cased, parameters dropped, empty
/// when there is no `Content-Type`.
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Reads every part of a multipart body; `None` when the body is not valid multipart.
pub async fn multipart_parts(headers: &HeaderMap, body: Bytes) -> Option<Vec<Part>> {
    let content_type = headers.get(header::CONTENT_TYPE)?.clone();
    let request = Request::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .ok()?;
    let mut multipart = Multipart::from_request(request, &()).await.ok()?;
    let mut parts = vec![];
    while let Some(field) = multipart.next_field().await.ok()? {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.ok()?;
        parts.push(Part { name, data });
    }
    Some(parts)
}
