//! `POST /hooks/{id}`: delivering a message through an incoming webhook (mattermost.md §5).
//!
//! Body by media type: form-urlencoded → JSON in field `payload`; multipart → text fields;
//! anything else (including no Content-Type) → the raw body is JSON. A body that fails to parse is
//! retried once with raw control characters inside strings escaped (the server does this for a
//! handful of fields; the double for all). Failures answer the server's outer error
//! `web.incoming_webhook.general.app_error` with the inner status (400 unknown hook, 403 locked
//! channel, 501 disabled…); success is 200 `text/plain` `ok`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::errors::{ApiResult, AppError};
use super::super::model::Channel;
use super::super::state::World;
use super::Ctx;
use super::form::{media_type, multipart_parts};

/// `ServiceSettings.MaximumPayloadSizeBytes` default.
const MAX_PAYLOAD: usize = 300_000;
/// Posts longer than this many characters are split (`MaxPostSize`).
const MAX_POST_RUNES: usize = 16_383;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct HookRequest {
    text: Option<String>,
    channel: Option<String>,
    username: Option<String>,
    icon_url: Option<String>,
    icon_emoji: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    attachments: Option<Vec<Option<Map<String, Value>>>>,
    props: Option<Map<String, Value>>,
    priority: Option<Map<String, Value>>,
}

pub async fn deliver(
    State(ctx): State<Ctx>,
    Path(hook_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media = media_type(&headers);
    let general = |inner: AppError| {
        AppError::new(
            inner.status,
            "web.incoming_webhook.general.app_error",
            format!(
                "Failed to handle the payload of media type {media} for incoming webhook {hook_id}."
            ),
        )
    };
    let request = match decode(&media, &headers, body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let outcome = {
        let mut world = ctx.shared.world();
        handle(&mut world, &hook_id, request)
    };
    match outcome {
        Ok(()) => ([(header::CONTENT_TYPE, "text/plain")], "ok").into_response(),
        Err(inner) => general(inner).into_response(),
    }
}

fn decode_error() -> AppError {
    AppError::bad_request(
        "web.incoming_webhook.decode.app_error",
        "Unable to decode the payload of the incoming webhook.",
    )
}

async fn decode(media: &str, headers: &HeaderMap, body: Bytes) -> ApiResult<HookRequest> {
    match media {
        "application/x-www-form-urlencoded" => {
            if body.len() > MAX_PAYLOAD {
                return Err(AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "web.incoming_webhook.decode.app_error",
                    "The payload of the incoming webhook is too large.",
                ));
            }
            let fields: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|_| decode_error())?;
            let payload = fields
                .into_iter()
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v)
                .unwrap_or_default();
            parse_json(payload.as_bytes())
        }
        "multipart/form-data" => {
            let parts = multipart_parts(headers, body)
                .await
                .ok_or_else(decode_error)?;
            let field = |name: &str| {
                parts
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| String::from_utf8_lossy(&p.data).into_owned())
            };
            Ok(HookRequest {
                text: field("text"),
                channel: field("channel"),
                username: field("username"),
                icon_url: field("icon_url"),
                icon_emoji: field("icon_emoji"),
                kind: field("type"),
                ..HookRequest::default()
            })
        }
        _ => parse_json(&body[..body.len().min(MAX_PAYLOAD)]),
    }
}

fn parse_json(bytes: &[u8]) -> ApiResult<HookRequest> {
    serde_json::from_slice(bytes)
        .or_else(|_| serde_json::from_slice(&escape_controls_in_strings(bytes)))
        .map_err(|_| decode_error())
}

/// Escapes raw newlines, carriage returns and tabs that appear inside JSON string literals.
fn escape_controls_in_strings(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        if in_string {
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => out.push(b),
            }
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            out.push(b);
            if b == b'"' {
                in_string = true;
            }
        }
    }
    out
}

