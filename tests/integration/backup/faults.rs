//! Faults, each with nothing lost and the previous backups intact: SIGKILL at random points of a
//! backup, a full disk, a flipped bit, a truncated file, the wrong key, an older pg_dump than the
//! server, a backup from a newer Mattermost than the city's image; and no secret in argv, logs
//! or `--json`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::fixture::{City, sha};
use crate::common::{run_ok, stderr_of_exit, stdout_of_success};

fn hashes(files: &[PathBuf]) -> BTreeMap<PathBuf, String> {
    files
        .iter()
        .map(|f| (f.clone(), sha(&std::fs::read(f).unwrap())))
        .collect()
}

fn mattermost_id(city: &City) -> String {
    run_ok(Command::new("docker").args(["inspect", "-f", "{{.Id}}", &city.lab.mattermost()]))
}

#[test]
fn damaged_files_wrong_keys_old_dump_tools_and_newer_mattermost_are_refused_and_change_nothing() {
    let city = City::new();
    city.fill_database(600);
    city.fill_volumes();
    let taken = city.backup(&[]);
    let file = PathBuf::from(taken["path"].as_str().unwrap());
    let data = city.data_dump_hash();
    let files = city.volume_tree_hashes();
    let container = mattermost_id(&city);
    let unchanged = |what: &str| {
        assert_eq!(city.data_dump_hash(), data, "{what}: the database changed");
        assert_eq!(
            city.volume_tree_hashes(),
            files,
            "{what}: the volumes changed"
        );
        assert_eq!(
            mattermost_id(&city),
            container,
            "{what}: Mattermost was replaced"
        );
    };

    // One flipped bit, in the middle of the file: verify and restore (even --force) refuse.
    let bytes = std::fs::read(&file).unwrap();
    let flipped = city.lab.scratch.path().join("flipped.age");
    let mut b = bytes.clone();
    b[bytes.len() / 2] ^= 0x10;
    std::fs::write(&flipped, &b).unwrap();
    let out = city
        .lab
        .cityd()
        .args(["backup", "verify", "--identity-file"])
        .arg(&city.key)
        .arg(&flipped)
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains("damaged or incomplete"), "{err}");
    let out = city.restore_cmd(&flipped, &["--force"]).output().unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(
        err.contains("damaged or incomplete") && err.contains("nothing was changed"),
        "{err}"
    );
    unchanged("flipped bit");

    // A truncated file (what a crash without the rename would leave) is incomplete.
    let truncated = city.lab.scratch.path().join("truncated.age");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let out = city.restore_cmd(&truncated, &["--force"]).output().unwrap();
    stderr_of_exit(&out, 2);
    unchanged("truncated file");

    // The wrong key, and a passphrase where a key was used.
    let other = city.lab.scratch.path().join("other.key");
    run_ok(crate::common::cityd().args(["backup", "key"]).arg(&other));
    let out = city
        .restore_cmd(
            &file,
            &["--force", "--identity-file", other.to_str().unwrap()],
        )
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains("does not open with the given key"), "{err}");
    let pass = city.lab.scratch.write("pass", "correct horse\n");
    let out = city
        .restore_cmd(
            &file,
            &["--force", "--passphrase-file", pass.to_str().unwrap()],
        )
        .output()
        .unwrap();
    stderr_of_exit(&out, 2);
    unchanged("wrong key");

    // A backup from a newer Mattermost than the city's image: refused (no downgrades).
    let old_image = format!(
        "cityd-test/mm-old-{}:0.0.1",
        city.lab.prefix.trim_end_matches('-')
    );
    run_ok(Command::new("docker").args(["tag", &crate::docker::double_image(), &old_image]));
    let text = city
        .lab
        .city_text
        .replace(&crate::docker::double_image(), &old_image);
    let older_city = city.lab.scratch.write("older-city.toml", &text);
    let out = city
        .restore_cmd_for(&older_city, &file, &["--force"])
        .output()
        .unwrap();
    let _ = Command::new("docker").args(["rmi", &old_image]).output();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains("does not support downgrades") && err.contains("0.0.1"),
        "{err}"
    );
    unchanged("newer Mattermost");

    // pg_dump 15 against PostgreSQL 17: a clear error naming both; no file left behind.
    let before = city.dir_listing();
    let out = city
        .lab
        .std_cityd()
        .arg("backup")
        .arg("--to")
        .arg(&city.dir)
        .args(city.pg.args())
        .arg("--identity-file")
        .arg(&city.key)
        .args(["--pg-bin", "/usr/lib/postgresql/15/bin"])
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains("(PostgreSQL) 15.") && err.contains("PostgreSQL 17."),
        "{err}"
    );
    assert_eq!(city.dir_listing(), before);

    // --unencrypted must be said; the file is 0600 and a warning is printed; it verifies without a key.
    let out = city.backup_cmd(&["--unencrypted"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stdout_of_success(&out);
    assert!(stderr.contains("NOT encrypted"), "{stderr}");
    let plain = city
        .backups()
        .into_iter()
        .find(|p| p.extension().unwrap() == "tar")
        .unwrap();
    assert_eq!(
        std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = city
        .lab
        .cityd()
        .args(["backup", "verify"])
        .arg(&plain)
        .output()
        .unwrap();
    stdout_of_success(&out);
    // Without any protection named, backup refuses (exit 2) instead of guessing.
    let out = city
        .lab
        .cityd()
        .arg("backup")
        .arg("--to")
        .arg(&city.dir)
        .args(city.db_args())
        .output()
        .unwrap();
    let err = stderr_of_exit(&out, 2);
    assert!(err.contains("--unencrypted"), "{err}");
}

/// A xorshift generator: the kill points differ from run to run of the loop, and are printed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn sigkill_at_random_points_never_leaves_a_half_backup_and_keeps_the_previous_ones() {
    let city = City::new();
    city.fill_database(20_000);
    city.fill_volumes();
    // Two complete backups first; how long one takes sets the range of kill points.
    let start = Instant::now();
    city.backup(&["--keep", "2"]);
    let full = start.elapsed();
    city.backup(&["--keep", "2"]);
    let kept = city.backups();
    assert_eq!(kept.len(), 2);
    let kept_hashes = hashes(&kept);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill points seeded with {seed}; a full backup takes {full:?}");
    let mut rng = Rng(seed);
    let mut completed = 0;
    for run in 0..50 {
        let delay = Duration::from_millis(rng.below(full.as_millis() as u64 * 11 / 10));
        let mut child = city
            .backup_cmd(&[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            completed += 1;
        }
        // Every file with a final name is complete and verifies; earlier backups are untouched.
        for (path, hash) in &kept_hashes {
            assert_eq!(
                &sha(&std::fs::read(path).unwrap()),
                hash,
                "run {run}: {} changed",
                path.display()
            );
        }
        for f in city.backups() {
            if !kept_hashes.contains_key(&f) {
                city.verify(&f);
                std::fs::remove_file(&f).unwrap();
            }
        }
        // What is left besides them is at most the killed run's temporary file.
        let others: Vec<String> = city
            .dir_listing()
            .into_iter()
            .filter(|n| !n.starts_with("cityd-backup-") && n != ".cityd-backup.lock")
            .collect();
        assert!(
            others
                .iter()
                .all(|n| n.starts_with(".cityd-backup-") && n.ends_with(".partial")),
            "run {run}: {others:?}"
        );
    }
    eprintln!("{completed} of 50 runs completed before the kill");
    // The next backup clears what the killed runs left, and the database was never changed.
    let taken = city.backup(&["--keep", "3"]);
    assert!(
        city.dir_listing().iter().all(|n| !n.ends_with(".partial")),
        "{:?}",
        city.dir_listing()
    );
    assert_eq!(city.backups().len(), 3);
    assert!(Path::new(taken["path"].as_str().unwrap()).exists());
    // No helper container of a killed run is left either.
    let helpers = run_ok(Command::new("docker").args([
        "ps",
        "-aq",
        "--filter",
        "label=org.cityd.role=backup-helper",
        "--filter",
        &format!("label=org.cityd.city={}", city.lab.prefix),
    ]));
    assert_eq!(helpers.trim(), "", "helper containers left");
}

#[test]
fn a_full_disk_fails_cleanly_and_keeps_the_previous_backup() {
    let city = City::new();
    city.fill_database(3000);
    city.fill_volumes();
    // A filesystem of the test's own, sized for one backup and a half.
    let probe = city.backup(&[]);
    let size = probe["bytes"].as_u64().unwrap();
    let mnt = city.lab.scratch.path().join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    run_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={}", size * 3 / 2 + 65536))
            .arg("tmpfs")
            .arg(&mnt),
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).output();
        }
    }
    let _guard = Unmount(mnt.clone());
    let out = city.backup_cmd_in(&mnt, &["--json"]).output().unwrap();
    let first: serde_json::Value = serde_json::from_str(&stdout_of_success(&out)).unwrap();
    let first_path = PathBuf::from(first["path"].as_str().unwrap());
    let first_hash = sha(&std::fs::read(&first_path).unwrap());
    let out = city.backup_cmd_in(&mnt, &[]).output().unwrap();
    let err = stderr_of_exit(&out, 1);
    assert!(
        err.contains("No space left on device") || err.contains("space"),
        "{err}"
    );
    let names: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("cityd-backup-"))
            .count(),
        1,
        "{names:?}"
    );
    assert_eq!(sha(&std::fs::read(&first_path).unwrap()), first_hash);
    city.verify(&first_path);
}

