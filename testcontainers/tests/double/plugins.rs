//! Plugins: upload gate, manifest answer, enable-then-fail, statuses, and the config-map rule.

use cityd_testcontainers::mattermost::{GITLAB_ID, JENKINS_ID, PluginState, make_bundle};
use serde_json::{Value, json};

use crate::common::{Client, Fixture, Resp, multipart};

fn jenkins_manifest() -> Value {
    json!({
        "id": JENKINS_ID, "name": "Jenkins", "description": "Jenkins plugin", "version": "1.1.0",
        "min_server_version": "5.12.0",
        "server": {"executables": {"linux-amd64": "server/dist/plugin-linux-amd64"}},
        "settings_schema": {"settings": [
            {"key": "JenkinsURL", "display_name": "Jenkins URL", "type": "text"},
            {"key": "EncryptionKey", "display_name": "Encryption key", "type": "generated", "secret": true}
        ]}
    })
}

async fn upload(client: &Client, manifest: &Value, force: bool) -> Resp {
    let bundle = make_bundle(manifest, &[("server/dist/plugin-linux-amd64", b"\x7fELF")]);
    let force = if force { "true" } else { "false" };
    let (ct, body) = multipart(&[
        ("plugin", Some("bundle.tar.gz"), &bundle),
        ("force", None, force.as_bytes()),
    ]);
    client.post_raw("/api/v4/plugins", Some(&ct), body).await
}

async fn enable_uploads(local: &Client) {
    let r = local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"EnableUploads": true}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn uploads_are_refused_until_enabled_then_answer_201_with_the_manifest() {
    let f = Fixture::new().await;
    let local = f.local();
    upload(&local, &jenkins_manifest(), false)
        .await
        .app_error(501, "app.plugin.upload_disabled.app_error");
    enable_uploads(&local).await;
    let r = upload(&local, &jenkins_manifest(), false).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json(),
        jenkins_manifest(),
        "the answer is the bundle's manifest"
    );
    upload(&local, &jenkins_manifest(), false)
        .await
        .app_error(400, "app.plugin.install_id.app_error");
    let mut newer = jenkins_manifest();
    newer["version"] = json!("1.2.0");
    assert_eq!(
        upload(&local, &newer, true).await.status,
        201,
        "force replaces"
    );
    assert_eq!(
        f.double.snapshot().plugin(JENKINS_ID).unwrap().version,
        "1.2.0"
    );

    let (ct, body) = multipart(&[("plugin", Some("x.tar.gz"), b"not gzip")]);
    local
        .post_raw("/api/v4/plugins", Some(&ct), body)
        .await
        .app_error(400, "app.plugin.extract.app_error");
    let (ct, body) = multipart(&[("force", None, b"true")]);
    local
        .post_raw("/api/v4/plugins", Some(&ct), body)
        .await
        .app_error(400, "api.plugin.upload.no_file.app_error");
    let (ct, body) = multipart(&[(
        "plugin",
        Some("x.tar.gz"),
        &make_bundle(&json!({"name": "no id"}), &[]),
    )]);
    local
        .post_raw("/api/v4/plugins", Some(&ct), body)
        .await
        .app_error(400, "app.plugin.invalid_id.app_error");
    local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"RequirePluginSignature": true}}),
        )
        .await;
    upload(&local, &newer, true)
        .await
        .app_error(501, "app.plugin.upload_disabled.app_error");
}

