//! Configuration: get (local: raw; session: secrets masked), patch (merge rules in
//! `mattermost::config`), reload.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::super::config as cfg;
use super::super::errors::{ApiResult, AppError, decode_body};
use super::super::plugin_runtime;
use super::super::state::World;
use super::{Caller, Ctx, json_with};

fn view(world: &World, caller: &Caller) -> Value {
    if caller.is_local() {
        world.config.clone()
    } else {
        cfg::sanitized(&world.config, &world.plugin_secret_settings())
    }
}

pub async fn get_config(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let world = ctx.shared.world();
    Ok(json_with(StatusCode::OK, &view(&world, &caller)))
}

/// `PUT /config/patch` → 200 with the new config. Over a session: 403 when the patch changes
/// `PluginSettings.EnableUploads`, 400 when it clears a set `SiteURL`, masked secrets sent back
/// unchanged keep their value. Local mode has none of these restrictions.
pub async fn patch(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut patch: Value = decode_body(&body, "config")?;
    if !patch.is_object() {
        return Err(AppError::invalid_body_param("config"));
    }
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    if !caller.is_local() {
        let current_uploads = world.cfg_bool("PluginSettings.EnableUploads");
        if let Some(wanted) =
            cfg::get(&patch, "PluginSettings.EnableUploads").and_then(Value::as_bool)
            && wanted != current_uploads
        {
            return Err(AppError::forbidden(
                "api.config.update_config.not_allowed_security.app_error",
                "Changing PluginSettings.EnableUploads is not allowed for security reasons.",
            ));
        }
        let site_url_set = !cfg::get_str(&world.config, "ServiceSettings.SiteURL").is_empty();
        if site_url_set
            && cfg::get(&patch, "ServiceSettings.SiteURL").and_then(Value::as_str) == Some("")
        {
            return Err(AppError::bad_request(
                "api.config.update_config.clear_siteurl.app_error",
                "Site URL cannot be cleared.",
            ));
        }
        cfg::desanitize(&mut patch, &world.config, &world.plugin_secret_settings());
    }
    let merged = cfg::merge(&world.config, &patch);
    cfg::validate(&merged)?;
    world.config = merged;
    plugin_runtime::sync(&mut world);
    Ok(json_with(StatusCode::OK, &view(&world, &caller)))
}

/// `POST /config/reload` → 200 StatusOK. The double has no config file, so this only re-runs
/// plugin activation, as a reload's config-change listeners would.
pub async fn reload(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    plugin_runtime::sync(&mut world);
    Ok(json_with(StatusCode::OK, &json!({"status": "OK"})))
}
