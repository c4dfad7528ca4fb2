//! Integration tests: pki. The root CA and the server certificate read back by real openssl, real TLS
//! handshakes against a rustls server on loopback, idempotence down to mtimes, adoption of CAs made
//! by openssl, bad input that must write nothing, and a property test over arbitrary LAN addresses.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cityd::city::City;
use cityd::pki::{self, probe::TlsProbe};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::common::{Scratch, require_tool, run_ok, stdout_of_success};

const FILES: [&str; 5] = ["ca.pem", "ca.crt", "ca.key", "server.pem", "server.key"];

/// A city description with literal LAN addresses (they need not exist on this machine).
fn city_toml(addresses: &[&str]) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("{a:?}")).collect();
    // Documentation addresses (192.0.2.10, 2001:db8::10) stand in for a LAN, on purpose.
    cityd::city::DEFAULT_CITY_TOML
        .replace(
            "addresses = [\"auto\"]",
            &format!("addresses = [{}]", list.join(", ")),
        )
        .replace("allow_test_ranges = false", "allow_test_ranges = true")
}

fn write_city(s: &Scratch, addresses: &[&str]) -> PathBuf {
    s.write("city.toml", &city_toml(addresses))
}

fn pki_dir(s: &Scratch) -> PathBuf {
    s.state().join("pki")
}

/// `cityd --city <city> pki ensure <args>`, asserting success; returns stdout.
fn ensure_ok(s: &Scratch, city: &Path, args: &[&str]) -> String {
    run_ok(
        s.cityd()
            .arg("--city")
            .arg(city)
            .args(["pki", "ensure"])
            .args(args),
    )
}

/// `cityd pki ensure` expected to fail: returns (exit code, stderr).
fn ensure_err(s: &Scratch, city: &Path, args: &[&str]) -> (i32, String) {
    let out = s
        .cityd()
        .arg("--city")
        .arg(city)
        .args(["pki", "ensure"])
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "pki ensure {args:?} should fail");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn openssl(args: &[&str]) -> String {
    run_ok(Command::new(require_tool("openssl", "openssl")).args(args))
}

fn openssl_in(dir: &Path, args: &[&str]) -> String {
    run_ok(
        Command::new(require_tool("openssl", "openssl"))
            .current_dir(dir)
            .args(args),
    )
}

/// Every file of a directory with its bytes, mtime (ns) and inode: equal snapshots mean untouched.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, i64, i64, u64, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (
                    std::fs::read(e.path()).unwrap(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ino(),
                    m.mode() & 0o7777,
                ),
            )
        })
        .collect()
}

/// Days between openssl's notBefore and notAfter (`-dateopt iso_8601`: `2026-11-27 17:35:04Z`).
fn validity_days(cert: &Path) -> i64 {
    let text = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-startdate",
        "-enddate",
        "-dateopt",
        "iso_8601",
    ]);
    let at = |key: &str| -> i64 {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{key} in {text}"));
        let (date, clock) = line.trim_end_matches('Z').split_once(' ').unwrap();
        let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let t: Vec<i64> = clock.split(':').map(|x| x.parse().unwrap()).collect();
        let day = time::Date::from_calendar_date(
            d[0] as i32,
            time::Month::try_from(d[1] as u8).unwrap(),
            d[2] as u8,
        )
        .unwrap();
        day.to_julian_day() as i64 * 86400 + t[0] * 3600 + t[1] * 60 + t[2]
    };
    let seconds = at("notAfter=") - at("notBefore=");
    assert_eq!(seconds % 86400, 0, "validity is whole days: {text}");
    seconds / 86400
}