#[tokio::test]
async fn enable_answers_200_even_when_jenkins_then_fails_to_start() {
    let f = Fixture::new().await;
    let local = f.local();
    let admin = f.admin();
    enable_uploads(&local).await;
    upload(&local, &jenkins_manifest(), false).await;
    let listed = local.get("/api/v4/plugins").await.json();
    assert_eq!(
        (ids(&listed["active"]), ids(&listed["inactive"])),
        (vec![], vec![JENKINS_ID])
    );

    let r = local
        .post(&format!("/api/v4/plugins/{JENKINS_ID}/enable"), &json!({}))
        .await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "OK"})));
    let statuses = admin.get("/api/v4/plugins/statuses").await.json();
    assert_eq!(statuses[0]["plugin_id"], JENKINS_ID);
    assert_eq!(
        statuses[0]["state"], 3,
        "FailedToStart with an empty jenkinsurl: {statuses}"
    );
    assert_eq!(
        statuses[0]["error"],
        "Please add Jenkins URL in plugin settings"
    );
    assert_eq!(
        ids(&local.get("/api/v4/plugins").await.json()["inactive"]),
        vec![JENKINS_ID]
    );
    assert_eq!(
        f.double.snapshot().config["PluginSettings"]["PluginStates"][JENKINS_ID],
        json!({"Enable": true})
    );

    // Writing the setting is a config change: activation is retried and succeeds.
    let r = local.put("/api/v4/config/patch", &json!({"PluginSettings": {"Plugins": {JENKINS_ID: {"jenkinsurl": "https://ci.city.test"}}}})).await;
    assert_eq!(r.status, 200);
    let statuses = admin.get("/api/v4/plugins/statuses").await.json();
    assert_eq!(
        (statuses[0]["state"].as_u64(), statuses[0]["error"].as_str()),
        (Some(2), Some(""))
    );
    assert_eq!(
        ids(&local.get("/api/v4/plugins").await.json()["active"]),
        vec![JENKINS_ID]
    );

    let r = local
        .post(&format!("/api/v4/plugins/{JENKINS_ID}/disable"), &json!({}))
        .await;
    assert_eq!(r.status, 200);
    let snap = f.double.snapshot();
    let p = snap.plugin(JENKINS_ID).unwrap();
    assert_eq!(
        (p.enabled, p.state, p.state_code),
        (false, PluginState::NotRunning, 0)
    );
    local
        .post("/api/v4/plugins/nope/enable", &json!({}))
        .await
        .app_error(404, "app.plugin.not_installed.app_error");
}

#[tokio::test]
async fn settings_written_before_enable_let_jenkins_start() {
    let f = Fixture::new().await;
    let local = f.local();
    enable_uploads(&local).await;
    upload(&local, &jenkins_manifest(), false).await;
    local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"Plugins": {JENKINS_ID: {"JenkinsURL": "https://ci"}}}}),
        )
        .await;
    local
        .post(&format!("/api/v4/plugins/{JENKINS_ID}/enable"), &json!({}))
        .await;
    assert_eq!(
        f.double.snapshot().plugin(JENKINS_ID).unwrap().state,
        PluginState::Running,
        "keys match case-insensitively"
    );
    let log = f.double.requests();
    let patch = log
        .iter()
        .rposition(|r| r.path == "/api/v4/config/patch")
        .unwrap();
    let enable = log
        .iter()
        .position(|r| r.path.ends_with("/enable"))
        .unwrap();
    assert!(patch < enable, "the request log shows the order");
}

#[tokio::test]
async fn any_plugin_can_be_told_to_fail_to_start() {
    let f = Fixture::new().await;
    let local = f.local();
    enable_uploads(&local).await;
    upload(
        &local,
        &json!({"id": "com.example.demo", "version": "0.1.0"}),
        false,
    )
    .await;
    f.double.fail_plugin_start("com.example.demo");
    assert_eq!(
        local
            .post("/api/v4/plugins/com.example.demo/enable", &json!({}))
            .await
            .status,
        200
    );
    let snap = f.double.snapshot();
    let p = snap.plugin("com.example.demo").unwrap();
    assert_eq!((p.state, p.state_code), (PluginState::FailedToStart, 3));
    assert!(p.error.contains("told by the test"), "{}", p.error);
}

