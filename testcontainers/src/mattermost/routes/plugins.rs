//! Plugins: upload a bundle, list, enable, disable, statuses (statuses: TCP session only).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::super::bundle::{self, BundleError};
use super::super::config;
use super::super::errors::{ApiResult, AppError};
use super::super::model::{Plugin, PluginState};
use super::super::plugin_runtime;
use super::super::state::World;
use super::form::{media_type, multipart_parts};
use super::{Caller, Ctx, json_with};

fn plugins_on(world: &World) -> ApiResult<()> {
    if world.cfg_bool("PluginSettings.Enable") {
        Ok(())
    } else {
        Err(AppError::not_implemented(
            "app.plugin.disabled.app_error",
            "Plugins have been disabled.",
        ))
    }
}

/// `POST /plugins` (multipart: file part `plugin`, text part `force`) → **201 with the manifest**
/// (the spec says StatusOK). 501 unless `Enable && EnableUploads && !RequirePluginSignature`.
/// Installing a plugin that `PluginStates` already enables activates it.
pub async fn upload(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_admin()?;
    {
        let world = ctx.shared.world();
        let allowed = world.cfg_bool("PluginSettings.Enable")
            && world.cfg_bool("PluginSettings.EnableUploads")
            && !world.cfg_bool("PluginSettings.RequirePluginSignature");
        if !allowed {
            return Err(AppError::not_implemented(
                "app.plugin.upload_disabled.app_error",
                "Plugins and/or plugin uploads have been disabled.",
            ));
        }
    }
    if media_type(&headers) != "multipart/form-data" {
        return Err(AppError::bad_request(
            "api.plugin.upload.multipart_form.app_error",
            "Unable to parse multipart form.",
        ));
    }
    let parts = multipart_parts(&headers, body).await.ok_or_else(|| {
        AppError::bad_request(
            "api.plugin.upload.multipart_form.app_error",
            "Unable to parse multipart form.",
        )
    })?;
    let file = parts.iter().find(|p| p.name == "plugin").ok_or_else(|| {
        AppError::bad_request(
            "api.plugin.upload.no_file.app_error",
            "Missing file in multipart/form request.",
        )
    })?;
    let force = parts
        .iter()
        .any(|p| p.name == "force" && p.data.as_ref() == b"true");
    let manifest = bundle::read_manifest(&file.data).map_err(|e| match e {
        BundleError::NotATarGz => AppError::bad_request(
            "app.plugin.extract.app_error",
            "Encountered error extracting plugin.",
        ),
        BundleError::NoManifest => AppError::bad_request(
            "app.plugin.manifest.missing.app_error",
            "Unable to find manifest for extracted plugin.",
        ),
        BundleError::BadManifest => AppError::bad_request(
            "app.plugin.invalid_id.app_error",
            "Plugin Id is missing or invalid.",
        ),
    })?;
    let id = manifest["id"].as_str().unwrap_or_default().to_owned();
    let mut world = ctx.shared.world();
    let existing = world.plugins.iter().position(|p| p.id == id);
    if existing.is_some() && !force {
        return Err(AppError::bad_request(
            "app.plugin.install_id.app_error",
            "Unable to install plugin. A plugin with the same ID is already installed.",
        ));
    }
    let plugin = Plugin {
        id,
        manifest: manifest.clone(),
        state: PluginState::NotRunning,
        error: String::new(),
    };
    match existing {
        Some(i) => world.plugins[i] = plugin,
        None => world.plugins.push(plugin),
    }
    plugin_runtime::sync(&mut world);
    Ok(json_with(StatusCode::CREATED, &manifest))
}

/// `GET /plugins` → `{"active": [Manifest], "inactive": [Manifest]}`; a plugin that failed to
/// start is inactive.
pub async fn list(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let world = ctx.shared.world();
    plugins_on(&world)?;
    let (active, inactive): (Vec<&Plugin>, Vec<&Plugin>) = world
        .plugins
        .iter()
        .partition(|p| p.state == PluginState::Running);
    let manifests = |ps: Vec<&Plugin>| {
        ps.into_iter()
            .map(|p| p.manifest.clone())
            .collect::<Vec<Value>>()
    };
    Ok(json_with(
        StatusCode::OK,
        &json!({"active": manifests(active), "inactive": manifests(inactive)}),
    ))
}

async fn set_enabled(
    ctx: Ctx,
    caller: Caller,
    plugin_id: String,
    enable: bool,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut world = ctx.shared.world();
    plugins_on(&world)?;
    world.plugin(&plugin_id)?;
    config::set_plugin_enabled(&mut world.config, &plugin_id, enable);
    plugin_runtime::sync(&mut world);
    Ok(json_with(StatusCode::OK, &json!({"status": "OK"})))
}

/// `POST /plugins/{id}/enable` → 200 `{"status":"OK"}` **even when activation then fails**: only
/// `PluginStates[id]` is written; the outcome shows in `GET /plugins` / `/plugins/statuses`.
pub async fn enable(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(plugin_id): Path<String>,
) -> ApiResult<Response> {
    set_enabled(ctx, caller, plugin_id, true).await
}

pub async fn disable(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    Path(plugin_id): Path<String>,
) -> ApiResult<Response> {
    set_enabled(ctx, caller, plugin_id, false).await
}

/// `GET /plugins/statuses` → `[PluginStatus]` with numeric `state` (2 running, 3 failed to start).
pub async fn statuses(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let world = ctx.shared.world();
    plugins_on(&world)?;
    let list: Vec<Value> = world.plugins.iter().map(Plugin::status_json).collect();
    Ok(json_with(StatusCode::OK, &list))
}