/// Every command line of every process on this host, by PID.
fn cmdlines() -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
            && let Ok(b) = std::fs::read(e.path().join("cmdline"))
        {
            out.push(String::from_utf8_lossy(&b).replace('\0', " "));
        }
    }
    out
}

#[test]
fn no_secret_reaches_argv_logs_or_json_and_backups_are_0600() {
    let city = City::new();
    city.fill_database(3000);
    city.fill_volumes();
    let mut secrets: Vec<String> = std::fs::read_dir(city.lab.scratch.state().join("secrets"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .to_string()
        })
        .filter(|s| s.len() >= 12)
        .collect();
    secrets.push(crate::docker::Pg::PASSWORD.to_string());
    let key = std::fs::read_to_string(&city.key).unwrap();
    secrets.push(
        key.lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .to_string(),
    );
    let ca_key = std::fs::read_to_string(city.lab.scratch.state().join("pki/ca.key")).unwrap();
    secrets.push(ca_key.lines().nth(1).unwrap().to_string());
    assert!(secrets.len() >= 5, "{}", secrets.len());

    let mut seen = Vec::new();
    let mut run = |mut cmd: Command| -> (String, String) {
        let mut child = cmd
            .env("CITYD_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read the pipes on threads while the process table is sampled.
        let mut o = child.stdout.take().unwrap();
        let mut e = child.stderr.take().unwrap();
        let to = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut o, &mut s).unwrap();
            s
        });
        let te = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        });
        let mut samples = 0;
        while child.try_wait().unwrap().is_none() {
            seen.extend(cmdlines().into_iter().filter(|c| {
                c.contains("pg_dump") || c.contains("pg_restore") || c.contains("cityd")
            }));
            samples += 1;
        }
        assert!(samples > 0);
        let status = child.wait().unwrap();
        let (stdout, stderr) = (to.join().unwrap(), te.join().unwrap());
        assert!(status.success(), "{stdout}\n{stderr}");
        (stdout, stderr)
    };
    let (json, log) = run({
        let mut c = city.backup_cmd(&[]);
        c.arg("--json").arg("-vv");
        c
    });
    let taken: serde_json::Value = serde_json::from_str(&json).unwrap();
    let file = PathBuf::from(taken["path"].as_str().unwrap());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (json2, log2) = run({
        let mut c = city.restore_cmd(&file, &["--drill"]);
        c.arg("--json").arg("-vv");
        c
    });
    assert!(
        seen.iter()
            .any(|c| c.contains("pg_dump") || c.contains("cityd")),
        "the sampling saw the run"
    );
    for secret in &secrets {
        for (what, text) in [
            ("backup --json", &json),
            ("backup log", &log),
            ("drill --json", &json2),
            ("drill log", &log2),
        ] {
            let line = text
                .lines()
                .find(|l| l.contains(secret.as_str()))
                .map(|l| l.replace(secret.as_str(), "<SECRET>"));
            assert!(line.is_none(), "a secret is in the {what}: {line:?}");
        }
        assert!(
            !seen.iter().any(|c| c.contains(secret.as_str())),
            "a secret is in a command line"
        );
    }
    // The plaintext of the file holds none of them either (it is encrypted).
    let raw = std::fs::read(&file).unwrap();
    for secret in &secrets {
        assert!(!raw.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}
