//! Posts: read one (both listeners), create (TCP session only: local mode has no `POST /posts`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::super::errors::{ApiResult, AppError, decode_body, require_id};
use super::{Caller, Ctx, json_with};

pub async fn get_one(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(post_id): Path<String>,
) -> ApiResult<Response> {
    require_id(&post_id, "post_id")?;
    let world = ctx.shared.world();
    let post = world
        .posts
        .iter()
        .find(|p| p.id == post_id && p.delete_at == 0)
        .ok_or_else(|| AppError::not_found("app.post.get.app_error", "Unable to get the post."))?;
    let channel = world.channel(&post.channel_id)?;
    let member = caller
        .user_id()
        .is_some_and(|u| world.is_channel_member(&channel.id, u));
    if !caller.is_admin() && !member && channel.kind != "O" {
        return Err(AppError::permission());
    }
    Ok(json_with(StatusCode::OK, post))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewPost {
    channel_id: String,
    message: String,
    #[serde(rename = "type")]
    kind: String,
    props: Option<Map<String, Value>>,
    metadata: Option<Map<String, Value>>,
}

/// `POST /posts` → 201 Post, as the caller; the caller must be a channel member (or system admin).
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NewPost = decode_body(&body, "post")?;
    let Some(user_id) = caller.user_id().map(str::to_owned) else {
        return Err(AppError::permission());
    };
    let mut world = ctx.shared.world();
    let channel = world
        .channel(&req.channel_id)
        .map_err(|_| AppError::permission())?
        .clone();
    if !caller.is_admin() && !world.is_channel_member(&channel.id, &user_id) {
        return Err(AppError::permission());
    }
    if req.kind.starts_with("system_") {
        return Err(AppError::invalid_param("post.type"));
    }
    let priority = req.metadata.and_then(|m| m.get("priority").cloned());
    let post = world.insert_post(
        &channel.id,
        &user_id,
        &req.message,
        &req.kind,
        req.props.unwrap_or_default(),
        priority,
    );
    Ok(json_with(StatusCode::CREATED, &post))
}
