//! `cityd connect jenkins|gitlab|sonarqube` against the doubles in `cityd-testcontainers`, one
//! module per product, and the helpers they share: each connect from scratch does what it says, a
//! rerun changes nothing (no mutating request), user files keep every line cityd does not own,
//! `--dry-run` changes nothing, SonarQube's version variants, GitLab's and SonarQube's address
//! refusals, Jenkins' crumbs.

mod gitlab;
mod jenkins;
mod redaction;
mod sonarqube;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cityd::secrets::{Secret, SecretName, Vault};
use cityd::state::StateDir;

use crate::common::Scratch;

const BUILDS_HOOK: &str = "https://mattermost.cicd.local:8065/hooks/b8x1q3k7zt4m9c2w6r5y0p1n3e";
const REVIEWS_HOOK: &str = "https://mattermost.cicd.local:8065/hooks/r4v2k8m1xq7t3z9c6w0p5y2n8a";
const RELAY_URL: &str = "http://203.0.113.10:9180/sonarqube";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jenkins")
        .join(name)
}

/// A city file: the default city with `edit` applied to its TOML table.
fn city(s: &Scratch, edit: impl FnOnce(&mut toml::Table)) -> PathBuf {
    let mut table: toml::Table = toml::from_str(cityd::city::DEFAULT_CITY_TOML).unwrap();
    edit(&mut table);
    let path = s.path().join("city.toml");
    std::fs::write(&path, toml::to_string(&table).unwrap()).unwrap();
    path
}

fn section<'a>(table: &'a mut toml::Table, product: &str) -> &'a mut toml::Table {
    table["integrations"].as_table_mut().unwrap()[product]
        .as_table_mut()
        .unwrap()
}

fn vault(s: &Scratch) -> Vault {
    let vault = Vault::new(&StateDir::at(s.state()).unwrap());
    vault.ensure().unwrap();
    vault
}

fn store(vault: &Vault, name: &str, value: &str) {
    vault.store(name, &Secret::new(value.into())).unwrap();
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn connect(s: &Scratch, city: &Path, args: &[&str]) -> Run {
    let out = s
        .cityd()
        .arg("--city")
        .arg(city)
        .arg("connect")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(run: Run) -> Run {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    run
}

/// Bytes, inode and mtime: an untouched file keeps all three.
fn fingerprint_of(path: &Path) -> (Vec<u8>, u64, i64, i64) {
    let m = std::fs::metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The lines of `original` must appear in `edited` in the same order, every one of them, except
/// lines for which `owned` is true.
fn assert_keeps_lines(original: &str, edited: &str, owned: impl Fn(&str) -> bool) {
    let mut rest = edited.lines();
    for line in original.lines().filter(|l| !owned(l)) {
        assert!(
            rest.any(|l| l == line),
            "the line {line:?} was lost or moved; edited file:\n{edited}"
        );
    }
}

/// A minimal HTTP/1.1 exchange with a double (for checks of the doubles' own behaviour).
fn raw_http(base: &str, request: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, response)
}
