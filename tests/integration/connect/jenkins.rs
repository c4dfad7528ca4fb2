//! `cityd connect jenkins` against the Jenkins double: the env file and the JCasC edits, crumbs,
//! reloads and restarts, and the documented Jenkinsfile example.

use super::*;
use cityd_testcontainers::jenkins::{JenkinsDouble, JenkinsOptions};

struct JenkinsLab {
    s: Scratch,
    env: PathBuf,
    yaml: PathBuf,
    city: PathBuf,
    double: JenkinsDouble,
    vault: Vault,
}

impl JenkinsLab {
    /// The env file as a finished earlier run left it (the hook, mode 0600), so only the JCasC
    /// is left to change.
    fn env_already_has_the_hook(&self) {
        std::fs::write(
            &self.env,
            format!("MATTERMOST_JENKINS_WEBHOOK_URL={BUILDS_HOOK}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&self.env, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

const JENKINS_TOKEN: &str = "11aa22bb33cc44dd55ee66ff77aa88bb99";

/// A scratch lab: copies of the fixtures, a vault with the #builds webhook (and the API token
/// when `token`), a Jenkins double reading the copied JCasC with the container env `env`.
fn jenkins_lab(
    yaml_fixture: &str,
    token: bool,
    csrf: bool,
    env: BTreeMap<String, String>,
) -> JenkinsLab {
    let s = Scratch::new();
    let env_path = s.path().join("jenkins.env");
    let yaml = s.path().join("jenkins.yaml");
    std::fs::copy(fixture("jenkins.env"), &env_path).unwrap();
    std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::copy(fixture(yaml_fixture), &yaml).unwrap();
    let double = JenkinsDouble::start(JenkinsOptions {
        user: "admin".into(),
        api_token: JENKINS_TOKEN.into(),
        csrf,
        casc_file: Some(yaml.clone()),
        env,
    })
    .unwrap();
    let vault = vault(&s);
    store(&vault, "webhook-builds", BUILDS_HOOK);
    if token {
        store(&vault, "jenkins-api-token", JENKINS_TOKEN);
    }
    let base = double.base_url();
    let (e, y) = (env_path.clone(), yaml.clone());
    let city = city(&s, move |t| {
        let j = section(t, "jenkins");
        j.insert("url".into(), base.into());
        j.insert("env_file".into(), e.display().to_string().into());
        j.insert("jcasc_file".into(), y.display().to_string().into());
    });
    JenkinsLab {
        s,
        env: env_path,
        yaml,
        city,
        double,
        vault,
    }
}

fn env_with_hook() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "MATTERMOST_JENKINS_WEBHOOK_URL".to_string(),
        BUILDS_HOOK.to_string(),
    )])
}

fn notifier_owned(line: &str) -> bool {
    let t = line.trim_start();
    [
        "mattermostNotifier:",
        "endpoint:",
        "room:",
        "buildServerUrl:",
        "icon:",
    ]
    .iter()
    .any(|k| t.starts_with(k))
}

