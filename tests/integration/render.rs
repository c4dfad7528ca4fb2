//! Integration tests: `cityd render` — snapshots of both artefacts (secrets normalised), Docker
//! env-file semantics, idempotence, and refusal without a vault.

use std::os::unix::fs::MetadataExt;

use crate::common::*;

/// A city pinned to literal addresses so snapshots do not depend on this machine's network.
pub fn fixed_city(s: &Scratch) -> std::path::PathBuf {
    // 2001:db8::20 is a documentation address, allowed on purpose.
    let text = include_str!("../../src/default-city.toml")
        .replace(
            "addresses = [\"auto\"]",
            "addresses = [\"192.168.1.20\", \"2001:db8::20\"]",
        )
        .replace("allow_test_ranges = false", "allow_test_ranges = true");
    s.write("city.toml", &text)
}

/// Replaces every vault value found in `text` with `<name>`, so snapshots hold no secret.
fn redact(s: &Scratch, text: &str) -> String {
    let mut out = text.to_string();
    for entry in std::fs::read_dir(s.state().join("secrets"))
        .unwrap()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let value = std::fs::read_to_string(entry.path()).unwrap();
        out = out.replace(value.trim_end(), &format!("<{name}>"));
    }
    out
}

fn render_all(s: &Scratch, city: &std::path::Path) {
    s.cityd()
        .arg("--city")
        .arg(city)
        .args(["secrets", "ensure"])
        .assert()
        .success();
    s.cityd()
        .arg("--city")
        .arg(city)
        .args(["render", "all"])
        .assert()
        .success();
}

#[test]
fn mattermost_env_snapshot() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    render_all(&s, &city);
    let text = std::fs::read_to_string(s.state().join("render/mattermost.env")).unwrap();
    let redacted = redact(&s, &text).replace(&city.display().to_string(), "<city>");
    insta::assert_snapshot!("mattermost_env", redacted);
}

#[test]
fn coturn_snapshot() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    render_all(&s, &city);
    let text = std::fs::read_to_string(s.state().join("render/turnserver.conf")).unwrap();
    let redacted = redact(&s, &text).replace(&city.display().to_string(), "<city>");
    insta::assert_snapshot!("coturn", redacted);
}

#[test]
fn env_file_reads_back_under_docker_semantics_without_quotes() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    render_all(&s, &city);
    let text = std::fs::read_to_string(s.state().join("render/mattermost.env")).unwrap();
    let entries = cityd::envfile::parse_docker(&text).unwrap();
    assert!(entries.len() > 30);
    for e in &entries {
        assert!(
            !e.value.contains('"') || e.key == "MM_CALLS_ICE_SERVERS_CONFIGS",
            "{} carries quotes: {}",
            e.key,
            e.key
        );
        assert!(
            !e.value.starts_with('\'') && !e.value.starts_with('"'),
            "{} is quoted",
            e.key
        );
    }
    let ice = entries
        .iter()
        .find(|e| e.key == "MM_CALLS_ICE_SERVERS_CONFIGS")
        .unwrap();
    let ice: serde_json::Value =
        serde_json::from_str(&ice.value).expect("ICE servers are one-line JSON");
    assert!(ice[0].get("username").is_none() && ice[0].get("credential").is_none());
    let secret =
        std::fs::read_to_string(s.state().join("secrets/turn-static-auth-secret")).unwrap();
    let calls_secret = entries
        .iter()
        .find(|e| e.key == "MM_CALLS_TURN_STATIC_AUTH_SECRET")
        .unwrap();
    assert_eq!(calls_secret.value, secret.trim_end());
    let conf = std::fs::read_to_string(s.state().join("render/turnserver.conf")).unwrap();
    assert!(
        conf.lines()
            .any(|l| l == format!("static-auth-secret={}", secret.trim_end())),
        "coturn and Calls share the secret"
    );
}

