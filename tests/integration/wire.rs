//! `cityd wire` and `cityd verify webhook` against the Mattermost double (local-mode socket, and
//! TCP for webhook deliveries and token mode): creation from empty, idempotence, dry-run, fault
//! injection at every mutating request, plugins, and bad-input diagnoses.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Output;

use cityd_testcontainers::mattermost::{DoubleOptions, MattermostDouble, Snapshot, make_bundle};
use serde_json::{Value, json};

use crate::common::{Scratch, described, require_tool, stderr_of_exit, stdout_of_success};

/// A scratch state dir plus a double serving local mode on a socket inside it and TCP.
struct Lab {
    s: Scratch,
    mm: MattermostDouble,
    socket: PathBuf,
    city: Option<PathBuf>,
}

impl Lab {
    fn new() -> Self {
        Self::with_config(Value::Null)
    }

    fn with_config(config: Value) -> Self {
        let s = Scratch::new();
        let socket = s.path().join("mattermost_local.socket");
        let mm = MattermostDouble::start_blocking(DoubleOptions {
            socket_path: Some(socket.clone()),
            tcp: true,
            config,
        })
        .expect("start the Mattermost double");
        Self {
            s,
            mm,
            socket,
            city: None,
        }
    }

    fn use_city(&mut self, toml: &str) {
        self.city = Some(self.s.write("city.toml", toml));
    }

    fn cityd(&self) -> assert_cmd::Command {
        let mut c = self.s.cityd();
        if let Some(city) = &self.city {
            c.arg("--city").arg(city);
        }
        c
    }

    fn wire(&self, extra: &[&str]) -> Output {
        self.cityd()
            .arg("wire")
            .arg("--socket")
            .arg(&self.socket)
            .args(["--timeout", "5s"])
            .args(extra)
            .output()
            .expect("run cityd wire")
    }

    fn verify(&self, extra: &[&str]) -> Output {
        self.cityd()
            .args(["verify", "webhook", "--timeout", "5s", "--base-url"])
            .arg(self.mm.base_url().expect("the double serves TCP"))
            .arg("--socket")
            .arg(&self.socket)
            .args(extra)
            .output()
            .expect("run cityd verify webhook")
    }

