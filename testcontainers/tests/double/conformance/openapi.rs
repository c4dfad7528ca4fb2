//! The double's responses checked against the Mattermost OpenAPI v4 spec (upstream, kept in the
//! shared reference beside the repository: `mattermost-openapi/mattermost-openapi-v4.yaml`; these
//! checks are skipped by name when it is absent): for every endpoint the double implements, the
//! response status must be one the spec documents (or a known server deviation, below) and the body
//! must match the schema: `$ref`s into `components/schemas` resolved, declared `required`
//! properties present, every declared property that is present of the declared type (recursively
//! through objects, arrays, `additionalProperties`, `allOf`), enums respected.
//!
//! The spec's schemas list almost no `required` properties, so the check also requires, per
//! schema, the fields the server always sends (`MUST_HAVE`, from the handler code in
//! mattermost.md §4).
//!
//! Where the real server deviates from the spec, the double follows the server:
//! - `POST /users/{id}/tokens`: the server answers **200**, the spec says 201.
//! - `POST /plugins`: the server answers 201 with the plugin **Manifest**, the spec says StatusOK.
//! - `POST /users/{id}/convert_to_bot`: the server answers 200 with the **Bot**, the spec says StatusOK.
//! - `IncomingWebhook`: the server also sends `user_id`, `team_id`, `username`, `icon_url`,
//!   `channel_locked`, which the spec's schema omits.
//! - `PluginStatus.state`: the spec declares `type: number` with string enum names; the server
//!   sends the number (2 = Running), so enums whose values do not match the declared type are not
//!   applied.
//! - Go encodes nil pointers/maps as `null` (`policy_id`, `props` of a channel…); the spec rarely
//!   says `nullable`, so `null` is accepted for properties.

use std::path::PathBuf;
use std::sync::OnceLock;

use cityd_testcontainers::mattermost::{JENKINS_ID, make_bundle};
use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlLoader};

use crate::common::{Client, Fixture, Resp, hook, multipart, seed};

const SPEC: &str = "mattermost-openapi/mattermost-openapi-v4.yaml";

/// Fields the server always sends, per component schema.
const MUST_HAVE: &[(&str, &[&str])] = &[
    (
        "Team",
        &[
            "id",
            "create_at",
            "update_at",
            "delete_at",
            "display_name",
            "name",
            "type",
            "invite_id",
        ],
    ),
    (
        "Channel",
        &[
            "id",
            "create_at",
            "team_id",
            "type",
            "display_name",
            "name",
            "creator_id",
        ],
    ),
    (
        "User",
        &["id", "create_at", "username", "email", "roles", "locale"],
    ),
    (
        "Bot",
        &[
            "user_id",
            "username",
            "owner_id",
            "create_at",
            "update_at",
            "delete_at",
        ],
    ),
    (
        "UserAccessToken",
        &["id", "token", "user_id", "description"],
    ),
    (
        "UserAccessTokenSanitized",
        &["id", "user_id", "description", "is_active"],
    ),
    (
        "IncomingWebhook",
        &[
            "id",
            "create_at",
            "update_at",
            "delete_at",
            "channel_id",
            "display_name",
            "description",
            "user_id",
            "team_id",
            "channel_locked",
        ],
    ),
    (
        "TeamMember",
        &[
            "team_id",
            "user_id",
            "roles",
            "delete_at",
            "scheme_user",
            "scheme_admin",
        ],
    ),
    (
        "ChannelMember",
        &["channel_id", "user_id", "roles", "notify_props"],
    ),
    (
        "PostList",
        &["order", "posts", "next_post_id", "prev_post_id", "has_next"],
    ),
    (
        "Post",
        &[
            "id",
            "create_at",
            "update_at",
            "delete_at",
            "user_id",
            "channel_id",
            "message",
            "type",
            "props",
        ],
    ),
    ("PluginManifest", &["id", "version"]),
    ("PluginStatus", &["plugin_id", "state", "version"]),
    ("StatusOK", &["status"]),
    ("AppError", &["id", "message", "request_id", "status_code"]),
    ("SystemStatusResponse", &["status"]),
];