/// `App.HandleIncomingWebhook` + `CreateWebhookPost`, in the server's order of checks.
fn handle(world: &mut World, hook_id: &str, req: HookRequest) -> ApiResult<()> {
    if !world.cfg_bool("ServiceSettings.EnableIncomingWebhooks") {
        return Err(AppError::not_implemented(
            "web.incoming_webhook.disabled.app_error",
            "Incoming webhooks have been disabled by the system admin.",
        ));
    }
    let text = req.text.unwrap_or_default();
    if text.is_empty() && req.attachments.is_none() {
        return Err(AppError::bad_request(
            "web.incoming_webhook.text.app_error",
            "No text specified.",
        ));
    }
    let hook = world
        .hooks
        .iter()
        .find(|h| h.id == hook_id && h.delete_at == 0)
        .cloned()
        .ok_or_else(|| {
            AppError::bad_request("web.incoming_webhook.invalid.app_error", "Invalid webhook.")
        })?;

    let mut props = req.props.unwrap_or_default();
    props.insert("webhook_display_name".into(), json!(hook.display_name));
    let attachments: Vec<Value> = req
        .attachments
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .map(Value::Object)
        .collect();
    let mut kind = req.kind.unwrap_or_default();
    if !attachments.is_empty() {
        kind = "slack_attachment".into();
    }

    let channel = resolve_channel(
        world,
        &hook.team_id,
        &hook.channel_id,
        &hook.user_id,
        req.channel.as_deref(),
    )?;
    if hook.channel_locked && hook.channel_id != channel.id {
        return Err(AppError::forbidden(
            "web.incoming_webhook.channel_locked.app_error",
            "This webhook is not permitted to post to the requested channel.",
        ));
    }
    let owner = world
        .user(&hook.user_id)
        .map_err(|_| {
            AppError::forbidden(
                "web.incoming_webhook.user.app_error",
                "Couldn't find the user.",
            )
        })?
        .clone();
    if channel.kind != "O"
        && !owner.is_system_admin()
        && !world.is_channel_member(&channel.id, &owner.id)
    {
        return Err(AppError::forbidden(
            "web.incoming_webhook.permissions.app_error",
            "Inappropriate channel permissions.",
        ));
    }

    let priority = match req.priority {
        None => None,
        Some(p) if p.get("priority").is_none_or(Value::is_null) => {
            return Err(AppError::invalid_param("webhook.priority.priority"));
        }
        Some(p) => Some(Value::Object(p)),
    };
    if kind.starts_with("system_") {
        return Err(AppError::invalid_param("post.type"));
    }

    let mut post_props = Map::new();
    post_props.insert("from_webhook".into(), json!("true"));
    if world.cfg_bool("ServiceSettings.EnablePostUsernameOverride") {
        let name = [req.username.unwrap_or_default(), hook.username.clone()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "webhook".into());
        post_props.insert("override_username".into(), json!(name));
    }
    if world.cfg_bool("ServiceSettings.EnablePostIconOverride") {
        let icon = [
            req.icon_emoji.unwrap_or_default(),
            req.icon_url.unwrap_or_default(),
            hook.icon_url.clone(),
        ]
        .into_iter()
        .find(|s| !s.is_empty());
        if let Some(icon) = icon {
            post_props.insert("override_icon_url".into(), json!(icon));
        }
    }
    for (key, value) in props {
        if !matches!(
            key.as_str(),
            "from_webhook" | "override_username" | "override_icon_url" | "attachments"
        ) {
            post_props.insert(key, value);
        }
    }

    let message = slack_links_to_markdown(&expand_announcements(&text));
    let chunks = split_runes(&message, MAX_POST_RUNES);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.iter().enumerate() {
        let mut props = post_props.clone();
        if i == last && !attachments.is_empty() {
            props.insert("attachments".into(), Value::Array(attachments.clone()));
        }
        world.insert_post(
            &channel.id,
            &hook.user_id,
            chunk,
            &kind,
            props,
            priority.clone(),
        );
    }
    Ok(())
}

