//! Integration tests: the vault through the real `cityd secrets` binary: shapes and modes,
//! idempotence, SIGKILL at random points, concurrent runs, import of the blog's cicd.env, bad input.
//! Every command's output is checked for leaked secret values (only `get` may print one).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime};

use rand::{RngExt, SeedableRng};

use crate::common::{Scratch, described, require_tool, stderr_of_exit, stdout_of_success};

/// The nine generated secrets and their rules, stated here independently of the library.
const SECRETS: [(&str, Rule); 9] = [
    ("turn-static-auth-secret", Rule::Hex64),
    ("mattermost-at-rest-encrypt-key", Rule::AtLeast32),
    ("mattermost-public-link-salt", Rule::AtLeast32),
    ("gitlab-plugin-encryption-key", Rule::Exactly32),
    ("jenkins-plugin-encryption-key", Rule::Exactly32),
    ("gitlab-plugin-webhook-secret", Rule::Hex64),
    ("sonarqube-webhook-secret", Rule::Hex64),
    ("mattermost-db-password", Rule::AtLeast32),
    ("postgres-superuser-password", Rule::AtLeast32),
];

#[derive(Clone, Copy, Debug)]
enum Rule {
    Hex64,
    Exactly32,
    AtLeast32,
}

impl Rule {
    fn holds(self, v: &str) -> bool {
        let alnum = v.bytes().all(|b| b.is_ascii_alphanumeric());
        match self {
            Rule::Hex64 => {
                v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            }
            Rule::Exactly32 => v.len() == 32 && alnum,
            Rule::AtLeast32 => v.len() >= 32 && alnum,
        }
    }
}

