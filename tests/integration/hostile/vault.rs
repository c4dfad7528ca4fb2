//! Defect 6: the vault and the PKI trust nothing they do not own. A link is never followed (no
//! read, no chmod of its target), a FIFO is refused at once (the lock is never held forever), a
//! state directory or file owned by another user is refused, and every refusal names the path and
//! the fix with exit 2.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use cityd::secrets::{Secret, Vault};
use cityd::state::StateDir;

use super::*;

const NOBODY: u32 = 65534;
const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_link_in_the_vault_is_neither_read_nor_followed_by_a_mode_change() {
    let s = ensured();
    let outside = s.path().join("outside-file");
    std::fs::write(&outside, "https://elsewhere.example/private-content-0123\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
    // A stored value and a generated secret, each replaced by a link to the outside file.
    let stored = secrets_dir(&s).join("webhook-alerts");
    std::os::unix::fs::symlink(&outside, &stored).unwrap();
    let generated = secrets_dir(&s).join("turn-static-auth-secret");
    let hex = "ab".repeat(32);
    let outside_hex = s.path().join("outside-hex");
    std::fs::write(&outside_hex, format!("{hex}\n")).unwrap();
    std::fs::remove_file(&generated).unwrap();
    std::os::unix::fs::symlink(&outside_hex, &generated).unwrap();

    for (name, path, content) in [
        ("webhook-alerts", &stored, "private-content-0123"),
        ("turn-static-auth-secret", &generated, hex.as_str()),
    ] {
        let out = finishes(cityd_cmd(&s, None, &["secrets", "get", name]), LIMIT);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "secrets get {name}: {err}");
        assert!(
            !stdout(&out).contains(content),
            "get printed the link's target"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("symbolic link") && err.contains("remove it"),
            "{err}"
        );
    }
    // `list` shows every file, then fails naming the links.
    let out = finishes(cityd_cmd(&s, None, &["secrets", "list"]), LIMIT);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains(&stored.display().to_string()));
    // `render coturn` would hand the link's target to coturn: refused too.
    let conf = s.path().join("turnserver.conf");
    let out = cityd_cmd(
        &s,
        None,
        &["render", "coturn", "--out", conf.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!conf.exists(), "a config was rendered from a linked secret");

    // The mode repair of `store` never changes the link's target (it went through the link).
    let vault = Vault::new(&StateDir::at(s.state()).unwrap());
    let same = Secret::new("https://elsewhere.example/private-content-0123".into());
    let err = vault.store("webhook-alerts", &same).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert!(err.is_bad_input());
    assert_eq!(
        std::fs::metadata(&outside).unwrap().mode() & 0o777,
        0o644,
        "the link's target was chmodded"
    );
}

#[test]
fn a_fifo_in_the_vault_is_refused_without_blocking_ensure_list_or_get() {
    let s = ensured();
    let turn = secrets_dir(&s).join("turn-static-auth-secret");
    std::fs::remove_file(&turn).unwrap();
    mkfifo(&turn);
    let stored = secrets_dir(&s).join("webhook-builds");
    mkfifo(&stored);
    for args in [
        &["secrets", "ensure"][..],
        &["secrets", "list"],
        &["secrets", "get", "turn-static-auth-secret"],
        &["secrets", "get", "webhook-builds"],
    ] {
        let out = finishes(cityd_cmd(&s, None, args), LIMIT);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(err.contains("FIFO"), "{args:?}: {err}");
        assert!(err.contains("rm "), "{args:?} names no fix: {err}");
    }
    // The lock was released: a second ensure is refused the same way, not blocked.
    let out = finishes(cityd_cmd(&s, None, &["secrets", "ensure"]), LIMIT);
    assert_eq!(code(&out), 2);
    assert!(turn.exists(), "the FIFO was left for the user to look at");
}