#[test]
fn jenkins_from_scratch_edits_both_files_keeps_every_other_line_and_asks_for_a_recreate() {
    let lab = jenkins_lab("jenkins.yaml", true, true, BTreeMap::new());
    let env_before = std::fs::read_to_string(&lab.env).unwrap();
    let yaml_before = std::fs::read_to_string(&lab.yaml).unwrap();

    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    let env_after = std::fs::read_to_string(&lab.env).unwrap();
    let yaml_after = std::fs::read_to_string(&lab.yaml).unwrap();

    // The env file: the original bytes, then exactly one new line; mode 0600.
    assert_eq!(
        env_after,
        format!("{env_before}MATTERMOST_JENKINS_WEBHOOK_URL={BUILDS_HOOK}\n")
    );
    assert_eq!(mode_of(&lab.env), 0o600);
    // The JCasC file: every original line, comments included, in order; the notifier added.
    assert_keeps_lines(&yaml_before, &yaml_after, |_| false);
    assert_eq!(
        yaml_after.lines().count(),
        yaml_before.lines().count() + 5,
        "{yaml_after}"
    );
    let notifier = cityd::integrations::jcasc::read_mattermost_notifier(&yaml_after)
        .unwrap()
        .unwrap();
    let get = |k: &str| notifier.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert_eq!(get("endpoint"), "${MATTERMOST_JENKINS_WEBHOOK_URL}");
    assert_eq!(get("room"), "builds");
    assert_eq!(get("buildServerUrl"), format!("{}/", lab.double.base_url()));
    assert_eq!(
        get("icon"),
        format!("{}/favicon.ico", lab.double.base_url())
    );
    assert!(
        yaml_after.contains("    endpoint: \"${MATTERMOST_JENKINS_WEBHOOK_URL}\"\n"),
        "the endpoint is quoted: {yaml_after}"
    );
    // The env file changed, so only a re-created container sees the URL: no reload was sent.
    assert!(
        run.stdout.contains("re-create the Jenkins container"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.requests().len(), 0);
    assert!(
        !run.stdout.contains(BUILDS_HOOK),
        "the webhook URL is a secret"
    );

    // A rerun changes nothing and sends nothing.
    let env_print = fingerprint_of(&lab.env);
    let yaml_print = fingerprint_of(&lab.yaml);
    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(
        run.stdout
            .contains("jenkins: no changes (0 request(s), 0 mutating)"),
        "{}",
        run.stdout
    );
    assert_eq!(fingerprint_of(&lab.env), env_print);
    assert_eq!(fingerprint_of(&lab.yaml), yaml_print);
    assert_eq!(lab.double.requests().len(), 0);
}

#[test]
fn jenkins_reloads_jcasc_with_a_crumb_when_only_the_yaml_changed() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    // The env file already carries the URL (the container was created with it).
    let with_hook = format!(
        "{}MATTERMOST_JENKINS_WEBHOOK_URL={BUILDS_HOOK}\n",
        std::fs::read_to_string(&lab.env).unwrap()
    );
    std::fs::write(&lab.env, &with_hook).unwrap();
    std::fs::set_permissions(&lab.env, std::fs::Permissions::from_mode(0o600)).unwrap();

    let run = ok(connect(&lab.s, &lab.city, &["jenkins", "--json"]));
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["changed"], true);
    assert_eq!(report["requests"]["mutating"], 1);
    assert_eq!(std::fs::read_to_string(&lab.env).unwrap(), with_hook);
    let requests = lab.double.requests();
    let seen: Vec<_> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.status))
        .collect();
    assert_eq!(
        seen,
        [
            ("GET", "/crumbIssuer/api/json", 200),
            ("POST", "/configuration-as-code/reload", 302)
        ]
    );
    assert_eq!(lab.double.reloads(), 1);
    let applied = lab.double.applied_notifier().expect("JCasC applied");
    assert_eq!(applied.endpoint.as_deref(), Some(BUILDS_HOOK));
    assert_eq!(applied.room.as_deref(), Some("builds"));
    assert!(applied.unresolved.is_empty());
    assert!(lab.double.reload_errors().is_empty());

    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(run.stdout.contains("no changes"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), 1);
    assert_eq!(lab.double.requests().len(), 2);
}

