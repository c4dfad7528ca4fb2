//! TCP with session auth: tokens, bots, permissions, config restrictions, posts.

use serde_json::json;

use crate::common::{Fixture, seed};

#[tokio::test]
async fn non_public_routes_need_a_valid_token() {
    let f = Fixture::new().await;
    f.tcp(None)
        .get("/api/v4/teams/name/city")
        .await
        .app_error(401, "api.context.session_expired.app_error");
    f.tcp(Some("nope".into()))
        .get("/api/v4/teams/name/city")
        .await
        .app_error(401, "api.context.session_expired.app_error");
    let ping = f.tcp(Some("nope".into())).get("/api/v4/system/ping").await;
    assert_eq!(
        (ping.status, ping.json()["status"].clone()),
        (200, json!("OK")),
        "unknown tokens are ignored on public routes"
    );
    f.admin()
        .get("/api/v4/teams/name/city")
        .await
        .app_error(404, "app.team.get_by_name.missing.app_error");
}

#[tokio::test]
async fn bot_creation_is_forbidden_while_disabled() {
    let f = Fixture::new().await;
    let r = f
        .admin()
        .post("/api/v4/bots", &json!({"username": "gitlab"}))
        .await;
    r.app_error(403, "api.bot.create_disabled");
    assert!(
        f.double.snapshot().user("gitlab").is_none(),
        "nothing was created"
    );
}