fn serial(cert: &Path) -> String {
    openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

#[test]
fn openssl_verifies_the_chain_and_reads_the_specified_profile() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10", "2001:db8::10"]);
    ensure_ok(&s, &city, &[]);
    let dir = pki_dir(&s);

    // The chain, for TLS server use, by hostname and by each address a phone may use.
    for check in [
        vec!["-verify_hostname", "mattermost.cicd.local"],
        vec!["-verify_ip", "192.0.2.10"],
        vec!["-verify_ip", "2001:db8::10"],
        vec!["-verify_ip", "127.0.0.1"],
    ] {
        let mut args = vec!["verify", "-purpose", "sslserver", "-CAfile", "ca.pem"];
        args.extend(check);
        args.push("server.pem");
        assert_eq!(openssl_in(&dir, &args).trim(), "server.pem: OK");
    }
    let wrong = Command::new(require_tool("openssl", "openssl"))
        .current_dir(&dir)
        .args(["verify", "-CAfile", "ca.pem", "-verify_ip", "192.0.2.99"])
        .arg("server.pem")
        .output()
        .unwrap();
    assert!(
        !wrong.status.success(),
        "an address outside the SANs must not verify"
    );

    let leaf = openssl_in(&dir, &["x509", "-in", "server.pem", "-text", "-noout"]);
    for expected in [
        "DNS:mattermost.cicd.local",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:192.0.2.10",
        "IP Address:0:0:0:0:0:0:0:1",
        "IP Address:2001:DB8:0:0:0:0:0:10",
        "TLS Web Server Authentication",
        "Digital Signature",
        "CA:FALSE",
        "NIST CURVE: P-256",
        "Subject: CN = mattermost.cicd.local",
    ] {
        assert!(leaf.contains(expected), "leaf lacks {expected}:\n{leaf}");
    }
    assert!(!leaf.contains("1975"), "not_before must be set explicitly");
    assert_eq!(validity_days(&dir.join("server.pem")), 397);

    let ca = openssl_in(&dir, &["x509", "-in", "ca.pem", "-text", "-noout"]);
    for expected in [
        "CA:TRUE, pathlen:0",
        "Certificate Sign, CRL Sign",
        "Subject: CN = cityd CA cicd.local",
        "NIST CURVE: P-256",
    ] {
        assert!(ca.contains(expected), "CA lacks {expected}:\n{ca}");
    }
    assert_eq!(validity_days(&dir.join("ca.pem")), pki::CA_VALIDITY_DAYS);

    // Random 16-byte serials with the top bit clear, never rcgen's key hash.
    for cert in ["ca.pem", "server.pem"] {
        let serial = serial(&dir.join(cert));
        assert_eq!(serial.len(), 32, "{cert} serial {serial}");
        assert!(
            serial.as_bytes()[0] < b'8',
            "{cert} serial {serial} is negative"
        );
    }
    assert_ne!(serial(&dir.join("ca.pem")), serial(&dir.join("server.pem")));

    // ca.crt is the same certificate in DER, and `pki show` prints that fingerprint.
    let der_fp = openssl_in(
        &dir,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "ca.crt",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let pem_fp = openssl_in(
        &dir,
        &["x509", "-in", "ca.pem", "-noout", "-fingerprint", "-sha256"],
    );
    assert_eq!(der_fp, pem_fp);
    let show = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["pki", "show", "--json"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let show: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let fp = der_fp.trim().split_once('=').unwrap().1;
    assert_eq!(show["ca"]["sha256"], fp);
    assert_eq!(show["server"]["days_left"], 396);
    assert_eq!(show["server_verifies"], true);
    assert_eq!(show["missing_sans"], serde_json::json!([]));
    let modes: BTreeMap<String, String> = show["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["mode"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(modes["ca.key"], "0600");
    assert_eq!(modes["server.key"], "0600");

    // `export` hands phones the same DER; PEM on stdout by default.
    let out = s.path().join("phone.crt");
    s.cityd()
        .args(["pki", "export", "--format", "der", "--out"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(dir.join("ca.crt")).unwrap()
    );
    let pem = s.cityd().args(["pki", "export"]).output().unwrap();
    assert_eq!(pem.stdout, std::fs::read(dir.join("ca.pem")).unwrap());
}

#[test]
fn validity_is_configurable_up_to_825_days_and_refused_above() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    ensure_ok(&s, &city, &["--validity-days", "825"]);
    assert_eq!(validity_days(&pki_dir(&s).join("server.pem")), 825);

    let t = Scratch::new();
    let city = write_city(&t, &["192.0.2.10"]);
    let (code, err) = ensure_err(&t, &city, &["--validity-days", "826"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("826") && err.contains("825") && err.contains("Apple"),
        "{err}"
    );
    assert!(!t.state().exists(), "a refused flag writes nothing");
}

#[test]
fn a_rerun_changes_nothing_and_a_moved_lan_address_reissues_only_the_leaf() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    let dir = pki_dir(&s);

    let dry = ensure_ok(&s, &city, &["--dry-run"]);
    assert!(
        dry.contains("would be created") && dry.contains("nothing was written"),
        "{dry}"
    );
    assert!(!s.state().exists(), "--dry-run wrote something");

    ensure_ok(&s, &city, &[]);
    let first = snapshot(&dir);
    for f in FILES {
        assert!(first.contains_key(f), "{f} missing");
    }
    assert_eq!(first["ca.key"].4, 0o600);
    assert_eq!(first["server.key"].4, 0o600);
    assert_eq!(first["ca.pem"].4, 0o644);

    let again = ensure_ok(&s, &city, &[]);
    assert!(again.contains("no changes"), "{again}");
    assert_eq!(snapshot(&dir), first, "a second ensure touched a file");

    // The LAN address moved: the dry run says why, then the leaf alone is re-issued.
    let city = write_city(&s, &["192.0.2.20"]);
    let dry = ensure_ok(&s, &city, &["--dry-run"]);
    assert!(
        dry.contains("add IP:192.0.2.20; drop IP:192.0.2.10"),
        "{dry}"
    );
    assert_eq!(snapshot(&dir), first, "--dry-run touched a file");

    let moved = ensure_ok(&s, &city, &[]);
    assert!(
        moved.contains("issued") && moved.contains("LAN address moved"),
        "{moved}"
    );
    let second = snapshot(&dir);
    for f in ["ca.pem", "ca.crt", "ca.key"] {
        assert_eq!(second[f], first[f], "{f} changed");
    }
    assert_ne!(second["server.pem"].0, first["server.pem"].0);
    assert_ne!(second["server.key"].0, first["server.key"].0);
    assert_eq!(second["server.key"].4, 0o600);
    let leaf = openssl_in(
        &dir,
        &[
            "x509",
            "-in",
            "server.pem",
            "-noout",
            "-ext",
            "subjectAltName",
        ],
    );
    assert!(
        leaf.contains("IP Address:192.0.2.20") && !leaf.contains("192.0.2.10"),
        "{leaf}"
    );
    assert_eq!(
        openssl_in(&dir, &["verify", "-CAfile", "ca.pem", "server.pem"]).trim(),
        "server.pem: OK"
    );
    let old_serial = {
        let old = s.path().join("old.pem");
        std::fs::write(&old, &first["server.pem"].0).unwrap();
        serial(&old)
    };
    assert_ne!(serial(&dir.join("server.pem")), old_serial);

    // A key readable by others is repaired without re-issuing anything.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    ensure_ok(&s, &city, &[]);
    let third = snapshot(&dir);
    assert_eq!(third["server.key"].4, 0o600);
    assert_eq!(third["server.key"].0, second["server.key"].0);
    assert_eq!(third["server.pem"], second["server.pem"]);
}

#[test]
fn a_leaf_with_fewer_than_30_days_left_is_reissued() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    let dir = pki_dir(&s);
    ensure_ok(&s, &city, &["--validity-days", "20"]);
    assert_eq!(validity_days(&dir.join("server.pem")), 20);
    let before = snapshot(&dir);

    let out = ensure_ok(&s, &city, &[]);
    assert!(out.contains("19 days left (renewed below 30)"), "{out}");
    let after = snapshot(&dir);
    assert_eq!(validity_days(&dir.join("server.pem")), 397);
    for f in ["ca.pem", "ca.crt", "ca.key"] {
        assert_eq!(after[f], before[f], "{f} changed");
    }
    assert_ne!(after["server.pem"].0, before["server.pem"].0);
}

/// A CA made by openssl the way the blog's lab did it, in several key encodings.
struct OpensslCa {
    cert: PathBuf,
    pkcs8: PathBuf,
    sec1: PathBuf,
    encrypted: PathBuf,
    passphrase: PathBuf,
    rsa_cert: PathBuf,
    rsa_pkcs1: PathBuf,
}

fn openssl_ca(s: &Scratch) -> OpensslCa {
    let cnf = s.write(
        "ca.cnf",
        "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = Blog Lab Root CA\nO = cicd lab\n\
         [v3_ca]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n",
    );
    let p = |n: &str| s.path().join(n);
    let ca = OpensslCa {
        cert: p("lab-ca.pem"),
        pkcs8: p("lab-ca.key"),
        sec1: p("lab-ca-sec1.key"),
        encrypted: p("lab-ca.p8"),
        passphrase: s.write("passphrase.txt", "correct horse battery staple\n"),
        rsa_cert: p("lab-rsa.pem"),
        rsa_pkcs1: p("lab-rsa.key"),
    };
    let path = |p: &PathBuf| p.to_str().unwrap().to_string();
    let cnf = path(&cnf);
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &path(&ca.pkcs8),
        "-out",
        &path(&ca.cert),
        "-days",
        "3650",
        "-config",
        &cnf,
        "-extensions",
        "v3_ca",
    ]);
    openssl(&["ec", "-in", &path(&ca.pkcs8), "-out", &path(&ca.sec1)]);
    openssl(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-in",
        &path(&ca.pkcs8),
        "-out",
        &path(&ca.encrypted),
        "-passout",
        &format!("file:{}", path(&ca.passphrase)),
    ]);
    let rsa_pkcs8 = p("lab-rsa.p8");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path(&rsa_pkcs8),
        "-out",
        &path(&ca.rsa_cert),
        "-days",
        "3650",
        "-config",
        &cnf,
        "-extensions",
        "v3_ca",
    ]);
    openssl(&[
        "rsa",
        "-traditional",
        "-in",
        &path(&rsa_pkcs8),
        "-out",
        &path(&ca.rsa_pkcs1),
    ]);
    for (file, label) in [
        (&ca.pkcs8, "BEGIN PRIVATE KEY"),
        (&ca.sec1, "BEGIN EC PRIVATE KEY"),
        (&ca.encrypted, "BEGIN ENCRYPTED PRIVATE KEY"),
        (&ca.rsa_pkcs1, "BEGIN RSA PRIVATE KEY"),
    ] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains(label), "{} is not {label}", file.display());
    }
    ca
}