    fn secret(&self, name: &str) -> String {
        let out = self
            .cityd()
            .args(["secrets", "get", name])
            .output()
            .expect("run cityd secrets get");
        assert!(
            out.status.success(),
            "secrets get {name}: {}",
            described(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn ensure_secrets(&self) {
        stdout_of_success(&self.cityd().args(["secrets", "ensure"]).output().unwrap());
    }
}

/// The end state that matters, without ids or timestamps: what "converged" means.
fn shape(s: &Snapshot) -> Value {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let channels: Vec<Value> = {
        let mut c: Vec<_> = s
            .channels
            .iter()
            .filter(|c| !c.team.is_empty())
            .map(|c| json!([c.team, c.name, c.display_name, sorted(c.members.clone())]))
            .collect();
        c.sort_by_key(|v| v.to_string());
        c
    };
    let hooks: Vec<Value> = {
        let mut h: Vec<_> = s
            .hooks
            .iter()
            .map(|h| json!([h.team, h.channel, h.owner, h.display_name, h.channel_locked]))
            .collect();
        h.sort_by_key(|v| v.to_string());
        h
    };
    let users = sorted(
        s.users
            .iter()
            .map(|u| format!("{} bot={} tokens={}", u.username, u.is_bot, u.tokens))
            .collect(),
    );
    let bots = sorted(
        s.bots
            .iter()
            .map(|b| format!("{} owner={}", b.username, b.owner))
            .collect(),
    );
    let teams: Vec<Value> = s
        .teams
        .iter()
        .map(|t| json!([t.name, t.display_name, sorted(t.members.clone())]))
        .collect();
    json!({"teams": teams, "channels": channels, "users": users, "bots": bots, "hooks": hooks})
}

const BOTS: [&str; 3] = ["jenkins-bot", "gitlab-bot", "sonarqube-bot"];

#[test]
fn wire_builds_exactly_the_default_city_then_changes_nothing() {
    let lab = Lab::new();
    let out = lab.wire(&[]);
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("wired:"), "{stdout}");
    let snap = lab.mm.snapshot();

    // One team, the city's channels plus what Mattermost creates with every team.
    assert_eq!(snap.teams.len(), 1);
    let team = &snap.teams[0];
    assert_eq!(
        (team.name.as_str(), team.display_name.as_str()),
        ("engineering", "Engineering")
    );
    let members: BTreeSet<_> = team.members.iter().map(String::as_str).collect();
    assert_eq!(
        members,
        BTreeSet::from(["admin", "jenkins-bot", "gitlab-bot", "sonarqube-bot"])
    );
    let channels: BTreeSet<_> = snap.channels.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        channels,
        BTreeSet::from([
            "builds",
            "code-reviews",
            "alerts",
            "town-square",
            "off-topic"
        ])
    );
    let channel = |name: &str| snap.channels.iter().find(|c| c.name == name).unwrap();
    for (ch, bot) in [
        ("builds", "jenkins-bot"),
        ("code-reviews", "gitlab-bot"),
        ("alerts", "sonarqube-bot"),
    ] {
        let m: BTreeSet<_> = channel(ch).members.iter().map(String::as_str).collect();
        assert_eq!(m, BTreeSet::from(["admin", bot]), "members of #{ch}");
    }
    assert!(
        channel("town-square")
            .members
            .contains(&"admin".to_string())
    );
    assert_eq!(channel("alerts").display_name, "Alerts");

    // Three bots, each its own owner, each with exactly one token; no other users appeared.
    let mut bots: Vec<_> = snap
        .bots
        .iter()
        .map(|b| (b.username.as_str(), b.owner.as_str()))
        .collect();
    bots.sort();
    assert_eq!(
        bots,
        [
            ("gitlab-bot", "gitlab-bot"),
            ("jenkins-bot", "jenkins-bot"),
            ("sonarqube-bot", "sonarqube-bot")
        ]
    );
    assert_eq!(snap.users.len(), 4, "{:?}", snap.users);
    for bot in BOTS {
        let u = snap.users.iter().find(|u| u.username == bot).unwrap();
        assert!(u.is_bot && u.tokens == 1, "{u:?}");
    }
    assert_eq!(snap.tokens, 3);

    // Three hooks, owned by their bots, locked, URLs only in the vault.
    let mut hooks: Vec<_> = snap
        .hooks
        .iter()
        .map(|h| {
            (
                h.channel.as_str(),
                h.owner.as_str(),
                h.display_name.as_str(),
                h.channel_locked,
            )
        })
        .collect();
    hooks.sort();
    assert_eq!(
        hooks,
        [
            ("alerts", "sonarqube-bot", "SonarQube alerts", true),
            ("builds", "jenkins-bot", "Jenkins builds", true),
            ("code-reviews", "gitlab-bot", "GitLab reviews", true),
        ]
    );
    let all_output = format!("{}{}", stdout, String::from_utf8_lossy(&out.stderr));
    for h in &snap.hooks {
        let url = lab.secret(&format!("webhook-{}", h.channel));
        assert_eq!(
            url,
            format!("https://mattermost.cicd.local:8065/hooks/{}", h.id)
        );
        assert!(
            !all_output.contains(&h.id),
            "hook id leaked into the output"
        );
    }
    for bot in BOTS {
        let token = lab.secret(&format!("mattermost-bot-token-{bot}"));
        assert_eq!(token.len(), 26, "a Mattermost id-shaped token");
        assert!(!all_output.contains(&token), "token leaked into the output");
    }

    // Delivery through every hook, read back through the API.
    let before = lab.mm.mutating_requests();
    let verified = stdout_of_success(&lab.verify(&[]));
    for ch in ["builds", "alerts", "code-reviews"] {
        assert!(verified.contains(&format!("ok    #{ch}")), "{verified}");
    }
    assert!(
        verified.contains("the SiteURL names mattermost.cicd.local:8065"),
        "{verified}"
    );
    let posts: Vec<_> = lab
        .mm
        .snapshot()
        .posts
        .into_iter()
        .filter(|p| p.kind.is_empty())
        .collect();
    assert_eq!(posts.len(), 3, "{posts:?}");
    for p in &posts {
        assert!(p.message.contains("cityd-verify-"), "{p:?}");
        let hook = snap.hooks.iter().find(|h| h.channel == p.channel).unwrap();
        assert_eq!(p.user, hook.owner, "posted as the hook's bot");
    }
    for h in &snap.hooks {
        assert!(!verified.contains(&h.id), "hook id leaked by verify");
    }

    // Second run: nothing to do, no changing request.
    let again = stdout_of_success(&lab.wire(&[]));
    assert!(again.contains("no changes"), "{again}");
    assert_eq!(
        lab.mm.mutating_requests(),
        before,
        "the second run changed something"
    );
    assert_eq!(shape(&lab.mm.snapshot()), shape(&snap));
}

/// The default city without #alerts, its bot and its hook.
fn city_without_alerts() -> String {
    let mut text = String::new();
    for block in cityd::city::DEFAULT_CITY_TOML.split("\n\n") {
        let drop = block.contains("name = \"alerts\"")
            || block.contains("name = \"sonarqube-bot\"")
            || block.contains("channel = \"alerts\"");
        if !drop {
            text.push_str(block);
            text.push_str("\n\n");
        }
    }
    text
}

#[test]
fn dry_run_on_a_half_wired_server_lists_exactly_the_missing_objects() {
    let mut lab = Lab::new();
    lab.use_city(&city_without_alerts());
    stdout_of_success(&lab.wire(&[]));
    lab.city = None;
    let before = lab.mm.snapshot();
    let mutations = lab.mm.mutating_requests();

    let out = lab.wire(&["--dry-run", "--json"]);
    let report: Value = serde_json::from_slice(&stdout_of_success(&out).into_bytes()).unwrap();
    assert_eq!(report["dry_run"], true);
    let changes: Vec<String> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["change"] != "unchanged")
        .map(|i| {
            format!(
                "{} {} {}",
                i["change"].as_str().unwrap(),
                i["kind"].as_str().unwrap(),
                i["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            "create channel #alerts",
            "create bot sonarqube-bot",
            "create team_member sonarqube-bot in team engineering",
            "create channel_member admin in #alerts",
            "create channel_member sonarqube-bot in #alerts",
            "create token sonarqube-bot",
            "create webhook #alerts",
            "create vault webhook-alerts",
        ]
    );
    assert_eq!(
        lab.mm.mutating_requests(),
        mutations,
        "--dry-run changed the server"
    );
    assert_eq!(lab.mm.snapshot(), before);

    // The human-readable plan says the same.
    let plain = stdout_of_success(&lab.wire(&["--dry-run"]));
    assert!(plain.contains("dry run: nothing is changed"), "{plain}");
    assert!(
        plain.contains("create     channel         #alerts"),
        "{plain}"
    );
    assert!(
        plain.contains("unchanged  channel         #builds"),
        "{plain}"
    );
    assert!(plain.contains("would change 8:"), "{plain}");
    assert_eq!(lab.mm.mutating_requests(), mutations);
}

#[test]
fn every_failed_mutation_names_its_object_and_a_rerun_converges() {
    let reference = Lab::new();
    stdout_of_success(&reference.wire(&[]));
    let n = reference.mm.mutating_requests();
    let end_state = shape(&reference.mm.snapshot());
    assert!(
        n >= 25,
        "a cold wire of the default city makes {n} changing requests"
    );

    let object = regex_like_object();
    for k in 1..=n {
        let lab = Lab::new();
        lab.mm.fail_nth_mutation(k);
        let stderr = stderr_of_exit(&lab.wire(&[]), 1);
        assert!(
            stderr.contains("failed: ") && stderr.contains("Mattermost answered 500"),
            "k={k}: {stderr}"
        );
        assert!(
            object.iter().any(|o| stderr.contains(o)),
            "k={k} names no object: {stderr}"
        );
        stdout_of_success(&lab.wire(&[]));
        assert_eq!(
            shape(&lab.mm.snapshot()),
            end_state,
            "k={k}: the rerun did not converge"
        );
        let settled = lab.mm.mutating_requests();
        assert!(
            stdout_of_success(&lab.wire(&[])).contains("no changes"),
            "k={k}"
        );
        assert_eq!(lab.mm.mutating_requests(), settled, "k={k}");
        for ch in ["builds", "alerts", "code-reviews"] {
            let url = lab.secret(&format!("webhook-{ch}"));
            let hook = lab
                .mm
                .snapshot()
                .hooks
                .into_iter()
                .find(|h| h.channel == ch)
                .unwrap();
            assert!(
                url.ends_with(&hook.id),
                "k={k}: vault URL of #{ch} is stale"
            );
        }
    }
}

/// The ways a failure message names its object.
fn regex_like_object() -> Vec<String> {
    let mut v = vec![
        "creating team engineering failed".to_string(),
        "creating channel #".into(),
        "adding ".into(),
    ];
    for bot in BOTS {
        v.push(format!("creating bot {bot} failed"));
        v.push(format!("creating the token of bot {bot} failed"));
    }
    for ch in ["builds", "alerts", "code-reviews"] {
        v.push(format!("creating incoming webhook for #{ch} failed"));
    }
    v
}

fn jenkins_city(lab: &Lab, bundle: &[u8], pinned: &[u8]) -> String {
    let path = lab.s.path().join("jenkins-1.1.0.tar.gz");
    std::fs::write(&path, bundle).unwrap();
    let sri = cityd::nixhash::Sri::of_bytes(pinned).to_string();
    format!(
        "{}\n[plugins.jenkins]\nsource = \"{}\"\nsri = \"{sri}\"\nversion = \"1.1.0\"\njenkins_url = \"https://jenkins.cicd.local:8080\"\n",
        cityd::city::DEFAULT_CITY_TOML,
        path.display()
    )
}

fn jenkins_bundle() -> Vec<u8> {
    make_bundle(
        &json!({"id": "jenkins", "name": "Jenkins", "version": "1.1.0", "min_server_version": "5.12.0"}),
        &[("server/dist/plugin-linux-amd64", b"\x7fELF")],
    )
}

fn plugin_requests(lab: &Lab) -> Vec<String> {
    lab.mm
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[test]
fn jenkins_plugin_settings_are_written_before_it_is_enabled() {
    let mut lab = Lab::new();
    let bundle = jenkins_bundle();
    let city = jenkins_city(&lab, &bundle, &bundle);
    lab.use_city(&city);
    lab.ensure_secrets();
    let stdout = stdout_of_success(&lab.wire(&[]));
    assert!(
        stdout.contains("uploaded   plugin bundle   jenkins (1.1.0 from "),
        "{stdout}"
    );
    assert!(
        stdout.contains("enabled    plugin          jenkins (running)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("updated    plugin settings jenkins (jenkinsurl, encryptionkey)"),
        "{stdout}"
    );

    let calls = plugin_requests(&lab);
    let pos = |what: &str| {
        calls
            .iter()
            .position(|c| c == what)
            .unwrap_or_else(|| panic!("{what} not in {calls:?}"))
    };
    let upload = pos("POST /api/v4/plugins");
    let enable = pos("POST /api/v4/plugins/jenkins/enable");
    let settings = calls
        .iter()
        .position(|c| c == "PUT /api/v4/config/patch")
        .unwrap();
    assert!(settings < upload && upload < enable, "{calls:?}");
    // Uploads were enabled just around the upload.
    assert_eq!(calls[upload - 1], "PUT /api/v4/config/patch");
    assert_eq!(calls[upload + 1], "PUT /api/v4/config/patch");

    let snap = lab.mm.snapshot();
    let jenkins = snap.plugins.iter().find(|p| p.id == "jenkins").unwrap();
    assert_eq!((jenkins.version.as_str(), jenkins.state_code), ("1.1.0", 2));
    let cfg = &snap.config["PluginSettings"];
    assert_eq!(cfg["EnableUploads"], false);
    assert_eq!(
        cfg["Plugins"]["jenkins"]["jenkinsurl"],
        "https://jenkins.cicd.local:8080"
    );
    assert_eq!(
        cfg["Plugins"]["jenkins"]["encryptionkey"],
        lab.secret("jenkins-plugin-encryption-key")
    );
    assert!(!stdout.contains(&lab.secret("jenkins-plugin-encryption-key")));

    let before = lab.mm.mutating_requests();
    assert!(stdout_of_success(&lab.wire(&[])).contains("no changes"));
    assert_eq!(lab.mm.mutating_requests(), before);
}

#[test]
fn a_wrong_plugin_hash_is_refused_before_anything_changes() {
    let mut lab = Lab::new();
    let bundle = jenkins_bundle();
    let city = jenkins_city(&lab, &bundle, b"some other bundle");
    lab.use_city(&city);
    lab.ensure_secrets();
    let stderr = stderr_of_exit(&lab.wire(&[]), 1);
    assert!(stderr.contains("refusing to upload"), "{stderr}");
    assert!(stderr.contains("plugins.jenkins.sri"), "{stderr}");
    assert!(
        stderr.contains(&cityd::nixhash::Sri::of_bytes(&bundle).to_string()),
        "{stderr}"
    );
    assert_eq!(lab.mm.mutating_requests(), 0, "{:?}", plugin_requests(&lab));
    let snap = lab.mm.snapshot();
    assert!(snap.plugins.is_empty());
    assert_eq!(snap.config["PluginSettings"]["EnableUploads"], false);
}

#[test]
fn a_failed_upload_still_restores_enable_uploads() {
    let mut lab = Lab::new();
    let bundle = jenkins_bundle();
    let city = jenkins_city(&lab, &bundle, &bundle);
    lab.use_city(&city);
    lab.ensure_secrets();
    // Find the upload's position among the changing requests of a cold run, on a twin server.
    let twin = {
        let mut twin = Lab::new();
        twin.use_city(&jenkins_city(&twin, &bundle, &bundle));
        twin.ensure_secrets();
        stdout_of_success(&twin.wire(&[]));
        twin
    };
    let k = plugin_requests(&twin)
        .iter()
        .position(|c| c == "POST /api/v4/plugins")
        .unwrap() as u64
        + 1;
    lab.mm.fail_nth_mutation(k);
    let stderr = stderr_of_exit(&lab.wire(&[]), 1);
    assert!(
        stderr.contains("uploading the bundle of plugin jenkins failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("EnableUploads was set back to false"),
        "{stderr}"
    );
    let calls = plugin_requests(&lab);
    assert_eq!(
        calls.last().map(String::as_str),
        Some("PUT /api/v4/config/patch"),
        "{calls:?}"
    );
    assert_eq!(
        lab.mm.snapshot().config["PluginSettings"]["EnableUploads"],
        false
    );
    // The rerun installs it.
    stdout_of_success(&lab.wire(&[]));
    assert_eq!(lab.mm.snapshot().plugins[0].state_code, 2);
}

#[test]
fn a_plugin_that_fails_to_start_is_reported_as_a_failure() {
    let mut lab = Lab::new();
    let bundle = jenkins_bundle();
    let city = jenkins_city(&lab, &bundle, &bundle);
    lab.use_city(&city);
    lab.ensure_secrets();
    lab.mm.fail_plugin_start("jenkins");
    let stderr = stderr_of_exit(&lab.wire(&["--plugin-timeout", "1s"]), 1);
    assert!(
        stderr.contains("plugin jenkins (jenkins) was enabled but is not running after 1s"),
        "{stderr}"
    );
    assert!(stderr.contains("failed to start"), "{stderr}");
    assert!(stderr.contains("jenkins_url"), "{stderr}");
}

#[test]
fn wire_over_a_url_with_a_token_converges_too() {
    let lab = Lab::with_config(json!({"ServiceSettings": {"EnableBotAccountCreation": true}}));
    let token = lab.s.write("admin.token", &lab.mm.admin_token());
    let run = || {
        lab.cityd()
            .args(["wire", "--timeout", "5s", "--url"])
            .arg(lab.mm.base_url().unwrap())
            .arg("--token-file")
            .arg(&token)
            .output()
            .unwrap()
    };
    let stdout = stdout_of_success(&run());
    assert!(
        stdout.contains("wiring Mattermost at http://127.0.0.1:"),
        "{stdout}"
    );
    let snap = lab.mm.snapshot();
    assert_eq!(snap.bots.len(), 3);
    assert_eq!(snap.hooks.len(), 3);
    assert!(snap.hooks.iter().all(|h| h.channel_locked));
    let before = lab.mm.mutating_requests();
    assert!(stdout_of_success(&run()).contains("no changes"));
    assert_eq!(lab.mm.mutating_requests(), before);
    // Verify with the API over the same token.
    let out = lab
        .cityd()
        .args(["verify", "webhook", "--channel", "builds", "--url"])
        .arg(lab.mm.base_url().unwrap())
        .arg("--token-file")
        .arg(&token)
        .arg("--base-url")
        .arg(lab.mm.base_url().unwrap())
        .output()
        .unwrap();
    assert!(stdout_of_success(&out).contains("ok    #builds"));
}

#[test]
fn a_missing_socket_is_diagnosed_with_what_to_check() {
    let s = Scratch::new();
    let out = s
        .cityd()
        .args(["wire", "--timeout", "1500ms", "--socket"])
        .arg(s.path().join("nowhere/mattermost_local.socket"))
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 1);
    assert!(
        stderr.contains("nowhere/mattermost_local.socket does not exist"),
        "{stderr}"
    );
    assert!(stderr.contains("is Mattermost running"), "{stderr}");
    assert!(stderr.contains("bind-mounted"), "{stderr}");
    assert!(stderr.contains("within 1.5s"), "{stderr}");
    assert!(
        stderr.contains("waiting for Mattermost at unix socket"),
        "progress line: {stderr}"
    );
}

#[test]
fn the_default_socket_lives_under_the_state_dir() {
    let s = Scratch::new();
    let out = s
        .cityd()
        .args(["wire", "--timeout", "0s"])
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 1);
    let expected = s.state().join("mattermost/run/mattermost_local.socket");
    assert!(stderr.contains(&expected.display().to_string()), "{stderr}");
}

#[test]
fn a_socket_the_caller_may_not_open_is_diagnosed_at_once() {
    require_tool("setpriv", "util-linux");
    assert!(
        cityd::state::is_root(),
        "this test switches to the nobody user and needs root; run it through scripts/test.sh as root"
    );
    let lab = Lab::new();
    // Let nobody reach the socket file itself, which the double creates 0600 root-owned (as the
    // real server does for UID 2000): the refusal then comes from the socket's own mode.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(lab.s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&lab.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_cityd"))
        .arg("--state-dir")
        .arg(lab.s.path().join("nobody-state"))
        .args(["wire", "--timeout", "30s", "--socket"])
        .arg(&lab.socket)
        .env_remove("CITYD_CITY")
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 1);
    assert!(
        stderr.contains("permission denied on the socket"),
        "{stderr}"
    );
    assert!(stderr.contains("run as root or UID 2000"), "{stderr}");
    // Fails at once instead of waiting out the deadline.
    assert!(!stderr.contains("waiting for Mattermost"), "{stderr}");
    assert_eq!(lab.mm.mutating_requests(), 0);
}

#[test]
fn a_server_that_never_becomes_ready_hits_the_deadline() {
    let lab = Lab::new();
    lab.mm.set_ready(false);
    let out = lab
        .s
        .cityd()
        .args(["wire", "--timeout", "1500ms", "--socket"])
        .arg(&lab.socket)
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 1);
    assert!(
        stderr.contains("did not answer GET /api/v4/system/ping with OK within 1.5s"),
        "{stderr}"
    );
    assert!(stderr.contains("HTTP 503"), "{stderr}");
    assert!(
        stderr.contains("waiting for Mattermost at unix socket"),
        "{stderr}"
    );
    assert_eq!(lab.mm.mutating_requests(), 0);
}

#[test]
fn disabled_incoming_webhooks_stop_wire_before_any_change() {
    let lab = Lab::with_config(json!({"ServiceSettings": {"EnableIncomingWebhooks": false}}));
    let out = lab.wire(&[]);
    let stderr = stderr_of_exit(&out, 1);
    assert!(
        stderr.contains("incoming webhooks are disabled on the server"),
        "{stderr}"
    );
    assert!(
        stderr.contains("MM_SERVICESETTINGS_ENABLEINCOMINGWEBHOOKS=true"),
        "{stderr}"
    );
    assert!(stderr.contains("changed nothing"), "{stderr}");
    assert_eq!(lab.mm.mutating_requests(), 0);
}

#[test]
fn verify_webhook_needs_a_wired_city_and_known_channels() {
    let lab = Lab::new();
    let stderr = stderr_of_exit(&lab.verify(&[]), 1);
    assert!(stderr.contains("no webhook URL in the vault"), "{stderr}");
    assert!(stderr.contains("run `cityd wire` first"), "{stderr}");
    let out = lab.verify(&["--channel", "town-square"]);
    assert!(stderr_of_exit(&out, 2).contains("#town-square has no webhook"));
}

#[test]
fn verify_webhook_reports_a_hook_the_server_no_longer_has() {
    let lab = Lab::new();
    stdout_of_success(&lab.wire(&[]));
    // Replace the stored URL with one naming a hook that does not exist.
    let vault = lab.s.state().join("secrets/webhook-builds");
    std::fs::write(
        &vault,
        "https://mattermost.cicd.local:8065/hooks/aaaaaaaaaaaaaaaaaaaaaaaaaa\n",
    )
    .unwrap();
    let out = lab.verify(&["--channel", "builds", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", described(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = report[0]["error"].as_str().unwrap();
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(err.contains("rerun `cityd wire`"), "{err}");
    assert!(
        !err.contains("aaaaaaaaaaaaaaaaaaaaaaaaaa"),
        "the hook id leaked: {err}"
    );
}

/// Installs a bundle the way the image's prepackaged plugins arrive: present but not enabled.
fn preinstall(lab: &Lab, manifest: Value) {
    use cityd::mattermost::{ApiClient, Target};
    let client = ApiClient::new(Target::Socket(lab.socket.clone())).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        client
            .patch_config(&json!({"PluginSettings": {"EnableUploads": true}}))
            .await
            .unwrap();
        client
            .upload_plugin(make_bundle(&manifest, &[]), "gitlab.tar.gz", true)
            .await
            .unwrap();
        client
            .patch_config(&json!({"PluginSettings": {"EnableUploads": false}}))
            .await
            .unwrap();
    });
}

#[test]
fn gitlab_and_jenkins_settings_share_the_plugins_map() {
    let mut lab = Lab::with_config(json!({
        "ServiceSettings": {"SiteURL": "https://mattermost.cicd.local:8065"},
        "PluginSettings": {"Plugins": {"someone.else": {"keep": "me"}}},
    }));
    let gitlab = "com.github.manland.mattermost-plugin-gitlab";
    preinstall(
        &lab,
        json!({"id": gitlab, "name": "GitLab", "version": "1.13.0"}),
    );
    let bundle = jenkins_bundle();
    let city = format!(
        "{}[plugins.gitlab]\nurl = \"https://gitlab.cicd.local\"\nenable_private_repo = true\ncode_preview = \"privateAndPublic\"\n",
        jenkins_city(&lab, &bundle, &bundle)
    );
    lab.use_city(&city);
    lab.ensure_secrets();

    // Without an OAuth application the GitLab plugin is configured but not enabled.
    let out = lab.wire(&[]);
    stdout_of_success(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no OAuth application in the vault"),
        "{stderr}"
    );
    let snap = lab.mm.snapshot();
    let state = |id: &str| snap.plugins.iter().find(|p| p.id == id).unwrap().state_code;
    assert_eq!(state("jenkins"), 2);
    assert_ne!(state(gitlab), 2);

    // With one, a rerun enables it; every plugin's settings survive the whole-map patches.
    let secrets = lab.s.state().join("secrets");
    for (name, value) in [
        ("gitlab-oauth-client-id", "0123456789abcdef"),
        (
            "gitlab-oauth-client-secret",
            "gloas-0123456789abcdef0123456789",
        ),
    ] {
        std::fs::write(secrets.join(name), format!("{value}\n")).unwrap();
    }
    let stdout = stdout_of_success(&lab.wire(&[]));
    assert!(
        stdout.contains("enabled    plugin          gitlab (running)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("jenkins (running)"),
        "jenkins was already running: {stdout}"
    );
    let snap = lab.mm.snapshot();
    let state = |id: &str| snap.plugins.iter().find(|p| p.id == id).unwrap().state_code;
    assert_eq!((state("jenkins"), state(gitlab)), (2, 2));
    let plugins = &snap.config["PluginSettings"]["Plugins"];
    assert_eq!(plugins["someone.else"]["keep"], "me");
    assert_eq!(
        plugins["jenkins"]["jenkinsurl"],
        "https://jenkins.cicd.local:8080"
    );
    let g = &plugins[gitlab];
    assert_eq!(g["gitlaburl"], "https://gitlab.cicd.local");
    assert_eq!(g["gitlaboauthclientid"], "0123456789abcdef");
    assert_eq!(
        g["gitlaboauthclientsecret"],
        "gloas-0123456789abcdef0123456789"
    );
    assert_eq!(
        g["webhooksecret"],
        lab.secret("gitlab-plugin-webhook-secret")
    );
    assert_eq!(
        g["encryptionkey"],
        lab.secret("gitlab-plugin-encryption-key")
    );
    assert_eq!(g["enableprivaterepo"], true);
    assert_eq!(g["enablecodepreview"], "privateAndPublic");

    let before = lab.mm.mutating_requests();
    assert!(stdout_of_success(&lab.wire(&[])).contains("no changes"));
    assert_eq!(lab.mm.mutating_requests(), before);
}

#[test]
fn a_prepackaged_plugin_that_is_not_installed_blocks_before_any_change() {
    let mut lab = Lab::with_config(json!({
        "ServiceSettings": {"SiteURL": "https://mattermost.cicd.local:8065"},
    }));
    lab.use_city(&format!(
        "{}\n[plugins.gitlab]\nurl = \"https://gitlab.cicd.local\"\n",
        cityd::city::DEFAULT_CITY_TOML
    ));
    lab.ensure_secrets();
    let stderr = stderr_of_exit(&lab.wire(&[]), 1);
    assert!(
        stderr.contains(
            "plugin gitlab (com.github.manland.mattermost-plugin-gitlab) is not installed"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("PluginStates"), "{stderr}");
    assert_eq!(lab.mm.mutating_requests(), 0);
}

#[test]
fn drift_in_names_is_updated_in_place() {
    let mut lab = Lab::new();
    stdout_of_success(&lab.wire(&[]));
    let before = lab.mm.snapshot();
    let city = cityd::city::DEFAULT_CITY_TOML
        .replace(
            "display_name = \"Engineering\"",
            "display_name = \"Engineering Team\"",
        )
        .replace(
            "purpose = \"Jenkins build results\"",
            "purpose = \"Every Jenkins build\"",
        )
        .replace(
            "display_name = \"Jenkins\"",
            "display_name = \"Jenkins CI\"",
        );
    lab.use_city(&city);
    let plan = stdout_of_success(&lab.wire(&["--dry-run"]));
    assert!(
        plan.contains("update     team            engineering (display name)"),
        "{plan}"
    );
    assert!(
        plan.contains("update     channel         #builds (purpose)"),
        "{plan}"
    );
    assert!(
        plan.contains("update     bot             jenkins-bot (display name)"),
        "{plan}"
    );
    assert!(plan.contains("would change 3:"), "{plan}");
    stdout_of_success(&lab.wire(&[]));
    let after = lab.mm.snapshot();
    assert_eq!(after.teams[0].display_name, "Engineering Team");
    assert_eq!(
        after.teams[0].id, before.teams[0].id,
        "updated, not recreated"
    );
    assert_eq!(after.hooks, before.hooks);
    assert!(stdout_of_success(&lab.wire(&[])).contains("no changes"));
}

#[test]
fn a_lost_token_is_replaced_and_the_unusable_one_revoked() {
    let lab = Lab::new();
    stdout_of_success(&lab.wire(&[]));
    let old = lab.secret("mattermost-bot-token-jenkins-bot");
    std::fs::remove_file(
        lab.s
            .state()
            .join("secrets/mattermost-bot-token-jenkins-bot"),
    )
    .unwrap();
    let stdout = stdout_of_success(&lab.wire(&[]));
    assert!(
        stdout.contains("created    bot token       jenkins-bot"),
        "{stdout}"
    );
    assert!(
        stdout.contains("updated    bot token       jenkins-bot (revoke a token"),
        "{stdout}"
    );
    let new = lab.secret("mattermost-bot-token-jenkins-bot");
    assert_ne!(new, old);
    let snap = lab.mm.snapshot();
    let jenkins = snap
        .users
        .iter()
        .find(|u| u.username == "jenkins-bot")
        .unwrap();
    assert_eq!(jenkins.tokens, 1, "the old token was revoked");
    assert!(stdout_of_success(&lab.wire(&[])).contains("no changes"));
}