#[test]
fn rerender_changes_no_file_and_says_so() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    render_all(&s, &city);
    let files = ["render/mattermost.env", "render/turnserver.conf"];
    let before: Vec<_> = files
        .iter()
        .map(|f| {
            let m = std::fs::metadata(s.state().join(f)).unwrap();
            (
                std::fs::read(s.state().join(f)).unwrap(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.mode() & 0o777,
            )
        })
        .collect();
    assert!(
        run_ok(s.cityd().arg("--city").arg(&city).args(["render", "all"])).contains("no changes")
    );
    for (f, b) in files.iter().zip(before) {
        let m = std::fs::metadata(s.state().join(f)).unwrap();
        assert_eq!(b.0, std::fs::read(s.state().join(f)).unwrap(), "{f} bytes");
        assert_eq!(
            (b.1, b.2, b.3),
            (m.mtime(), m.mtime_nsec(), m.ino()),
            "{f} was rewritten"
        );
        assert_eq!(b.4, 0o600, "{f} holds secrets and must be 0600");
    }
}

#[test]
fn a_moved_lan_address_is_reported_by_name_in_dry_run_and_nothing_is_written() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    render_all(&s, &city);
    let before = std::fs::read(s.state().join("render/mattermost.env")).unwrap();
    let moved = std::fs::read_to_string(&city)
        .unwrap()
        .replace("192.168.1.20", "192.168.1.21");
    let moved_city = s.write("moved.toml", &moved);
    let stdout = run_ok(s.cityd().arg("--city").arg(&moved_city).args([
        "render",
        "mattermost-env",
        "--dry-run",
    ]));
    assert!(
        stdout.contains("would update")
            && stdout.contains("MM_SERVICESETTINGS_ALLOWCORSFROM")
            && stdout.contains("MM_CALLS_ICE_HOST_OVERRIDE"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("MM_SQLSETTINGS_ATRESTENCRYPTKEY"),
        "unchanged settings are not listed: {stdout}"
    );
    assert_eq!(
        before,
        std::fs::read(s.state().join("render/mattermost.env")).unwrap()
    );
}

#[test]
fn without_a_vault_render_names_the_missing_secret_and_writes_nothing() {
    let s = Scratch::new();
    let city = fixed_city(&s);
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["render", "coturn"])
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("turn-static-auth-secret") && stderr.contains("cityd secrets ensure"),
        "{stderr}"
    );
    assert!(!s.state().join("render").exists());
}

/// The whole-foundation idempotence claim: a second `secrets ensure`, `pki ensure` and
/// `render all` leaves every file of the state directory byte- and mtime-identical.
#[test]
fn rerunning_the_whole_foundation_changes_no_file() {
    fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>, i64, i64)> {
        let mut out = Vec::new();
        for sub in ["secrets", "pki", "render"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
                let m = entry.metadata().unwrap();
                out.push((
                    format!("{sub}/{}", entry.file_name().to_string_lossy()),
                    std::fs::read(entry.path()).unwrap(),
                    m.mtime(),
                    m.mtime_nsec(),
                ));
            }
        }
        out.sort();
        out
    }
    let s = Scratch::new();
    let city = fixed_city(&s);
    for step in [
        &["secrets", "ensure"][..],
        &["pki", "ensure"],
        &["render", "all"],
    ] {
        s.cityd()
            .arg("--city")
            .arg(&city)
            .args(step)
            .assert()
            .success();
    }
    let before = snapshot(&s.state());
    assert!(
        before.len() >= 8 + 5 + 2,
        "expected the full state, got {:?}",
        before.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for step in [
        &["secrets", "ensure"][..],
        &["pki", "ensure"],
        &["render", "all"],
    ] {
        s.cityd()
            .arg("--city")
            .arg(&city)
            .args(step)
            .assert()
            .success();
    }
    let after = snapshot(&s.state());
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.0, a.0);
        assert!(
            b.1 == a.1 && (b.2, b.3) == (a.2, a.3),
            "{} changed on a re-run",
            b.0
        );
    }
    assert_eq!(before.len(), after.len());
}
