//! `cityd connect jenkins|gitlab|sonarqube` against the doubles in `cityd-testcontainers`: each
//! connect from scratch does what it says, a rerun changes nothing (no mutating request), user
//! files keep every line cityd does not own, `--dry-run` changes nothing, SonarQube's version
//! variants, GitLab's and SonarQube's address refusals, Jenkins' crumbs.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cityd::secrets::{Secret, SecretName, Vault};
use cityd::state::StateDir;
use cityd_testcontainers::gitlab::{GitlabDouble, GitlabOptions};
use cityd_testcontainers::jenkins::{JenkinsDouble, JenkinsOptions};
use cityd_testcontainers::sonarqube::{SonarDouble, SonarOptions, SonarVersion};

use crate::common::Scratch;

const BUILDS_HOOK: &str = "https://mattermost.cicd.local:8065/hooks/b8x1q3k7zt4m9c2w6r5y0p1n3e";
const REVIEWS_HOOK: &str = "https://mattermost.cicd.local:8065/hooks/r4v2k8m1xq7t3z9c6w0p5y2n8a";
const RELAY_URL: &str = "http://203.0.113.10:9180/sonarqube";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jenkins")
        .join(name)
}

/// A city file: the default city with `edit` applied to its TOML table.
fn city(s: &Scratch, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let mut table: toml::Table = toml::from_str(cityd::city::DEFAULT_CITY_TOML).unwrap();
    edit(&mut table);
    let path = s.path().join("city.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    path
}

fn section<'a>(table: &'a mut toml::Table, product: &str) -> &'a mut toml::Table {
    table["integrations"].as_table_mut().unwrap()[product]
        .as_table_mut()
        .unwrap()
}

fn vault(s: &Scratch) -> Vault {
    let vault = Vault::new(&StateDir::at(s.state()).unwrap());
    vault.ensure().unwrap();
    vault
}

fn store(vault: &Vault, name: &str, value: &str) {
    vault.store(name, &Secret::new(value.into())).unwrap();
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn connect(s: &Scratch, city: &Path, args: &[&str]) -> Run {
    let out = s
        .cityd()
        .arg("--city")
        .arg(city)
        .arg("connect")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

/// Bytes, inode and mtime: an untouched file keeps all three.
fn fingerprint_of(path: &Path) -> (Vec<u8>, u64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The lines of `original` must appear in `edited` in the same order, every one of them, except
/// lines for which `owned` is true.
fn assert_keeps_lines(original: &str, edited: &str, owned: impl Fn(&str) -> bool) {
    let mut rest = edited.lines();
    for line in original.lines().filter(|l| !owned(l)) {
        assert!(
            rest.any(|l| l == line),
            "the line {line:?} was lost or moved; edited file:\n{edited}"
        );
    }
}

/// A minimal HTTP/1.1 exchange with a double (for checks of the doubles' own behaviour).
fn raw_http(base: &str, request: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, response)
}

// ---- Jenkins -------------------------------------------------------------------------------

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

// ---- GitLab --------------------------------------------------------------------------------

struct GitlabLab {
    s: Scratch,
    city: PathBuf,
    double: GitlabDouble,
    vault: Vault,
}

fn gitlab_lab(opts: GitlabOptions, admin: bool, hook: &str) -> GitlabLab {
    let s = Scratch::new();
    let vault = vault(&s);
    store(&vault, "webhook-code-reviews", hook);
    store(&vault, "gitlab-api-token", &opts.token);
    if admin {
        store(&vault, "gitlab-admin-token", &opts.admin_token);
    }
    let double = GitlabDouble::start(opts).unwrap();
    let base = double.base_url();
    let city = city(&s, move |t| {
        let g = section(t, "gitlab");
        g.insert("url".into(), base.into());
        g.insert("project".into(), "articles/http-client".into());
    });
    GitlabLab {
        s,
        city,
        double,
        vault,
    }
}

#[test]
fn gitlab_from_scratch_sets_the_integration_reads_it_back_and_a_rerun_changes_nothing() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("read back"), "{}", run.stdout);
    assert!(
        !run.stdout.contains(REVIEWS_HOOK),
        "the webhook URL is a secret"
    );
    let i = lab.double.integration(42).expect("the integration is set");
    assert!(i.active);
    assert_eq!(i.webhook, REVIEWS_HOOK);
    for (event, on) in [
        ("push_events", true),
        ("merge_requests_events", true),
        ("pipeline_events", true),
        ("tag_push_events", true),
        ("issues_events", false),
        ("note_events", false),
        ("wiki_page_events", false),
    ] {
        assert_eq!(i.events.get(event), Some(&on), "{event}");
    }
    assert_eq!(i.properties["branches_to_be_notified"], "all");
    assert_eq!(i.properties["notify_only_broken_pipelines"], false);
    assert_eq!(i.properties["channel"], "code-reviews");
    // The project was found by its URL-encoded full path.
    let requests = lab.double.requests();
    assert_eq!(requests[0].path, "/api/v4/projects/articles%2Fhttp-client");
    assert_eq!(lab.double.mutating_requests(), 1);
    assert!(run.stdout.contains("OAuth application"), "{}", run.stdout);
    assert!(
        run.stdout.contains("skipped"),
        "no admin token: {}",
        run.stdout
    );

    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("gitlab: no changes"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), 1);
}

