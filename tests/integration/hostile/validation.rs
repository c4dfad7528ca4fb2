//! Defect 7: validation gaps. `secrets` honours `--city`; control characters in any city field are
//! refused by `config check` naming the field (and `render` exits 2, not 1); a malformed
//! `turn probe --server` exits 2; a malformed webhook URL in the vault makes `relay serve` exit 2;
//! a JSON city's parse error says JSON.

use std::time::Duration;

use super::*;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn secrets_verbs_refuse_a_missing_or_invalid_city_and_write_nothing() {
    for city_text in [None, Some("domain = \"not a domain!\"\n"), Some("[lan\n")] {
        let s = Scratch::new();
        let city = match city_text {
            Some(text) => s.write("city.toml", text),
            None => s.path().join("no-such-city.toml"),
        };
        for args in [
            &["secrets", "ensure"][..],
            &["secrets", "list"],
            &["secrets", "get", "turn-static-auth-secret"],
        ] {
            let out = finishes(cityd_cmd(&s, Some(&city), args), LIMIT);
            let err = stderr(&out);
            assert_eq!(code(&out), 2, "{city_text:?} {args:?}: {err}");
            assert!(err.contains(&city.display().to_string()), "{err}");
            assert!(
                !s.state().exists(),
                "{args:?} wrote the vault despite a bad city"
            );
        }
    }
}

#[test]
fn control_characters_in_city_fields_are_refused_by_config_check_naming_the_field() {
    for (table, key, value, field) in [
        (
            "mattermost",
            "allow_cors_from",
            "[\"https://a.example\\nX-Injected: 1\"]",
            "mattermost.allow_cors_from[0]",
        ),
        (
            "mattermost",
            "local_socket_dir",
            "\"/mattermost/run\\nMM_SERVICESETTINGS_ENABLELOCALMODE=false\"",
            "mattermost.local_socket_dir",
        ),
        (
            "mattermost",
            "local_socket_dir",
            "\"/mattermost/\\u0000run\"",
            "mattermost.local_socket_dir",
        ),
        (
            "team",
            "display_name",
            "\"Engineering\\r\\nx\"",
            "team.display_name",
        ),
    ] {
        let s = ensured();
        let city = s.write(
            "city.toml",
            &format!("[lan]\naddresses = [\"10.1.2.3\"]\n[{table}]\n{key} = {value}\n"),
        );
        let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(code(&out), 2, "{field}: {all}");
        assert!(
            all.contains(field) && all.contains("control characters"),
            "{field}: {all}"
        );
        let env = s.path().join("mattermost.env");
        let out = finishes(
            cityd_cmd(
                &s,
                Some(&city),
                &["render", "mattermost-env", "--out", env.to_str().unwrap()],
            ),
            LIMIT,
        );
        assert_eq!(code(&out), 2, "render, {field}: {}", stderr(&out));
        assert!(!env.exists());
    }
}

#[test]
fn a_malformed_turn_probe_server_exits_2_without_probing() {
    let s = ensured();
    let city = s.write("city.toml", "[lan]\naddresses = [\"10.1.2.3\"]\n");
    for server in [
        "[::1",
        "::1]",
        "[127.0.0.1]:3478",
        "127.0.0.1:0",
        "[::1]:0",
        "localhost:0",
    ] {
        let out = finishes(
            cityd_cmd(&s, Some(&city), &["turn", "probe", "--server", server]),
            LIMIT,
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "--server {server}: {err}");
        assert!(err.contains("--server") && err.contains(server), "{err}");
    }
}

#[test]
fn a_malformed_webhook_url_in_the_vault_makes_relay_serve_exit_2() {
    let s = ensured();
    std::fs::write(
        secrets_dir(&s).join("webhook-alerts"),
        "hxxp:not-a-webhook-url\n",
    )
    .unwrap();
    // It fails while resolving its settings, before it listens.
    let out = finishes(
        cityd_cmd(&s, None, &["relay", "serve", "--listen", "127.0.0.1:0"]),
        LIMIT,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(err.contains("webhook-alerts"), "{err}");
}

#[test]
fn a_json_citys_errors_say_json() {
    let s = Scratch::new();
    for (text, what) in [
        ("{\"domain\": \"cicd.local\",", "syntax"),
        ("{\"mattermost\": {\"port\": \"not a port\"}}", "type"),
    ] {
        let city = s.write("city.json", text);
        let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{what}: {err}");
        assert!(err.contains("not valid JSON"), "{what}: {err}");
        assert!(!err.contains("TOML"), "{what}: {err}");
    }
    let city = s.write("city.toml", "domain = \n");
    let out = finishes(cityd_cmd(&s, Some(&city), &["config", "check"]), LIMIT);
    assert!(stderr(&out).contains("not valid TOML"), "{}", stderr(&out));
}