#[test]
fn an_adopted_openssl_ca_signs_the_leaf_in_every_key_encoding() {
    let lab = Scratch::new();
    let ca = openssl_ca(&lab);
    let p = |p: &PathBuf| p.to_str().unwrap().to_string();
    let cases: Vec<(&str, &PathBuf, Vec<String>)> = vec![
        ("PKCS#8", &ca.cert, vec!["--ca-key".into(), p(&ca.pkcs8)]),
        ("SEC1", &ca.cert, vec!["--ca-key".into(), p(&ca.sec1)]),
        (
            "encrypted PKCS#8",
            &ca.cert,
            vec![
                "--ca-key".into(),
                p(&ca.encrypted),
                "--ca-key-passphrase-file".into(),
                p(&ca.passphrase),
            ],
        ),
        (
            "RSA PKCS#1",
            &ca.rsa_cert,
            vec!["--ca-key".into(), p(&ca.rsa_pkcs1)],
        ),
    ];
    for (what, cert, key_args) in cases {
        let s = Scratch::new();
        let city = write_city(&s, &["192.0.2.10"]);
        let mut args = vec!["--ca-cert".to_string(), p(cert)];
        args.extend(key_args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ensure_ok(&s, &city, &args);
        assert!(out.contains("adopted"), "{what}: {out}");
        let dir = pki_dir(&s);
        let verified = openssl(&[
            "verify",
            "-purpose",
            "sslserver",
            "-verify_ip",
            "192.0.2.10",
            "-CAfile",
            &p(cert),
            dir.join("server.pem").to_str().unwrap(),
        ]);
        assert!(verified.trim().ends_with(": OK"), "{what}: {verified}");
        let issuer = openssl(&[
            "x509",
            "-in",
            dir.join("server.pem").to_str().unwrap(),
            "-noout",
            "-issuer",
        ]);
        assert!(issuer.contains("Blog Lab Root CA"), "{what}: {issuer}");
        // The state now holds the adopted certificate itself, and a key only root can read.
        let adopted_der = openssl(&["x509", "-in", &p(cert), "-noout", "-fingerprint", "-sha256"]);
        let state_der = openssl(&[
            "x509",
            "-inform",
            "DER",
            "-in",
            dir.join("ca.crt").to_str().unwrap(),
            "-noout",
            "-fingerprint",
            "-sha256",
        ]);
        assert_eq!(adopted_der, state_der, "{what}");
        assert_eq!(
            std::fs::metadata(dir.join("ca.key")).unwrap().mode() & 0o777,
            0o600
        );
        // Adopting the same CA again is a no-op; without the flags the adopted CA is simply kept.
        let before = snapshot(&dir);
        assert!(ensure_ok(&s, &city, &args).contains("no changes"), "{what}");
        assert!(ensure_ok(&s, &city, &[]).contains("no changes"), "{what}");
        assert_eq!(snapshot(&dir), before, "{what}");
    }
}

#[test]
fn bad_ca_input_names_the_file_exits_2_and_writes_nothing() {
    let lab = Scratch::new();
    let ca = openssl_ca(&lab);
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let garbage = lab.write(
        "garbage.key",
        "-----BEGIN PRIVATE KEY-----\nthis is not base64!\n-----END PRIVATE KEY-----\n",
    );
    let truncated = lab.write(
        "truncated.key",
        &std::fs::read_to_string(&ca.pkcs8).unwrap()[..60],
    );
    let wrong_pass = lab.write("wrong.txt", "not the passphrase\n");
    // A server certificate (not a CA) and its key, from another city.
    let other = Scratch::new();
    let other_city = write_city(&other, &["192.0.2.30"]);
    ensure_ok(&other, &other_city, &[]);
    let leaf_pem = pki_dir(&other).join("server.pem");
    let leaf_key = pki_dir(&other).join("server.key");

    let cases: Vec<(Vec<String>, PathBuf, &str)> = vec![
        (
            vec![
                "--ca-cert".into(),
                p(&ca.cert),
                "--ca-key".into(),
                p(&garbage),
            ],
            garbage.clone(),
            "not a usable private key",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&ca.cert),
                "--ca-key".into(),
                p(&truncated),
            ],
            truncated.clone(),
            "no END line",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&garbage),
                "--ca-key".into(),
                p(&ca.pkcs8),
            ],
            garbage.clone(),
            "not a usable certificate",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&leaf_pem),
                "--ca-key".into(),
                p(&leaf_key),
            ],
            leaf_pem.clone(),
            "is not a CA certificate",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&ca.cert),
                "--ca-key".into(),
                p(&ca.rsa_pkcs1),
            ],
            ca.rsa_pkcs1.clone(),
            "does not belong to",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&ca.cert),
                "--ca-key".into(),
                p(&ca.encrypted),
            ],
            ca.encrypted.clone(),
            "--ca-key-passphrase-file",
        ),
        (
            vec![
                "--ca-cert".into(),
                p(&ca.cert),
                "--ca-key".into(),
                p(&ca.encrypted),
                "--ca-key-passphrase-file".into(),
                p(&wrong_pass),
            ],
            wrong_pass.clone(),
            "cannot decrypt",
        ),
    ];
    for (args, named, says) in cases {
        let s = Scratch::new();
        let city = write_city(&s, &["192.0.2.10"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = ensure_err(&s, &city, &args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(named.to_str().unwrap()) && err.contains(says),
            "{args:?} should name {} and say {says:?}: {err}",
            named.display()
        );
        assert!(
            !err.contains("correct horse"),
            "the passphrase leaked: {err}"
        );
        assert!(
            !s.state().exists(),
            "{args:?} wrote into the state directory"
        );
    }
}

#[test]
fn a_broken_or_foreign_ca_in_the_state_stops_ensure_without_touching_anything() {
    let lab = Scratch::new();
    let ca = openssl_ca(&lab);
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    let dir = pki_dir(&s);
    ensure_ok(&s, &city, &[]);

    // Adopting a different CA over an existing one is refused.
    let before = snapshot(&dir);
    let (code, err) = ensure_err(
        &s,
        &city,
        &[
            "--ca-cert",
            ca.cert.to_str().unwrap(),
            "--ca-key",
            ca.pkcs8.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("never replaces a CA") && err.contains(dir.to_str().unwrap()),
        "{err}"
    );
    assert_eq!(snapshot(&dir), before);

    // A malformed CA key in the state, with a moved LAN address that would otherwise re-issue.
    std::fs::write(
        dir.join("ca.key"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let before = snapshot(&dir);
    let moved = write_city(&s, &["192.0.2.20"]);
    let (code, err) = ensure_err(&s, &moved, &[]);
    assert_eq!(code, 2);
    assert!(err.contains(dir.join("ca.key").to_str().unwrap()), "{err}");
    assert_eq!(snapshot(&dir), before, "no file may change or appear");

    // A missing CA key: never silently replaced by a new CA.
    std::fs::remove_file(dir.join("ca.key")).unwrap();
    let before = snapshot(&dir);
    let (code, err) = ensure_err(&s, &moved, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("never replaces a CA") && err.contains("restore"),
        "{err}"
    );
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn an_unreadable_pki_directory_is_named() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    std::fs::create_dir_all(s.state()).unwrap();
    std::fs::write(pki_dir(&s), "not a directory").unwrap();
    let (code, err) = ensure_err(&s, &city, &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(pki_dir(&s).to_str().unwrap()) && err.contains("directory"),
        "{err}"
    );
    assert_eq!(std::fs::read(pki_dir(&s)).unwrap(), b"not a directory");
    let show = s.cityd().args(["pki", "show"]).output().unwrap();
    assert_eq!(show.status.code(), Some(2));
}

/// A rustls server on `bind` presenting `<dir>/server.pem` + `server.key` to `connections` clients.
fn serve_tls(bind: &str, dir: &Path, connections: usize) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    // The listener is bound before the client starts: no readiness race to wait out.
    std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut sock, _)) = listener.accept() else {
                return;
            };
            let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock).is_err() {
                    break;
                }
            }
            let _ = conn.complete_io(&mut sock);
        }
    });
    addr
}

