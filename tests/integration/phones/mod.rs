//! Integration tests: phones (issue 18). The name-constrained city CA read back and enforced by
//! openssl and rustls/webpki, `cityd onboard`'s page and downloads, headless Chromium in network
//! namespaces trusting only the city CA, and the certificate following a LAN address that moves.

mod browser;
mod constraints;
mod drift;
mod onboard;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Scratch, require_tool, run_ok};

/// The default city with these literal LAN addresses (test ranges allowed).
pub fn city_with_lan(s: &Scratch, addresses: &[&str]) -> PathBuf {
    let list: Vec<String> = addresses.iter().map(|a| format!("{a:?}")).collect();
    // The tests' addresses are documentation ones (192.0.2.0/24), which a city opts into.
    let text = cityd::city::DEFAULT_CITY_TOML
        .replace(
            "addresses = [\"auto\"]",
            &format!("addresses = [{}]", list.join(", ")),
        )
        .replace("allow_test_ranges = false", "allow_test_ranges = true");
    s.write("city.toml", &text)
}

/// `cityd --city <city> pki ensure`; returns the PKI directory.
pub fn ensure(s: &Scratch, city: &Path) -> PathBuf {
    run_ok(s.cityd().arg("--city").arg(city).args(["pki", "ensure"]));
    s.state().join("pki")
}

pub fn openssl() -> Command {
    Command::new(require_tool("openssl", "openssl"))
}

/// A leaf for `sans` (openssl `subjectAltName` syntax) signed by the CA in `dir` with openssl
/// itself, as anyone holding ca.key could; written as `<name>.pem` and `<name>.key` in `out`.
pub fn forge_leaf(dir: &Path, out: &Path, name: &str, cn: &str, sans: &str) -> PathBuf {
    let cert = out.join(format!("{name}.pem"));
    let key = out.join(format!("{name}.key"));
    run_ok(
        openssl()
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN={cn}")])
            .arg("-CA")
            .arg(dir.join("ca.pem"))
            .arg("-CAkey")
            .arg(dir.join("ca.key"))
            .args(["-addext", &format!("subjectAltName={sans}")])
            .args(["-addext", "extendedKeyUsage=serverAuth"])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"]),
    );
    cert
}

/// The first certificate of a PEM file as DER.
pub fn der_of(pem: &Path) -> Vec<u8> {
    cityd::pki::read_certificate(pem).unwrap()
}
