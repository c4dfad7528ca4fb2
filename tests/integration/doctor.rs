//! Integration tests: `cityd doctor` on blog-style files and on the city's own state.

use crate::common::*;

fn findings(out: &std::process::Output) -> Vec<serde_json::Value> {
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .expect("doctor --json prints a JSON array")
}

#[test]
fn blog_env_file_reports_every_known_pitfall_and_exits_1() {
    let out = cityd()
        .args(["doctor", "--json", "--env"])
        .arg(fixture("blog/mattermost.env"))
        .output()
        .unwrap();
    stderr_of_exit(&out, 1);
    let f = findings(&out);
    let has = |code: &str, key: &str| {
        f.iter()
            .any(|x| x["code"] == code && x["subject"].as_str().unwrap().starts_with(key))
    };
    assert!(
        has(
            "quoted-value",
            "MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS"
        ),
        "{f:#?}"
    );
    assert!(has("quoted-value", "MM_TEAMSETTINGS_SITENAME"));
    assert!(has(
        "static-turn-credential",
        "MM_CALLS_ICE_SERVERS_CONFIGS"
    ));
    assert!(has(
        "plugin-states-pinned",
        "MM_PLUGINSETTINGS_PLUGINSTATES"
    ));
    assert!(has("cors-wildcard", "MM_SERVICESETTINGS_ALLOWCORSFROM"));
    assert!(has(
        "insecure-outgoing",
        "MM_SERVICESETTINGS_ENABLEINSECUREOUTGOINGCONNECTIONS"
    ));
    let untrusted = f
        .iter()
        .find(|x| {
            x["code"] == "quoted-value"
                && x["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with("MM_SERVICESETTINGS_ALLOWED")
        })
        .unwrap();
    assert!(
        untrusted["subject"].as_str().unwrap().contains("line 9"),
        "findings name the line: {untrusted}"
    );
    assert!(
        untrusted["fix"]
            .as_str()
            .unwrap()
            .contains("=127.0.0.1/8 172.30.0.0/24 192.168.1.20/32"),
        "the fix is the unquoted line"
    );
    // Every finding carries a fix.
    assert!(f.iter().all(|x| !x["fix"].as_str().unwrap().is_empty()));
}

#[test]
fn findings_never_print_secret_values() {
    let s = Scratch::new();
    let quoted_secret = std::fs::read_to_string(fixture("blog/mattermost.env"))
        .unwrap()
        .replace(
            "MM_SQLSETTINGS_ATRESTENCRYPTKEY=0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "MM_SQLSETTINGS_ATRESTENCRYPTKEY=\"0f1e2d3c4b5a69788796a5b4c3d2e1f0\"",
        );
    let env = s.write("mattermost.env", &quoted_secret);
    let out = cityd()
        .args(["doctor", "--env"])
        .arg(&env)
        .arg("--secrets")
        .arg(fixture("blog/cicd.env"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("remove the surrounding quotes from MM_SQLSETTINGS_ATRESTENCRYPTKEY"),
        "{text}"
    );
    for secret in [
        "8d3c1a6f0e5b4d2c9a7f1e3b5d7c9a1f",
        "Qm9vZ2llV29vZ2ll",
        "ffeeddccbbaa9988",
        "0f1e2d3c4b5a6978",
    ] {
        assert!(
            !text.contains(secret),
            "doctor output leaks {secret}:\n{text}"
        );
    }
}

#[test]
fn blog_secrets_file_shapes_are_checked() {
    let s = Scratch::new();
    let bad = std::fs::read_to_string(fixture("blog/cicd.env"))
        .unwrap()
        .replace(
            "MATTERMOST_JENKINS_PLUGIN_KEY='ffeeddccbbaa99887766554433221100'",
            "MATTERMOST_JENKINS_PLUGIN_KEY=ffeeddccbbaa9988776655443322110",
        );
    let file = s.write("cicd.env", &bad);
    let out = cityd()
        .args(["doctor", "--json", "--secrets"])
        .arg(&file)
        .output()
        .unwrap();
    stderr_of_exit(&out, 1);
    let f = findings(&out);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["code"], "secret-shape");
    assert!(
        f[0]["subject"]
            .as_str()
            .unwrap()
            .starts_with("MATTERMOST_JENKINS_PLUGIN_KEY (line 7")
    );
    assert!(f[0]["problem"].as_str().unwrap().contains("exactly 32"));
    // The untouched blog file has the right shapes (quotes are stripped as a shell would).
    run_ok(
        cityd()
            .args(["doctor", "--json", "--secrets"])
            .arg(fixture("blog/cicd.env")),
    );
}

/// `cityd --city <city> doctor --json`: its exit code and findings.
fn doctor(s: &Scratch, city: &std::path::Path) -> (Option<i32>, Vec<serde_json::Value>) {
    let out = s
        .cityd()
        .arg("--city")
        .arg(city)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    (out.status.code(), findings(&out))
}

/// `cityd --city <city> <args>`, which must succeed.
fn cityd_ok(s: &Scratch, city: &std::path::Path, args: &[&str]) {
    s.cityd()
        .arg("--city")
        .arg(city)
        .args(args)
        .assert()
        .success();
}

fn set_mode(path: std::path::PathBuf, mode: u32) {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

#[test]
fn the_city_state_is_clean_after_ensure_and_render_and_stale_after_a_move() {
    let s = Scratch::new();
    let city = crate::render::fixed_city(&s);
    let (_, f) = doctor(&s, &city);
    assert!(
        f.iter().any(|x| x["code"] == "secret-missing"),
        "empty vault is reported: {f:#?}"
    );
    cityd_ok(&s, &city, &["secrets", "ensure"]);
    cityd_ok(&s, &city, &["render", "all"]);
    let (_, f) = doctor(&s, &city);
    assert!(f.iter().any(|x| x["code"] == "pki-missing"), "{f:#?}");
    cityd_ok(&s, &city, &["pki", "ensure"]);
    let (code, f) = doctor(&s, &city);
    assert!(f.iter().all(|x| x["severity"] == "info"), "{f:#?}");
    assert_eq!(code, Some(0));
    let moved = std::fs::read_to_string(&city)
        .unwrap()
        .replace("192.168.1.20", "192.168.1.99");
    let moved = s.write("moved.toml", &moved);
    let (code, f) = doctor(&s, &moved);
    assert!(
        f.iter().any(|x| x["code"] == "render-stale"
            && x["subject"].as_str().unwrap().ends_with("mattermost.env")),
        "{f:#?}"
    );
    let stale = f
        .iter()
        .find(|x| x["code"] == "cert-sans-stale")
        .expect("the certificate lacks the new address");
    assert!(
        stale["problem"]
            .as_str()
            .unwrap()
            .contains("IP:192.168.1.99"),
        "{stale}"
    );
    assert_eq!(code, Some(1));

    set_mode(s.state().join("pki/server.key"), 0o644);
    let (_, f) = doctor(&s, &city);
    assert!(
        f.iter()
            .any(|x| x["code"] == "pki-mode"
                && x["subject"].as_str().unwrap().ends_with("server.key"))
    );
    set_mode(s.state().join("pki/server.key"), 0o600);
    set_mode(s.state().join("secrets/turn-static-auth-secret"), 0o644);
    let (code, f) = doctor(&s, &city);
    assert_eq!(code, Some(1));
    assert!(f.iter().any(|x| x["code"] == "secret-mode"));
}
