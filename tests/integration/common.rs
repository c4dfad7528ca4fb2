//! Fixtures shared by every test module: scratch state directories, the `cityd` command, tool checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A scratch directory holding a state dir and any files a test writes.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a scratch directory"),
        }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
    /// Writes a file under the scratch directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).expect("write a fixture");
        p
    }
    /// `cityd --state-dir <scratch>/state ...` with a clean environment for cityd's own variables.
    pub fn cityd(&self) -> assert_cmd::Command {
        let mut c = cityd();
        c.arg("--state-dir").arg(self.state());
        c
    }
}

/// The cityd binary under test.
pub fn cityd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_cityd"));
    c.env_remove("CITYD_CITY")
        .env_remove("CITYD_STATE_DIR")
        .env_remove("CITYD_LOG");
    c
}

/// The path of a tool the tests need. A missing tool fails the test with the package to install:
/// tests are never skipped silently.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/sbin",
        "/sbin",
        "/usr/bin",
    ]) {
        let candidate = Path::new(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "{name} is required by this test but is not installed; run scripts/test.sh (it installs {package}) or `apt-get install {package}`"
    );
}

/// A command a test runs to completion: a tool (`std::process::Command`) or `cityd`
/// (`assert_cmd::Command`); its `Debug` form names the command line in failure messages.
pub trait Runnable: std::fmt::Debug {
    fn run_to_end(&mut self) -> std::io::Result<Output>;
}

impl Runnable for Command {
    fn run_to_end(&mut self) -> std::io::Result<Output> {
        self.output()
    }
}

impl Runnable for assert_cmd::Command {
    fn run_to_end(&mut self) -> std::io::Result<Output> {
        self.output()
    }
}

/// Runs a command that must succeed and returns its stdout; a failure shows the command line,
/// exit status, stdout and stderr.
pub fn run_ok(cmd: &mut impl Runnable) -> String {
    let out = cmd
        .run_to_end()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed:\n{}", described(&out));
    utf8_stdout(&out)
}

/// The exit status, stdout and stderr of a finished command, for a failure message.
pub fn described(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A command's stdout, after checking it succeeded; a failure shows its status, stdout and stderr.
pub fn stdout_of_success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "expected success:\n{}",
        described(out)
    );
    utf8_stdout(out)
}

/// stdout as text; it must be UTF-8, as the `serde_json::from_slice` and `String::from_utf8`
/// the tests read it with before demanded.
fn utf8_stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .unwrap_or_else(|e| panic!("stdout is not UTF-8 ({e}):\n{}", described(out)))
}

/// A command's stderr, after checking it exited with `code`; a failure shows its status, stdout and
/// stderr.
pub fn stderr_of_exit(out: &Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        described(out)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Path of a fixture written for these tests (`tests/fixtures/<rel>`); it must exist.
pub fn fixture(rel: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    assert!(
        path.exists(),
        "the fixture {} is missing from the repository",
        path.display()
    );
    path
}

/// Path of an upstream conformance vector in the shared reference beside the repository
/// (`../shared/reference/<rel>`, e.g. `turn-vectors/…`). Only tests under a `conformance` module
/// call this; `scripts/test.sh` skips them, by name, when the reference is absent.
pub fn conformance_reference(rel: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    let path = dir.join(rel);
    assert!(
        path.exists(),
        "conformance check needs the upstream vector {rel}, which is not at {}: put the shared \
         reference directory beside the repository, or skip the conformance checks \
         (`cargo test -- --skip conformance::`, as scripts/test.sh does without it)",
        path.display()
    );
    path
}
