//! Channels: create, look up by team and name, add and list members, patch, read posts (PostList).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::errors::{ApiResult, AppError, decode_body, require_id};
use super::super::ids::is_valid_id;
use super::super::model::Channel;
use super::super::state::World;
use super::super::validate;
use super::{Caller, Ctx, Paging, json_with, query};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewChannel {
    team_id: String,
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    kind: String,
    purpose: String,
    header: String,
}

/// `POST /channels` → 201 Channel. Over a session the creator becomes a member (if they are on the
/// team); local mode creates the channel with no creator and no member.
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NewChannel = decode_body(&body, "channel")?;
    validate::channel_name(&req.name)?;
    validate::display_name(
        &req.display_name,
        "model.channel.is_valid.display_name.app_error",
        "Invalid display name.",
    )?;
    if req.kind != "O" && req.kind != "P" {
        return Err(AppError::bad_request(
            "model.channel.is_valid.type.app_error",
            "Invalid type.",
        ));
    }
    if req.purpose.chars().count() > 250 {
        return Err(AppError::bad_request(
            "model.channel.is_valid.purpose.app_error",
            "Invalid purpose.",
        ));
    }
    if req.header.chars().count() > 1024 {
        return Err(AppError::bad_request(
            "model.channel.is_valid.header.app_error",
            "Invalid header.",
        ));
    }
    let mut world = ctx.shared.world();
    world.team(&req.team_id)?;
    let creator = caller.user_id().unwrap_or("").to_owned();
    if !caller.is_admin() && !world.is_team_member(&req.team_id, &creator) {
        return Err(AppError::permission());
    }
    if world
        .channels
        .iter()
        .any(|c| c.team_id == req.team_id && c.name == req.name)
    {
        return Err(AppError::bad_request(
            "store.sql_channel.save_channel.exists.app_error",
            "A channel with that name already exists on the same team.",
        ));
    }
    let channel = world.insert_channel(
        &req.team_id,
        &req.name,
        &req.display_name,
        &req.kind,
        &req.purpose,
        &req.header,
        &creator,
    );
    if !creator.is_empty() && world.is_team_member(&req.team_id, &creator) {
        world.join_channel(&channel.id, &creator, true)?;
    }
    Ok(json_with(StatusCode::CREATED, &channel))
}

/// Private channels are only visible to members and admins.
fn visible(world: &World, caller: &Caller, channel: &Channel) -> ApiResult<()> {
    let member = caller
        .user_id()
        .is_some_and(|u| world.is_channel_member(&channel.id, u));
    if caller.is_admin() || member || channel.kind == "O" {
        Ok(())
    } else {
        Err(AppError::permission())
    }
}

pub async fn get_by_team_id_and_name(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path((team_id, channel_name)): Path<(String, String)>,
) -> ApiResult<Response> {
    require_id(&team_id, "team_id")?;
    let world = ctx.shared.world();
    let channel = world.channel_by_name(&team_id, &channel_name)?;
    visible(&world, &caller, channel)?;
    Ok(json_with(StatusCode::OK, channel))
}

