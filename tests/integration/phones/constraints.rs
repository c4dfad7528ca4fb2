//! The city CA's NameConstraints: written critical with the city's names, loopback, the private
//! ranges and the LAN's /24; the city's own leaf verifies by name and by LAN IP in openssl and in
//! rustls/webpki; leaves forged with the same CA for a public name or a public IP are refused by
//! both. An unconstrained CA made before (or adopted) is kept, and doctor says what it allows.

use rustls_pki_types::ServerName;
use time::OffsetDateTime;

use super::{city_with_lan, der_of, ensure, forge_leaf, openssl};
use crate::common::{Scratch, run_ok, stderr_of_exit};

/// `openssl verify -purpose sslserver -CAfile ca.pem <check…> <leaf>`: (success, output).
fn openssl_verify(dir: &std::path::Path, check: &[&str], leaf: &std::path::Path) -> (bool, String) {
    let out = openssl()
        .current_dir(dir)
        .args(["verify", "-purpose", "sslserver", "-CAfile", "ca.pem"])
        .args(check)
        .arg(leaf)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn webpki(ca: &[u8], leaf: &[u8], name: &str) -> Result<(), String> {
    let name = ServerName::try_from(name.to_string()).unwrap();
    cityd::pki::verify_leaf(ca, leaf, &[], &name, OffsetDateTime::now_utc())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn a_new_ca_is_constrained_to_the_city_and_its_lan() {
    let s = Scratch::new();
    let city = city_with_lan(&s, &["192.0.2.10", "10.20.30.40"]);
    let dir = ensure(&s, &city);
    let text = run_ok(
        openssl()
            .current_dir(&dir)
            .args(["x509", "-in", "ca.pem", "-noout", "-text"]),
    );
    let constraints = text
        .split("X509v3 Name Constraints: critical")
        .nth(1)
        .unwrap_or_else(|| panic!("no critical Name Constraints:\n{text}"));
    let constraints: String = constraints.lines().take(14).collect::<Vec<_>>().join("\n");
    for permitted in [
        "DNS:cicd.local",
        "DNS:localhost",
        "IP:127.0.0.0/255.0.0.0",
        "IP:10.0.0.0/255.0.0.0",
        "IP:172.16.0.0/255.240.0.0",
        "IP:192.168.0.0/255.255.0.0",
        "IP:192.0.2.0/255.255.255.0",
        "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        "IP:FC00:0:0:0:0:0:0:0/FE00:0:0:0:0:0:0:0",
    ] {
        assert!(
            constraints.contains(permitted),
            "CA lacks {permitted}:\n{constraints}"
        );
    }
    assert!(!constraints.contains("Excluded"), "{constraints}");
    // 10.20.30.40 is inside 10/8: no extra subtree for it.
    assert!(!constraints.contains("IP:10.20.30.0"), "{constraints}");

    let show: serde_json::Value = serde_json::from_str(&run_ok(
        s.cityd()
            .arg("--city")
            .arg(&city)
            .args(["pki", "show", "--json"]),
    ))
    .unwrap();
    let scope = &show["ca"]["name_constraints"];
    // "postgres": the default city's own PostgreSQL, whose leaf this CA signs.
    assert_eq!(
        scope["dns"],
        serde_json::json!(["cicd.local", "localhost", "postgres"])
    );
    assert!(
        scope["ip"]
            .as_array()
            .unwrap()
            .contains(&"192.0.2.0/24".into()),
        "{scope}"
    );
}

#[test]
fn openssl_and_webpki_accept_the_city_leaf_and_refuse_forged_public_ones() {
    let s = Scratch::new();
    let city = city_with_lan(&s, &["192.0.2.10"]);
    let dir = ensure(&s, &city);
    let ca = der_of(&dir.join("ca.pem"));
    let leaf = der_of(&dir.join("server.pem"));

    // The city's own leaf: by name and by LAN IP (and loopback), in both verifiers.
    for check in [
        ["-verify_hostname", "mattermost.cicd.local"],
        ["-verify_ip", "192.0.2.10"],
        ["-verify_ip", "127.0.0.1"],
    ] {
        let (ok, out) = openssl_verify(&dir, &check, &dir.join("server.pem"));
        assert!(ok, "openssl {check:?}: {out}");
    }
    for name in [
        "mattermost.cicd.local",
        "localhost",
        "192.0.2.10",
        "127.0.0.1",
        "::1",
    ] {
        webpki(&ca, &leaf, name).unwrap_or_else(|e| panic!("webpki refused {name}: {e}"));
    }

    // Leaves signed by the same CA key for what the city does not own.
    let forged_name = forge_leaf(
        &dir,
        s.path(),
        "forged-name",
        "example.com",
        "DNS:example.com",
    );
    let forged_ip = forge_leaf(
        &dir,
        s.path(),
        "forged-ip",
        "forged",
        "DNS:mattermost.cicd.local,IP:93.184.216.34",
    );
    let forged_ip_only = forge_leaf(
        &dir,
        s.path(),
        "forged-ip-only",
        "forged",
        "IP:198.51.100.7",
    );
    // A sibling of the domain that only shares its suffix as text.
    let forged_suffix = forge_leaf(&dir, s.path(), "forged-suffix", "x", "DNS:evilcicd.local");
    for (leaf, check) in [
        (&forged_name, vec!["-verify_hostname", "example.com"]),
        (&forged_name, vec![]),
        (&forged_ip, vec!["-verify_ip", "93.184.216.34"]),
        (
            &forged_ip,
            vec!["-verify_hostname", "mattermost.cicd.local"],
        ),
        (&forged_ip_only, vec!["-verify_ip", "198.51.100.7"]),
        (&forged_suffix, vec![]),
    ] {
        let (ok, out) = openssl_verify(&dir, &check, leaf);
        assert!(!ok, "openssl accepted {} {check:?}: {out}", leaf.display());
        assert!(out.contains("permitted subtree violation"), "{out}");
    }
    for (leaf, name) in [
        (&forged_name, "example.com"),
        (&forged_ip, "93.184.216.34"),
        (&forged_ip, "mattermost.cicd.local"),
        (&forged_ip_only, "198.51.100.7"),
        (&forged_suffix, "evilcicd.local"),
    ] {
        let err = webpki(&ca, &der_of(leaf), name).expect_err(name);
        assert!(err.contains("NameConstraintViolation"), "{name}: {err}");
    }
}

/// A CA with no NameConstraints, made by openssl: what an older cityd (or the blog) left behind.
fn unconstrained_ca(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = s.path().join("old-ca.pem");
    let key = s.path().join("old-ca.key");
    run_ok(
        openssl()
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "3650", "-subj", "/CN=old city CA"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-addext", "basicConstraints=critical,CA:TRUE,pathlen:0"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
    );
    (cert, key)
}

fn doctor_codes(s: &Scratch, city: &std::path::Path) -> Vec<serde_json::Value> {
    let out = s
        .cityd()
        .arg("--city")
        .arg(city)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    findings.as_array().unwrap().clone()
}

#[test]
fn an_existing_unconstrained_ca_is_kept_and_doctor_says_what_it_allows() {
    let s = Scratch::new();
    let city = city_with_lan(&s, &["192.0.2.10"]);
    let (cert, key) = unconstrained_ca(&s);
    // An older state: the CA files in place, as `pki ensure` before issue 18 left them.
    let dir = s.state().join("pki");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&cert, dir.join("ca.pem")).unwrap();
    std::fs::copy(&key, dir.join("ca.key")).unwrap();
    std::fs::set_permissions(
        dir.join("ca.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let before = std::fs::read(dir.join("ca.pem")).unwrap();
    ensure(&s, &city);
    assert_eq!(
        std::fs::read(dir.join("ca.pem")).unwrap(),
        before,
        "the CA is never replaced"
    );
    let text = run_ok(
        openssl()
            .current_dir(&dir)
            .args(["x509", "-in", "ca.pem", "-noout", "-text"]),
    );
    assert!(!text.contains("Name Constraints"));
    // The leaf still verifies; the public forgery does too: that is what doctor warns about.
    let forged = forge_leaf(&dir, s.path(), "forged", "example.com", "DNS:example.com");
    let (ok, out) = openssl_verify(&dir, &["-verify_hostname", "example.com"], &forged);
    assert!(ok, "an unconstrained CA vouches for anything: {out}");

    let findings = doctor_codes(&s, &city);
    let warning = findings
        .iter()
        .find(|f| f["code"] == "ca-unconstrained")
        .unwrap_or_else(|| panic!("no ca-unconstrained finding: {findings:#?}"));
    assert_eq!(warning["severity"], "warning");
    let problem = warning["problem"].as_str().unwrap();
    assert!(
        problem.contains("any site") && problem.contains("public"),
        "{problem}"
    );
    assert!(
        warning["fix"]
            .as_str()
            .unwrap()
            .contains("cityd pki ensure")
    );

    // A state with a CA from this cityd has no such finding.
    let fresh = Scratch::new();
    let city = city_with_lan(&fresh, &["192.0.2.10"]);
    ensure(&fresh, &city);
    let codes: Vec<_> = doctor_codes(&fresh, &city)
        .iter()
        .map(|f| f["code"].clone())
        .collect();
    assert!(!codes.contains(&"ca-unconstrained".into()), "{codes:?}");
    assert!(!codes.contains(&"ca-scope-lan".into()), "{codes:?}");
}

#[test]
fn a_lan_moved_outside_the_ca_scope_is_refused_with_the_fix_and_reported() {
    let s = Scratch::new();
    let city = city_with_lan(&s, &["192.0.2.10"]);
    let dir = ensure(&s, &city);
    let before = std::fs::read(dir.join("server.pem")).unwrap();
    // Inside the /24: a new leaf from the same CA.
    let near = city_with_lan(&s, &["192.0.2.77"]);
    ensure(&s, &near);
    let (ok, out) = openssl_verify(&dir, &["-verify_ip", "192.0.2.77"], &dir.join("server.pem"));
    assert!(ok, "{out}");
    assert_ne!(std::fs::read(dir.join("server.pem")).unwrap(), before);
    let leaf = std::fs::read(dir.join("server.pem")).unwrap();

    // Outside it: refused, nothing written, the scope and the fix named.
    let far = city_with_lan(&s, &["198.51.100.7"]);
    let out = s
        .cityd()
        .arg("--city")
        .arg(&far)
        .args(["pki", "ensure"])
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 2);
    for needle in [
        "198.51.100.7",
        "192.0.2.0/24",
        "cicd.local",
        "lan.addresses",
        "cityd pki ensure",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert_eq!(std::fs::read(dir.join("server.pem")).unwrap(), leaf);
    let findings = doctor_codes(&s, &far);
    let codes: Vec<_> = findings
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"ca-scope-lan") && codes.contains(&"cert-sans-stale"),
        "{codes:?}"
    );
}
