//! Incoming-webhook management: create, list, get, update (`/hooks/incoming…`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::super::errors::{ApiResult, AppError, decode_body, require_id};
use super::super::ids::{is_valid_id, new_id, now_millis};
use super::super::model::IncomingWebhook;
use super::super::state::World;
use super::super::validate;
use super::{Caller, Ctx, Paging, json_with, query};

fn disabled() -> AppError {
    AppError::not_implemented(
        "api.incoming_webhook.disabled.app_error",
        "Incoming webhooks have been disabled by the system admin.",
    )
}

/// `manage_own_incoming_webhooks` on the team: system admins, local mode, and team admins.
fn may_manage(world: &World, caller: &Caller, team_id: &str) -> ApiResult<()> {
    if caller.is_admin() {
        return Ok(());
    }
    let team_admin = caller.user_id().is_some_and(|uid| {
        world
            .team_members
            .iter()
            .any(|m| m.team_id == team_id && m.user_id == uid && m.scheme_admin)
    });
    if team_admin {
        Ok(())
    } else {
        Err(AppError::permission())
    }
}

/// Without `bypass_incoming_webhook_channel_lock` (held only by system admins) a session-made
/// hook is always locked; local mode keeps what the request says.
fn effective_lock(caller: &Caller, requested: bool) -> bool {
    match caller {
        Caller::Local | Caller::User { admin: true, .. } => requested,
        _ => true,
    }
}

fn check_fields(display_name: &str, description: &str, icon_url: &str) -> ApiResult<()> {
    if display_name.chars().count() > 64 {
        return Err(AppError::bad_request(
            "model.incoming_hook.display_name.app_error",
            "Invalid title.",
        ));
    }
    if description.chars().count() > 500 {
        return Err(AppError::bad_request(
            "model.incoming_hook.description.app_error",
            "Invalid description.",
        ));
    }
    if icon_url.chars().count() > 1024 {
        return Err(AppError::bad_request(
            "model.incoming_hook.icon_url.app_error",
            "Invalid icon.",
        ));
    }
    Ok(())
}

fn check_username(username: &str) -> ApiResult<()> {
    if username.is_empty() || validate::username(username).is_ok() {
        Ok(())
    } else {
        Err(AppError::bad_request(
            "api.incoming_webhook.invalid_username.app_error",
            "Invalid username.",
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HookBody {
    id: String,
    channel_id: String,
    user_id: String,
    display_name: String,
    description: String,
    username: String,
    icon_url: String,
    channel_locked: bool,
}

/// `POST /hooks/incoming` → 201 IncomingWebhook. Local mode requires `user_id` (400 `Invalid
/// user_id parameter.`); 501 when incoming webhooks are disabled.
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut req: HookBody = decode_body(&body, "incoming_webhook")?;
    if caller.is_local() && req.user_id.is_empty() {
        return Err(AppError::invalid_param("user_id"));
    }
    let mut world = ctx.shared.world();
    let channel = world.channel(&req.channel_id)?.clone();
    may_manage(&world, &caller, &channel.team_id)?;
    let owner = if req.user_id.is_empty() {
        caller.user_id().unwrap_or_default().to_owned()
    } else {
        world.user(&req.user_id)?;
        req.user_id.clone()
    };
    req.channel_locked = effective_lock(&caller, req.channel_locked);
    if !world.cfg_bool("ServiceSettings.EnableIncomingWebhooks") {
        return Err(disabled());
    }
    if !world.cfg_bool("ServiceSettings.EnablePostUsernameOverride") {
        req.username.clear();
    }
    if !world.cfg_bool("ServiceSettings.EnablePostIconOverride") {
        req.icon_url.clear();
    }
    check_username(&req.username)?;
    check_fields(&req.display_name, &req.description, &req.icon_url)?;
    let now = now_millis();
    let hook = IncomingWebhook {
        id: new_id(),
        create_at: now,
        update_at: now,
        delete_at: 0,
        user_id: owner,
        channel_id: channel.id.clone(),
        team_id: channel.team_id.clone(),
        display_name: req.display_name,
        description: req.description,
        username: req.username,
        icon_url: req.icon_url,
        channel_locked: req.channel_locked,
    };
    world.hooks.push(hook.clone());
    Ok(json_with(StatusCode::CREATED, &hook))
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct ListQuery {
    team_id: String,
    page: usize,
    per_page: usize,
    include_total_count: bool,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            team_id: String::new(),
            page: 0,
            per_page: 60,
            include_total_count: false,
        }
    }
}

/// `GET /hooks/incoming[?team_id=&page=&per_page=&include_total_count=]` → `[IncomingWebhook]`
/// or `{"incoming_webhooks": […], "total_count": n}`.
pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q: ListQuery = query(raw.as_deref(), "page")?;
    let world = ctx.shared.world();
    if q.team_id.is_empty() {
        caller.require_admin()?;
    } else {
        if !is_valid_id(&q.team_id) {
            return Err(AppError::invalid_param("team_id"));
        }
        may_manage(&world, &caller, &q.team_id)?;
    }
    if !world.cfg_bool("ServiceSettings.EnableIncomingWebhooks") {
        return Err(disabled());
    }
    let matching: Vec<&IncomingWebhook> = world
        .hooks
        .iter()
        .filter(|h| h.delete_at == 0 && (q.team_id.is_empty() || h.team_id == q.team_id))
        .collect();
    let total = matching.len();
    let page = Paging {
        page: q.page,
        per_page: q.per_page,
    }
    .apply(matching);
    if q.include_total_count {
        Ok(json_with(
            StatusCode::OK,
            &json!({"incoming_webhooks": page, "total_count": total}),
        ))
    } else {
        Ok(json_with(StatusCode::OK, &page))
    }
}

fn find<'a>(world: &'a World, hook_id: &str) -> ApiResult<&'a IncomingWebhook> {
    world
        .hooks
        .iter()
        .find(|h| h.id == hook_id && h.delete_at == 0)
        .ok_or_else(|| {
            AppError::not_found(
                "app.webhooks.get_incoming.app_error",
                "Unable to get the webhook.",
            )
        })
}