/// chown of the state directory, the vault directory or one secret to `nobody` while cityd runs as
/// root: each is refused naming the path and the fix, and nothing reaches coturn's config.
#[test]
fn a_state_directory_or_secret_owned_by_another_user_is_refused() {
    let s = ensured();
    let vault_dir = secrets_dir(&s);
    let turn = vault_dir.join("turn-static-auth-secret");
    assert!(
        cityd::state::is_root(),
        "this test chowns files and must run as root"
    );
    for (path, fix) in [
        (s.state(), "chown"),
        (vault_dir.clone(), "chown"),
        (turn.clone(), "chown"),
    ] {
        let before = std::fs::metadata(&path).unwrap();
        std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        // "that user swapped the TURN secret": a valid value another user put in place.
        let conf = s.path().join("turnserver.conf");
        for args in [
            &["secrets", "get", "turn-static-auth-secret"][..],
            &["secrets", "ensure"],
            &["render", "coturn", "--out", conf.to_str().unwrap()],
        ] {
            let out = finishes(cityd_cmd(&s, None, args), LIMIT);
            let err = stderr(&out);
            assert_eq!(
                code(&out),
                2,
                "{} owned by nobody, {args:?}: {err}",
                path.display()
            );
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(fix) && err.contains("65534"), "{err}");
            assert!(stdout(&out).trim().is_empty() || args[0] != "secrets" || args[1] != "get");
        }
        assert!(
            !conf.exists(),
            "coturn's config was rendered from another user's state"
        );
        std::os::unix::fs::chown(&path, Some(before.uid()), Some(before.gid())).unwrap();
    }
    // A state directory others can write to is refused the same way.
    std::fs::set_permissions(s.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = finishes(cityd_cmd(&s, None, &["secrets", "ensure"]), LIMIT);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("chmod go-w"), "{}", stderr(&out));
    std::fs::set_permissions(s.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = finishes(cityd_cmd(&s, None, &["secrets", "ensure"]), LIMIT);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// The state directory owned by another user who runs cityd (setpriv): that user's own state is
/// theirs, and root's vault inside it is not (the owner check works for any user, not only root).
#[test]
fn another_user_running_cityd_does_not_trust_roots_vault_in_their_directory() {
    let setpriv = crate::common::require_tool("setpriv", "util-linux");
    let s = Scratch::new();
    std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = s.path().join("cityd");
    std::fs::copy(env!("CARGO_BIN_EXE_cityd"), &bin).unwrap();
    let state = s.state();
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    // A file of another (non-root) user inside: uid 4242 planted it.
    let vault = state.join("secrets");
    std::fs::create_dir(&vault).unwrap();
    std::os::unix::fs::chown(&vault, Some(NOBODY), Some(NOBODY)).unwrap();
    let planted = vault.join("turn-static-auth-secret");
    std::fs::write(&planted, format!("{}\n", "cd".repeat(32))).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&planted, Some(4242), Some(4242)).unwrap();
    let out = finishes(
        {
            let mut c = Command::new(&setpriv);
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(&bin)
                .env_remove("CITYD_STATE_DIR")
                .env_remove("CITYD_CITY")
                .arg("--state-dir")
                .arg(&state)
                .args(["secrets", "get", "turn-static-auth-secret"])
                .current_dir(s.path());
            c
        },
        LIMIT,
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        !stdout(&out).contains(&"cd".repeat(32)),
        "another user's secret was printed"
    );
    assert!(
        err.contains(&planted.display().to_string()) && err.contains("4242"),
        "{err}"
    );
}

#[test]
fn pki_files_are_read_without_following_links_or_blocking_on_fifos() {
    let s = ensured();
    let city = s.write("city.toml", "[lan]\naddresses = [\"10.20.30.40\"]\n");
    let ensure = |s: &Scratch| {
        finishes(
            cityd_cmd(s, Some(&city), &["pki", "ensure", "--json"]),
            LIMIT,
        )
    };
    let out = ensure(&s);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let pki = s.state().join("pki");
    // The CA key replaced by a link to a key elsewhere: never read through it.
    let key = pki.join("ca.key");
    let elsewhere = s.path().join("elsewhere.key");
    std::fs::rename(&key, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &key).unwrap();
    let out = ensure(&s);
    let err = stderr(&out);
    assert_eq!(code(&out), 2, "{err}");
    assert!(
        err.contains(&key.display().to_string()) && err.contains("symbolic link"),
        "{err}"
    );
    std::fs::remove_file(&key).unwrap();
    std::fs::rename(&elsewhere, &key).unwrap();
    // The server certificate replaced by a FIFO: `pki show` and `pki ensure` end at once.
    let leaf = pki.join("server.pem");
    std::fs::remove_file(&leaf).unwrap();
    mkfifo(&leaf);
    for args in [&["pki", "show"][..], &["pki", "ensure"]] {
        let out = finishes(cityd_cmd(&s, Some(&city), args), LIMIT);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{args:?}: {err}");
        assert!(
            err.contains(&leaf.display().to_string()) && err.contains("FIFO"),
            "{err}"
        );
    }
}