#[test]
fn jenkins_double_refuses_a_reload_without_a_valid_crumb() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    let auth = format!(
        "Authorization: Basic {}\r\n",
        base64_basic(&format!("admin:{JENKINS_TOKEN}"))
    );
    let post = |extra: &str| {
        raw_http(
            &lab.double.base_url(),
            &format!(
                "POST /configuration-as-code/reload HTTP/1.1\r\nHost: j\r\n{auth}{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    let (status, body) = post("");
    assert_eq!(status, 403);
    assert!(body.contains("No valid crumb"), "{body}");
    // A crumb without the session that fetched it is not valid either.
    let (status, _) = post("Jenkins-Crumb: 0123\r\n");
    assert_eq!(status, 403);
    // Wrong token: 401.
    let (status, _) = raw_http(
        &lab.double.base_url(),
        "GET /crumbIssuer/api/json HTTP/1.1\r\nHost: j\r\nAuthorization: Basic YWRtaW46bm9wZQ==\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 401);
    assert_eq!(lab.double.reloads(), 0);
}

fn base64_basic(raw: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[test]
fn jenkins_reload_without_csrf_protection_needs_no_crumb() {
    let lab = jenkins_lab("jenkins.yaml", true, false, env_with_hook());
    lab.env_already_has_the_hook();
    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(
        run.stdout.contains("CSRF protection is off"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.reloads(), 1);
}

#[test]
fn jenkins_failed_reload_is_retried_by_the_next_run() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    lab.env_already_has_the_hook();
    lab.double.fail_next_mutations(1);
    let run = connect(&lab.s, &lab.city, &["jenkins"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("HTTP 500"), "{}", run.stderr);
    assert!(
        run.stdout.contains("retried on the next run"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.reloads(), 0);

    // The YAML is already edited; the pending reload still happens.
    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(
        run.stdout
            .contains("a reload is pending from an earlier run"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.reloads(), 1);
    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(run.stdout.contains("no changes"), "{}", run.stdout);
    assert_eq!(lab.double.reloads(), 1);
}

/// A stand-in for the Jenkins container (any local image, sleeping), removed on drop.
struct StandIn {
    name: String,
}

impl StandIn {
    fn start() -> Self {
        crate::docker::require_image(crate::docker::COTURN_IMAGE);
        let name = format!(
            "cityd-test-jenkins-{}-{}",
            std::process::id(),
            rand_suffix()
        );
        crate::common::run_ok(
            std::process::Command::new("docker")
                .args(["run", "-d", "--name", &name, "--stop-signal", "SIGKILL"])
                .args([
                    "--entrypoint",
                    "sleep",
                    crate::docker::COTURN_IMAGE,
                    "infinity",
                ]),
        );
        Self { name }
    }

    /// The container's ID and when it last started, from the docker CLI.
    fn started(&self) -> (String, String) {
        let text = crate::common::run_ok(std::process::Command::new("docker").args([
            "inspect",
            "-f",
            "{{.Id}} {{.State.StartedAt}} {{.State.Running}}",
            &self.name,
        ]));
        let fields: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            fields.get(2),
            Some(&"true"),
            "{} is not running: {text}",
            self.name
        );
        (fields[0].to_string(), fields[1].to_string())
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

/// The lab with the env file already holding the hook, so only the JCasC changes: applying it
/// means a reload (with a token) or a restart (without).
fn jenkins_lab_for_restart(container: &str) -> JenkinsLab {
    let mut lab = jenkins_lab("jenkins.yaml", false, true, env_with_hook());
    lab.env_already_has_the_hook();
    let (base, e, y) = (lab.double.base_url(), lab.env.clone(), lab.yaml.clone());
    let container = container.to_string();
    lab.city = city(&lab.s, move |t| {
        let j = section(t, "jenkins");
        j.insert("url".into(), base.into());
        j.insert("env_file".into(), e.display().to_string().into());
        j.insert("jcasc_file".into(), y.display().to_string().into());
        j.insert("container".into(), container.into());
    });
    lab
}

#[test]
fn jenkins_without_a_token_restarts_its_container_through_the_docker_api() {
    let stand_in = StandIn::start();
    let lab = jenkins_lab_for_restart(&stand_in.name);
    let (id, started) = stand_in.started();

    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(
        run.stdout
            .contains(&format!("restarted container {}", stand_in.name)),
        "{}",
        run.stdout
    );
    let (id_after, started_after) = stand_in.started();
    assert_eq!(id_after, id, "a restart keeps the container");
    assert_ne!(started_after, started, "the container did not restart");
    assert_eq!(
        lab.double.requests().len(),
        0,
        "no API call without a token"
    );

    // Applied: nothing is pending, so a rerun neither edits nor restarts.
    let run = ok(connect(&lab.s, &lab.city, &["jenkins"]));
    assert!(run.stdout.contains("no changes"), "{}", run.stdout);
    assert_eq!(
        stand_in.started().1,
        started_after,
        "a rerun restarted Jenkins"
    );
}

#[test]
fn jenkins_without_a_token_or_its_container_names_both_fixes_and_keeps_asking() {
    crate::docker::require_image(crate::docker::COTURN_IMAGE);
    let missing = format!("cityd-test-no-such-jenkins-{}", std::process::id());
    let lab = jenkins_lab_for_restart(&missing);
    for _ in 0..2 {
        let run = connect(&lab.s, &lab.city, &["jenkins"]);
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr
                .contains(&format!("there is no container {missing}")),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("integrations.jenkins.container"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("jenkins-api-token"), "{}", run.stderr);
        assert!(
            run.stdout.contains("retried on the next run"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(lab.double.requests().len(), 0);
}

#[test]
fn jenkins_dry_run_changes_nothing() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    let env_print = fingerprint_of(&lab.env);
    let yaml_print = fingerprint_of(&lab.yaml);
    let run = ok(connect(&lab.s, &lab.city, &["jenkins", "--dry-run"]));
    assert!(run.stdout.contains("would create"), "{}", run.stdout);
    assert!(
        run.stdout.contains("dry run, 2 change(s) would be made"),
        "{}",
        run.stdout
    );
    assert_eq!(fingerprint_of(&lab.env), env_print);
    assert_eq!(fingerprint_of(&lab.yaml), yaml_print);
    assert_eq!(mode_of(&lab.env), 0o644);
    assert_eq!(lab.double.requests().len(), 0);
    assert!(!lab.s.state().join("integrations").exists());
}

#[test]
fn jenkins_corrects_the_blogs_team_at_channel_room_and_keeps_its_comments() {
    let lab = jenkins_lab("jenkins-blog-notifier.yaml", true, true, env_with_hook());
    lab.env_already_has_the_hook();
    let before = std::fs::read_to_string(&lab.yaml).unwrap();
    ok(connect(&lab.s, &lab.city, &["jenkins"]));
    let after = std::fs::read_to_string(&lab.yaml).unwrap();
    // Only the values that differ change (room, and the lab's Jenkins URL in buildServerUrl and
    // icon); the room's trailing comment stays on its line.
    assert_keeps_lines(&before, &after, |l| {
        let t = l.trim_start();
        ["room:", "icon:", "buildServerUrl:"]
            .iter()
            .any(|k| t.starts_with(k))
    });
    assert!(after.contains("    endpoint: \"${MATTERMOST_JENKINS_WEBHOOK_URL}\"\n"));
    assert!(
        after.contains("    room: \"builds\"   # team@channel, the blog says\n"),
        "{after}"
    );
    assert!(after.contains("    # filled in by the blog's update_jcasc_mattermost.py\n"));
    assert!(after.contains("    useCustomProxy: false\n"));
    assert_eq!(after.lines().count(), before.lines().count());
    assert_eq!(
        lab.double.applied_notifier().unwrap().room.as_deref(),
        Some("builds")
    );
}

#[test]
fn jenkins_edits_a_four_space_file_in_its_own_structure() {
    let lab = jenkins_lab("jenkins-four-spaces.yaml", true, true, env_with_hook());
    lab.env_already_has_the_hook();
    let before = std::fs::read_to_string(&lab.yaml).unwrap();
    ok(connect(&lab.s, &lab.city, &["jenkins"]));
    let after = std::fs::read_to_string(&lab.yaml).unwrap();
    assert_keeps_lines(&before, &after, notifier_owned);
    let applied = lab.double.applied_notifier().unwrap();
    assert_eq!(applied.endpoint.as_deref(), Some(BUILDS_HOOK));
    // The second-level key sits under unclassified, not at the root.
    let parsed = yaml_rust2::YamlLoader::load_from_str(&after).unwrap();
    assert!(
        parsed[0]["unclassified"]["location"]["url"]
            .as_str()
            .is_some()
    );
    assert!(
        parsed[0]["security"]["apiToken"]["creationOfLegacyTokenEnabled"].as_bool() == Some(false)
    );
    assert!(parsed[0]["mattermostNotifier"].is_badvalue());
}

#[test]
fn jenkins_refuses_a_yaml_it_cannot_edit_safely_and_leaves_it_alone() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    std::fs::write(&lab.yaml, "unclassified:\n  - not\n  - a mapping\n").unwrap();
    let print = fingerprint_of(&lab.yaml);
    let env_print = fingerprint_of(&lab.env);
    let run = connect(&lab.s, &lab.city, &["jenkins"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("unclassified is not a mapping"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&lab.yaml.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(fingerprint_of(&lab.yaml), print);
    assert_eq!(fingerprint_of(&lab.env), env_print);
}

#[test]
fn jenkins_needs_the_webhook_from_cityd_wire() {
    let lab = jenkins_lab("jenkins.yaml", true, true, env_with_hook());
    std::fs::remove_file(lab.vault.path_of("webhook-builds")).unwrap();
    let run = connect(&lab.s, &lab.city, &["jenkins"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("webhook-builds"), "{}", run.stderr);
    assert!(run.stderr.contains("cityd wire"), "{}", run.stderr);
}

#[test]
fn a_team_name_as_jenkins_username_is_refused_by_the_city_check() {
    let s = Scratch::new();
    let path = city(&s, |t| {
        section(t, "jenkins").insert("username".into(), "engineering".into());
    });
    let out = s
        .cityd()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 2);
    assert!(err.contains("integrations.jenkins.username"), "{err}");
    assert!(err.contains("username@channel"), "{err}");
}

/// The top-level `name:` arguments of every `mattermostSend(...)` call, read with a scanner that
/// skips parentheses and commas inside string literals.
fn mattermost_send_calls(text: &str) -> Vec<Vec<(String, String)>> {
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("mattermostSend(") {
        let body = &rest[start + "mattermostSend(".len()..];
        let (mut depth, mut quote, mut end) = (1usize, None::<char>, None);
        let mut args = vec![String::new()];
        for (i, c) in body.char_indices() {
            match quote {
                Some(q) => {
                    if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    '"' | '\'' => quote = Some(c),
                    '(' | '[' | '{' => depth += 1,
                    ')' | ']' | '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(i);
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        args.push(String::new());
                        continue;
                    }
                    _ => {}
                },
            }
            args.last_mut().unwrap().push(c);
        }
        let end = end.expect("a closed mattermostSend call");
        calls.push(
            args.iter()
                .filter_map(|a| {
                    let (k, v) = a.split_once(':')?;
                    Some((k.trim().to_string(), v.trim().to_string()))
                })
                .collect(),
        );
        rest = &body[end..];
    }
    calls
}

#[test]
fn the_jenkinsfile_example_routes_builds_and_alerts_with_documented_parameters_only() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/Jenkinsfile.example"),
    )
    .unwrap();
    // The Mattermost Notification plugin's mattermostSend parameters (integrations.md §3.1).
    let known = [
        "message",
        "text",
        "color",
        "channel",
        "endpoint",
        "icon",
        "failOnError",
    ];
    let calls = mattermost_send_calls(&text);
    assert_eq!(calls.len(), 5, "{calls:?}");
    let mut channels = Vec::new();
    for call in &calls {
        let names: Vec<&str> = call.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"message"), "message is required: {names:?}");
        for name in &names {
            assert!(
                known.contains(name),
                "unknown mattermostSend parameter {name}"
            );
        }
        let channel = &call.iter().find(|(k, _)| k == "channel").unwrap().1;
        assert!(
            !channel.contains('@'),
            "x@y is username@channel, never team@channel: {channel}"
        );
        channels.push(channel.trim_matches('\'').to_string());
        // Posting outside #builds needs that channel's own webhook: hooks are locked to a channel.
        if channel != "'builds'" {
            assert!(names.contains(&"endpoint"), "{call:?}");
        }
    }
    assert_eq!(channels.iter().filter(|c| *c == "builds").count(), 4);
    assert_eq!(channels.iter().filter(|c| *c == "alerts").count(), 1);
    assert!(text.contains("waitForQualityGate()"));
    assert!(
        !text.contains("/hooks/"),
        "no webhook URL is written into a Jenkinsfile"
    );
}