/// The spec in the shared reference beside the repository (the crate is `<repo>/testcontainers`).
fn spec_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/reference")
        .join(SPEC);
    assert!(
        path.exists(),
        "conformance check needs the upstream Mattermost OpenAPI document {SPEC}, which is not at \
         {}: put the shared reference directory beside the repository, or skip the conformance \
         checks (`cargo test -- --skip conformance::`, as scripts/test.sh does without it)",
        path.display()
    );
    path
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

struct Spec {
    root: Value,
}

fn spec() -> &'static Spec {
    static SPEC_DOC: OnceLock<Spec> = OnceLock::new();
    SPEC_DOC.get_or_init(|| {
        let text = std::fs::read_to_string(spec_path()).expect("reading the OpenAPI spec");
        let docs = YamlLoader::load_from_str(&text).expect("the OpenAPI spec is YAML");
        Spec {
            root: yaml_to_json(&docs[0]),
        }
    })
}

/// What one validation looked at, so a check that matched nothing cannot pass silently.
#[derive(Default)]
struct Report {
    errors: Vec<String>,
    typed_values: usize,
}

impl Spec {
    fn deref<'a>(&'a self, node: &'a Value) -> &'a Value {
        let mut node = node;
        while let Some(r) = node.get("$ref").and_then(Value::as_str) {
            let pointer = r.strip_prefix('#').expect("local $ref");
            node = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        node
    }

    /// The statuses documented for an operation and the JSON schema of one of them (None when the
    /// documented response has no JSON body).
    fn operation(&self, method: &str, template: &str) -> &Map<String, Value> {
        self.root["paths"][template][method.to_lowercase()]["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("the spec has no {method} {template}"))
    }

    fn response_schema(&self, method: &str, template: &str, status: u16) -> Option<&Value> {
        let response = self.deref(self.operation(method, template).get(&status.to_string())?);
        response.pointer("/content/application~1json/schema")
    }

    fn validate(&self, schema: &Value, instance: &Value, at: &str, report: &mut Report) {
        if let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"))
            && let (Some(object), Some((_, fields))) = (
                instance.as_object(),
                MUST_HAVE.iter().find(|(n, _)| *n == name),
            )
        {
            for field in *fields {
                if !object.contains_key(*field) {
                    report.errors.push(format!("{at}: {name} lacks `{field}`"));
                }
            }
        }
        let schema = self.deref(schema);
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                self.validate(part, instance, at, report);
            }
        }
        if instance.is_null() {
            return;
        }
        let declared = schema.get("type").and_then(Value::as_str);
        if let Some(kind) = declared {
            let ok = match kind {
                "object" => instance.is_object(),
                "array" => instance.is_array(),
                "string" => instance.is_string(),
                "integer" => instance.is_i64() || instance.is_u64(),
                "number" => instance.is_number(),
                "boolean" => instance.is_boolean(),
                _ => true,
            };
            report.typed_values += 1;
            if !ok {
                report
                    .errors
                    .push(format!("{at}: expected {kind}, got {instance}"));
                return;
            }
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            let same_type = values
                .iter()
                .all(|v| std::mem::discriminant(v) == std::mem::discriminant(instance));
            if same_type && !values.contains(instance) {
                report
                    .errors
                    .push(format!("{at}: {instance} is not one of {values:?}"));
            }
        }
        if let Some(object) = instance.as_object() {
            for field in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let field = field.as_str().unwrap_or_default();
                if !object.contains_key(field) {
                    report
                        .errors
                        .push(format!("{at}: required `{field}` missing"));
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            for (key, value) in object {
                match properties.and_then(|p| p.get(key)) {
                    Some(sub) => self.validate(sub, value, &format!("{at}.{key}"), report),
                    None => {
                        if let Some(extra) =
                            schema.get("additionalProperties").filter(|a| a.is_object())
                        {
                            self.validate(extra, value, &format!("{at}[{key}]"), report);
                        }
                    }
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), instance.as_array())
            && declared == Some("array")
        {
            for (i, item) in array.iter().enumerate() {
                self.validate(items, item, &format!("{at}[{i}]"), report);
            }
        }
    }

    /// Validates against a component schema by name.
    fn validate_component(&self, name: &str, instance: &Value, at: &str, report: &mut Report) {
        self.validate(
            &json!({"$ref": format!("#/components/schemas/{name}")}),
            instance,
            at,
            report,
        );
    }
}

/// One call to the double and what the spec says about it.
struct Case<'a> {
    method: &'a str,
    template: &'a str,
    response: Resp,
    /// The status the real server answers (the double must match it).
    server_status: u16,
    /// A documented status to take the schema from when the server's is not documented.
    spec_status: Option<u16>,
    /// The component the server's body really is, when the spec documents another one.
    server_schema: Option<&'a str>,
}

/// Checks one case; returns how many values were type-checked.
fn check(case: Case<'_>, failures: &mut Vec<String>) -> usize {
    let spec = spec();
    let label = format!("{} {}", case.method, case.template);
    if case.response.status != case.server_status {
        failures.push(format!(
            "{label}: status {} (expected {}): {}",
            case.response.status,
            case.server_status,
            case.response.text()
        ));
        return 0;
    }
    let documented = spec.operation(case.method, case.template);
    let status_documented = documented.contains_key(&case.server_status.to_string());
    match case.spec_status {
        None if !status_documented => failures.push(format!(
            "{label}: the spec does not document {}",
            case.server_status
        )),
        Some(other) if status_documented || !documented.contains_key(&other.to_string()) => {
            failures.push(format!(
                "{label}: deviation {} vs {other} is not (or no longer) a deviation",
                case.server_status
            ))
        }
        _ => {}
    }
    let body = case.response.json();
    let mut report = Report::default();
    match case.server_schema {
        Some(name) => spec.validate_component(name, &body, &label, &mut report),
        None => {
            let status = case.spec_status.unwrap_or(case.server_status);
            let schema = spec
                .response_schema(case.method, case.template, status)
                .unwrap_or_else(|| panic!("{label}: no JSON schema for {status}"));
            spec.validate(schema, &body, &label, &mut report);
        }
    }
    if report.typed_values == 0 {
        failures.push(format!("{label}: the schema checked nothing in {body}"));
    }
    failures.extend(report.errors);
    report.typed_values
}

fn ok<'a>(method: &'a str, template: &'a str, response: Resp, status: u16) -> Case<'a> {
    Case {
        method,
        template,
        response,
        server_status: status,
        spec_status: None,
        server_schema: None,
    }
}

#[tokio::test]
async fn every_implemented_endpoint_matches_the_openapi_schemas() {
    let f =
        Fixture::with_config(json!({"ServiceSettings": {"EnableBotAccountCreation": true}})).await;
    let local = f.local();
    let admin = f.admin();
    let w = seed(&local).await;
    let hook_id = hook(&local, &w, true).await;
    local
        .put(
            "/api/v4/config/patch",
            &json!({"PluginSettings": {"EnableUploads": true}}),
        )
        .await;
    let post = admin.create("/api/v4/posts", &json!({"channel_id": w.channel_id, "message": "hello", "metadata": {"priority": {"priority": "important"}}}), 201).await;
    let post_id = post["id"].as_str().unwrap().to_owned();
    let (ct, bundle) = multipart(&[(
        "plugin",
        Some("jenkins-1.1.0.tar.gz"),
        &make_bundle(
            &json!({"id": JENKINS_ID, "name": "Jenkins", "version": "1.1.0", "min_server_version": "5.12.0",
            "server": {"executables": {"linux-amd64": "server/dist/plugin-linux-amd64"}}}),
            &[],
        ),
    )]);

    let user = local
        .post(
            "/api/v4/users",
            &json!({"username": "sonar", "email": "sonar@localhost", "password": "long-enough-1"}),
        )
        .await;
    let user_json = user.json();
    let uid = user_json["id"].as_str().unwrap().to_owned();
    let team = local
        .post(
            "/api/v4/teams",
            &json!({"name": "town", "display_name": "Town", "type": "O"}),
        )
        .await;
    let tid = team.json()["id"].as_str().unwrap().to_owned();
    let mut hook_json = local
        .get(&format!("/api/v4/hooks/incoming/{hook_id}"))
        .await
        .json();
    hook_json["description"] = json!("builds from Jenkins");

    let mut failures = vec![];
    let cases = vec![
        ok("GET", "/api/v4/system/ping", local.get("/api/v4/system/ping").await, 200),
        ok("POST", "/api/v4/teams", team, 201),
        ok("GET", "/api/v4/teams/name/{team_name}", admin.get("/api/v4/teams/name/town").await, 200),
        ok("GET", "/api/v4/teams/{team_id}", admin.get(&format!("/api/v4/teams/{tid}")).await, 200),
        ok(
            "POST",
            "/api/v4/teams/{team_id}/members",
            local.post(&format!("/api/v4/teams/{tid}/members"), &json!({"team_id": tid, "user_id": uid})).await,
            201,
        ),
        ok(
            "POST",
            "/api/v4/channels",
            local.post("/api/v4/channels", &json!({"team_id": tid, "name": "alerts", "display_name": "Alerts", "type": "O"})).await,
            201,
        ),
        ok(
            "GET",
            "/api/v4/teams/name/{team_name}/channels/name/{channel_name}",
            admin.get("/api/v4/teams/name/town/channels/name/alerts").await,
            200,
        ),
        ok(
            "GET",
            "/api/v4/teams/{team_id}/channels/name/{channel_name}",
            admin.get(&format!("/api/v4/teams/{tid}/channels/name/town-square")).await,
            200,
        ),
        ok(
            "POST",
            "/api/v4/channels/{channel_id}/members",
            local.post(&format!("/api/v4/channels/{}/members", w.channel_id), &json!({"user_id": w.bot_id})).await,
            201,
        ),
        ok("GET", "/api/v4/channels/{channel_id}/posts", admin.get(&format!("/api/v4/channels/{}/posts", w.channel_id)).await, 200),
        ok("POST", "/api/v4/users", user, 201),
        ok("GET", "/api/v4/users/username/{username}", admin.get("/api/v4/users/username/jenkins").await, 200),
        Case {
            server_schema: Some("Bot"),
            ..ok("POST", "/api/v4/users/{user_id}/convert_to_bot", local.post(&format!("/api/v4/users/{uid}/convert_to_bot"), &json!({})).await, 200)
        },
        Case {
            spec_status: Some(201),
            ..ok("POST", "/api/v4/users/{user_id}/tokens", local.post(&format!("/api/v4/users/{uid}/tokens"), &json!({"description": "cityd"})).await, 200)
        },
        ok("GET", "/api/v4/users/{user_id}/tokens", admin.get(&format!("/api/v4/users/{uid}/tokens")).await, 200),
        ok("GET", "/api/v4/bots", local.get("/api/v4/bots").await, 200),
        ok("POST", "/api/v4/bots", admin.post("/api/v4/bots", &json!({"username": "gitlab", "description": "GitLab"})).await, 201),
        ok(
            "POST",
            "/api/v4/hooks/incoming",
            local.post("/api/v4/hooks/incoming", &json!({"channel_id": w.channel_id, "user_id": w.bot_id, "display_name": "CI"})).await,
            201,
        ),
        ok("GET", "/api/v4/hooks/incoming", local.get(&format!("/api/v4/hooks/incoming?team_id={}", w.team_id)).await, 200),
        ok("GET", "/api/v4/hooks/incoming/{hook_id}", admin.get(&format!("/api/v4/hooks/incoming/{hook_id}")).await, 200),
        ok("PUT", "/api/v4/hooks/incoming/{hook_id}", local.put(&format!("/api/v4/hooks/incoming/{hook_id}"), &hook_json).await, 200),
        Case {
            server_schema: Some("PluginManifest"),
            ..ok("POST", "/api/v4/plugins", local.post_raw("/api/v4/plugins", Some(&ct), bundle).await, 201)
        },
        ok("POST", "/api/v4/plugins/{plugin_id}/enable", local.post(&format!("/api/v4/plugins/{JENKINS_ID}/enable"), &json!({})).await, 200),
        ok("GET", "/api/v4/plugins/statuses", admin.get("/api/v4/plugins/statuses").await, 200),
        ok("GET", "/api/v4/plugins", local.get("/api/v4/plugins").await, 200),
        ok("POST", "/api/v4/plugins/{plugin_id}/disable", admin.post(&format!("/api/v4/plugins/{JENKINS_ID}/disable"), &json!({})).await, 200),
        ok("GET", "/api/v4/config", admin.get("/api/v4/config").await, 200),
        ok(
            "PUT",
            "/api/v4/config/patch",
            local.put("/api/v4/config/patch", &json!({"ServiceSettings": {"SiteURL": "https://chat.city.test"}})).await,
            200,
        ),
        ok("POST", "/api/v4/config/reload", local.post("/api/v4/config/reload", &json!({})).await, 200),
        ok("GET", "/api/v4/posts/{post_id}", local.get(&format!("/api/v4/posts/{post_id}")).await, 200),
        ok("POST", "/api/v4/posts", admin.post("/api/v4/posts", &json!({"channel_id": w.channel_id, "message": "again"})).await, 201),
    ];
    assert_eq!(cases.len(), 31, "one case per implemented API endpoint");
    let typed: usize = cases
        .into_iter()
        .map(|case| check(case, &mut failures))
        .sum();
    assert!(
        failures.is_empty(),
        "responses that do not match the spec:\n{}",
        failures.join("\n")
    );
    assert!(typed > 300, "only {typed} values were type-checked");
}

#[tokio::test]
async fn error_bodies_match_the_documented_error_responses() {
    let f = Fixture::new().await;
    let local = f.local();
    let w = seed(&local).await;
    let anonymous: Client = f.tcp(None);
    let cases = vec![
        ok(
            "POST",
            "/api/v4/teams",
            local
                .post(
                    "/api/v4/teams",
                    &json!({"name": "city", "display_name": "C", "type": "O"}),
                )
                .await,
            400,
        ),
        ok(
            "GET",
            "/api/v4/teams/name/{team_name}",
            local.get("/api/v4/teams/name/nope").await,
            404,
        ),
        ok(
            "GET",
            "/api/v4/teams/name/{team_name}",
            anonymous.get("/api/v4/teams/name/city").await,
            401,
        ),
        ok(
            "POST",
            "/api/v4/bots",
            f.admin()
                .post("/api/v4/bots", &json!({"username": "x1"}))
                .await,
            403,
        ),
        ok(
            "POST",
            "/api/v4/hooks/incoming",
            local
                .post(
                    "/api/v4/hooks/incoming",
                    &json!({"channel_id": w.channel_id}),
                )
                .await,
            400,
        ),
        ok(
            "GET",
            "/api/v4/hooks/incoming/{hook_id}",
            local
                .get(&format!("/api/v4/hooks/incoming/{}", "z".repeat(26)))
                .await,
            404,
        ),
        ok(
            "POST",
            "/api/v4/users/{user_id}/tokens",
            local
                .post(&format!("/api/v4/users/{}/tokens", w.bot_id), &json!({}))
                .await,
            400,
        ),
        ok(
            "POST",
            "/api/v4/plugins/{plugin_id}/enable",
            local.post("/api/v4/plugins/nope/enable", &json!({})).await,
            404,
        ),
        ok(
            "PUT",
            "/api/v4/config/patch",
            f.admin()
                .put(
                    "/api/v4/config/patch",
                    &json!({"PluginSettings": {"EnableUploads": true}}),
                )
                .await,
            403,
        ),
    ];
    let mut failures = vec![];
    for case in cases {
        check(case, &mut failures);
    }
    // Uploads while disabled: 501 is documented for POST /plugins.
    let (ct, body) = multipart(&[("plugin", Some("x.tar.gz"), b"x")]);
    check(
        ok(
            "POST",
            "/api/v4/plugins",
            local.post_raw("/api/v4/plugins", Some(&ct), body).await,
            501,
        ),
        &mut failures,
    );
    assert!(
        failures.is_empty(),
        "error responses that do not match the spec:\n{}",
        failures.join("\n")
    );
}

/// The validator itself must be able to fail.
#[test]
fn the_validator_rejects_wrong_types_and_missing_fields() {
    let spec = spec();
    let mut report = Report::default();
    spec.validate_component("Team", &json!({"id": 5, "name": "x"}), "Team", &mut report);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("Team.id: expected string")),
        "{:?}",
        report.errors
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("lacks `display_name`")),
        "{:?}",
        report.errors
    );
    let mut report = Report::default();
    spec.validate_component(
        "PostList",
        &json!({"order": ["a"], "posts": {"a": {"id": "a", "create_at": "yesterday"}}}),
        "PostList",
        &mut report,
    );
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("PostList.posts[a].create_at: expected integer")),
        "{:?}",
        report.errors
    );
    let mut report = Report::default();
    spec.validate_component(
        "PostPriority",
        &json!({"priority": "whenever"}),
        "PostPriority",
        &mut report,
    );
    assert!(
        report.errors.iter().any(|e| e.contains("is not one of")),
        "{:?}",
        report.errors
    );
}