pub async fn get_by_names(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path((team_name, channel_name)): Path<(String, String)>,
) -> ApiResult<Response> {
    let world = ctx.shared.world();
    let team = world.team_by_name(&team_name)?;
    let channel = world.channel_by_name(&team.id, &channel_name)?;
    visible(&world, &caller, channel)?;
    Ok(json_with(StatusCode::OK, channel))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewMembers {
    user_id: String,
    user_ids: Vec<String>,
}

/// `POST /channels/{id}/members` with `user_id` → 201 ChannelMember, with `user_ids` → 201
/// `[ChannelMember]`. The user must already be on the channel's team (404 otherwise).
pub async fn add_member(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&channel_id, "channel_id")?;
    let req: NewMembers = decode_body(&body, "channel_member")?;
    let many = req.user_id.is_empty();
    let ids = if many {
        req.user_ids
    } else {
        vec![req.user_id]
    };
    if ids.is_empty() || ids.len() > 1000 || ids.iter().any(|id| !is_valid_id(id)) {
        return Err(AppError::invalid_param("user_id"));
    }
    let mut world = ctx.shared.world();
    let channel = world.channel(&channel_id)?.clone();
    let caller_is_member = caller
        .user_id()
        .is_some_and(|u| world.is_channel_member(&channel_id, u));
    if !caller.is_admin() && !caller_is_member {
        return Err(AppError::permission());
    }
    let mut added = vec![];
    for user_id in &ids {
        world.user(user_id)?;
        added.push(world.join_channel(&channel.id, user_id, false)?);
    }
    if many {
        Ok(json_with(StatusCode::CREATED, &added))
    } else {
        Ok(json_with(StatusCode::CREATED, &added[0]))
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct PostsQuery {
    page: usize,
    per_page: usize,
    since: i64,
}

impl Default for PostsQuery {
    fn default() -> Self {
        PostsQuery {
            page: 0,
            per_page: 60,
            since: 0,
        }
    }
}

/// `GET /channels/{id}/posts` → 200 PostList, `order` newest first.
pub async fn posts(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    require_id(&channel_id, "channel_id")?;
    let q: PostsQuery = query(raw.as_deref(), "page")?;
    let world = ctx.shared.world();
    let channel = world.channel(&channel_id)?;
    visible(&world, &caller, channel)?;
    let mut posts: Vec<_> = world
        .posts
        .iter()
        .filter(|p| {
            p.channel_id == channel_id
                && p.delete_at == 0
                && (q.since == 0 || p.update_at > q.since)
        })
        .collect();
    posts.sort_by_key(|p| std::cmp::Reverse(p.create_at));
    let page = Paging {
        page: q.page,
        per_page: q.per_page,
    }
    .apply(posts);
    let mut map = Map::new();
    let mut order = vec![];
    for post in page {
        order.push(json!(post.id));
        map.insert(
            post.id.clone(),
            serde_json::to_value(post).unwrap_or(Value::Null),
        );
    }
    Ok(json_with(
        StatusCode::OK,
        &json!({
            "order": order,
            "posts": map,
            "next_post_id": "",
            "prev_post_id": "",
            "has_next": false,
            "first_inaccessible_post_time": 0,
        }),
    ))
}

/// `GET /channels/{id}/members` → 200 `[ChannelMember]`, paged (local mode registers it too).
pub async fn members(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    require_id(&channel_id, "channel_id")?;
    let paging: Paging = query(raw.as_deref(), "page")?;
    let world = ctx.shared.world();
    let channel = world.channel(&channel_id)?;
    visible(&world, &caller, channel)?;
    let members = paging.apply(
        world
            .channel_members
            .iter()
            .filter(|m| m.channel_id == channel_id)
            .cloned(),
    );
    Ok(json_with(StatusCode::OK, &members))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChannelPatch {
    display_name: Option<String>,
    purpose: Option<String>,
    header: Option<String>,
}

/// `PUT /channels/{id}/patch` → 200 Channel. Only the fields present change; same limits as
/// creation (display name 1-64, purpose ≤ 250, header ≤ 1024).
pub async fn patch(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&channel_id, "channel_id")?;
    let req: ChannelPatch = decode_body(&body, "channel")?;
    if let Some(name) = &req.display_name {
        validate::display_name(
            name,
            "model.channel.is_valid.display_name.app_error",
            "Invalid display name.",
        )?;
    }
    if req
        .purpose
        .as_ref()
        .is_some_and(|p| p.chars().count() > 250)
    {
        return Err(AppError::bad_request(
            "model.channel.is_valid.purpose.app_error",
            "Invalid purpose.",
        ));
    }
    if req
        .header
        .as_ref()
        .is_some_and(|h| h.chars().count() > 1024)
    {
        return Err(AppError::bad_request(
            "model.channel.is_valid.header.app_error",
            "Invalid header.",
        ));
    }
    let mut world = ctx.shared.world();
    world.channel(&channel_id)?;
    let member = caller
        .user_id()
        .is_some_and(|u| world.is_channel_member(&channel_id, u));
    if !caller.is_admin() && !member {
        return Err(AppError::permission());
    }
    let channel = world
        .channels
        .iter_mut()
        .find(|c| c.id == channel_id)
        .expect("looked up above");
    if let Some(v) = req.display_name {
        channel.display_name = v;
    }
    if let Some(v) = req.purpose {
        channel.purpose = v;
    }
    if let Some(v) = req.header {
        channel.header = v;
    }
    channel.update_at = super::super::ids::now_millis();
    Ok(json_with(StatusCode::OK, &channel.clone()))
}
