//! Teams: create, look up by id or name, add a member, patch.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::errors::{ApiResult, AppError, decode_body, require_id};
use super::super::ids::{new_id, now_millis};
use super::super::model::Team;
use super::super::validate;
use super::{Caller, Ctx, json_with};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewTeam {
    name: String,
    display_name: String,
    #[serde(rename = "type")]
    kind: String,
    description: String,
    email: String,
    allowed_domains: String,
    allow_open_invite: bool,
}

/// `POST /teams` → 201 Team. Like `App.CreateTeam` it also creates `town-square` and `off-topic`;
/// over a session the creator joins as team admin (local mode: no creator, no member).
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NewTeam = decode_body(&body, "team")?;
    validate::team_name(&req.name)?;
    validate::display_name(
        &req.display_name,
        "model.team.is_valid.name.app_error",
        "Invalid name.",
    )?;
    if req.kind != "O" && req.kind != "I" {
        return Err(AppError::bad_request(
            "model.team.is_valid.type.app_error",
            "Invalid type.",
        ));
    }
    let mut world = ctx.shared.world();
    if world.teams.iter().any(|t| t.name == req.name) {
        return Err(AppError::bad_request(
            "app.team.save.existing.app_error",
            "A team with that name already exists.",
        ));
    }
    let now = now_millis();
    let team = Team {
        id: new_id(),
        create_at: now,
        update_at: now,
        delete_at: 0,
        display_name: req.display_name,
        name: req.name,
        description: req.description,
        email: req.email,
        kind: req.kind,
        company_name: String::new(),
        allowed_domains: req.allowed_domains,
        invite_id: new_id(),
        allow_open_invite: req.allow_open_invite,
        last_team_icon_update: 0,
        scheme_id: String::new(),
        group_constrained: None,
        policy_id: None,
        cloud_limits_archived: false,
    };
    world.teams.push(team.clone());
    world.create_default_channels(&team.id);
    if let Some(user_id) = caller.user_id() {
        world.join_team(&team.id, user_id, true)?;
    }
    Ok(json_with(StatusCode::CREATED, &team))
}

pub async fn get_by_id(State(ctx): State<Ctx>, Path(team_id): Path<String>) -> ApiResult<Response> {
    require_id(&team_id, "team_id")?;
    let world = ctx.shared.world();
    Ok(json_with(StatusCode::OK, world.team(&team_id)?))
}

pub async fn get_by_name(
    State(ctx): State<Ctx>,
    Path(team_name): Path<String>,
) -> ApiResult<Response> {
    let world = ctx.shared.world();
    Ok(json_with(StatusCode::OK, world.team_by_name(&team_name)?))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewMember {
    team_id: String,
    user_id: String,
}

/// `POST /teams/{id}/members` → 201 TeamMember (an existing membership is returned as is).
pub async fn add_member(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(team_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&team_id, "team_id")?;
    let req: NewMember = decode_body(&body, "team_member")?;
    if req.team_id != team_id {
        return Err(AppError::invalid_param("team_id"));
    }
    if !super::super::ids::is_valid_id(&req.user_id) {
        return Err(AppError::invalid_param("user_id"));
    }
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    world.team(&team_id)?;
    world.user(&req.user_id)?;
    let member = world.join_team(&team_id, &req.user_id, false)?;
    Ok(json_with(StatusCode::CREATED, &member))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TeamPatch {
    display_name: Option<String>,
    description: Option<String>,
}

/// `PUT /teams/{id}/patch` → 200 Team (local mode or system admins here; the server also lets
/// team admins). Only the fields present change.
pub async fn patch(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(team_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&team_id, "team_id")?;
    let req: TeamPatch = decode_body(&body, "team")?;
    caller.require_admin()?;
    if let Some(name) = &req.display_name {
        validate::display_name(name, "model.team.is_valid.name.app_error", "Invalid name.")?;
    }
    let mut world = ctx.shared.world();
    world.team(&team_id)?;
    let team = world
        .teams
        .iter_mut()
        .find(|t| t.id == team_id)
        .expect("looked up above");
    if let Some(name) = req.display_name {
        team.display_name = name;
    }
    if let Some(description) = req.description {
        team.description = description;
    }
    team.update_at = now_millis();
    Ok(json_with(StatusCode::OK, &team.clone()))
}
