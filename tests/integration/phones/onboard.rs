//! `cityd onboard`: the page and its downloads fetched over HTTP from the running command (content
//! types, headers, the DER verified by openssl, the profile parsed by python3's plistlib with its
//! payload equal to the CA byte for byte), the JSON, the deadline, and the bad input it refuses.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{city_with_lan, der_of, ensure, openssl};
use crate::common::{Scratch, require_tool, run_ok, stderr_of_exit};

/// A running `cityd onboard --json`; killed on drop.
pub struct Onboard {
    child: Child,
    pub info: serde_json::Value,
}

impl Onboard {
    /// Starts `cityd onboard --json --listen <listen> <extra>` and reads its announcement.
    pub fn start(s: &Scratch, city: &Path, listen: &str, extra: &[&str]) -> Self {
        Self::start_with(s, city, Some(listen), extra, |argv| {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        })
    }

    /// Like `start`, the command line (program first) turned into a command by `wrap` (e.g. to
    /// run it inside a network namespace); no `--listen` when `listen` is `None`.
    pub fn start_with(
        s: &Scratch,
        city: &Path,
        listen: Option<&str>,
        extra: &[&str],
        wrap: impl FnOnce(&[String]) -> Command,
    ) -> Self {
        let mut argv: Vec<String> = vec![
            env!("CARGO_BIN_EXE_cityd").into(),
            "--state-dir".into(),
            s.state().display().to_string(),
            "--city".into(),
            city.display().to_string(),
            "onboard".into(),
            "--json".into(),
        ];
        if let Some(listen) = listen {
            argv.extend(["--listen".into(), listen.into()]);
        }
        argv.extend(extra.iter().map(|a| a.to_string()));
        let mut cmd = wrap(&argv);
        cmd.env_remove("CITYD_CITY").env_remove("CITYD_STATE_DIR");
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut text = String::new();
        // The announcement is one pretty-printed JSON object, printed before serving.
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).unwrap();
            assert!(n > 0, "cityd onboard ended before announcing:\n{text}");
            text.push_str(&line);
            if line == "}\n" {
                break;
            }
        }
        Self {
            child,
            info: serde_json::from_str(&text).unwrap(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        let url = self.info["page_url"].as_str().unwrap();
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap()
    }

    /// Waits for the command to end by itself; its exit status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Onboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 GET: status, lowercase header names, body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body)
}

fn ready_city(s: &Scratch, lan: &str) -> (PathBuf, PathBuf) {
    let city = city_with_lan(s, &[lan]);
    let dir = ensure(s, &city);
    (city, dir)
}

