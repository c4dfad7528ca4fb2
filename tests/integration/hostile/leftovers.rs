//! Defect 8: leftovers and unbounded reads. A temp file a killed run left (it may hold a private
//! key) is removed by the next run even when that run changes nothing; `secrets import-env` reads a
//! bounded amount of a regular file only (no /dev/zero, no FIFO); a read-only vault lets a no-op
//! `secrets ensure` succeed.

use std::time::Duration;

use super::*;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn a_killed_runs_temp_key_is_removed_by_a_run_that_changes_nothing() {
    let s = ensured();
    let city = s.write("city.toml", "[lan]\naddresses = [\"10.20.30.40\"]\n");
    let out = cityd_cmd(&s, Some(&city), &["pki", "ensure"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // What a run killed between writing its temp file and the rename leaves behind.
    let pki_temp = s.state().join("pki").join(".cityd-tmp-killed1");
    std::fs::write(
        &pki_temp,
        "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let vault_temp = secrets_dir(&s).join(".cityd-tmp-killed2");
    std::fs::write(&vault_temp, "0123456789abcdef\n").unwrap();
    let out = cityd_cmd(&s, Some(&city), &["pki", "ensure", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["changed"], false, "{report:#}");
    assert!(
        !pki_temp.exists(),
        "the no-op pki ensure left a temp key behind"
    );
    let out = cityd_cmd(&s, Some(&city), &["secrets", "ensure"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("no changes"));
    assert!(
        !vault_temp.exists(),
        "the no-op secrets ensure left a temp file behind"
    );
    // A dry run removes nothing (it writes nothing).
    std::fs::write(&pki_temp, "x").unwrap();
    let out = cityd_cmd(&s, Some(&city), &["pki", "ensure", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(pki_temp.exists());
}

#[test]
fn import_env_refuses_devices_fifos_and_huge_files_at_once() {
    let s = Scratch::new();
    let fifo = s.path().join("cicd.env.fifo");
    mkfifo(&fifo);
    let huge = s.path().join("huge.env");
    // 2 MiB of comment lines: a regular file, just far larger than any cicd.env.
    std::fs::write(
        &huge,
        "# padding line of a file no blog script writes\n".repeat(45_000),
    )
    .unwrap();
    for (file, words) in [
        (std::path::PathBuf::from("/dev/zero"), "character device"),
        (fifo.clone(), "FIFO"),
        (huge.clone(), "larger than"),
    ] {
        let out = finishes(
            cityd_cmd(&s, None, &["secrets", "import-env", file.to_str().unwrap()]),
            LIMIT,
        );
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{}: {err}", file.display());
        assert!(
            err.contains(&file.display().to_string()) && err.contains(words),
            "{err}"
        );
        assert!(
            !s.state().exists(),
            "{}: the vault was written",
            file.display()
        );
    }
}

/// A read-only bind mount over the state directory (a private mount namespace, so nothing else
/// sees it): the no-op ensure succeeds; an ensure with something to create fails naming the vault.
#[test]
fn a_read_only_vault_lets_a_no_op_ensure_succeed() {
    let unshare = crate::common::require_tool("unshare", "util-linux");
    let s = ensured();
    let state = s.state();
    let in_read_only_state = |args: &str| {
        let script = format!(
            "mount --bind {state} {state} && mount -o remount,bind,ro {state} && exec {bin} --state-dir {state} {args}",
            state = state.display(),
            bin = env!("CARGO_BIN_EXE_cityd"),
        );
        let mut c = Command::new(&unshare);
        c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env_remove("CITYD_CITY")
            .env_remove("CITYD_STATE_DIR");
        finishes(c, LIMIT)
    };
    let out = in_read_only_state("secrets ensure");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("no changes"), "{}", stdout(&out));
    std::fs::remove_file(secrets_dir(&s).join("mattermost-public-link-salt")).unwrap();
    let out = in_read_only_state("secrets ensure");
    assert_ne!(
        code(&out),
        0,
        "a missing secret cannot be created read-only"
    );
    assert!(
        stderr(&out).contains(&secrets_dir(&s).display().to_string()),
        "{}",
        stderr(&out)
    );
    assert!(!secrets_dir(&s).join("mattermost-public-link-salt").exists());
}
