//! Users: create, list (with team/channel filters), look up by username, convert to bot, personal access tokens (create, list, revoke).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::super::config;
use super::super::errors::{ApiResult, AppError, decode_body, require_id};
use super::super::ids::{new_id, now_millis};
use super::super::model::{AccessToken, Bot};
use super::super::validate;
use super::{Caller, Ctx, Paging, json_with, query};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewUser {
    username: String,
    email: String,
    password: String,
    first_name: String,
    last_name: String,
    nickname: String,
    position: String,
    locale: String,
    auth_service: String,
}

/// `POST /users` → 201 User. Username and email are lower-cased first (`PreSave`), then validated
/// and checked for uniqueness. Over a session only admins may create users (no open server).
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: NewUser = decode_body(&body, "user")?;
    caller.require_admin()?;
    let username = req.username.to_lowercase();
    let email = req.email.to_lowercase();
    validate::username(&username)?;
    validate::email(&email)?;
    let mut world = ctx.shared.world();
    if req.auth_service.is_empty() {
        let minimum =
            config::get_i64(&world.config, "PasswordSettings.MinimumLength").max(0) as usize;
        validate::password(&req.password, minimum)?;
    }
    if world.users.iter().any(|u| u.username == username) {
        return Err(AppError::bad_request(
            "app.user.save.username_exists.app_error",
            "An account with that username already exists.",
        ));
    }
    if world.users.iter().any(|u| u.email == email) {
        return Err(AppError::bad_request(
            "app.user.save.email_exists.app_error",
            "An account with that email already exists.",
        ));
    }
    let id = world.insert_user(&username, &email, "system_user", !req.password.is_empty());
    let user = world
        .users
        .iter_mut()
        .find(|u| u.id == id)
        .expect("just inserted");
    user.first_name = req.first_name;
    user.last_name = req.last_name;
    user.nickname = req.nickname;
    user.position = req.position;
    user.auth_service = req.auth_service;
    if !req.locale.is_empty() {
        user.locale = req.locale;
    }
    Ok(json_with(StatusCode::CREATED, &user.clone()))
}

pub async fn get_by_username(
    State(ctx): State<Ctx>,
    Path(username): Path<String>,
) -> ApiResult<Response> {
    let world = ctx.shared.world();
    Ok(json_with(
        StatusCode::OK,
        world.user_by_username(&username)?,
    ))
}

/// `POST /users/{id}/convert_to_bot` → **200 with the Bot JSON** (the spec says StatusOK). The bot
/// is owned by the user itself (`model.BotFromUser`); converting a bot again fails on the Bots
/// table's key → 500, as on the server.
pub async fn convert_to_bot(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
) -> ApiResult<Response> {
    require_id(&user_id, "user_id")?;
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    let user = world.user(&user_id)?.clone();
    if world.bots.iter().any(|b| b.user_id == user_id) {
        return Err(AppError::internal(
            "app.bot.createbot.internal_error",
            "We couldn't save the bot.",
        ));
    }
    let now = now_millis();
    let bot = Bot {
        user_id: user.id.clone(),
        username: user.username.clone(),
        display_name: user.username.clone(),
        description: String::new(),
        owner_id: user.id.clone(),
        create_at: now,
        update_at: now,
        delete_at: 0,
    };
    world.bots.push(bot.clone());
    if let Some(u) = world.users.iter_mut().find(|u| u.id == user_id) {
        u.is_bot = true;
        u.update_at = now;
    }
    Ok(json_with(StatusCode::OK, &bot))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct NewToken {
    description: String,
}

/// `POST /users/{id}/tokens` → **200** (the spec says 201) with the token, the only time it is
/// shown. Tokens of non-bot users need `EnableUserAccessTokens` (501 otherwise); bot tokens don't.
pub async fn create_token(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    require_id(&user_id, "user_id")?;
    let req: NewToken = decode_body(&body, "user_access_token")?;
    if req.description.is_empty() {
        return Err(AppError::invalid_param("description"));
    }
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    let user = world.user(&user_id)?.clone();
    if !user.is_bot && !world.cfg_bool("ServiceSettings.EnableUserAccessTokens") {
        return Err(AppError::not_implemented(
            "app.user_access_token.disabled",
            "User access tokens are disabled on this server. Please contact your system administrator for details.",
        ));
    }
    let token = AccessToken {
        id: new_id(),
        token: new_id(),
        user_id: user_id.clone(),
        description: req.description,
        is_active: true,
    };
    world.sessions.insert(token.token.clone(), user_id);
    world.tokens.push(token.clone());
    Ok(json_with(StatusCode::OK, &token))
}

/// `GET /users/{id}/tokens` → 200 `[UserAccessTokenSanitized]` (no `token` field).
pub async fn list_tokens(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    require_id(&user_id, "user_id")?;
    let paging: Paging = query(raw.as_deref(), "page")?;
    caller.require_admin()?;
    let world = ctx.shared.world();
    world.user(&user_id)?;
    let tokens = paging.apply(
        world
            .tokens
            .iter()
            .filter(|t| t.user_id == user_id)
            .map(AccessToken::sanitized),
    );
    Ok(json_with(StatusCode::OK, &tokens))
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct UsersQuery {
    page: usize,
    per_page: usize,
    in_team: String,
    in_channel: String,
}

impl Default for UsersQuery {
    fn default() -> Self {
        UsersQuery {
            page: 0,
            per_page: 60,
            in_team: String::new(),
            in_channel: String::new(),
        }
    }
}

/// `GET /users` → 200 `[User]`, paged, optionally filtered by `in_team` (active team members) and
/// `in_channel`. Local mode has no `GET /teams/{id}/members`; this is how membership is read there.
pub async fn list(State(ctx): State<Ctx>, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q: UsersQuery = query(raw.as_deref(), "page")?;
    let world = ctx.shared.world();
    let users: Vec<_> = world
        .users
        .iter()
        .filter(|u| {
            q.in_team.is_empty()
                || world
                    .team_members
                    .iter()
                    .any(|m| m.team_id == q.in_team && m.user_id == u.id && m.delete_at == 0)
        })
        .filter(|u| q.in_channel.is_empty() || world.is_channel_member(&q.in_channel, &u.id))
        .cloned()
        .collect();
    let page = Paging {
        page: q.page,
        per_page: q.per_page,
    }
    .apply(users);
    Ok(json_with(StatusCode::OK, &page))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RevokeToken {
    token_id: String,
}

/// `POST /users/tokens/revoke` → 200 `{"status":"OK"}`; the token and its session are deleted.
pub async fn revoke_token(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: RevokeToken = decode_body(&body, "token_id")?;
    require_id(&req.token_id, "token_id")?;
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    let Some(token) = world.tokens.iter().find(|t| t.id == req.token_id).cloned() else {
        return Err(AppError::not_found(
            "app.user_access_token.get_by_token.app_error",
            "Unable to get the user access token.",
        ));
    };
    world.tokens.retain(|t| t.id != token.id);
    world.sessions.remove(&token.token);
    Ok(json_with(
        StatusCode::OK,
        &serde_json::json!({"status": "OK"}),
    ))
}
