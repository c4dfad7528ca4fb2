//! Issue 12, hostile input: each defect the red-team pass found, reproduced with real components
//! (symlinks and FIFOs in a scratch vault, a state directory owned by another user, a read-only
//! bind mount, coturn in a network namespace), then held by the fix. The relay's items (defects 1,
//! 2, 3, 9) live with the relay's tests; the redaction of credentials (defect 4) with `connect`'s.

mod lan;
mod leftovers;
mod validation;
mod vault;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::Scratch;

/// `cityd --state-dir <scratch>/state ARGS` (and `--city` when given) as a plain command.
fn cityd_cmd(s: &Scratch, city: Option<&Path>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cityd"));
    c.env_remove("CITYD_CITY")
        .env_remove("CITYD_STATE_DIR")
        .env_remove("CITYD_LOG")
        .arg("--state-dir")
        .arg(s.state());
    if let Some(city) = city {
        c.arg("--city").arg(city);
    }
    c.args(args).stdin(Stdio::null());
    c
}

/// Runs a command that must end by itself within `limit` (a FIFO must never block cityd); a hang
/// fails the test after killing the child.
fn finishes(mut cmd: Command, limit: Duration) -> Output {
    let child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cityd");
    let id = child.id();
    let deadline = Instant::now() + limit;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(out) => out.expect("wait for cityd"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            panic!("{cmd:?} still ran after {limit:?}: it blocked");
        }
    }
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn secrets_dir(s: &Scratch) -> PathBuf {
    s.state().join("secrets")
}

/// `secrets ensure` in a fresh scratch; the vault is complete afterwards.
fn ensured() -> Scratch {
    let s = Scratch::new();
    let out = cityd_cmd(&s, None, &["secrets", "ensure"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    s
}

fn mkfifo(path: &Path) {
    let out = Command::new("mkfifo").arg(path).output().unwrap();
    assert!(out.status.success(), "mkfifo {}", path.display());
}