/// The `channel` override: a channel name in the hook's team (`#name` too) or `@username` for a
/// direct message with the hook's owner; no override means the hook's own channel.
fn resolve_channel(
    world: &mut World,
    team_id: &str,
    hook_channel: &str,
    owner: &str,
    requested: Option<&str>,
) -> ApiResult<Channel> {
    match requested.filter(|s| !s.is_empty()) {
        None => Ok(world.channel(hook_channel)?.clone()),
        Some(name) if name.starts_with('@') => {
            let user = world
                .user_by_username(&name[1..])
                .map_err(|_| {
                    AppError::bad_request(
                        "web.incoming_webhook.user.app_error",
                        "Couldn't find the user.",
                    )
                })?
                .id
                .clone();
            Ok(world.direct_channel(owner, &user))
        }
        Some(name) => {
            let name = name.strip_prefix('#').unwrap_or(name);
            world.channel_by_name(team_id, name).cloned().map_err(|_| {
                AppError::not_found(
                    "web.incoming_webhook.channel.app_error",
                    "Couldn't find the channel.",
                )
            })
        }
    }
}

/// `<!channel>`, `<!here>`, `<!all>` → `@channel`, `@here`, `@all` (`ProcessSlackText`).
fn expand_announcements(text: &str) -> String {
    text.replace("<!channel>", "@channel")
        .replace("<!here>", "@here")
        .replace("<!all>", "@all")
}

/// `<url|label>` → `[label](url)`, the server's `<([^\n<\|>]+)\|([^\n>]+)>` rewrite.
fn slack_links_to_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let url_end = after.find(['\n', '<', '|', '>']);
        let rewritten = url_end
            .filter(|&i| i > 0 && after[i..].starts_with('|'))
            .and_then(|i| {
                let label_part = &after[i + 1..];
                let label_end = label_part.find(['\n', '>'])?;
                (label_end > 0 && label_part[label_end..].starts_with('>')).then(|| {
                    (
                        format!("[{}]({})", &label_part[..label_end], &after[..i]),
                        i + 1 + label_end + 1,
                    )
                })
            });
        match rewritten {
            Some((md, consumed)) => {
                out.push_str(&md);
                rest = &after[consumed..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn split_runes(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= max {
        return vec![text.to_owned()];
    }
    chars.chunks(max).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_links_become_markdown() {
        assert_eq!(
            slack_links_to_markdown("see <https://x/1|build 1> now"),
            "see [build 1](https://x/1) now"
        );
        assert_eq!(slack_links_to_markdown("a < b and <c>"), "a < b and <c>");
        assert_eq!(slack_links_to_markdown("<|x>"), "<|x>");
    }

    #[test]
    fn raw_newlines_in_strings_are_escaped() {
        let raw = b"{\"text\": \"line1\nline2\"}\n";
        let fixed = escape_controls_in_strings(raw);
        let v: Value = serde_json::from_slice(&fixed).unwrap();
        assert_eq!(v["text"], json!("line1\nline2"));
    }

    proptest::proptest! {
        /// Delivery bodies are network input: the text rewrites and the JSON decoding never panic.
        #[test]
        fn payload_handling_never_panics(text in "\\PC*", bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = slack_links_to_markdown(&expand_announcements(&text));
            let _ = split_runes(&text, 3);
            let _ = parse_json(&bytes);
            let _ = parse_json(text.as_bytes());
        }

        #[test]
        fn links_with_plain_parts_always_convert(url in "[a-z:/.0-9]{1,20}", label in "[a-zA-Z0-9 #]{1,20}") {
            let out = slack_links_to_markdown(&format!("x <{url}|{label}> y"));
            proptest::prop_assert_eq!(out, format!("x [{label}]({url}) y"));
        }
    }

    #[test]
    fn long_text_is_split_by_characters() {
        let parts = split_runes(&"é".repeat(5), 2);
        assert_eq!(parts, vec!["éé", "éé", "é"]);
    }
}
