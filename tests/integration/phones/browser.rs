//! A real browser: Debian's Chromium, headless, in a network namespace "phone" whose only trust is
//! the city CA (an NSS database made here under a scratch HOME). It loads an HTTPS page served by
//! openssl with the city's leaf from the namespace "city" (by LAN IP and by name); it refuses leaves
//! the same CA signed for a public name and a public IP (the name constraint, enforced by a
//! browser), while the same forgery under an unconstrained CA loads. It also renders the
//! onboarding page served by `cityd onboard` on its default LAN listener, and screenshots it.
//! Traffic stays inside the two namespaces.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::onboard::Onboard;
use super::{city_with_lan, ensure, forge_leaf, openssl};
use crate::common::{Scratch, require_tool, run_ok};
use crate::turn_harness::{Netns, require_root};

const CITY_IP: &str = "192.0.2.10";
const PHONE_IP: &str = "192.0.2.20";
/// A public address, given to the city namespace only so the forged IP leaf has somewhere to be
/// served; nothing leaves the namespaces.
const PUBLIC_IP: &str = "93.184.216.34";
const MARKER: &str = "city-page-loaded";

/// The two namespaces joined by a veth pair on 192.0.2.0/24.
struct Lan {
    city: Netns,
    phone: Netns,
}

impl Lan {
    fn new() -> Self {
        require_root();
        let city = Netns::new("city");
        let phone = Netns::new("phone");
        city.veth("c0", &phone, "p0");
        city.addr("c0", &format!("{CITY_IP}/24"));
        phone.addr("p0", &format!("{PHONE_IP}/24"));
        city.addr("lo", &format!("{PUBLIC_IP}/32"));
        phone.ip(&["route", "add", &format!("{PUBLIC_IP}/32"), "via", CITY_IP]);
        Self { city, phone }
    }
}

/// `openssl s_server -WWW` in a namespace, serving `www/` with a certificate; killed on drop.
struct HttpsServer(Child);

impl HttpsServer {
    fn start(ns: &Netns, www: &Path, accept: &str, cert: &Path, key: &Path) -> Self {
        let mut child = ns
            .command(&require_tool("openssl", "openssl"))
            .current_dir(www)
            .args(["s_server", "-WWW", "-accept", accept, "-cert"])
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // s_server prints ACCEPT once it listens.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("ACCEPT") {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "openssl s_server on {accept} ended"
            );
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self(child)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch HOME whose NSS database trusts exactly `ca` for websites.
fn home_trusting(s: &Scratch, name: &str, ca: &Path) -> PathBuf {
    let certutil = require_tool("certutil", "libnss3-tools");
    let home = s.path().join(name);
    // Chromium reads $HOME/.pki/nssdb when it exists (before the XDG location).
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).unwrap();
    let sql = format!("sql:{}", db.display());
    run_ok(Command::new(&certutil).args(["-N", "--empty-password", "-d", &sql]));
    run_ok(
        Command::new(&certutil)
            .args(["-A", "-t", "C,,", "-n", "city CA", "-d", &sql, "-i"])
            .arg(ca),
    );
    let listed = run_ok(Command::new(&certutil).args(["-L", "-d", &sql]));
    assert!(
        listed.contains("city CA") && listed.contains("C,,"),
        "{listed}"
    );
    home
}

/// What headless Chromium made of a URL: the DOM it dumped and its log.
struct Visit {
    dom: String,
    log: String,
}

