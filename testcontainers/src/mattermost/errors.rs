//! Mattermost's error body (`model.AppError`): `{id, message, detailed_error, request_id, status_code}`.
//!
//! `detailed_error` is always empty, as on a server with `EnableDeveloper=false` (the default).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::ids::new_id;

/// One failed request, rendered as the real server's JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub status: StatusCode,
    /// The translation id, e.g. `store.sql_channel.save_channel.exists.app_error`.
    pub id: String,
    pub message: String,
}

pub type ApiResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(status: StatusCode, id: &str, message: impl Into<String>) -> Self {
        AppError {
            status,
            id: id.to_owned(),
            message: message.into(),
        }
    }

    pub fn bad_request(id: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, id, message)
    }

    pub fn not_found(id: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, id, message)
    }

    pub fn forbidden(id: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, id, message)
    }

    pub fn not_implemented(id: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, id, message)
    }

    pub fn internal(id: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, id, message)
    }

    /// `c.SetInvalidParam(name)`: a bad query or body parameter.
    pub fn invalid_param(name: &str) -> Self {
        Self::bad_request(
            "api.context.invalid_param.app_error",
            format!("Invalid {name} parameter."),
        )
    }

    /// `c.SetInvalidParamWithErr(name, err)` on a body that does not decode.
    pub fn invalid_body_param(name: &str) -> Self {
        Self::bad_request(
            "api.context.invalid_body_param.app_error",
            format!("Invalid or missing {name} in request body."),
        )
    }

    /// `c.SetInvalidURLParam(name)`: a path parameter that is not an id.
    pub fn invalid_url_param(name: &str) -> Self {
        Self::bad_request(
            "api.context.invalid_url_param.app_error",
            format!("Invalid or missing {name} parameter in request URL."),
        )
    }

    pub fn permission() -> Self {
        Self::forbidden(
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        )
    }

    pub fn session_expired() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        )
    }

    /// What the API router answers for a path (or method) it does not serve.
    pub fn route_not_found() -> Self {
        Self::not_found(
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({
            "id": self.id,
            "message": self.message,
            "detailed_error": "",
            "request_id": new_id(),
            "status_code": self.status.as_u16(),
        })
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Decodes a JSON request body; a body that does not decode answers like `SetInvalidParamWithErr(name)`.
pub fn decode_body<T: serde::de::DeserializeOwned>(bytes: &[u8], name: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes).map_err(|_| AppError::invalid_body_param(name))
}

/// Checks that a path parameter has the shape of an id.
pub fn require_id(value: &str, name: &str) -> ApiResult<()> {
    if super::ids::is_valid_id(value) {
        Ok(())
    } else {
        Err(AppError::invalid_url_param(name))
    }
}
