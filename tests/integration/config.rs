//! Integration tests: the city description through `cityd config check|show`.

use crate::common::*;

#[test]
fn check_accepts_the_default_city() {
    let s = Scratch::new();
    let stdout = run_ok(s.cityd().args(["config", "check"]));
    assert!(
        stdout.contains("valid") && stdout.contains("engineering"),
        "{stdout}"
    );
}

#[test]
fn each_invalid_case_names_field_value_and_rule_and_exits_2() {
    let base = include_str!("../../src/default-city.toml");
    let cases = [
        (
            "relay_min = 49152",
            "relay_min = 65000\nrelay_max_unused = 1",
            "relay_max_unused",
        ),
        (
            "relay_max = 65535",
            "relay_max = 40000",
            "turn.relay_min = 49152-40000",
        ),
        ("calls_port = 8444", "calls_port = 8443", "Artifactory"),
        (
            "calls_port = 8444",
            "calls_port = 8065",
            "collides with mattermost.port",
        ),
        (
            "metrics = \"127.0.0.1:8067\"",
            "metrics = \"0.0.0.0:8067\"",
            "mattermost.metrics = 0.0.0.0:8067",
        ),
        (
            "name = \"engineering\"",
            "name = \"Eng Team\"",
            "team.name = Eng Team",
        ),
        (
            "name = \"code-reviews\"",
            "name = \"code reviews\"",
            "channels[1].name = code reviews",
        ),
    ];
    for (from, to, expect) in cases {
        let s = Scratch::new();
        let text = base.replacen(from, to, 1);
        let file = s.write("city.toml", &text);
        let out = s
            .cityd()
            .args(["config", "check"])
            .arg(&file)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
        assert!(
            stderr.contains(expect),
            "case {to:?}: expected {expect:?} in\n{stderr}"
        );
        assert!(
            stderr.contains(&file.display().to_string()),
            "error must name the file: {stderr}"
        );
    }
}

#[test]
fn show_json_reports_what_auto_resolved_to_and_why() {
    let s = Scratch::new();
    let out = s
        .cityd()
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("config show --json prints JSON");
    assert_eq!(
        v["derived"]["site_url"],
        "https://mattermost.cicd.local:8065"
    );
    assert_eq!(v["city"]["team"]["name"], "engineering");
    // Either the machine has a default route (then we say which interface) or we say why not.
    if out.status.success() {
        let why = v["lan"][0]["why"].as_str().unwrap();
        assert!(why.contains("default route"), "{why}");
    } else {
        assert!(v["lan_error"].as_str().unwrap().contains("lan.addresses"));
    }
}

/// A city file states only what differs from the embedded default.
const PARTIAL_CITY: &str = "domain = \"lab.example\"\n\n[lan]\naddresses = [\"192.168.1.20\"]\n";

/// `cityd --city FILE config show ARGS`, which must succeed (the files here name literal addresses).
fn show(s: &Scratch, file: &std::path::Path, args: &[&str]) -> String {
    run_ok(
        s.cityd()
            .arg("--city")
            .arg(file)
            .args(["config", "show"])
            .args(args),
    )
}

fn show_json(s: &Scratch, file: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&show(s, file, &["--json"])).expect("config show --json prints JSON")
}

#[test]
fn a_file_with_just_domain_and_lan_is_laid_over_the_default() {
    let s = Scratch::new();
    let file = s.write("city.toml", PARTIAL_CITY);
    let checked = run_ok(s.cityd().args(["config", "check"]).arg(&file));
    assert!(
        checked.contains("valid (team engineering, 4 channels"),
        "{checked}"
    );

    let v = show_json(&s, &file);
    assert_eq!(v["city"]["domain"], "lab.example");
    assert_eq!(
        v["derived"]["site_url"],
        "https://mattermost.lab.example:8065"
    );
    assert_eq!(v["city"]["mattermost"]["calls_port"], 8444);
    assert_eq!(v["city"]["bots"].as_array().unwrap().len(), 3);
    assert_eq!(v["lan"][0]["address"], "192.168.1.20");
}

#[test]
fn show_marks_the_values_the_file_set() {
    let s = Scratch::new();
    let file = s.write(
        "city.toml",
        &format!("{PARTIAL_CITY}\n[mattermost]\nport = 9065\n\n[integrations.jenkins]\nurl = \"https://ci.lab.example\"\n"),
    );
    let text = show(&s, &file, &[]);
    for marked in [
        "domain = \"lab.example\"  # from file\n",
        "addresses = [\"192.168.1.20\"]  # from file\n",
        "port = 9065  # from file\n",
        "url = \"https://ci.lab.example\"  # from file\n",
    ] {
        assert!(text.contains(marked), "{marked:?} in\n{text}");
    }
    for default in ["\ncalls_port = 8444\n", "\nname = \"engineering\"\n"] {
        assert!(text.contains(default), "{default:?} unmarked in\n{text}");
    }
    assert!(text.contains(&file.display().to_string()), "{text}");
    // The marks are comments: what `config show` prints is itself a city file cityd accepts.
    let shown = s.write("shown.toml", &text);
    run_ok(s.cityd().args(["config", "check"]).arg(&shown));

    let v = show_json(&s, &file);
    assert_eq!(v["origins"]["file"], file.display().to_string());
    assert_eq!(
        v["origins"]["from_file"],
        serde_json::json!([
            "domain",
            "integrations.jenkins.url",
            "lan.addresses",
            "mattermost.port"
        ])
    );
}

#[test]
fn show_of_the_embedded_default_marks_nothing() {
    let s = Scratch::new();
    // The embedded city's `auto` may not resolve here (exit 1 after printing): read stdout anyway.
    let out = s.cityd().args(["config", "show"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("domain = \"cicd.local\"\n"), "{text}");
    assert!(!text.contains("# from file"), "{text}");
    let out = s
        .cityd()
        .args(["config", "show", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["origins"]["file"], serde_json::Value::Null);
    assert_eq!(v["origins"]["from_file"], serde_json::json!([]));
}

#[test]
fn an_unknown_key_in_a_partial_file_is_refused_naming_key_and_file() {
    let s = Scratch::new();
    let file = s.write(
        "city.toml",
        &format!("{PARTIAL_CITY}\n[integrations.jenkins]\ncolour = \"blue\"\n"),
    );
    let out = s
        .cityd()
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 2);
    assert!(
        stderr.contains("integrations.jenkins.colour: unknown field `colour`"),
        "{stderr}"
    );
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
}