#[tokio::test]
async fn gitlab_needs_site_url_and_oauth_and_generates_its_keys() {
    let f = Fixture::new().await;
    let local = f.local();
    enable_uploads(&local).await;
    upload(
        &local,
        &json!({"id": GITLAB_ID, "version": "1.13.0"}),
        false,
    )
    .await;
    local
        .post(&format!("/api/v4/plugins/{GITLAB_ID}/enable"), &json!({}))
        .await;
    assert!(
        f.double
            .snapshot()
            .plugin(GITLAB_ID)
            .unwrap()
            .error
            .contains("siteURL")
    );
    let settings = json!({"gitlaburl": "https://gitlab.city.test", "gitlaboauthclientid": "id", "gitlaboauthclientsecret": "s"});
    local
        .put(
            "/api/v4/config/patch",
            &json!({"ServiceSettings": {"SiteURL": "https://chat.city.test"}, "PluginSettings": {"Plugins": {GITLAB_ID: settings}}}),
        )
        .await;
    let snap = f.double.snapshot();
    assert_eq!(snap.plugin(GITLAB_ID).unwrap().state, PluginState::Running);
    let saved = &snap.config["PluginSettings"]["Plugins"][GITLAB_ID];
    assert_eq!(
        saved["encryptionkey"].as_str().map(str::len),
        Some(32),
        "{saved}"
    );
    assert_eq!(saved["webhooksecret"].as_str().map(str::len), Some(32));
}

#[tokio::test]
async fn a_patch_replaces_the_whole_plugins_map() {
    let f = Fixture::new().await;
    let local = f.local();
    let both = json!({"PluginSettings": {"Plugins": {"a": {"x": 1}, JENKINS_ID: {"jenkinsurl": "https://ci"}}}});
    local.put("/api/v4/config/patch", &both).await;
    let r = local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"Plugins": {JENKINS_ID: {"jenkinsurl": "https://new"}}}}),
        )
        .await;
    assert_eq!(
        r.json()["PluginSettings"]["Plugins"],
        json!({JENKINS_ID: {"jenkinsurl": "https://new"}}),
        "key `a` is gone"
    );
    let r = local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"Plugins": {}, "Enable": true}}),
        )
        .await;
    assert_eq!(
        r.json()["PluginSettings"]["Plugins"],
        json!({JENKINS_ID: {"jenkinsurl": "https://new"}}),
        "an empty map is ignored"
    );
    let r = local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"PluginStates": {"playbooks": {"Enable": false}}}}),
        )
        .await;
    assert_eq!(
        r.json()["PluginSettings"]["PluginStates"],
        json!({"playbooks": {"Enable": false}}),
        "PluginStates too"
    );
    assert_eq!(
        r.json()["PluginSettings"]["Enable"],
        true,
        "struct fields merge"
    );
}

#[tokio::test]
async fn secret_plugin_settings_are_masked_over_a_session() {
    let f = Fixture::new().await;
    let local = f.local();
    enable_uploads(&local).await;
    upload(&local, &jenkins_manifest(), false).await;
    let settings = json!({JENKINS_ID: {"jenkinsurl": "https://ci", "encryptionkey": "0123456789abcdef0123456789abcdef"}});
    local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"Plugins": settings}}),
        )
        .await;
    let admin = f.admin();
    let shown = admin.get("/api/v4/config").await.json();
    assert_eq!(
        shown["PluginSettings"]["Plugins"][JENKINS_ID]["encryptionkey"],
        "********************************"
    );
    assert_eq!(
        shown["PluginSettings"]["Plugins"][JENKINS_ID]["jenkinsurl"],
        "https://ci"
    );
    // Read-modify-write of the whole map over a session keeps the secret.
    let mut plugins = shown["PluginSettings"]["Plugins"].clone();
    plugins[JENKINS_ID]["jenkinsurl"] = json!("https://ci2");
    assert_eq!(
        admin
            .put(
                "/api/v4/config/patch",
                &json!({"PluginSettings": {"Plugins": plugins}})
            )
            .await
            .status,
        200
    );
    let raw = local.get("/api/v4/config").await.json();
    assert_eq!(
        raw["PluginSettings"]["Plugins"][JENKINS_ID],
        json!({"jenkinsurl": "https://ci2", "encryptionkey": "0123456789abcdef0123456789abcdef"})
    );
}

#[tokio::test]
async fn plugins_switched_off_answer_501() {
    let f = Fixture::with_config(json!({"PluginSettings": {"Enable": false}})).await;
    f.local()
        .get("/api/v4/plugins")
        .await
        .app_error(501, "app.plugin.disabled.app_error");
    f.admin()
        .get("/api/v4/plugins/statuses")
        .await
        .app_error(501, "app.plugin.disabled.app_error");
}