#[test]
fn verify_tls_handshakes_by_ip_and_by_name_trusting_only_the_city_ca() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    ensure_ok(&s, &city, &[]);
    let addr = serve_tls("127.0.0.1:0", &pki_dir(&s), 2);
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["verify", "tls", "--name", "--connect"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("ok      {addr} as 127.0.0.1: TLSv1_3")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ok      {addr} as mattermost.cicd.local")),
        "{stdout}"
    );
    let leaf_fp = {
        let show = s
            .cityd()
            .args(["pki", "show", "--json"])
            .arg("--city")
            .arg(&city)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        v["server"]["sha256"].as_str().unwrap().to_string()
    };
    assert!(
        stdout.contains(&leaf_fp),
        "the presented leaf is ours: {stdout}"
    );
}

#[test]
fn verify_tls_fails_for_an_address_missing_from_the_certificate() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    ensure_ok(&s, &city, &[]);
    // 127.0.0.2 is loopback, but not a name in the certificate: what a phone sees after the LAN moved.
    let addr = serve_tls("127.0.0.2:0", &pki_dir(&s), 1);
    let out = s
        .cityd()
        .args(["verify", "tls", "--json", "--connect"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let error = report["checks"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("certificate not valid for 127.0.0.2")
            && error.contains("192.0.2.10")
            && error.contains("the LAN address moved")
            && error.contains("cityd pki ensure"),
        "{error}"
    );
}

#[test]
fn verify_tls_fails_against_a_certificate_from_another_ca() {
    let ours = Scratch::new();
    let city = write_city(&ours, &["192.0.2.10"]);
    ensure_ok(&ours, &city, &[]);
    let theirs = Scratch::new();
    ensure_ok(&theirs, &write_city(&theirs, &["192.0.2.10"]), &[]);
    let addr = serve_tls("127.0.0.1:0", &pki_dir(&theirs), 1);
    let out = ours
        .cityd()
        .args(["verify", "tls", "--connect"])
        .arg(addr.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("failed") && stdout.contains("not issued by the city CA"),
        "{stdout}"
    );
}

#[test]
fn verify_tls_without_a_ca_is_bad_input() {
    let s = Scratch::new();
    let out = s
        .cityd()
        .args(["verify", "tls", "--connect", "127.0.0.1:9"])
        .output()
        .unwrap();
    let err = crate::common::stderr_of_exit(&out, 2);
    assert!(
        err.contains("ca.pem") && err.contains("cityd pki ensure"),
        "{err}"
    );
}

#[test]
fn a_client_trusting_only_the_ca_rejects_an_ip_outside_the_sans() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    ensure_ok(&s, &city, &[]);
    let dir = pki_dir(&s);
    let addr = serve_tls("127.0.0.1:0", &dir, 2);
    let ca = pki::read_certificate(&dir.join("ca.pem")).unwrap();
    let probe = TlsProbe::trusting(&ca, Duration::from_secs(5)).unwrap();

    let good = probe.check(
        addr,
        ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into()),
    );
    assert!(good.ok, "{good:?}");
    assert_eq!(good.protocol.as_deref(), Some("TLSv1_3"));

    let wrong_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let bad = probe.check(addr, ServerName::IpAddress(wrong_ip.into()));
    assert!(!bad.ok);
    let error = bad.error.unwrap();
    assert!(
        error.contains("certificate not valid for 127.0.0.2")
            && error.contains("it names")
            && error.contains("the LAN address moved"),
        "{error}"
    );
}

