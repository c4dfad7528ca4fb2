//! Issue 12, defect 4: no secret leaves `cityd connect` in any form. An echoing proxy stands in
//! front of each product's double: it forwards every request but one, and answers that one with
//! HTTP 500 and a body quoting the request (URL, headers, body), as a misconfigured server or
//! reverse proxy does. Each request of the whole flow is echoed once in turn, in text and JSON
//! output, headers first and body first; stdout and stderr must hold no form of any secret (raw,
//! base64 of `user:token`, percent- and form-encoded, JSON-escaped, the hook id).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::*;
use cityd_testcontainers::gitlab::{GitlabDouble, GitlabOptions};
use cityd_testcontainers::jenkins::{JenkinsDouble, JenkinsOptions};
use cityd_testcontainers::sonarqube::{SonarDouble, SonarOptions, SonarVersion};

/// Where in the echo the request's body goes: a server quoting headers first may cut the body off.
#[derive(Clone, Copy, Debug)]
enum Order {
    HeadersFirst,
    BodyFirst,
}

/// A proxy that forwards to `upstream`, except request number `echo_at` (0-based), which it
/// answers itself with a 500 quoting the request.
struct EchoProxy {
    base: String,
    echoed: Arc<AtomicBool>,
}

impl EchoProxy {
    fn start(upstream: &str, echo_at: usize, order: Order) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = Arc::new(AtomicUsize::new(0));
        let echoed = Arc::new(AtomicBool::new(false));
        let (s, e) = (seen.clone(), echoed.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let n = s.fetch_add(1, Ordering::SeqCst);
                let (upstream, e) = (upstream.clone(), e.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, n == echo_at, order, &e);
                });
            }
        });
        Self { base, echoed }
    }
}

/// One request on one connection (every answer says `Connection: close`, so the client opens a
/// new connection for the next request and each is counted).
fn serve(
    conn: TcpStream,
    upstream: &str,
    echo: bool,
    order: Order,
    echoed: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push(line.trim_end().to_string());
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut conn = conn;
    if echo {
        echoed.store(true, Ordering::SeqCst);
        let request_line = head[0].clone();
        let mut headers: Vec<String> = head[1..].to_vec();
        headers.sort_by_key(|h| h.to_ascii_lowercase());
        let body = String::from_utf8_lossy(&body).into_owned();
        let quoted = match order {
            Order::HeadersFirst => format!("{request_line}\n{}\n\n{body}", headers.join("\n")),
            Order::BodyFirst => format!("{body}\n{request_line}\n{}", headers.join("\n")),
        };
        let answer = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{quoted}",
            quoted.len()
        );
        return conn.write_all(answer.as_bytes());
    }
    let mut up = TcpStream::connect(upstream)?;
    let mut request = String::new();
    for line in head
        .iter()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
    {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    up.write_all(request.as_bytes())?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    // Pass the answer on with `Connection: close` instead of whatever it said.
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut out = String::new();
    for line in head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
    {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close");
    conn.write_all(out.as_bytes())?;
    conn.write_all(&response[split..])
}

/// Every form of `secret` that must not appear, computed here independently of cityd's own list.
fn forms_of(secret: &str) -> Vec<String> {
    let percent = urlencoding::encode(secret).into_owned();
    let mut forms = vec![
        secret.to_string(),
        percent.clone(),
        percent.to_lowercase(),
        secret.replace('/', "\\/"),
        STANDARD.encode(secret),
    ];
    // A Mattermost hook id on its own.
    if let Some(id) = secret.strip_prefix("https://mattermost.cicd.local:8065/hooks/") {
        forms.push(id.to_string());
    }
    forms
}

/// Runs the whole connect flow with each request echoed in turn and checks every output.
fn assert_no_form_leaks(
    product: &str,
    upstream: &str,
    s: &Scratch,
    city_for: impl Fn(&str) -> PathBuf,
    secrets: &[String],
) {
    let forbidden: Vec<String> = secrets.iter().flat_map(|s| forms_of(s)).collect();
    let (mut echoed_runs, mut quoted_runs) = (0, 0);
    for echo_at in 0..60 {
        let mut any_echo = false;
        for (order, json) in [(Order::HeadersFirst, true), (Order::BodyFirst, false)] {
            let proxy = EchoProxy::start(upstream, echo_at, order);
            let city = city_for(&proxy.base);
            let mut args = vec![product];
            if json {
                args.push("--json");
            }
            let run = connect(s, &city, &args);
            let echoed = proxy.echoed.load(Ordering::SeqCst);
            any_echo |= echoed;
            if echoed {
                echoed_runs += 1;
                // The 500 is quoted (so a leak would show), unless the flow tolerates it.
                if run.stderr.contains("500") || run.stdout.contains("500") {
                    quoted_runs += 1;
                }
            }
            for form in &forbidden {
                for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                    assert!(
                        !text.contains(form.as_str()),
                        "{product}: request {echo_at} echoed ({order:?}, json {json}): {stream} holds a secret form {form:?}:\n{text}"
                    );
                }
            }
        }
        if !any_echo {
            // The flow made fewer than echo_at + 1 requests: every one has been echoed.
            assert!(echoed_runs > 0, "{product}: no request was ever echoed");
            assert!(quoted_runs > 0, "{product}: no error ever quoted the echo");
            return;
        }
    }
    panic!("{product}: the flow made more than 60 requests");
}

