//! Incoming webhooks: management endpoints and deliveries (`POST /hooks/{id}`, mattermost.md §5).

use serde_json::{Value, json};

use crate::common::{Fixture, hook, multipart, seed};

fn last_post(f: &Fixture, channel: &str) -> Value {
    let snap = f.double.snapshot();
    let post = snap
        .posts_in("city", channel)
        .last()
        .cloned()
        .cloned()
        .expect("a post");
    serde_json::to_value(post).unwrap()
}

#[tokio::test]
async fn json_delivery_posts_as_the_hook_owner() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let id = hook(&local, &w, true).await;
    let payload = json!({"text": "Build <https://ci/1|#1> failed <!channel>", "username": "ignored",
        "attachments": [{"fallback": "f", "color": "danger", "fields": [{"title": "Branch", "value": "main", "short": true}]}],
        "props": {"card": "x", "from_webhook": "false"}});
    let r = f
        .tcp(None)
        .post_raw(
            &format!("/hooks/{id}"),
            Some("application/json"),
            payload.to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        (r.status, r.content_type.as_str(), r.text().as_str()),
        (200, "text/plain", "ok")
    );
    let post = last_post(&f, "builds");
    assert_eq!(post["user"], "jenkins");
    assert_eq!(post["message"], "Build [#1](https://ci/1) failed @channel");
    assert_eq!(post["type"], "slack_attachment");
    assert_eq!(
        post["props"]["from_webhook"], "true",
        "reserved props cannot be overridden"
    );
    assert_eq!(post["props"]["card"], "x");
    assert_eq!(post["props"]["webhook_display_name"], "Jenkins");
    assert_eq!(post["props"]["attachments"][0]["color"], "danger");
    assert!(
        post["props"].get("override_username").is_none(),
        "username override is off by default"
    );
    assert_eq!(f.double.webhook_deliveries(), 1);
}

#[tokio::test]
async fn form_multipart_and_untyped_bodies_are_understood() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let id = hook(&local, &w, true).await;
    let path = format!("/hooks/{id}");
    let client = f.tcp(None);
    let form = format!("payload={}", "%7B%22text%22%3A%22from+form%22%7D");
    assert_eq!(
        client
            .post_raw(
                &path,
                Some("application/x-www-form-urlencoded"),
                form.into_bytes()
            )
            .await
            .status,
        200
    );
    assert_eq!(last_post(&f, "builds")["message"], "from form");
    assert_eq!(
        client
            .post_raw(&path, None, b"{\"text\":\"no content type\"}".to_vec())
            .await
            .status,
        200
    );
    assert_eq!(last_post(&f, "builds")["message"], "no content type");
    let (ct, body) = multipart(&[("text", None, b"from multipart")]);
    assert_eq!(client.post_raw(&path, Some(&ct), body).await.status, 200);
    assert_eq!(last_post(&f, "builds")["message"], "from multipart");
    // A raw newline inside a string is escaped and parsed on the second try.
    assert_eq!(
        client
            .post_raw(
                &path,
                Some("application/json"),
                b"{\"text\":\"two\nlines\"}".to_vec()
            )
            .await
            .status,
        200
    );
    assert_eq!(last_post(&f, "builds")["message"], "two\nlines");
    client
        .post_raw(&path, Some("application/json"), b"{\"text\": 5}".to_vec())
        .await
        .app_error(400, "web.incoming_webhook.decode.app_error");
}

#[tokio::test]
async fn delivery_errors_follow_the_server() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let locked = hook(&local, &w, true).await;
    let unlocked = hook(&local, &w, false).await;
    let other = local
        .create(
            "/api/v4/channels",
            &json!({"team_id": w.team_id, "name": "alerts", "display_name": "Alerts", "type": "O"}),
            201,
        )
        .await;
    let client = f.tcp(None);
    let send = |id: String, body: Value| {
        let client = client.clone();
        async move {
            client
                .post_raw(
                    &format!("/hooks/{id}"),
                    Some("application/json"),
                    body.to_string().into_bytes(),
                )
                .await
        }
    };
    let before = f.double.snapshot().posts.len();

    let unknown = send("f".repeat(26), json!({"text": "x"})).await;
    let body = unknown.app_error(400, "web.incoming_webhook.general.app_error");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{body}"
    );
    send(locked.clone(), json!({"text": "x", "channel": "alerts"}))
        .await
        .app_error(403, "web.incoming_webhook.general.app_error");
    send(locked.clone(), json!({}))
        .await
        .app_error(400, "web.incoming_webhook.general.app_error");
    send(locked.clone(), json!({"text": "x", "channel": "nope"}))
        .await
        .app_error(404, "web.incoming_webhook.general.app_error");
    send(
        locked.clone(),
        json!({"text": "x", "priority": {"requested_ack": true}}),
    )
    .await
    .app_error(400, "web.incoming_webhook.general.app_error");
    send(
        locked.clone(),
        json!({"text": "x", "type": "system_generic"}),
    )
    .await
    .app_error(400, "web.incoming_webhook.general.app_error");
    assert_eq!(
        f.double.snapshot().posts.len(),
        before,
        "failed deliveries post nothing"
    );

    // Naming the hook's own channel is fine even when locked; an unlocked hook may go elsewhere.
    assert_eq!(
        send(locked.clone(), json!({"text": "own", "channel": "#builds"}))
            .await
            .status,
        200
    );
    assert_eq!(
        send(unlocked, json!({"text": "moved", "channel": "alerts"}))
            .await
            .status,
        200
    );
    assert_eq!(last_post(&f, "alerts")["message"], "moved");
    assert_eq!(other["name"], "alerts");
    // Attachments alone are enough; priority lands in metadata.
    assert_eq!(
        send(
            locked.clone(),
            json!({"attachments": [{"text": "only"}], "priority": {"priority": "urgent"}})
        )
        .await
        .status,
        200
    );
    let posts = f
        .local()
        .get(&format!("/api/v4/channels/{}/posts", w.channel_id))
        .await
        .json();
    let newest = &posts["posts"][posts["order"][0].as_str().unwrap()];
    assert_eq!(newest["metadata"]["priority"]["priority"], "urgent");
    assert_eq!(newest["message"], "");
}