pub async fn get_one(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(hook_id): Path<String>,
) -> ApiResult<Response> {
    require_id(&hook_id, "hook_id")?;
    let world = ctx.shared.world();
    if !world.cfg_bool("ServiceSettings.EnableIncomingWebhooks") {
        return Err(disabled());
    }
    let hook = find(&world, &hook_id)?;
    may_manage(&world, &caller, &hook.team_id)?;
    Ok(json_with(StatusCode::OK, hook))
}

/// `PUT /hooks/incoming/{id}` → 200 IncomingWebhook. Owner, team and creation time are kept; the
/// channel may change within the hook's team only.
pub async fn update(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(hook_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&hook_id, "hook_id")?;
    let req: HookBody = decode_body(&body, "incoming_webhook")?;
    if req.id != hook_id {
        return Err(AppError::invalid_param("hook_id"));
    }
    let mut world = ctx.shared.world();
    if !world.cfg_bool("ServiceSettings.EnableIncomingWebhooks") {
        return Err(disabled());
    }
    let old = find(&world, &hook_id)?.clone();
    may_manage(&world, &caller, &old.team_id)?;
    let channel_id = if req.channel_id.is_empty() {
        old.channel_id.clone()
    } else {
        req.channel_id.clone()
    };
    let channel = world.channel(&channel_id)?.clone();
    if channel.team_id != old.team_id {
        return Err(AppError::bad_request(
            "api.webhook.team_mismatch.app_error",
            "Unable to update webhook across teams.",
        ));
    }
    let username = if world.cfg_bool("ServiceSettings.EnablePostUsernameOverride") {
        req.username
    } else {
        old.username.clone()
    };
    let icon_url = if world.cfg_bool("ServiceSettings.EnablePostIconOverride") {
        req.icon_url
    } else {
        old.icon_url.clone()
    };
    check_username(&username)?;
    check_fields(&req.display_name, &req.description, &icon_url)?;
    let updated = IncomingWebhook {
        channel_id,
        display_name: req.display_name,
        description: req.description,
        username,
        icon_url,
        channel_locked: effective_lock(&caller, req.channel_locked),
        update_at: now_millis(),
        ..old
    };
    if let Some(slot) = world.hooks.iter_mut().find(|h| h.id == hook_id) {
        *slot = updated.clone();
    }
    Ok(json_with(StatusCode::OK, &updated))
}