#[test]
fn jenkins_errors_never_carry_the_token_in_any_form() {
    let s = Scratch::new();
    let env_path = s.path().join("jenkins.env");
    let yaml = s.path().join("jenkins.yaml");
    std::fs::copy(fixture("jenkins.yaml"), &yaml).unwrap();
    let token = "11aa22bb33cc44dd55ee66ff77aa88bb99";
    // The container already has the hook, so only the JCasC changes and cityd reloads it over
    // the API (crumb, then the reload POST): the requests that carry the Basic credential.
    let double = JenkinsDouble::start(JenkinsOptions {
        user: "admin".into(),
        api_token: token.into(),
        csrf: true,
        casc_file: Some(yaml.clone()),
        env: BTreeMap::from([(
            "MATTERMOST_JENKINS_WEBHOOK_URL".to_string(),
            BUILDS_HOOK.to_string(),
        )]),
    })
    .unwrap();
    let vault = vault(&s);
    store(&vault, "webhook-builds", BUILDS_HOOK);
    store(&vault, "jenkins-api-token", token);
    let basic = format!("admin:{token}");
    let city_for = |base: &str| {
        // Each run starts from the fixtures, so every run makes the whole flow's requests.
        std::fs::write(
            &env_path,
            format!("MATTERMOST_JENKINS_WEBHOOK_URL={BUILDS_HOOK}\n"),
        )
        .unwrap();
        std::fs::set_permissions(&env_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::copy(fixture("jenkins.yaml"), &yaml).unwrap();
        let (base, e, y) = (base.to_string(), env_path.clone(), yaml.clone());
        city(&s, move |t| {
            let j = section(t, "jenkins");
            j.insert("url".into(), base.into());
            j.insert("env_file".into(), e.display().to_string().into());
            j.insert("jcasc_file".into(), y.display().to_string().into());
        })
    };
    assert_no_form_leaks(
        "jenkins",
        &double.base_url(),
        &s,
        city_for,
        &[token.into(), basic, BUILDS_HOOK.into()],
    );
}

#[test]
fn gitlab_errors_never_carry_a_token_or_the_webhook_in_any_form() {
    let s = Scratch::new();
    let opts = GitlabOptions::default();
    let vault = vault(&s);
    store(&vault, "webhook-code-reviews", REVIEWS_HOOK);
    store(&vault, "gitlab-api-token", &opts.token);
    store(&vault, "gitlab-admin-token", &opts.admin_token);
    let secrets = vec![
        opts.token.clone(),
        opts.admin_token.clone(),
        REVIEWS_HOOK.to_string(),
    ];
    let double = GitlabDouble::start(opts).unwrap();
    let city_for = |base: &str| {
        let base = base.to_string();
        city(&s, move |t| {
            let g = section(t, "gitlab");
            g.insert("url".into(), base.into());
            g.insert("project".into(), "articles/http-client".into());
        })
    };
    assert_no_form_leaks("gitlab", &double.base_url(), &s, city_for, &secrets);
}

#[test]
fn sonarqube_errors_never_carry_the_token_or_the_webhook_secret_in_any_form() {
    for version in [SonarVersion::V9_9, SonarVersion::V10_6] {
        let s = Scratch::new();
        let opts = SonarOptions {
            version,
            ..SonarOptions::default()
        };
        let vault = vault(&s);
        store(&vault, "sonarqube-admin-token", &opts.token);
        let secret = vault
            .get(SecretName::SonarqubeWebhookSecret)
            .unwrap()
            .expose()
            .to_string();
        let secrets = vec![opts.token.clone(), format!("{}:", opts.token), secret];
        let double = SonarDouble::start(opts).unwrap();
        let city_for = |base: &str| {
            let base = base.to_string();
            city(&s, move |t| {
                let q = section(t, "sonarqube");
                q.insert("url".into(), base.into());
                q.insert("relay_url".into(), RELAY_URL.into());
            })
        };
        assert_no_form_leaks("sonarqube", &double.base_url(), &s, city_for, &secrets);
    }
}

/// A URL with `user:password@` is refused by `config check` and by connect, without the password.
#[test]
fn a_city_url_with_a_password_is_refused_without_echoing_it() {
    let s = Scratch::new();
    let city = city(&s, |t| {
        section(t, "jenkins").insert(
            "url".into(),
            "http://admin:userinfo-password-42@127.0.0.1:9".into(),
        );
    });
    let out = s
        .cityd()
        .arg("--city")
        .arg(&city)
        .args(["config", "check"])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("integrations.jenkins.url"), "{all}");
    assert!(!all.contains("userinfo-password-42"), "{all}");
    let run = connect(&s, &city, &["jenkins", "--json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("userinfo-password-42"));
    assert!(!run.stderr.contains("userinfo-password-42"));
}
