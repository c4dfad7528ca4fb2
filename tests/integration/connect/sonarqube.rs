//! `cityd connect sonarqube` against the SonarQube double of each version: the relay webhook,
//! its secret, address refusals, permissions.

use super::*;
use cityd_testcontainers::sonarqube::{SonarDouble, SonarOptions, SonarVersion};

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
            let lan_table = t["lan"].as_table_mut().unwrap();
            lan_table.insert("addresses".into(), toml::Value::Array(vec![lan.into()]));
            // Documentation addresses stand in for a LAN here, on purpose.
            lan_table.insert("allow_test_ranges".into(), true.into());
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