#[tokio::test]
async fn bot_creation_over_a_session_when_enabled() {
    let f =
        Fixture::with_config(json!({"ServiceSettings": {"EnableBotAccountCreation": true}})).await;
    let admin = f.admin();
    let bot = admin
        .create(
            "/api/v4/bots",
            &json!({"username": "gitlab", "display_name": "GitLab"}),
            201,
        )
        .await;
    let owner = admin.get("/api/v4/users/username/admin").await.json();
    assert_eq!(bot["owner_id"], owner["id"]);
    assert_eq!(bot["display_name"], "GitLab");
    let user = admin.get("/api/v4/users/username/gitlab").await.json();
    assert_eq!(
        (user["is_bot"].as_bool(), user["email"].as_str()),
        (Some(true), Some("gitlab@localhost"))
    );
    admin
        .post("/api/v4/bots", &json!({"username": "gitlab"}))
        .await
        .app_error(400, "app.user.save.username_exists.app_error");
    admin
        .post("/api/v4/bots", &json!({"username": "all"}))
        .await
        .app_error(400, "model.user.is_valid.username.app_error");

    // A bot cannot create bots.
    let token = admin
        .create(
            &format!("/api/v4/users/{}/tokens", bot["user_id"].as_str().unwrap()),
            &json!({"description": "t"}),
            200,
        )
        .await;
    let as_bot = f.tcp(Some(token["token"].as_str().unwrap().into()));
    as_bot
        .post("/api/v4/bots", &json!({"username": "sonar"}))
        .await
        .app_error(403, "api.context.permissions.app_error");
    let listed = admin.get("/api/v4/bots").await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn session_created_team_and_channel_get_their_creator_as_member() {
    let f = Fixture::new().await;
    let admin = f.admin();
    let team = admin
        .create(
            "/api/v4/teams",
            &json!({"name": "city", "display_name": "City", "type": "I"}),
            201,
        )
        .await;
    let tid = team["id"].as_str().unwrap();
    admin
        .create(
            "/api/v4/channels",
            &json!({"team_id": tid, "name": "ops", "display_name": "Ops", "type": "P"}),
            201,
        )
        .await;
    let snap = f.double.snapshot();
    assert_eq!(snap.team("city").unwrap().members, vec!["admin"]);
    assert_eq!(snap.channel("city", "ops").unwrap().members, vec!["admin"]);
    assert_eq!(
        snap.channel("city", "town-square").unwrap().members,
        vec!["admin"],
        "joining a team joins its default channels"
    );
    assert_eq!(
        admin.get(&format!("/api/v4/teams/{tid}")).await.json()["type"],
        "I"
    );
}

/// A team admin (not a system admin) may create hooks, but without the channel-lock bypass the
/// hook is forced to `channel_locked=true`.
#[tokio::test]
async fn team_admin_hooks_are_forced_locked() {
    let f =
        Fixture::with_config(json!({"ServiceSettings": {"EnableUserAccessTokens": true}})).await;
    let local = f.local();
    let user = local
        .create(
            "/api/v4/users",
            &json!({"username": "lead", "email": "lead@x", "password": "long-enough-1"}),
            201,
        )
        .await;
    let uid = user["id"].as_str().unwrap();
    let token = local
        .create(
            &format!("/api/v4/users/{uid}/tokens"),
            &json!({"description": "t"}),
            200,
        )
        .await;
    let lead = f.tcp(Some(token["token"].as_str().unwrap().into()));
    let team = lead
        .create(
            "/api/v4/teams",
            &json!({"name": "squad", "display_name": "Squad", "type": "O"}),
            201,
        )
        .await;
    let channel = lead
        .create(
            "/api/v4/channels",
            &json!({"team_id": team["id"], "name": "builds", "display_name": "Builds", "type": "O"}),
            201,
        )
        .await;
    let hook = lead
        .create(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": channel["id"], "channel_locked": false}),
            201,
        )
        .await;
    assert_eq!(hook["channel_locked"], true);
    assert_eq!(hook["user_id"], uid);
    // System admins keep what they ask for.
    let admin_hook = f
        .admin()
        .create(
            "/api/v4/hooks/incoming",
            &json!({"channel_id": channel["id"], "channel_locked": false}),
            201,
        )
        .await;
    assert_eq!(admin_hook["channel_locked"], false);
    // Plain users may not read the config.
    lead.get("/api/v4/config")
        .await
        .app_error(403, "api.context.permissions.app_error");
}

#[tokio::test]
async fn session_config_is_masked_and_cannot_toggle_uploads() {
    let f = Fixture::new().await;
    let admin = f.admin();
    let local = f.local();
    let raw = local.get("/api/v4/config").await.json();
    let masked = admin.get("/api/v4/config").await.json();
    assert!(
        raw["SqlSettings"]["DataSource"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    assert_eq!(
        masked["SqlSettings"]["DataSource"],
        "********************************"
    );

    let r = admin
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"EnableUploads": true}}),
        )
        .await;
    r.app_error(
        403,
        "api.config.update_config.not_allowed_security.app_error",
    );
    // Sending the current value is fine, and a masked secret sent back keeps the real one.
    let r = admin
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"EnableUploads": false}, "SqlSettings": {"DataSource": "********************************"},
                    "ServiceSettings": {"SiteURL": "https://chat.city.test"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["ServiceSettings"]["SiteURL"],
        "https://chat.city.test"
    );
    let after = local.get("/api/v4/config").await.json();
    assert_eq!(
        after["SqlSettings"]["DataSource"],
        raw["SqlSettings"]["DataSource"]
    );
    admin
        .put(
            "/api/v4/config/patch",
            &json!({"ServiceSettings": {"SiteURL": ""}}),
        )
        .await
        .app_error(400, "api.config.update_config.clear_siteurl.app_error");
    admin
        .put(
            "/api/v4/config/patch",
            &json!({"ServiceSettings": {"SiteURL": "chat.city.test"}}),
        )
        .await
        .app_error(400, "model.config.is_valid.site_url.app_error");

    // Local mode may change EnableUploads.
    let r = local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"EnableUploads": true}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["PluginSettings"]["EnableUploads"], true);
    assert_eq!(
        local.post("/api/v4/config/reload", &json!({})).await.json(),
        json!({"status": "OK"})
    );
    admin
        .put("/api/v4/config/patch", &json!([1]))
        .await
        .app_error(400, "api.context.invalid_body_param.app_error");
}

#[tokio::test]
async fn posts_over_a_session_land_in_the_channel() {
    let f = Fixture::new().await;
    let w = seed(&f.local()).await;
    let admin = f.admin();
    let post = admin
        .create(
            "/api/v4/posts",
            &json!({"channel_id": w.channel_id, "message": "deploy done", "props": {"k": "v"}}),
            201,
        )
        .await;
    assert_eq!(
        (post["message"].as_str(), post["user_id"].as_str()),
        (Some("deploy done"), Some(w.admin_id.as_str()))
    );
    let fetched = f
        .local()
        .get(&format!("/api/v4/posts/{}", post["id"].as_str().unwrap()))
        .await
        .json();
    assert_eq!(fetched["props"]["k"], "v");
    f.local()
        .get(&format!("/api/v4/posts/{}", "c".repeat(26)))
        .await
        .app_error(404, "app.post.get.app_error");
    admin
        .post(
            "/api/v4/posts",
            &json!({"channel_id": w.channel_id, "message": "x", "type": "system_join_channel"}),
        )
        .await
        .app_error(400, "api.context.invalid_param.app_error");
}
