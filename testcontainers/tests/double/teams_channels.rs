//! Teams, channels, users: name rules, uniqueness errors, lookups, memberships, post lists.

use serde_json::json;

use crate::common::{Fixture, seed};

#[tokio::test]
async fn names_are_unique_with_the_servers_error_ids() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    local
        .post(
            "/api/v4/teams",
            &json!({"name": "city", "display_name": "Again", "type": "O"}),
        )
        .await
        .app_error(400, "app.team.save.existing.app_error");
    local
        .post(
            "/api/v4/channels",
            &json!({"team_id": w.team_id, "name": "builds", "display_name": "B", "type": "O"}),
        )
        .await
        .app_error(400, "store.sql_channel.save_channel.exists.app_error");
    local
        .post(
            "/api/v4/users",
            &json!({"username": "JENKINS", "email": "other@x", "password": "long-enough-1"}),
        )
        .await
        .app_error(400, "app.user.save.username_exists.app_error");
    local
        .post("/api/v4/users", &json!({"username": "other", "email": "JENKINS@localhost", "password": "long-enough-1"}))
        .await
        .app_error(400, "app.user.save.email_exists.app_error");
    // The same channel name in another team is fine.
    let other = local
        .create(
            "/api/v4/teams",
            &json!({"name": "town", "display_name": "Town", "type": "O"}),
            201,
        )
        .await;
    local
        .create(
            "/api/v4/channels",
            &json!({"team_id": other["id"], "name": "builds", "display_name": "B", "type": "O"}),
            201,
        )
        .await;
    let snap = f.double.snapshot();
    assert_eq!(snap.teams.iter().filter(|t| t.name == "city").count(), 1);
    assert_eq!(
        snap.channels.iter().filter(|c| c.name == "builds").count(),
        2
    );
}

#[tokio::test]
async fn invalid_names_and_types_are_refused() {
    let f = Fixture::new().await;
    let local = f.local();
    let bad_team = |name: &str| json!({"name": name, "display_name": "X", "type": "O"});
    local
        .post("/api/v4/teams", &bad_team("City"))
        .await
        .app_error(400, "model.team.is_valid.characters.app_error");
    local
        .post("/api/v4/teams", &bad_team("x"))
        .await
        .app_error(400, "model.team.is_valid.characters.app_error");
    local
        .post("/api/v4/teams", &bad_team("admins"))
        .await
        .app_error(400, "model.team.is_valid.reserved.app_error");
    local
        .post(
            "/api/v4/teams",
            &json!({"name": "ok", "display_name": "X", "type": "Z"}),
        )
        .await
        .app_error(400, "model.team.is_valid.type.app_error");
    local
        .post(
            "/api/v4/teams",
            &json!({"name": "ok", "display_name": "", "type": "O"}),
        )
        .await
        .app_error(400, "model.team.is_valid.name.app_error");
    local
        .post("/api/v4/teams", &json!("nope"))
        .await
        .app_error(400, "api.context.invalid_body_param.app_error");
    let team = local.create("/api/v4/teams", &bad_team("ok"), 201).await;
    let channel = |name: &str, kind: &str| json!({"team_id": team["id"], "name": name, "display_name": "X", "type": kind});
    local
        .post("/api/v4/channels", &channel("Bad", "O"))
        .await
        .app_error(400, "model.channel.is_valid.2_or_more.app_error");
    local
        .post("/api/v4/channels", &channel("fine", "D"))
        .await
        .app_error(400, "model.channel.is_valid.type.app_error");
    local
        .post(
            "/api/v4/channels",
            &json!({"team_id": "d".repeat(26), "name": "x1", "display_name": "X", "type": "O"}),
        )
        .await
        .app_error(404, "app.team.get.find.app_error");
    local
        .post(
            "/api/v4/users",
            &json!({"username": "shorty", "email": "s@x", "password": "short"}),
        )
        .await
        .app_error(400, "model.user.is_valid.pwd_min_length.app_error");
    local
        .post(
            "/api/v4/users",
            &json!({"username": "noemail", "email": "nope", "password": "long-enough-1"}),
        )
        .await
        .app_error(400, "model.user.is_valid.email.app_error");
}

