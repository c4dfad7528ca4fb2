//! Integration tests: the city description through `cityd config check|show`.

use crate::common::*;

#[test]
fn check_accepts_the_default_city() {
    let s = Scratch::new();
    let out = s.cityd().args(["config", "check"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
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