fn rule_of(name: &str) -> Option<Rule> {
    SECRETS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

fn secrets_dir(s: &Scratch) -> PathBuf {
    s.state().join("secrets")
}

/// Runs `cityd --state-dir <scratch> <args>` and returns its output, whatever the exit status.
fn cityd(s: &Scratch, args: &[&str]) -> Output {
    s.cityd().args(args).output().expect("run cityd")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(s: &Scratch, args: &[&str]) -> Output {
    let out = cityd(s, args);
    assert!(
        out.status.success(),
        "cityd {args:?} failed:\n{}",
        described(&out)
    );
    out
}

/// Asserts that neither stdout nor stderr carries any of `values`.
fn assert_no_values(out: &Output, values: &[&str], what: &str) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    for v in values {
        assert!(
            !stdout.contains(v) && !stderr.contains(v),
            "{what}: a secret value leaked into the output"
        );
    }
}

/// The values of every vault file that exists, checking that each is the value plus one newline.
fn read_values(dir: &Path) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for (name, rule) in SECRETS {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(content) => {
                let value = content
                    .strip_suffix('\n')
                    .unwrap_or_else(|| panic!("{name} does not end with one newline"));
                assert!(
                    rule.holds(value),
                    "{name} breaks {rule:?} (length {})",
                    value.len()
                );
                values.insert(name.to_string(), value.to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot read {name}: {e}"),
        }
    }
    values
}

/// Everything observable about a directory's files: bytes, mtime (ns), inode and mode.
type Snapshot = BTreeMap<String, (Vec<u8>, i64, i64, u64, u32)>;

fn snapshot(dir: &Path) -> Option<Snapshot> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut snap = Snapshot::new();
    for e in entries {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        snap.insert(
            e.file_name().to_string_lossy().into_owned(),
            (
                std::fs::read(e.path()).unwrap(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.mode(),
            ),
        );
    }
    Some(snap)
}

fn hex(rng: &mut impl rand::Rng, bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rng.fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn ensure_creates_every_secret_with_its_shape_and_mode() {
    let s = Scratch::new();
    let out = ok(&s, &["secrets", "ensure"]);
    let dir = secrets_dir(&s);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().mode() & 0o777,
        0o700,
        "vault directory mode"
    );
    let values = read_values(&dir);
    assert_eq!(values.len(), 9, "{:?}", values.keys());
    for (name, value) in &values {
        let mode = std::fs::metadata(dir.join(name)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
        // Generated values have the minimum length of their rule.
        let expected = if matches!(rule_of(name), Some(Rule::Hex64)) {
            64
        } else {
            32
        };
        assert_eq!(value.len(), expected, "{name}");
        assert!(text(&out.stdout).contains(&format!("created      {name}")));
    }
    // Nine independent draws from the OS source: no two alike.
    let mut distinct: Vec<&String> = values.values().collect();
    distinct.dedup();
    assert_eq!(distinct.len(), 9);
    let vals: Vec<&str> = values.values().map(String::as_str).collect();
    assert_no_values(&out, &vals, "ensure");
    // Nothing but the secrets and the lock file.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected: Vec<String> = SECRETS.iter().map(|(n, _)| n.to_string()).collect();
    expected.push(".lock".into());
    expected.sort();
    assert_eq!(names, expected);
}

#[test]
fn rerunning_ensure_changes_no_file() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let before = snapshot(&secrets_dir(&s)).unwrap();
    let dir_mtime = std::fs::metadata(secrets_dir(&s)).unwrap().mtime_nsec();
    let out = ok(&s, &["secrets", "ensure"]);
    assert!(
        text(&out.stdout).lines().last() == Some("no changes"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stdout).matches("kept").count(), 9);
    let json = ok(&s, &["secrets", "ensure", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["changed"], false);
    assert_eq!(report["dry_run"], false);
    assert!(
        report["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["action"] == "kept")
    );
    let after = snapshot(&secrets_dir(&s)).unwrap();
    assert_eq!(before, after, "bytes, mtimes, inodes or modes changed");
    assert_eq!(
        dir_mtime,
        std::fs::metadata(secrets_dir(&s)).unwrap().mtime_nsec()
    );
}

#[test]
fn dry_run_writes_nothing() {
    let s = Scratch::new();
    let out = ok(&s, &["secrets", "ensure", "--dry-run"]);
    assert!(!s.state().exists(), "dry run created the state directory");
    assert_eq!(text(&out.stdout).matches("would create").count(), 9);
    assert!(text(&out.stdout).contains("dry run: nothing was written"));

    ok(&s, &["secrets", "ensure"]);
    std::fs::remove_file(secrets_dir(&s).join("sonarqube-webhook-secret")).unwrap();
    let before = snapshot(&secrets_dir(&s)).unwrap();
    let json = ok(&s, &["secrets", "ensure", "--dry-run", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["changed"], true);
    let actions: Vec<(&str, &str)> = report["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("sonarqube-webhook-secret", "would_create")));
    assert_eq!(actions.iter().filter(|(_, a)| *a == "kept").count(), 8);
    assert_eq!(snapshot(&secrets_dir(&s)).unwrap(), before);
}

/// SIGKILL at random points of `secrets ensure` until 200 runs were really killed (a kill that lands
/// after the run finished does not count). After each kill every secret file is absent or complete
/// and valid, and no secret ever changes once seen. When the set is complete the test deletes a
/// random subset (an operator rotating them) so that later kills hit creation again.
#[test]
fn killed_ensure_never_tears_or_changes_a_secret() {
    const KILLS: usize = 200;
    const MAX_ROUNDS: usize = 2000;
    let started = Instant::now();
    let bin = env!("CARGO_BIN_EXE_cityd");

    // The kill delay is drawn uniformly from 0..=max_delay. max_delay starts at the median of three
    // full runs on an empty vault and then follows the runs actually observed: it shrinks when a
    // kill came too late and grows when it landed, so kills keep spreading over the whole run
    // even when other tests load the machine.
    let calibration = Scratch::new();
    let mut runs: Vec<Duration> = (0..3)
        .map(|_| {
            let _ = std::fs::remove_dir_all(calibration.state());
            let t = Instant::now();
            ok(&calibration, &["secrets", "ensure"]);
            t.elapsed()
        })
        .collect();
    runs.sort();
    let full = runs[1];
    let mut max_delay_us = (full.as_micros() as f64).clamp(1_000.0, 100_000.0);
    let (mut lowest_max, mut highest_max) = (max_delay_us, max_delay_us);

    let seed = std::env::var("CITYD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| rand::rng().random::<u64>());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    eprintln!("crash test seed {seed} (CITYD_CRASH_SEED={seed} repeats it)");

    let s = Scratch::new();
    let dir = secrets_dir(&s);
    let mut known: BTreeMap<String, String> = BTreeMap::new();
    let (mut killed_mid_run, mut finished, mut partial_sets, mut temps_seen, mut deleted) =
        (0, 0, 0, 0, 0);
    let mut round = 0;
    while killed_mid_run < KILLS {
        round += 1;
        assert!(
            round <= MAX_ROUNDS,
            "only {killed_mid_run} of {MAX_ROUNDS} kills landed inside a run"
        );
        let delay = Duration::from_micros(rng.random_range(0..=max_delay_us as u64));
        let mut child = Command::new(bin)
            .arg("--state-dir")
            .arg(s.state())
            .args(["secrets", "ensure"])
            .env_remove("CITYD_STATE_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cityd");
        // The delay only randomises where the kill lands; nothing waits on it for correctness.
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("reap cityd");
        match status.signal() {
            Some(9) => {
                killed_mid_run += 1;
                max_delay_us = (max_delay_us * 1.1).min(100_000.0);
            }
            _ => {
                assert!(status.success(), "round {round}: ensure failed: {status}");
                finished += 1;
                max_delay_us = (max_delay_us * 0.85).max(500.0);
            }
        }
        lowest_max = lowest_max.min(max_delay_us);
        highest_max = highest_max.max(max_delay_us);

        // Every file is absent or complete and valid (read_values checks the shape and newline).
        let now = read_values(&dir);
        for (name, old) in &known {
            match now.get(name) {
                Some(v) => assert_eq!(v, old, "round {round}: {name} changed after a kill"),
                None => panic!("round {round}: {name} vanished after a kill"),
            }
        }
        if !now.is_empty() && now.len() < SECRETS.len() {
            partial_sets += 1;
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".cityd-tmp-") {
                    temps_seen += 1;
                    // A temp file may be partial, but nobody else may read it.
                    let mode = e.metadata().unwrap().mode();
                    assert_eq!(mode & 0o077, 0, "round {round}: temp {name} mode {mode:o}");
                } else {
                    assert!(
                        name == ".lock" || rule_of(&name).is_some(),
                        "round {round}: unexpected file {name}"
                    );
                }
            }
        }
        known = now;

        if known.len() == SECRETS.len() {
            let count = rng.random_range(1..=SECRETS.len());
            let mut names: Vec<String> = known.keys().cloned().collect();
            for _ in 0..count {
                let name = names.swap_remove(rng.random_range(0..names.len()));
                std::fs::remove_file(dir.join(&name)).unwrap();
                known.remove(&name);
                deleted += 1;
            }
        }
    }

    // A final run completes the set, keeps every value seen and clears the stray temp files.
    let out = ok(&s, &["secrets", "ensure"]);
    let last = read_values(&dir);
    assert_eq!(last.len(), SECRETS.len());
    for (name, old) in &known {
        assert_eq!(&last[name], old, "{name} changed in the final run");
    }
    let strays: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cityd-tmp-"))
        .collect();
    assert!(strays.is_empty(), "temp files left: {strays:?}");
    let vals: Vec<&str> = last.values().map(String::as_str).collect();
    assert_no_values(&out, &vals, "final ensure");

    eprintln!(
        "crash test: {round} runs, {killed_mid_run} killed by SIGKILL mid-run, {finished} finished \
before the kill; delays drawn from 0..=max with max between {:.1} and {:.1} ms (a full run on an \
empty vault took {full:?}); {partial_sets} kills left a partial set, {temps_seen} stray temp files \
seen, {deleted} secrets deleted by the test to re-arm creation; {:?} in all",
        lowest_max / 1000.0,
        highest_max / 1000.0,
        started.elapsed()
    );
    // The test only proves something if kills also landed between the files of one run.
    assert!(
        partial_sets >= 10,
        "only {partial_sets} kills left a partial set"
    );
}

/// Eight `ensure` runs at once on an empty vault agree on one set: each secret is created by
/// exactly one run, and what any run's caller reads right after it finished is the final value.
#[test]
fn eight_concurrent_ensures_make_one_consistent_set() {
    const RUNS: usize = 8;
    let s = Arc::new(Scratch::new());
    let barrier = Arc::new(Barrier::new(RUNS));
    let handles: Vec<_> = (0..RUNS)
        .map(|_| {
            let s = Arc::clone(&s);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut cmd = s.cityd();
                cmd.args(["secrets", "ensure", "--json"]);
                barrier.wait();
                let out = cmd.output().expect("run cityd");
                let seen = read_values(&secrets_dir(&s));
                (out, seen)
            })
        })
        .collect();
    let results: Vec<(Output, BTreeMap<String, String>)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let fin = read_values(&secrets_dir(&s));
    assert_eq!(fin.len(), SECRETS.len());
    let vals: Vec<&str> = fin.values().map(String::as_str).collect();
    let mut created: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (out, seen)) in results.iter().enumerate() {
        assert!(
            out.status.success(),
            "run {i} failed: {}",
            text(&out.stderr)
        );
        assert_no_values(out, &vals, "concurrent ensure");
        assert_eq!(seen, &fin, "run {i}: values read after it finished differ");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        for e in report["secrets"].as_array().unwrap() {
            if e["action"] == "created" {
                *created
                    .entry(e["name"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    for (name, _) in SECRETS {
        assert_eq!(
            created.get(name),
            Some(&1),
            "{name} created by {:?} runs",
            created.get(name)
        );
    }
}

#[test]
fn an_existing_secret_of_the_wrong_shape_is_an_error_and_kept() {
    let s = Scratch::new();
    let dir = secrets_dir(&s);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("jenkins-plugin-encryption-key");
    // 24 characters: a valid AES-192 key, but not the AES-256 key the rule asks for.
    std::fs::write(&key, "abcdefghijklmnopqrstuvwx\n").unwrap();
    let out = cityd(&s, &["secrets", "ensure"]);
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains(&key.display().to_string()), "{err}");
    assert!(err.contains("exactly 32 letters or digits"), "{err}");
    assert!(err.contains("24 characters"), "{err}");
    assert!(err.contains("never replaces"), "{err}");
    assert_no_values(&out, &["abcdefghijklmnopqrstuvwx"], "wrong-shape ensure");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "abcdefghijklmnopqrstuvwx\n"
    );
    assert!(
        !dir.join("turn-static-auth-secret").exists(),
        "ensure created secrets despite a broken one"
    );
    // `get` refuses it too, and `list` marks it.
    let get = cityd(&s, &["secrets", "get", "jenkins-plugin-encryption-key"]);
    assert_eq!(get.status.code(), Some(2));
    assert!(get.stdout.is_empty());
    let list = ok(&s, &["secrets", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "jenkins-plugin-encryption-key")
        .unwrap();
    assert_eq!(entry["status"], "wrong_shape");
    assert_eq!(entry["length"], 24);
}

#[test]
fn get_prints_the_value_and_only_get_does() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let values = read_values(&secrets_dir(&s));
    for (name, value) in &values {
        let out = ok(&s, &["secrets", "get", name]);
        assert_eq!(text(&out.stdout), format!("{value}\n"));
    }
    let vals: Vec<&str> = values.values().map(String::as_str).collect();
    for args in [
        &["secrets", "list"][..],
        &["secrets", "list", "--json"],
        &["secrets", "ensure", "--json"],
        &["-vv", "secrets", "ensure"],
    ] {
        let out = s
            .cityd()
            .args(args)
            .env("CITYD_LOG", "trace")
            .output()
            .unwrap();
        stdout_of_success(&out);
        assert_no_values(&out, &vals, &format!("{args:?}"));
    }
}

#[test]
fn get_of_an_unknown_name_says_how_to_find_names() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let out = cityd(&s, &["secrets", "get", "turn-secret"]);
    let err = stderr_of_exit(&out, 2);
    assert!(out.stdout.is_empty());
    assert!(err.contains("\"turn-secret\""), "{err}");
    assert!(err.contains("cityd secrets list"), "{err}");
    assert!(err.contains("turn-static-auth-secret"), "{err}");
    // A path is not a name: nothing outside the vault is read.
    let out = cityd(&s, &["secrets", "get", "../../../etc/hostname"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("not a secret name"));
    // A generated secret that is missing points at `ensure`.
    std::fs::remove_file(secrets_dir(&s).join("mattermost-db-password")).unwrap();
    let out = cityd(&s, &["secrets", "get", "mattermost-db-password"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("cityd secrets ensure"));
}

#[test]
fn list_json_shows_names_lengths_paths_and_ages_never_values() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let dir = secrets_dir(&s);
    let values = read_values(&dir);
    std::fs::remove_file(dir.join("sonarqube-webhook-secret")).unwrap();
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dir.join("turn-static-auth-secret"))
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();

    let out = ok(&s, &["secrets", "list", "--json"]);
    let vals: Vec<&str> = values.values().map(String::as_str).collect();
    assert_no_values(&out, &vals, "list --json");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 9);
    for e in list {
        let name = e["name"].as_str().unwrap();
        assert_eq!(e["path"], dir.join(name).display().to_string());
        if name == "sonarqube-webhook-secret" {
            assert_eq!(e["status"], "missing");
            assert!(e["length"].is_null() && e["age_seconds"].is_null());
            continue;
        }
        assert_eq!(e["status"], "ok", "{name}");
        assert_eq!(e["kind"], "generated");
        assert_eq!(e["mode"], "0600");
        assert_eq!(e["length"], values[name].len(), "{name}");
        let age = e["age_seconds"].as_u64().unwrap();
        if name == "turn-static-auth-secret" {
            assert!((3600..3700).contains(&age), "age {age}");
        } else {
            assert!(age < 600, "age {age}");
        }
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert!(!keys.iter().any(|k| k.contains("value")), "{keys:?}");
    }
    let human = ok(&s, &["secrets", "list"]);
    assert_no_values(&human, &vals, "list");
    let human = text(&human.stdout);
    assert!(human.contains("1h") || human.contains("60m"), "{human}");
    assert!(human.contains("missing"), "{human}");
}

/// A cicd.env the way the blog's scripts write it: double quotes from its generators, plus the
/// hand edits such files collect (single quotes, no quotes, `export`, comments, other variables).
struct BlogEnv {
    text: String,
    values: BTreeMap<&'static str, String>,
    /// Line of each variable's (last) assignment.
    lines: BTreeMap<&'static str, usize>,
}

fn blog_env(rng: &mut impl rand::Rng, jenkins_key: Option<String>) -> BlogEnv {
    let mut values = BTreeMap::new();
    values.insert("MATTERMOST_DB_PASSWORD", hex(rng, 32));
    values.insert("MATTERMOST_TURN_SECRET", hex(rng, 32));
    values.insert("MATTERMOST_AT_REST_KEY", hex(rng, 32));
    values.insert("MATTERMOST_PUBLIC_LINK_SALT", hex(rng, 32));
    values.insert("MATTERMOST_GITLAB_PLUGIN_SECRET", hex(rng, 32));
    values.insert("MATTERMOST_GITLAB_PLUGIN_KEY", hex(rng, 16));
    values.insert(
        "MATTERMOST_JENKINS_PLUGIN_KEY",
        jenkins_key.unwrap_or_else(|| hex(rng, 16)),
    );
    let v = |k: &str| values[k].clone();
    let lines = [
        "# Sovereign Software Factory master secrets".to_string(),
        format!("POSTGRES_ROOT_PASSWORD=\"{}\"", hex(rng, 32)),
        String::new(),
        "# Mattermost DB Password".into(),
        format!("MATTERMOST_DB_PASSWORD=\"{}\"", v("MATTERMOST_DB_PASSWORD")),
        String::new(),
        "# Mattermost & Coturn Shared Secret".into(),
        format!("MATTERMOST_TURN_SECRET=\"{}\"", v("MATTERMOST_TURN_SECRET")),
        "# Mattermost At-Rest Encryption Key".into(),
        format!(
            "export MATTERMOST_AT_REST_KEY='{}'",
            v("MATTERMOST_AT_REST_KEY")
        ),
        "# Mattermost Public Link Salt".into(),
        format!(
            "MATTERMOST_PUBLIC_LINK_SALT={}",
            v("MATTERMOST_PUBLIC_LINK_SALT")
        ),
        format!(
            "MATTERMOST_GITLAB_PLUGIN_SECRET=\"{}\"   # GitLab webhook token",
            v("MATTERMOST_GITLAB_PLUGIN_SECRET")
        ),
        format!(
            "MATTERMOST_GITLAB_PLUGIN_KEY=\"{}\"",
            v("MATTERMOST_GITLAB_PLUGIN_KEY")
        ),
        format!(
            "MATTERMOST_JENKINS_PLUGIN_KEY=\"{}\"",
            v("MATTERMOST_JENKINS_PLUGIN_KEY")
        ),
        "GITLAB_OAUTH_ID=\"not-a-secret-of-ours\"".into(),
    ];
    let mut line_of = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        for k in values.keys() {
            if l.contains(&format!("{k}=")) {
                line_of.insert(*k, i + 1);
            }
        }
    }
    BlogEnv {
        text: lines.join("\n") + "\n",
        values,
        lines: line_of,
    }
}

const VARIABLE_TO_FILE: [(&str, &str); 7] = [
    ("MATTERMOST_TURN_SECRET", "turn-static-auth-secret"),
    ("MATTERMOST_AT_REST_KEY", "mattermost-at-rest-encrypt-key"),
    ("MATTERMOST_PUBLIC_LINK_SALT", "mattermost-public-link-salt"),
    (
        "MATTERMOST_GITLAB_PLUGIN_SECRET",
        "gitlab-plugin-webhook-secret",
    ),
    (
        "MATTERMOST_GITLAB_PLUGIN_KEY",
        "gitlab-plugin-encryption-key",
    ),
    (
        "MATTERMOST_JENKINS_PLUGIN_KEY",
        "jenkins-plugin-encryption-key",
    ),
    ("MATTERMOST_DB_PASSWORD", "mattermost-db-password"),
];

#[test]
fn import_env_adopts_the_blog_file_and_reimport_changes_nothing() {
    let s = Scratch::new();
    let env = blog_env(&mut rand::rng(), None);
    let file = s.write("cicd.env", &env.text);
    let vals: Vec<&str> = env.values.values().map(String::as_str).collect();
    let file_arg = file.to_str().unwrap();

    let dry = ok(&s, &["secrets", "import-env", "--dry-run", file_arg]);
    assert_no_values(&dry, &vals, "import-env --dry-run");
    assert!(!s.state().exists(), "dry run created the state directory");
    assert_eq!(text(&dry.stdout).matches("would take").count(), 7);

    let out = ok(&s, &["secrets", "import-env", "--json", file_arg]);
    assert_no_values(&out, &vals, "import-env");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["changed"], true);
    assert_eq!(
        report["still_missing"],
        serde_json::json!(["sonarqube-webhook-secret", "postgres-superuser-password"])
    );
    let dir = secrets_dir(&s);
    for (variable, file_name) in VARIABLE_TO_FILE {
        let entry = report["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["variable"] == variable)
            .unwrap();
        assert_eq!(entry["status"], "taken", "{variable}");
        assert_eq!(entry["secret"], file_name);
        assert_eq!(entry["line"], env.lines[variable], "{variable}");
        let content = std::fs::read_to_string(dir.join(file_name)).unwrap();
        assert_eq!(content, format!("{}\n", env.values[variable]), "{variable}");
        let mode = std::fs::metadata(dir.join(file_name)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file_name}");
    }
    let quoting = |v: &str| {
        report["variables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["variable"] == v)
            .unwrap()["quoting"]
            .clone()
    };
    assert_eq!(quoting("MATTERMOST_TURN_SECRET"), "double");
    assert_eq!(quoting("MATTERMOST_AT_REST_KEY"), "single");
    assert_eq!(quoting("MATTERMOST_PUBLIC_LINK_SALT"), "none");

    // Re-import: same values, not a byte or an mtime touched.
    let before = snapshot(&dir).unwrap();
    let again = ok(&s, &["secrets", "import-env", file_arg]);
    assert_no_values(&again, &vals, "re-import");
    let stdout = text(&again.stdout);
    assert_eq!(stdout.matches("same ").count(), 7, "{stdout}");
    assert!(stdout.contains("no changes"), "{stdout}");
    assert_eq!(snapshot(&dir).unwrap(), before);

    // `ensure` keeps every imported value and generates only what the file lacked.
    let ensure = ok(&s, &["secrets", "ensure", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&ensure.stdout).unwrap();
    for e in report["secrets"].as_array().unwrap() {
        let expected = if e["name"] == "sonarqube-webhook-secret"
            || e["name"] == "postgres-superuser-password"
        {
            "created"
        } else {
            "kept"
        };
        assert_eq!(e["action"], expected, "{}", e["name"]);
    }
    for (variable, file_name) in VARIABLE_TO_FILE {
        assert_eq!(
            std::fs::read_to_string(dir.join(file_name)).unwrap(),
            format!("{}\n", env.values[variable])
        );
    }
}

#[test]
fn import_env_with_a_wrong_length_writes_nothing() {
    let s = Scratch::new();
    let mut rng = rand::rng();
    // 30 hex digits: what `openssl rand -hex 15` gives, a key the plugin would reject at use time.
    let short = hex(&mut rng, 15);
    let env = blog_env(&mut rng, Some(short.clone()));
    let file = s.write("cicd.env", &env.text);
    let vals: Vec<&str> = env.values.values().map(String::as_str).collect();

    let out = cityd(&s, &["secrets", "import-env", file.to_str().unwrap()]);
    let err = stderr_of_exit(&out, 2);
    assert_no_values(&out, &vals, "refused import");
    let line = env.lines["MATTERMOST_JENKINS_PLUGIN_KEY"];
    for needle in [
        "MATTERMOST_JENKINS_PLUGIN_KEY".to_string(),
        format!("line {line} of {}", file.display()),
        "30 characters instead of 32".into(),
        "exactly 32 letters or digits".into(),
        "openssl rand -hex 16".into(),
        "nothing was written".into(),
    ] {
        assert!(err.contains(&needle), "missing {needle:?} in: {err}");
    }
    assert!(
        !s.state().exists(),
        "a refused import created the state directory"
    );

    // With an existing vault, the vault directory stays exactly as it was.
    ok(&s, &["secrets", "ensure"]);
    let before = snapshot(&secrets_dir(&s)).unwrap();
    let out = cityd(
        &s,
        &["secrets", "import-env", "--json", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_no_values(&out, &vals, "refused import --json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let bad = report["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["variable"] == "MATTERMOST_JENKINS_PLUGIN_KEY")
        .unwrap();
    assert_eq!(bad["status"], "wrong_shape");
    assert_eq!(bad["line"], line);
    assert_eq!(snapshot(&secrets_dir(&s)).unwrap(), before);
}

#[test]
fn import_env_conflict_keeps_the_existing_value() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let dir = secrets_dir(&s);
    let existing = read_values(&dir);
    let before = snapshot(&dir).unwrap();
    let env = blog_env(&mut rand::rng(), None);
    let file = s.write("cicd.env", &env.text);
    let mut vals: Vec<&str> = env.values.values().map(String::as_str).collect();
    vals.extend(existing.values().map(String::as_str));

    let out = cityd(&s, &["secrets", "import-env", file.to_str().unwrap()]);
    let err = stderr_of_exit(&out, 2);
    assert_no_values(&out, &vals, "conflicting import");
    let turn = dir.join("turn-static-auth-secret");
    assert!(err.contains("MATTERMOST_TURN_SECRET"), "{err}");
    assert!(err.contains(&turn.display().to_string()), "{err}");
    assert!(err.contains("different value"), "{err}");
    assert!(err.contains("7 problems"), "{err}");
    assert_eq!(text(&out.stdout).matches("CONFLICT").count(), 7);
    assert_eq!(
        snapshot(&dir).unwrap(),
        before,
        "a conflicting import changed the vault"
    );
    assert_eq!(read_values(&dir), existing);
}

#[test]
fn import_env_of_a_missing_file_names_it() {
    let s = Scratch::new();
    let missing = s.path().join("no-such-cicd.env");
    let out = cityd(&s, &["secrets", "import-env", missing.to_str().unwrap()]);
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains(&missing.display().to_string()), "{err}");
    assert!(err.contains("cicd.env"), "{err}");
    assert!(!s.state().exists());
}

#[test]
fn a_state_dir_under_the_nix_store_is_refused() {
    let s = Scratch::new();
    let file = s.write("cicd.env", "MATTERMOST_TURN_SECRET=x\n");
    for args in [
        vec!["secrets", "ensure"],
        vec!["secrets", "list"],
        vec!["secrets", "import-env", file.to_str().unwrap()],
    ] {
        let out = crate::common::cityd()
            .args([
                "--state-dir",
                "/nix/store/00000000000000000000000000000000-cityd",
            ])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains("/nix/store"), "{err}");
        assert!(err.contains("--state-dir"), "{err}");
    }
    // The environment variable is refused the same way.
    let out = crate::common::cityd()
        .env("CITYD_STATE_DIR", "/nix//store/x-cityd")
        .args(["secrets", "ensure"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new("/nix/store/00000000000000000000000000000000-cityd").exists());
}

#[test]
fn a_state_dir_below_a_regular_file_is_an_error_naming_the_path() {
    let s = Scratch::new();
    let blocker = s.write("not-a-dir", "x");
    let state = blocker.join("state");
    let out = crate::common::cityd()
        .arg("--state-dir")
        .arg(&state)
        .args(["secrets", "ensure"])
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains(&state.display().to_string()), "{err}");
    assert!(err.contains("--state-dir"), "{err}");
    assert_eq!(std::fs::read_to_string(&blocker).unwrap(), "x");
}

/// `chmod 000` on the state directory. Root ignores permission bits, so as root the binary runs
/// as `nobody` through setpriv; as another user it runs directly.
#[test]
fn an_unreadable_state_dir_is_an_error_naming_the_path_and_the_fix() {
    let s = Scratch::new();
    let state = s.state();
    std::fs::create_dir(&state).unwrap();
    let root = cityd::state::is_root();
    let setpriv = root.then(|| require_tool("setpriv", "util-linux"));
    let bin = if root {
        // nobody must reach the binary and the state directory's parent.
        std::fs::set_permissions(s.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = s.path().join("cityd");
        std::fs::copy(env!("CARGO_BIN_EXE_cityd"), &copy).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        copy
    } else {
        PathBuf::from(env!("CARGO_BIN_EXE_cityd"))
    };
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o000)).unwrap();
    let run = |args: &[&str]| {
        let mut cmd = match &setpriv {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                    .arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        cmd.env_remove("CITYD_STATE_DIR")
            .env_remove("CITYD_CITY")
            .arg("--state-dir")
            .arg(&state)
            .args(args)
            .current_dir(s.path())
            .output()
            .unwrap()
    };
    for args in [
        &["secrets", "ensure"][..],
        &["secrets", "list"],
        &["secrets", "get", "turn-static-auth-secret"],
    ] {
        let out = run(args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&state.display().to_string()),
            "{args:?}: {err}"
        );
        assert!(err.contains("ermission denied"), "{args:?}: {err}");
        assert!(
            err.contains("--state-dir") || err.contains("user running cityd"),
            "{args:?} gives no fix: {err}"
        );
    }
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "something was written"
    );
}

/// A secret others can read is reported with the fix; ensure never changes modes behind the user's back.
#[test]
fn loose_modes_are_reported_and_left_alone() {
    let s = Scratch::new();
    ok(&s, &["secrets", "ensure"]);
    let key = secrets_dir(&s).join("gitlab-plugin-encryption-key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = ok(&s, &["secrets", "ensure"]);
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );
    assert!(text(&out.stdout).contains("no changes"));
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o644);
}