#[tokio::test]
async fn lookups_by_name_and_id() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let by_name = local.get("/api/v4/teams/name/city").await.json();
    assert_eq!(by_name["id"], w.team_id.as_str());
    assert_eq!(by_name["id"].as_str().unwrap().len(), 26);
    let by_id = local
        .get(&format!("/api/v4/teams/{}", w.team_id))
        .await
        .json();
    assert_eq!(by_id["name"], "city");
    let channel = local
        .get("/api/v4/teams/name/city/channels/name/builds")
        .await
        .json();
    assert_eq!(channel["id"], w.channel_id.as_str());
    let channel = local
        .get(&format!("/api/v4/teams/{}/channels/name/builds", w.team_id))
        .await
        .json();
    assert_eq!(channel["team_id"], w.team_id.as_str());
    local
        .get("/api/v4/teams/name/city/channels/name/nope")
        .await
        .app_error(404, "app.channel.get_by_name.missing.app_error");
    local
        .get("/api/v4/teams/name/nope/channels/name/builds")
        .await
        .app_error(404, "app.team.get_by_name.missing.app_error");
    local
        .get(&format!("/api/v4/teams/{}", "e".repeat(26)))
        .await
        .app_error(404, "app.team.get.find.app_error");
    local
        .get("/api/v4/teams/not-an-id")
        .await
        .app_error(400, "api.context.invalid_url_param.app_error");
    local
        .get("/api/v4/users/username/nobody")
        .await
        .app_error(404, "app.user.get_by_username.app_error");
}

#[tokio::test]
async fn memberships_need_the_team_first_and_are_idempotent() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let loner = local
        .create(
            "/api/v4/users",
            &json!({"username": "loner", "email": "l@x", "password": "long-enough-1"}),
            201,
        )
        .await;
    let lid = loner["id"].as_str().unwrap();
    local
        .post(
            &format!("/api/v4/channels/{}/members", w.channel_id),
            &json!({"user_id": lid}),
        )
        .await
        .app_error(404, "app.team.get_member.missing.app_error");
    let path = format!("/api/v4/teams/{}/members", w.team_id);
    let first = local
        .create(&path, &json!({"team_id": w.team_id, "user_id": lid}), 201)
        .await;
    let second = local
        .create(&path, &json!({"team_id": w.team_id, "user_id": lid}), 201)
        .await;
    assert_eq!(first, second, "an existing member is returned unchanged");
    assert_eq!(first["roles"], "team_user");
    local
        .post(&path, &json!({"team_id": "x", "user_id": lid}))
        .await
        .app_error(400, "api.context.invalid_param.app_error");
    let many = local
        .create(
            &format!("/api/v4/channels/{}/members", w.channel_id),
            &json!({"user_ids": [lid, w.bot_id]}),
            201,
        )
        .await;
    assert_eq!(many.as_array().unwrap().len(), 2);
    let snap = f.double.snapshot();
    assert_eq!(
        snap.channel("city", "builds").unwrap().members,
        vec!["jenkins", "admin", "loner"]
    );
}

#[tokio::test]
async fn max_users_per_team_is_enforced() {
    let f = Fixture::with_config(json!({"TeamSettings": {"MaxUsersPerTeam": 1}})).await;
    let local = f.local();
    let team = local
        .create(
            "/api/v4/teams",
            &json!({"name": "tiny", "display_name": "Tiny", "type": "O"}),
            201,
        )
        .await;
    let tid = team["id"].as_str().unwrap();
    let mut ids = vec![];
    for name in ["one", "two"] {
        let u = local.create("/api/v4/users", &json!({"username": name, "email": format!("{name}@x"), "password": "long-enough-1"}), 201).await;
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let path = format!("/api/v4/teams/{tid}/members");
    local
        .create(&path, &json!({"team_id": tid, "user_id": ids[0]}), 201)
        .await;
    local
        .post(&path, &json!({"team_id": tid, "user_id": ids[1]}))
        .await
        .app_error(400, "app.team.join_user_to_team.max_accounts.app_error");
}

#[tokio::test]
async fn channel_posts_are_newest_first_and_paged() {
    let f = Fixture::new().await;
    let w = seed(&f.local()).await;
    let admin = f.admin();
    for i in 0..3 {
        admin
            .create(
                "/api/v4/posts",
                &json!({"channel_id": w.channel_id, "message": format!("m{i}")}),
                201,
            )
            .await;
    }
    let list = f
        .local()
        .get(&format!("/api/v4/channels/{}/posts", w.channel_id))
        .await
        .json();
    let order: Vec<&str> = list["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let messages: Vec<&str> = order
        .iter()
        .map(|id| list["posts"][id]["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        &messages[..3],
        ["m2", "m1", "m0"],
        "newest first: {messages:?}"
    );
    assert!(
        messages[3..]
            .iter()
            .all(|m| m.ends_with("joined the channel.")),
        "{messages:?}"
    );
    assert_eq!(list["has_next"], false);
    let page = f
        .local()
        .get(&format!(
            "/api/v4/channels/{}/posts?page=1&per_page=2",
            w.channel_id
        ))
        .await
        .json();
    let paged: Vec<&str> = page["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(paged, order[2..4].to_vec());
    f.local()
        .get(&format!("/api/v4/channels/{}/posts?page=x", w.channel_id))
        .await
        .app_error(400, "api.context.invalid_param.app_error");
}
