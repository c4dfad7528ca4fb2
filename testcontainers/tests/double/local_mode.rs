//! Local mode (unix socket): no auth, only the local routes, the bot recipe, hooks need `user_id`.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::common::{Fixture, seed};

#[tokio::test]
async fn ping_answers_ok_on_both_listeners_without_auth() {
    let f = Fixture::new().await;
    for client in [f.local(), f.tcp(None)] {
        let r = client.get("/api/v4/system/ping").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["status"], "OK");
    }
    let full = f
        .local()
        .get("/api/v4/system/ping?get_server_status=true")
        .await
        .json();
    assert_eq!(
        (
            full["database_status"].as_str(),
            full["filestore_status"].as_str()
        ),
        (Some("OK"), Some("OK"))
    );
}

#[tokio::test]
async fn socket_is_private_to_its_owner() {
    let f = Fixture::new().await;
    let mode = std::fs::metadata(f.double.socket_path().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn routes_the_local_server_does_not_register_answer_404() {
    let f = Fixture::new().await;
    let local = f.local();
    let r = local
        .post("/api/v4/bots", &json!({"username": "jenkins"}))
        .await;
    r.app_error(404, "api.context.404.app_error");
    local
        .get("/api/v4/plugins/statuses")
        .await
        .app_error(404, "api.context.404.app_error");
    local
        .post(
            "/api/v4/posts",
            &json!({"channel_id": "x", "message": "hi"}),
        )
        .await
        .app_error(404, "api.context.404.app_error");
    local
        .post_raw(
            "/hooks/abc",
            Some("application/json"),
            b"{\"text\":\"x\"}".to_vec(),
        )
        .await
        .app_error(404, "api.context.404.app_error");
    local
        .get("/api/v4/not/a/route")
        .await
        .app_error(404, "api.context.404.app_error");
    // GET /bots is a local route.
    assert_eq!(local.get("/api/v4/bots").await.status, 200);
}

#[tokio::test]
async fn bot_recipe_user_then_convert_then_token() {
    let f = Fixture::new().await;
    let local = f.local();
    let user = local
        .create("/api/v4/users", &json!({"username": "Jenkins", "email": "Jenkins@Localhost", "password": "long-enough-1"}), 201)
        .await;
    assert_eq!(user["username"], "jenkins", "usernames are lower-cased");
    assert_eq!(user["email"], "jenkins@localhost");
    assert!(user.get("password").is_none());
    assert!(
        user.get("is_bot").is_none(),
        "is_bot is omitted while false"
    );
    let id = user["id"].as_str().unwrap();

    let r = local
        .post(&format!("/api/v4/users/{id}/convert_to_bot"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "convert_to_bot answers 200 with the Bot");
    let bot = r.json();
    assert_eq!(
        (bot["user_id"].as_str(), bot["owner_id"].as_str()),
        (Some(id), Some(id)),
        "{bot}"
    );
    assert_eq!(bot["username"], "jenkins");
    assert_eq!(
        local.get("/api/v4/users/username/jenkins").await.json()["is_bot"],
        true
    );
    let again = local
        .post(&format!("/api/v4/users/{id}/convert_to_bot"), &json!({}))
        .await;
    again.app_error(500, "app.bot.createbot.internal_error");

    // Bot tokens work although EnableUserAccessTokens is false; the create answer is 200, not 201.
    let r = local
        .post(
            &format!("/api/v4/users/{id}/tokens"),
            &json!({"description": "cityd"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let token = r.json();
    let secret = token["token"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 26);
    assert_eq!(token["is_active"], true);
    let listed = local
        .get(&format!("/api/v4/users/{id}/tokens"))
        .await
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("token").is_none(),
        "the secret is only shown at creation: {listed}"
    );
    assert_eq!(listed[0]["description"], "cityd");

    let as_bot = f.tcp(Some(secret));
    assert_eq!(
        as_bot.get("/api/v4/users/username/admin").await.status,
        200,
        "the token authenticates on TCP"
    );

    local
        .post(&format!("/api/v4/users/{id}/tokens"), &json!({}))
        .await
        .app_error(400, "api.context.invalid_param.app_error");
    let bots = local.get("/api/v4/bots").await.json();
    assert_eq!(bots.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn non_bot_tokens_need_user_access_tokens_enabled() {
    let f = Fixture::new().await;
    let local = f.local();
    let user = local
        .create(
            "/api/v4/users",
            &json!({"username": "human", "email": "h@x", "password": "long-enough-1"}),
            201,
        )
        .await;
    let r = local
        .post(
            &format!("/api/v4/users/{}/tokens", user["id"].as_str().unwrap()),
            &json!({"description": "d"}),
        )
        .await;
    r.app_error(501, "app.user_access_token.disabled");
}

#[tokio::test]
async fn hook_creation_in_local_mode_requires_user_id() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let r = local
        .post(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": w.channel_id}),
        )
        .await;
    let body = r.app_error(400, "api.context.invalid_param.app_error");
    assert_eq!(body["message"], "Invalid user_id parameter.");

    let hook = local
        .create(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": w.channel_id, "user_id": w.bot_id, "display_name": "Jenkins", "channel_locked": false}),
            201,
        )
        .await;
    assert_eq!(
        hook["channel_locked"], false,
        "local mode keeps the requested lock"
    );
    assert_eq!(hook["user_id"], w.bot_id.as_str());
    assert_eq!(hook["team_id"], w.team_id.as_str());
    let missing_user = local
        .post(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": w.channel_id, "user_id": "a".repeat(26)}),
        )
        .await;
    missing_user.app_error(404, "app.user.missing_account.const");
    let missing_channel = local
        .post(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": "b".repeat(26), "user_id": w.bot_id}),
        )
        .await;
    missing_channel.app_error(404, "app.channel.get.existing.app_error");
}

#[tokio::test]
async fn local_team_and_channel_creation_adds_no_members() {
    let f = Fixture::new().await;
    let local = f.local();
    let team = local
        .create(
            "/api/v4/teams",
            &json!({"name": "city", "display_name": "City", "type": "O"}),
            201,
        )
        .await;
    let tid = team["id"].as_str().unwrap();
    let channel = local
        .create(
            "/api/v4/channels",
            &json!({"team_id": tid, "name": "alerts", "display_name": "Alerts", "type": "O"}),
            201,
        )
        .await;
    assert_eq!(channel["creator_id"], "");
    let snap = f.double.snapshot();
    assert!(snap.team("city").unwrap().members.is_empty());
    assert!(snap.channel("city", "alerts").unwrap().members.is_empty());
    assert!(
        snap.channel("city", "town-square").is_some(),
        "teams come with town-square"
    );
    assert!(snap.channel("city", "off-topic").is_some(), "and off-topic");
}