#[test]
fn issued_sans_are_exactly_the_configured_addresses_plus_the_names() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let now = time::OffsetDateTime::now_utc();
    let ca = pki::Ca::generate("cityd CA proptest", now).unwrap();
    let city = City::default_city();
    let ip = prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 32,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&proptest::collection::vec(ip, 0..8), |lan| {
            let wanted = pki::wanted_sans(&city, &lan);
            let leaf = pki::issue(&ca, &wanted, 397, now).expect("issue");
            let (_, cert) = x509_parser::parse_x509_certificate(&leaf.cert_der).unwrap();
            let mut ips = std::collections::BTreeSet::new();
            let mut dns = std::collections::BTreeSet::new();
            let sans = cert.subject_alternative_name().unwrap().unwrap();
            for name in &sans.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        ips.insert(match b.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()),
                            _ => IpAddr::from(<[u8; 16]>::try_from(*b).unwrap()),
                        });
                    }
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        dns.insert(d.to_string());
                    }
                    other => prop_assert!(false, "unexpected SAN {other:?}"),
                }
            }
            for address in &lan {
                prop_assert!(ips.contains(address), "{address} missing from {ips:?}");
            }
            prop_assert!(ips.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
            prop_assert!(ips.contains(&IpAddr::V6(Ipv6Addr::LOCALHOST)));
            prop_assert_eq!(ips.len(), wanted.ip.len(), "no extra addresses");
            prop_assert_eq!(
                dns,
                ["localhost", "mattermost.cicd.local"]
                    .map(String::from)
                    .into_iter()
                    .collect()
            );
            // And a client trusting only the CA accepts the leaf for each of those addresses.
            for address in &lan {
                let name = ServerName::IpAddress((*address).into());
                prop_assert!(
                    pki::verify_leaf(ca.cert_der(), &leaf.cert_der, &[], &name, now).is_ok(),
                    "{address} does not verify"
                );
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn concurrent_first_runs_agree_on_one_ca() {
    let s = Scratch::new();
    let city = write_city(&s, &["192.0.2.10"]);
    let children: Vec<std::process::Child> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_cityd"))
                .arg("--state-dir")
                .arg(s.state())
                .arg("--city")
                .arg(&city)
                .args(["pki", "ensure", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let reports: Vec<serde_json::Value> = children
        .into_iter()
        .map(|c| serde_json::from_str(&stdout_of_success(&c.wait_with_output().unwrap())).unwrap())
        .collect();
    let created = reports.iter().filter(|r| r["ca"] == "created").count();
    assert_eq!(created, 1, "exactly one run creates the CA: {reports:#?}");
    let ca_fp = &reports[0]["ca_sha256"];
    assert!(reports.iter().all(|r| &r["ca_sha256"] == ca_fp));
    let dir = pki_dir(&s);
    assert_eq!(
        openssl_in(&dir, &["verify", "-CAfile", "ca.pem", "server.pem"]).trim(),
        "server.pem: OK"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cityd-tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
