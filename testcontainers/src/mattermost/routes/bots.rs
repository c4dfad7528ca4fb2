//! Bots: list and patch (both listeners) and create (TCP session only: local mode has no `POST /bots`).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::errors::{ApiResult, AppError, decode_body};
use super::super::ids::now_millis;
use super::super::model::Bot;
use super::super::validate;
use super::{Caller, Ctx, Paging, json_with, query};

#[derive(Debug, Deserialize)]
#[serde(default)]
struct BotsQuery {
    page: usize,
    per_page: usize,
    include_deleted: bool,
    only_orphaned: bool,
}

impl Default for BotsQuery {
    fn default() -> Self {
        BotsQuery {
            page: 0,
            per_page: 60,
            include_deleted: false,
            only_orphaned: false,
        }
    }
}

pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q: BotsQuery = query(raw.as_deref(), "page")?;
    caller.require_admin()?;
    let world = ctx.shared.world();
    let bots = world
        .bots
        .iter()
        .filter(|b| q.include_deleted || b.delete_at == 0)
        .filter(|b| {
            !q.only_orphaned
                || world
                    .users
                    .iter()
                    .find(|u| u.id == b.owner_id)
                    .is_none_or(|o| o.delete_at != 0)
        });
    let page = Paging {
        page: q.page,
        per_page: q.per_page,
    }
    .apply(bots.cloned());
    Ok(json_with(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewBot {
    username: String,
    display_name: String,
    description: String,
}

/// `POST /bots` → 201 Bot owned by the caller; 403 `api.bot.create_disabled` while
/// `EnableBotAccountCreation` is false, 403 for callers that are bots or not admins.
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NewBot = decode_body(&body, "bot")?;
    let Caller::User {
        id: owner,
        admin,
        bot,
    } = caller
    else {
        return Err(AppError::permission());
    };
    let mut world = ctx.shared.world();
    if !world.cfg_bool("ServiceSettings.EnableBotAccountCreation") {
        return Err(AppError::forbidden(
            "api.bot.create_disabled",
            "Bot creation has been disabled.",
        ));
    }
    if bot || !admin {
        return Err(AppError::permission());
    }
    let username = req.username.to_lowercase();
    validate::username(&username)?;
    if world.users.iter().any(|u| u.username == username) {
        return Err(AppError::bad_request(
            "app.user.save.username_exists.app_error",
            "An account with that username already exists.",
        ));
    }
    let user_id = world.insert_user(
        &username,
        &format!("{username}@localhost"),
        "system_user",
        false,
    );
    let now = now_millis();
    if let Some(u) = world.users.iter_mut().find(|u| u.id == user_id) {
        u.is_bot = true;
        u.bot_description = req.description.clone();
        u.first_name = req.display_name.clone();
    }
    let bot = Bot {
        user_id,
        username,
        display_name: req.display_name,
        description: req.description,
        owner_id: owner,
        create_at: now,
        update_at: now,
        delete_at: 0,
    };
    world.bots.push(bot.clone());
    Ok(json_with(StatusCode::CREATED, &bot))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BotPatch {
    display_name: Option<String>,
    description: Option<String>,
}

/// `PUT /bots/{id}` → 200 Bot (registered on both listeners). The bot user's first name and bot
/// description follow, as `UpdateBot` does on the server.
pub async fn patch(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(user_id): axum::extract::Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    super::super::errors::require_id(&user_id, "bot_user_id")?;
    let req: BotPatch = decode_body(&body, "bot")?;
    if req
        .display_name
        .as_ref()
        .is_some_and(|d| d.chars().count() > 64)
    {
        return Err(AppError::bad_request(
            "model.bot.is_valid.display_name.app_error",
            "Invalid display name.",
        ));
    }
    if req
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 1024)
    {
        return Err(AppError::bad_request(
            "model.bot.is_valid.description.app_error",
            "Invalid description.",
        ));
    }
    let mut world = ctx.shared.world();
    let Some(bot) = world.bots.iter().find(|b| b.user_id == user_id).cloned() else {
        return Err(AppError::not_found(
            "store.sql_bot.get.missing.app_error",
            "Unable to find the existing bot.",
        ));
    };
    let owner = caller.user_id() == Some(bot.owner_id.as_str());
    if !caller.is_admin() && !owner {
        return Err(AppError::permission());
    }
    let now = now_millis();
    let bot = {
        let b = world
            .bots
            .iter_mut()
            .find(|b| b.user_id == user_id)
            .expect("found above");
        if let Some(v) = &req.display_name {
            b.display_name = v.clone();
        }
        if let Some(v) = &req.description {
            b.description = v.clone();
        }
        b.update_at = now;
        b.clone()
    };
    if let Some(u) = world.users.iter_mut().find(|u| u.id == user_id) {
        u.first_name = bot.display_name.clone();
        u.bot_description = bot.description.clone();
        u.update_at = now;
    }
    Ok(json_with(StatusCode::OK, &bot))
}