#[test]
fn gitlab_repairs_drift_and_pushes_a_new_webhook_url() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    lab.double.edit_integration(42, |i| {
        i.events.insert("pipeline_events".into(), false);
    });
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(
        run.stdout.contains("differs: pipeline_events"),
        "{}",
        run.stdout
    );
    assert_eq!(lab.double.mutating_requests(), 2);
    assert!(lab.double.integration(42).unwrap().events["pipeline_events"]);

    // GitLab never shows the webhook; the fingerprint record notices the vault's new URL.
    let new_hook = "https://mattermost.cicd.local:8065/hooks/n3w4h5o6o7k8u9r0l1a2b3c4d5";
    store(&lab.vault, "webhook-code-reviews", new_hook);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("differs: webhook"), "{}", run.stdout);
    assert_eq!(lab.double.integration(42).unwrap().webhook, new_hook);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert_eq!(lab.double.mutating_requests(), 3);
}

#[test]
fn gitlab_refusing_a_private_webhook_address_names_the_admin_setting() {
    let private_hook = "https://192.168.1.20:8065/hooks/p7r1v4t3e8h2o6o9k5x0y3z1w4";
    let lab = gitlab_lab(GitlabOptions::default(), false, private_hook);
    let run = connect(&lab.s, &lab.city, &["gitlab"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("local network are not allowed"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Allow requests to the local network from webhooks and integrations"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("allow_local_requests_from_web_hooks_and_services")
    );
    assert!(
        !run.stderr.contains(private_hook),
        "the webhook URL is a secret"
    );
    assert!(lab.double.integration(42).is_none());

    lab.double.set_allow_local_requests(true);
    ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert_eq!(lab.double.integration(42).unwrap().webhook, private_hook);
}

#[test]
fn gitlab_oauth_application_is_created_once_with_the_site_url_redirect() {
    let lab = gitlab_lab(GitlabOptions::default(), true, REVIEWS_HOOK);
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("cityd wire"), "{}", run.stdout);
    let apps = lab.double.applications();
    assert_eq!(apps.len(), 1);
    assert_eq!(
        apps[0].redirect_uri,
        "https://mattermost.cicd.local:8065/plugins/com.github.manland.mattermost-plugin-gitlab/oauth/complete"
    );
    assert_eq!(apps[0].scopes, "api read_user");
    assert!(
        !apps[0].redirect_uri.contains('\n'),
        "one redirect URI, never the LAN-IP one"
    );
    let id = lab.vault.read("gitlab-oauth-client-id").unwrap().unwrap();
    let secret = lab
        .vault
        .read("gitlab-oauth-client-secret")
        .unwrap()
        .unwrap();
    assert_eq!(id.expose(), apps[0].application_id);
    assert_eq!(secret.expose(), apps[0].secret);
    assert!(!run.stdout.contains(&apps[0].secret));
    assert_eq!(
        mode_of(&lab.vault.path_of("gitlab-oauth-client-secret")),
        0o600
    );
    let mutating = lab.double.mutating_requests();

    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("gitlab: no changes"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), mutating);
    assert_eq!(lab.double.applications().len(), 1);

    // A lost secret cannot be read back from GitLab: the application is re-created.
    std::fs::remove_file(lab.vault.path_of("gitlab-oauth-client-secret")).unwrap();
    let run = ok(connect(&lab.s, &lab.city, &["gitlab"]));
    assert!(run.stdout.contains("re-created"), "{}", run.stdout);
    let apps = lab.double.applications();
    assert_eq!(apps.len(), 1);
    assert_eq!(lab.double.mutating_requests(), mutating + 2);
    let secret = lab
        .vault
        .read("gitlab-oauth-client-secret")
        .unwrap()
        .unwrap();
    assert_eq!(secret.expose(), apps[0].secret);
}

