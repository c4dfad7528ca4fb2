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
    use_rest_semantics: bool,
}

/// The Mattermost version the double stands in for (the city's pinned image).
pub const VERSION: &str = "11.8.5";

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
    // Every real response carries the build: `<version>.<build>.<config hash>.<licensed>`.
    headers.insert(
        "X-Version-ID",
        format!("{VERSION}.0.double.true")
            .parse()
            .expect("static header"),
    );
    let mut status = axum::http::StatusCode::OK;
    if q.get_server_status {
        let database = match crate::mattermost::database::healthy().await {
            Some(false) => "UNHEALTHY",
            _ => "OK",
        };
        if database != "OK" && !q.use_rest_semantics {
            status = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        }
        body["database_status"] = json!(database);
        body["filestore_status"] = json!("OK");
        headers.insert("database_status", database.parse().expect("static header"));
        headers.insert("filestore_status", "OK".parse().expect("static header"));
    }
    (status, headers, Json(body)).into_response()
}
