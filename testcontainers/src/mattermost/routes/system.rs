//! `GET /system/ping`: the readiness probe (no auth, both listeners).

use axum::Json;
use axum::extract::RawQuery;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::query;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PingQuery {
    get_server_status: bool,
}

pub async fn ping(RawQuery(raw): RawQuery) -> Response {
    let q: PingQuery = query(raw.as_deref(), "get_server_status").unwrap_or_default();
    let mut body = json!({
        "ActiveSearchBackend": "database",
        "AndroidLatestVersion": "",
        "AndroidMinVersion": "",
        "IosLatestVersion": "",
        "IosMinVersion": "",
        "status": "OK",
    });
    let mut headers = HeaderMap::new();
    if q.get_server_status {
        body["database_status"] = json!("OK");
        body["filestore_status"] = json!("OK");
        headers.insert("database_status", "OK".parse().expect("static header"));
        headers.insert("filestore_status", "OK".parse().expect("static header"));
    }
    (headers, Json(body)).into_response()
}