#[test]
fn gitlab_dry_run_changes_nothing() {
    let lab = gitlab_lab(GitlabOptions::default(), true, REVIEWS_HOOK);
    let run = ok(connect(
        &lab.s,
        &lab.city,
        &["gitlab", "--dry-run", "--json"],
    ));
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["changed"], true);
    assert_eq!(report["requests"]["mutating"], 0);
    assert_eq!(lab.double.mutating_requests(), 0);
    assert!(lab.double.integration(42).is_none());
    assert!(lab.double.applications().is_empty());
    assert!(lab.vault.read("gitlab-oauth-client-id").unwrap().is_none());
    assert!(!lab.s.state().join("integrations").exists());
}

#[test]
fn gitlab_unknown_project_and_bad_token_are_explained() {
    let lab = gitlab_lab(GitlabOptions::default(), false, REVIEWS_HOOK);
    let other = city(&lab.s, |t| {
        let g = section(t, "gitlab");
        g.insert("url".into(), lab.double.base_url().into());
        g.insert("project".into(), "articles/missing".into());
    });
    let run = connect(&lab.s, &other, &["gitlab"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no project articles/missing"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("%2F"), "{}", run.stderr);

    store(&lab.vault, "gitlab-api-token", "glpat-wrong");
    let run = connect(&lab.s, &lab.city, &["gitlab"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("refused the token"), "{}", run.stderr);
    assert!(!run.stderr.contains("glpat-wrong"), "{}", run.stderr);
}

// ---- SonarQube -----------------------------------------------------------------------------

struct SonarLab {
    s: Scratch,
    city: PathBuf,
    double: SonarDouble,
    secret: String,
}

fn sonar_lab(opts: SonarOptions, relay_url: &str, project: Option<&str>) -> SonarLab {
    let s = Scratch::new();
    let vault = vault(&s);
    store(&vault, "sonarqube-admin-token", &opts.token);
    let secret = vault
        .get(SecretName::SonarqubeWebhookSecret)
        .unwrap()
        .expose()
        .to_string();
    let double = SonarDouble::start(opts).unwrap();
    let base = double.base_url();
    let (relay, project) = (relay_url.to_string(), project.map(String::from));
    let city = city(&s, move |t| {
        let q = section(t, "sonarqube");
        q.insert("url".into(), base.into());
        q.insert("relay_url".into(), relay.into());
        if let Some(p) = project {
            q.insert("project".into(), p.into());
        }
    });
    SonarLab {
        s,
        city,
        double,
        secret,
    }
}

fn version_opts(version: SonarVersion) -> SonarOptions {
    SonarOptions {
        version,
        ..SonarOptions::default()
    }
}

#[test]
fn sonarqube_without_a_relay_url_points_at_where_the_relay_listens() {
    // (relay.listen, lan.addresses) -> the URL SonarQube is given.
    for (listen, lan, expected) in [
        (
            "203.0.113.20:9555",
            "203.0.113.7",
            "http://203.0.113.20:9555/sonarqube",
        ),
        (
            "0.0.0.0:9444",
            "203.0.113.7",
            "http://203.0.113.7:9444/sonarqube",
        ),
        (
            "[::]:9180",
            "2001:db8::7",
            "http://[2001:db8::7]:9180/sonarqube",
        ),
    ] {
        let lab = sonar_lab(SonarOptions::default(), RELAY_URL, None);
        let base = lab.double.base_url();
        let city = city(&lab.s, move |t| {
            section(t, "sonarqube").insert("url".into(), base.into());
            let relay = t.entry("relay").or_insert(toml::Table::new().into());
            relay
                .as_table_mut()
                .unwrap()
                .insert("listen".into(), listen.into());
            t["lan"]
                .as_table_mut()
                .unwrap()
                .insert("addresses".into(), toml::Value::Array(vec![lan.into()]));
        });
        ok(connect(&lab.s, &city, &["sonarqube"]));
        let hooks = lab.double.webhooks();
        assert_eq!(hooks.len(), 1, "{listen}");
        assert_eq!(hooks[0].url, expected, "relay.listen {listen}");
    }
}

#[test]
fn sonarqube_every_version_gets_its_webhook_once() {
    for version in [
        SonarVersion::V9_9,
        SonarVersion::V10_0,
        SonarVersion::V10_5,
        SonarVersion::V10_6,
        SonarVersion::V2025,
    ] {
        let lab = sonar_lab(version_opts(version), RELAY_URL, None);
        let run = ok(connect(&lab.s, &lab.city, &["sonarqube"]));
        assert!(
            run.stdout.contains("created"),
            "{version:?}: {}",
            run.stdout
        );
        assert!(!run.stdout.contains(&lab.secret));
        let hooks = lab.double.webhooks();
        assert_eq!(hooks.len(), 1, "{version:?}");
        assert_eq!(hooks[0].name, "cityd-relay");
        assert_eq!(hooks[0].url, RELAY_URL);
        assert_eq!(hooks[0].secret.as_deref(), Some(lab.secret.as_str()));
        assert_eq!(hooks[0].project, None);
        assert_eq!(lab.double.mutating_requests(), 1, "{version:?}");

        // 9.9 takes only Basic `token:`; 10.0 and later take the Bearer token.
        let schemes: Vec<_> = lab
            .double
            .requests()
            .iter()
            .map(|r| (r.auth_scheme.clone(), r.status))
            .collect();
        if version == SonarVersion::V9_9 {
            assert_eq!(schemes[0], ("Bearer".to_string(), 401), "{version:?}");
            assert!(
                schemes[1..].iter().all(|(s, _)| s == "Basic"),
                "{schemes:?}"
            );
        } else {
            assert!(
                schemes.iter().all(|(s, _)| s == "Bearer"),
                "{version:?} {schemes:?}"
            );
        }

        let run = ok(connect(&lab.s, &lab.city, &["sonarqube"]));
        assert!(
            run.stdout.contains("sonarqube: no changes"),
            "{version:?}: {}",
            run.stdout
        );
        assert_eq!(lab.double.mutating_requests(), 1, "{version:?}");
    }
}

#[test]
fn sonarqube_updates_a_webhook_of_its_name_and_then_leaves_it() {
    let lab = sonar_lab(version_opts(SonarVersion::V10_6), RELAY_URL, None);
    let key = lab
        .double
        .add_webhook("cityd-relay", "http://203.0.113.99/old", None, None);
    lab.double.add_webhook(
        "jenkins",
        "http://203.0.113.50/sonarqube-webhook/",
        None,
        None,
    );
    let run = ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert!(
        run.stdout.contains("differs: url, secret"),
        "{}",
        run.stdout
    );
    let hooks = lab.double.webhooks();
    assert_eq!(hooks.len(), 2);
    let ours = hooks.iter().find(|h| h.key == key).unwrap();
    assert_eq!(ours.url, RELAY_URL);
    assert_eq!(ours.secret.as_deref(), Some(lab.secret.as_str()));
    let theirs = hooks.iter().find(|h| h.name == "jenkins").unwrap();
    assert_eq!(theirs.url, "http://203.0.113.50/sonarqube-webhook/");
    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert_eq!(lab.double.mutating_requests(), 1);
}

#[test]
fn sonarqube_has_secret_without_a_record_is_updated_once() {
    // 10.1+ shows only hasSecret: cityd cannot know the secret is its own, so it sets it once and
    // remembers its fingerprint.
    let lab = sonar_lab(version_opts(SonarVersion::V10_6), RELAY_URL, None);
    lab.double.add_webhook(
        "cityd-relay",
        RELAY_URL,
        Some("someone-elses-secret-0123456789"),
        None,
    );
    let run = ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert!(run.stdout.contains("differs: secret"), "{}", run.stdout);
    assert_eq!(
        lab.double.webhooks()[0].secret.as_deref(),
        Some(lab.secret.as_str())
    );
    let record =
        std::fs::read_to_string(lab.s.state().join("integrations/sonarqube-webhook.json")).unwrap();
    assert!(
        !record.contains(&lab.secret),
        "the record holds a fingerprint, not the secret"
    );
    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert_eq!(lab.double.mutating_requests(), 1);
}

#[test]
fn sonarqube_9_9_shows_the_secret_so_a_changed_one_is_noticed() {
    let lab = sonar_lab(version_opts(SonarVersion::V9_9), RELAY_URL, None);
    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    let key = lab.double.webhooks()[0].key.clone();
    lab.double.set_secret(&key, Some("changed-behind-our-back"));
    let run = ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert!(run.stdout.contains("differs: secret"), "{}", run.stdout);
    assert_eq!(
        lab.double.webhooks()[0].secret.as_deref(),
        Some(lab.secret.as_str())
    );
    assert_eq!(lab.double.mutating_requests(), 2);
}

#[test]
fn sonarqube_refusing_the_relay_address_explains_validate_webhooks() {
    let lab = sonar_lab(
        version_opts(SonarVersion::V10_6),
        "http://127.0.0.1:9180/sonarqube",
        None,
    );
    let run = connect(&lab.s, &lab.city, &["sonarqube"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("Invalid URL: loopback"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("sonar.validateWebhooks"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("integrations.sonarqube.relay_url"),
        "{}",
        run.stderr
    );
    assert!(lab.double.webhooks().is_empty());

    lab.double.set_validate_webhooks(false);
    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    assert_eq!(lab.double.webhooks().len(), 1);
}

#[test]
fn sonarqube_2025_also_refuses_a_private_relay_address() {
    let lan_relay = "http://192.168.1.20:9180/sonarqube";
    let lab = sonar_lab(version_opts(SonarVersion::V2025), lan_relay, None);
    let run = connect(&lab.s, &lab.city, &["sonarqube"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("site-local"), "{}", run.stderr);
    assert!(
        run.stderr.contains("sonar.validateWebhooks"),
        "{}",
        run.stderr
    );
    // 10.6 accepts the same LAN address.
    let lab = sonar_lab(version_opts(SonarVersion::V10_6), lan_relay, None);
    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
}

#[test]
fn sonarqube_double_enforces_the_secret_length_of_its_version() {
    for (version, status) in [(SonarVersion::V10_5, 200), (SonarVersion::V10_6, 400)] {
        let opts = version_opts(version);
        let token = opts.token.clone();
        let double = SonarDouble::start(opts).unwrap();
        let body = "name=x&url=http%3A%2F%2F203.0.113.1%2Fh&secret=short";
        let (got, text) = raw_http(
            &double.base_url(),
            &format!(
                "POST /api/webhooks/create HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(got, status, "{version:?}: {text}");
        if status == 400 {
            assert!(
                text.contains("Secret length must between 16 and 200"),
                "{text}"
            );
        }
    }
}

#[test]
fn sonarqube_project_webhook_and_dry_run() {
    let lab = sonar_lab(
        version_opts(SonarVersion::V10_6),
        RELAY_URL,
        Some("http-client"),
    );
    let run = ok(connect(&lab.s, &lab.city, &["sonarqube", "--dry-run"]));
    assert!(run.stdout.contains("would create"), "{}", run.stdout);
    assert!(run.stdout.contains("project http-client"), "{}", run.stdout);
    assert_eq!(lab.double.mutating_requests(), 0);
    assert!(lab.double.webhooks().is_empty());
    assert!(!lab.s.state().join("integrations").exists());

    ok(connect(&lab.s, &lab.city, &["sonarqube"]));
    let hooks = lab.double.webhooks();
    assert_eq!(hooks[0].project.as_deref(), Some("http-client"));
    assert!(
        lab.double.requests()[0]
            .path
            .ends_with("/api/webhooks/list")
    );
    let run = ok(connect(&lab.s, &lab.city, &["sonarqube", "--dry-run"]));
    assert!(run.stdout.contains("no changes"), "{}", run.stdout);
}

#[test]
fn sonarqube_tokens_without_administer_or_unknown_are_explained() {
    let opts = version_opts(SonarVersion::V10_6);
    let user_token = opts.user_token.clone();
    let lab = sonar_lab(opts, RELAY_URL, None);
    let vault = Vault::new(&StateDir::at(lab.s.state()).unwrap());
    store(&vault, "sonarqube-admin-token", &user_token);
    let run = connect(&lab.s, &lab.city, &["sonarqube"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("global Administer"), "{}", run.stderr);

    store(&vault, "sonarqube-admin-token", "squ_unknown");
    let run = connect(&lab.s, &lab.city, &["sonarqube"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("both as Bearer and as Basic"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("squ_unknown"));
}

// ---- docs/Jenkinsfile.example ----------------------------------------------------------------

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
