//! Integration tests: the command line is resolved once: `cityd up` reads and validates the city
//! description a single time, however many steps use it (the Docker tests prove it for full runs
//! with the wiring; this one needs no engine).

use crate::common::*;

/// The debug line the one reader of a city description logs.
const READ_LINE: &str = "city description read and validated";

#[test]
fn up_reads_and_validates_a_partial_city_description_once() {
    let s = Scratch::new();
    // A file that states only what differs from the default (a literal LAN address, so the test
    // does not depend on this machine's routes).
    let city = s.write(
        "city.toml",
        "[lan]\naddresses = [\"192.0.2.10\"]\nallow_test_ranges = true\n",
    );
    for verb in [&["secrets", "ensure"][..], &["pki", "ensure"]] {
        s.cityd()
            .arg("--city")
            .arg(&city)
            .args(verb)
            .assert()
            .success();
    }
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["up", "--dry-run", "--skip-db"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("CITYD_LOG", "cityd::city=debug")
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 1);
    assert!(stderr.contains("/nonexistent/docker.sock"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The vault, PKI and both rendered files were planned before the engine was asked: each of
    // them used the city, and before this core each rendering read the file again.
    for step in ["vault", "pki", "render"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(step)),
            "no {step} step:\n{stdout}"
        );
    }
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("render")).count(),
        2,
        "{stdout}"
    );
    assert_eq!(stderr.matches(READ_LINE).count(), 1, "{stderr}");
}

#[test]
fn secrets_verbs_read_the_city_once_and_refuse_a_broken_one() {
    // `secrets` needs only the vault, but it honours --city (issue 12): the file is read once,
    // and an unreadable one stops the verb before the vault is touched.
    let s = Scratch::new();
    let city = s.write("city.toml", "[lan]\naddresses = [\"10.1.2.3\"]\n");
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["secrets", "list"])
        .env("CITYD_LOG", "cityd::city=debug")
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 0);
    assert_eq!(stderr.matches(READ_LINE).count(), 1, "{stderr}");
    let broken = s.write("broken.toml", "this is not TOML [");
    let out = s
        .cityd()
        .arg("--city")
        .arg(&broken)
        .args(["secrets", "list"])
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 2);
    assert!(stderr.contains("broken.toml"), "{stderr}");
}