#[test]
fn the_page_and_downloads_are_served_with_the_right_types_and_bytes() {
    let s = Scratch::new();
    let (city, dir) = ready_city(&s, "192.0.2.10");
    let ca = der_of(&dir.join("ca.pem"));
    let onboard = Onboard::start(&s, &city, "127.0.0.1:0", &["--for", "5m"]);
    let info = &onboard.info;
    let addr = onboard.addr();

    // The JSON: URLs, fingerprints, the Mattermost URL for the app.
    let fp = cityd::pki::fingerprint(&ca);
    assert_eq!(info["sha256"], fp.as_str());
    assert_eq!(info["sha256_ios"], fp.replace(':', " ").as_str());
    assert_eq!(info["mattermost_url"], "https://192.0.2.10:8065");
    assert_eq!(info["mattermost_link"], "mattermost://192.0.2.10:8065");
    assert_eq!(info["ca_constrained"], true);
    assert_eq!(
        info["der_url"],
        format!("http://{addr}/city-ca.crt").as_str()
    );
    assert!(info["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(info["leaf_missing"], serde_json::json!([]));

    // The page.
    let (status, headers, body) = get(addr, "/");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers["content-security-policy"].contains("default-src 'none'"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let page = String::from_utf8(body).unwrap();
    for needle in [
        format!(r#"id="fp-android">{fp}<"#).as_str(),
        format!(r#"id="fp-ios">{}<"#, fp.replace(':', " ")).as_str(),
        r#"href="/city-ca.crt""#,
        r#"href="/city-ca.mobileconfig""#,
        r#"href="/city-ca.pem""#,
        r#"src="/mattermost-qr.svg""#,
        "https://192.0.2.10:8065",
        "mattermost-mobile#9337",
        "Certificate Trust Settings",
        "CA certificate",
        "carries no secret",
    ] {
        assert!(page.contains(needle), "page lacks {needle}");
    }

    // Every link on the page that points at this server answers 200.
    for link in page
        .split("href=\"")
        .skip(1)
        .chain(page.split("src=\"").skip(1))
    {
        let target = &link[..link.find('"').unwrap()];
        if target.starts_with('/') {
            assert_eq!(get(addr, target).0, 200, "{target}");
        }
    }
    assert_eq!(get(addr, "/ca.key").0, 404);
    assert_eq!(get(addr, "/../pki/ca.key").0, 404);

    // DER: the content type Android's installer expects, the CA's bytes, and openssl agrees.
    let (status, headers, der) = get(addr, "/city-ca.crt");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-x509-ca-cert");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"city-ca.crt\""
    );
    assert_eq!(der, ca);
    let der_file = s.path().join("downloaded.crt");
    std::fs::write(&der_file, &der).unwrap();
    // openssl reads the download as DER (as a phone's installer does), then verifies it.
    let pem_file = s.path().join("downloaded.pem");
    run_ok(
        openssl()
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&der_file)
            .arg("-out")
            .arg(&pem_file),
    );
    let verified = run_ok(
        openssl()
            .args(["verify", "-CAfile"])
            .arg(&pem_file)
            .arg(&pem_file),
    );
    assert!(verified.trim().ends_with(": OK"), "{verified}");
    let verified = run_ok(
        openssl()
            .args([
                "verify",
                "-purpose",
                "sslserver",
                "-verify_ip",
                "192.0.2.10",
                "-CAfile",
            ])
            .arg(&pem_file)
            .arg(dir.join("server.pem")),
    );
    assert!(verified.trim().ends_with(": OK"), "{verified}");

    // PEM.
    let (_, headers, pem) = get(addr, "/city-ca.pem");
    assert_eq!(headers["content-type"], "application/x-pem-file");
    assert_eq!(pem, std::fs::read(dir.join("ca.pem")).unwrap());

    // The profile: a property list whose root payload is the CA's DER, byte for byte, with an
    // identifier that a second download (and a second run) repeats.
    let (_, headers, profile) = get(addr, "/city-ca.mobileconfig");
    assert_eq!(headers["content-type"], "application/x-apple-aspen-config");
    let plist = plist_json(s.path(), &profile);
    assert_eq!(plist["PayloadType"], "Configuration");
    assert_eq!(plist["PayloadVersion"], 1);
    assert_eq!(plist["PayloadIdentifier"], info["profile_identifier"]);
    let payloads = plist["PayloadContent"].as_array().unwrap();
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0]["PayloadType"], "com.apple.security.root");
    assert_eq!(payloads[0]["PayloadContent_hex"], hex::encode(&ca).as_str());
    assert_ne!(payloads[0]["PayloadUUID"], plist["PayloadUUID"]);
    let (_, _, again) = get(addr, "/city-ca.mobileconfig");
    assert_eq!(again, profile);

    // The QR code image.
    let (_, headers, svg) = get(addr, "/mattermost-qr.svg");
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert!(String::from_utf8(svg).unwrap().contains("<svg"));
    drop(onboard);

    let second = Onboard::start(&s, &city, "127.0.0.1:0", &[]);
    let (_, _, profile2) = get(second.addr(), "/city-ca.mobileconfig");
    assert_eq!(
        profile2, profile,
        "the same CA gives the same profile, identifiers included"
    );
}

/// The profile parsed by python3's plistlib, as JSON (data fields as `<key>_hex`).
fn plist_json(dir: &Path, profile: &[u8]) -> serde_json::Value {
    let file = dir.join("profile.mobileconfig");
    std::fs::write(&file, profile).unwrap();
    let script = r#"
import json, plistlib, sys
def conv(v):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(x, bytes):
                out[k + "_hex"] = x.hex()
            else:
                out[k] = conv(x)
        return out
    if isinstance(v, list):
        return [conv(x) for x in v]
    return v
with open(sys.argv[1], "rb") as f:
    print(json.dumps(conv(plistlib.load(f))))
"#;
    let out = run_ok(
        Command::new(require_tool("python3", "python3"))
            .args(["-c", script])
            .arg(&file),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn a_leaf_that_lacks_the_lan_address_is_named_before_phones_join() {
    let s = Scratch::new();
    let (_, _) = ready_city(&s, "192.0.2.10");
    let moved = city_with_lan(&s, &["192.0.2.11"]);
    let onboard = Onboard::start(&s, &moved, "127.0.0.1:0", &[]);
    assert_eq!(
        onboard.info["leaf_missing"],
        serde_json::json!(["IP:192.0.2.11"])
    );
    assert_eq!(onboard.info["mattermost_url"], "https://192.0.2.11:8065");
}

#[test]
fn the_page_stops_by_itself_when_its_time_is_up() {
    let s = Scratch::new();
    let (city, _) = ready_city(&s, "192.0.2.10");
    let onboard = Onboard::start(&s, &city, "127.0.0.1:0", &["--for", "1s"]);
    let addr = onboard.addr();
    let status = onboard.wait();
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn wildcard_and_public_addresses_need_the_explicit_flag() {
    let s = Scratch::new();
    let (city, _) = ready_city(&s, "192.0.2.10");
    for listen in ["0.0.0.0:0", "[::]:0", "93.184.216.34:8090"] {
        let out = s
            .cityd()
            .arg("--city")
            .arg(&city)
            .args(["onboard", "--listen", listen])
            .output()
            .unwrap();
        let stderr = stderr_of_exit(&out, 2);
        assert!(
            stderr.contains("--listen") && stderr.contains("--listen-public"),
            "{stderr}"
        );
    }
    // Asked for explicitly, the wildcard is served.
    let onboard = Onboard::start(&s, &city, "0.0.0.0:0", &["--listen-public", "--for", "1m"]);
    let port = onboard.addr().port();
    assert_eq!(get(SocketAddr::from(([127, 0, 0, 1], port)), "/").0, 200);
}

#[test]
fn bad_input_is_named_and_nothing_is_served() {
    let s = Scratch::new();
    let city = city_with_lan(&s, &["192.0.2.10"]);
    // No CA yet.
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["onboard", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = stderr_of_exit(&out, 2);
    assert!(stderr.contains("cityd pki ensure"), "{stderr}");
    // A duration outside the grammar or over the limit.
    for bad in ["soon", "0s", "2d"] {
        let out = s
            .cityd()
            .arg("--city")
            .arg(&city)
            .args(["onboard", "--for", bad])
            .output()
            .unwrap();
        let stderr = stderr_of_exit(&out, 2);
        assert!(stderr.contains("--for"), "{bad}: {stderr}");
    }
    // A domain or host that would break HTML or a header is refused, the field named.
    for (key, value) in [
        ("domain", "cicd.local\\\"><script>"),
        ("host", "a\\r\\nSet-Cookie: x=1"),
    ] {
        let text = match key {
            "domain" => cityd::city::DEFAULT_CITY_TOML
                .replace("domain = \"cicd.local\"", &format!("domain = \"{value}\"")),
            _ => cityd::city::DEFAULT_CITY_TOML.replace(
                "[mattermost]\n",
                &format!("[mattermost]\nhost = \"{value}\"\n"),
            ),
        };
        let bad = s.write("bad.toml", &text);
        let out = s
            .cityd()
            .arg("--city")
            .arg(&bad)
            .args(["onboard", "--listen", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = stderr_of_exit(&out, 2);
        let field = if key == "domain" {
            "domain"
        } else {
            "mattermost.host"
        };
        assert!(stderr.contains(field), "{key}: {stderr}");
    }
}

#[test]
fn a_hostile_team_name_is_escaped_on_the_page() {
    let s = Scratch::new();
    let text = cityd::city::DEFAULT_CITY_TOML
        .replace("addresses = [\"auto\"]", "addresses = [\"192.0.2.10\"]")
        .replace("allow_test_ranges = false", "allow_test_ranges = true")
        .replace(
            "display_name = \"Engineering\"",
            "display_name = \"</title><script>alert('x')</script>&\"",
        );
    let city = s.write("city.toml", &text);
    ensure(&s, &city);
    let onboard = Onboard::start(&s, &city, "127.0.0.1:0", &[]);
    let page = String::from_utf8(get(onboard.addr(), "/").2).unwrap();
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("&lt;/title&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"));
}
