//! Fixtures shared by every test module: scratch state directories, the `cityd` command, tool checks.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

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

/// Runs a command and returns its stdout, failing the test with stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr, after checking it exited with `code`.
pub fn stderr_of_exit(out: &std::process::Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    err
}

/// Path of a file in the shared reference (turn vectors, payloads).
pub fn reference(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for candidate in [
        root.join("../shared/reference"),
        root.join("tests/fixtures/reference"),
    ] {
        let p = candidate.join(rel);
        if p.exists() {
            return p;
        }
    }
    panic!("reference file {rel} not found under ../shared/reference or tests/fixtures/reference");
}