#[tokio::test]
async fn disabled_incoming_webhooks_answer_501_everywhere() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let id = hook(&local, &w, true).await;
    local
        .put(
            "/api/v4/config/patch",
            &json!({"ServiceSettings": {"EnableIncomingWebhooks": false}}),
        )
        .await;
    local
        .post(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": w.channel_id, "user_id": w.bot_id}),
        )
        .await
        .app_error(501, "api.incoming_webhook.disabled.app_error");
    local
        .get("/api/v4/hooks/incoming")
        .await
        .app_error(501, "api.incoming_webhook.disabled.app_error");
    f.tcp(None)
        .post_raw(
            &format!("/hooks/{id}"),
            Some("application/json"),
            b"{\"text\":\"x\"}".to_vec(),
        )
        .await
        .app_error(501, "web.incoming_webhook.general.app_error");
}

#[tokio::test]
async fn overrides_apply_only_when_enabled() {
    let f = Fixture::with_config(json!({"ServiceSettings": {"EnablePostUsernameOverride": true, "EnablePostIconOverride": true}})).await;
    let local = f.local();
    let w = seed(&local).await;
    let created = local
        .create(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": w.channel_id, "user_id": w.bot_id, "username": "ci", "icon_url": "https://x/i.png"}),
            201,
        )
        .await;
    assert_eq!(
        (created["username"].as_str(), created["icon_url"].as_str()),
        (Some("ci"), Some("https://x/i.png"))
    );
    let id = created["id"].as_str().unwrap();
    f.tcp(None)
        .post_raw(&format!("/hooks/{id}"), None, b"{\"text\":\"x\"}".to_vec())
        .await;
    let post = last_post(&f, "builds");
    assert_eq!(
        (
            post["props"]["override_username"].as_str(),
            post["props"]["override_icon_url"].as_str()
        ),
        (Some("ci"), Some("https://x/i.png"))
    );
    // With overrides off (the default) the same fields are blanked at creation.
    let plain = Fixture::new().await;
    let pw = seed(&plain.local()).await;
    let blank = plain
        .local()
        .create(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": pw.channel_id, "user_id": pw.bot_id, "username": "ci"}),
            201,
        )
        .await;
    assert_eq!(blank["username"], "");
}

#[tokio::test]
async fn hooks_are_listed_fetched_and_updated() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let a = hook(&local, &w, true).await;
    let _b = hook(&local, &w, true).await;
    let listed = local
        .get(&format!("/api/v4/hooks/incoming?team_id={}", w.team_id))
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let none = local
        .get(&format!(
            "/api/v4/hooks/incoming?team_id={}",
            "g".repeat(26)
        ))
        .await
        .json();
    assert_eq!(none, json!([]));
    let paged = local
        .get("/api/v4/hooks/incoming?page=1&per_page=1&include_total_count=true")
        .await
        .json();
    assert_eq!(paged["total_count"], 2);
    assert_eq!(paged["incoming_webhooks"].as_array().unwrap().len(), 1);
    let fetched = local
        .get(&format!("/api/v4/hooks/incoming/{a}"))
        .await
        .json();
    assert_eq!(fetched["display_name"], "Jenkins");
    local
        .get(&format!("/api/v4/hooks/incoming/{}", "h".repeat(26)))
        .await
        .app_error(404, "app.webhooks.get_incoming.app_error");

    let mut update = fetched.clone();
    update["display_name"] = json!("Jenkins CI");
    update["description"] = json!("builds");
    let updated = local
        .put(&format!("/api/v4/hooks/incoming/{a}"), &update)
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());
    let updated = updated.json();
    assert_eq!(
        (
            updated["display_name"].as_str(),
            updated["create_at"].clone()
        ),
        (Some("Jenkins CI"), fetched["create_at"].clone())
    );
    assert_eq!(updated["user_id"], w.bot_id.as_str());
    update["id"] = json!("i".repeat(26));
    local
        .put(&format!("/api/v4/hooks/incoming/{a}"), &update)
        .await
        .app_error(400, "api.context.invalid_param.app_error");
}