fn chromium(ns: &Netns, home: &Path, url: &str, extra: &[&str]) -> Visit {
    let binary = require_tool("chromium", "chromium");
    let profile = tempfile::tempdir_in(home).unwrap();
    let out = ns
        .command(&binary)
        .env("HOME", home)
        .env_remove("XDG_DATA_HOME")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap();
    Visit {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dump(ns: &Netns, home: &Path, url: &str, rules: &str) -> Visit {
    let mut extra = vec!["--dump-dom".to_string()];
    if !rules.is_empty() {
        extra.push(format!("--host-resolver-rules={rules}"));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    chromium(ns, home, url, &extra)
}

fn assert_loads(visit: &Visit, what: &str) {
    assert!(
        visit.dom.contains(MARKER),
        "{what}: the page did not load\n--- dom\n{}\n--- log\n{}",
        visit.dom,
        visit.log
    );
}

fn assert_refused(visit: &Visit, what: &str) {
    assert!(
        !visit.dom.contains(MARKER),
        "{what}: the page loaded:\n{}",
        visit.dom
    );
    assert!(
        visit.log.contains("ERR_CERT"),
        "{what}: no certificate error in the log:\n{}",
        visit.log
    );
}

fn www(s: &Scratch) -> PathBuf {
    let dir = s.path().join("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        format!("<!DOCTYPE html><html><body><p id=\"m\">{MARKER}</p></body></html>\n"),
    )
    .unwrap();
    dir
}

#[test]
fn chromium_trusting_only_the_city_ca_loads_the_city_and_refuses_forged_public_leaves() {
    let lan = Lan::new();
    let s = Scratch::new();
    let city = city_with_lan(&s, &[CITY_IP]);
    let pki = ensure(&s, &city);
    let www = www(&s);
    let home = home_trusting(&s, "home", &pki.join("ca.pem"));

    // The city's own leaf, by LAN IP and by name.
    let _city = HttpsServer::start(
        &lan.city,
        &www,
        &format!("{CITY_IP}:8443"),
        &pki.join("server.pem"),
        &pki.join("server.key"),
    );
    let by_ip = dump(
        &lan.phone,
        &home,
        &format!("https://{CITY_IP}:8443/index.html"),
        "",
    );
    assert_loads(&by_ip, "city leaf by LAN IP");
    let by_name = dump(
        &lan.phone,
        &home,
        "https://mattermost.cicd.local:8443/index.html",
        &format!("MAP mattermost.cicd.local {CITY_IP}"),
    );
    assert_loads(&by_name, "city leaf by name");

    // Leaves the city CA's key signed for a public name and a public IP.
    let forged_name = forge_leaf(
        &pki,
        s.path(),
        "forged-name",
        "example.com",
        "DNS:example.com",
    );
    let _name = HttpsServer::start(
        &lan.city,
        &www,
        &format!("{CITY_IP}:8444"),
        &forged_name,
        &s.path().join("forged-name.key"),
    );
    let visit = dump(
        &lan.phone,
        &home,
        "https://example.com:8444/index.html",
        &format!("MAP example.com {CITY_IP}"),
    );
    assert_refused(&visit, "forged example.com leaf");
    let forged_ip = forge_leaf(
        &pki,
        s.path(),
        "forged-ip",
        "forged",
        &format!("IP:{PUBLIC_IP}"),
    );
    let _ip = HttpsServer::start(
        &lan.city,
        &www,
        &format!("{PUBLIC_IP}:8445"),
        &forged_ip,
        &s.path().join("forged-ip.key"),
    );
    let visit = dump(
        &lan.phone,
        &home,
        &format!("https://{PUBLIC_IP}:8445/index.html"),
        "",
    );
    assert_refused(&visit, "forged public-IP leaf");

    // Control: the same forgery under a trusted CA without constraints loads, so the refusals
    // above are the name constraint at work, not an untrusted issuer.
    let open = Scratch::new();
    let open_pki = open.path().join("pki");
    std::fs::create_dir_all(&open_pki).unwrap();
    run_ok(
        openssl()
            .current_dir(&open_pki)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=unconstrained",
                "-keyout",
                "ca.key",
            ])
            .args([
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
            ]),
    );
    let open_leaf = forge_leaf(
        &open_pki,
        open.path(),
        "open",
        "example.com",
        "DNS:example.com",
    );
    let open_home = home_trusting(&open, "home", &open_pki.join("ca.pem"));
    let _open = HttpsServer::start(
        &lan.city,
        &www,
        &format!("{CITY_IP}:8446"),
        &open_leaf,
        &open.path().join("open.key"),
    );
    let visit = dump(
        &lan.phone,
        &open_home,
        "https://example.com:8446/index.html",
        &format!("MAP example.com {CITY_IP}"),
    );
    assert_loads(&visit, "example.com under an unconstrained CA (control)");
}

/// Where the committed screenshot lives; `CITYD_UPDATE_SCREENSHOT=1` rewrites it.
fn committed_screenshot() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/onboarding.png")
}

#[test]
fn chromium_renders_the_onboarding_page_from_the_lan_address() {
    let lan = Lan::new();
    let s = Scratch::new();
    let city = city_with_lan(&s, &[CITY_IP]);
    let pki = ensure(&s, &city);
    let ca = cityd::pki::read_certificate(&pki.join("ca.pem")).unwrap();
    let fp = cityd::pki::fingerprint(&ca);
    // No --listen: the default is the first LAN address, port 8090, inside the city namespace.
    let onboard = Onboard::start_with(&s, &city, None, &["--for", "5m"], |argv| {
        let mut c = lan.city.command(Path::new(&argv[0]));
        c.args(&argv[1..]);
        c
    });
    let url = format!("http://{CITY_IP}:8090/");
    assert_eq!(onboard.info["page_url"], url.as_str());

    // A browser that trusts nothing of the city yet (an empty NSS database).
    let home = s.path().join("phone-home");
    std::fs::create_dir_all(&home).unwrap();
    let visit = dump(&lan.phone, &home, &url, "");
    for needle in [
        format!(r#"id="fp-android">{fp}<"#),
        format!(r#"id="fp-ios">{}<"#, fp.replace(':', " ")),
        r#"href="/city-ca.crt""#.to_string(),
        r#"href="/city-ca.mobileconfig""#.to_string(),
        r#"href="/city-ca.pem""#.to_string(),
        format!(r#"href="mattermost://{CITY_IP}:8065""#),
        format!("https://{CITY_IP}:8065"),
        "mattermost-mobile#9337".to_string(),
    ] {
        assert!(
            visit.dom.contains(&needle),
            "the rendered page lacks {needle}:\n{}",
            visit.dom
        );
    }

    // The screenshot a person sees on a phone-sized screen.
    let shot = s.path().join("onboarding.png");
    chromium(
        &lan.phone,
        &home,
        &url,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,2800",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ],
    );
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    if std::env::var_os("CITYD_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(committed_screenshot(), &png).unwrap();
    }
    assert!(
        committed_screenshot().is_file(),
        "docs/onboarding.png is missing: run this test with CITYD_UPDATE_SCREENSHOT=1"
    );
}
