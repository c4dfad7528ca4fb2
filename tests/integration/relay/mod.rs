//! `cityd relay serve` against the Mattermost double: SonarQube payloads and HMAC vectors written
//! from the documented format (tests/fixtures/sonarqube), every rejection, what the posted messages carry, routing of passes, graceful
//! shutdown, read-back after a crash, arbitrary bodies over HTTP, and 10,000 events through a
//! Mattermost outage and two SIGKILLs with none lost and none duplicated. Hostile clients
//! (descriptor exhaustion, slowloris, unsigned bodies, a half-sent request at SIGTERM): `hardening`.

mod hardening;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cityd::relay::message::{self, MessageSettings};
use cityd::relay::payload;
use cityd::relay::signature::Verifier;
use cityd::relay::spool::{self, Appended, SpoolOptions};
use cityd::secrets::Secret;
use cityd_testcontainers::mattermost::{DoubleOptions, MattermostDouble, SnapPost};
use serde_json::{Value, json};

use crate::common::{Scratch, fixture, require_tool, run_ok, stderr_of_exit};

/// The secret of tests/fixtures/sonarqube/hmac-vectors.json.
const SECRET: &str = "cityd-test-secret-0123456789";
/// The task id both failed-gate bodies (pretty and compact) carry.
const REAL_TASK: &str = "AZ3kYpQe7LmN0cW2xV8r";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn client() -> reqwest::Client {
    cityd::tls::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A SonarQube webhook fixture's bytes (tests/fixtures/sonarqube).
fn payload_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("sonarqube/{name}"))).expect("a SonarQube fixture")
}

fn sign(body: &[u8]) -> String {
    Verifier::new(&Secret::new(SECRET.into())).sign(body)
}

/// Polls `probe` until it yields a value; fails with `what` at the deadline.
async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The double with team `city`, channels `alerts` and `builds`, and one incoming webhook each.
struct Mattermost {
    double: MattermostDouble,
    socket: PathBuf,
    alerts_url: String,
    builds_url: String,
}

async fn api(client: &reqwest::Client, base: &str, token: &str, path: &str, body: Value) -> Value {
    let response = client
        .post(format!("{base}/api/v4{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the double answers");
    let status = response.status();
    let value: Value = response.json().await.expect("a JSON answer");
    assert!(status.is_success(), "POST {path}: {status} {value}");
    value
}

async fn mattermost(scratch: &Scratch) -> Mattermost {
    let socket = scratch.path().join("mm.sock");
    let double = MattermostDouble::start(DoubleOptions {
        socket_path: Some(socket.clone()),
        tcp: true,
        config: Value::Null,
    })
    .await
    .expect("the Mattermost double starts");
    let base = double.base_url().expect("TCP is served");
    let token = double.admin_token();
    let c = client();
    let team = api(
        &c,
        &base,
        &token,
        "/teams",
        json!({"name": "city", "display_name": "City", "type": "O"}),
    )
    .await;
    let team_id = team["id"].as_str().unwrap().to_string();
    let me = c
        .get(format!("{base}/api/v4/users/username/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let admin_id = me["id"].as_str().unwrap().to_string();
    api(
        &c,
        &base,
        &token,
        &format!("/teams/{team_id}/members"),
        json!({"team_id": team_id, "user_id": admin_id}),
    )
    .await;
    let mut urls = HashMap::new();
    for name in ["alerts", "builds"] {
        let channel = api(
            &c,
            &base,
            &token,
            "/channels",
            json!({"team_id": team_id, "name": name, "display_name": name, "type": "O"}),
        )
        .await;
        let channel_id = channel["id"].as_str().unwrap().to_string();
        api(
            &c,
            &base,
            &token,
            &format!("/channels/{channel_id}/members"),
            json!({"user_id": admin_id}),
        )
        .await;
        let hook = api(&c, &base, &token, "/hooks/incoming", json!({"channel_id": channel_id, "display_name": format!("sonarqube-{name}"), "channel_locked": true})).await;
        urls.insert(
            name,
            format!("{base}/hooks/{}", hook["id"].as_str().unwrap()),
        );
    }
    Mattermost {
        double,
        socket,
        alerts_url: urls["alerts"].clone(),
        builds_url: urls["builds"].clone(),
    }
}

/// Posts in `channel` other than Mattermost's own system messages (joins and the like).
fn posts_in(mm: &Mattermost, channel: &str) -> Vec<SnapPost> {
    mm.double
        .snapshot()
        .posts
        .into_iter()
        .filter(|p| p.channel == channel && !p.kind.starts_with("system_"))
        .collect()
}

/// A running `cityd relay serve`.
struct Relay {
    child: Child,
    listen: SocketAddr,
    metrics: SocketAddr,
    log: PathBuf,
}

struct RelaySetup {
    state: PathBuf,
    spool: PathBuf,
    secret_file: PathBuf,
    alerts_file: PathBuf,
    builds_file: PathBuf,
    socket: Option<PathBuf>,
    post_passes: bool,
    max_body: Option<usize>,
    /// More `relay serve` flags (timeouts, caps).
    extra: Vec<String>,
    /// Run under `prlimit --nofile=N:N` (the descriptor limit of a default systemd unit).
    nofile: Option<u64>,
}

impl RelaySetup {
    fn new(scratch: &Scratch, mm: &Mattermost) -> Self {
        Self {
            state: scratch.state(),
            spool: scratch.path().join("spool"),
            secret_file: scratch.write("sonar-secret", &format!("{SECRET}\n")),
            alerts_file: scratch.write("alerts-url", &mm.alerts_url),
            builds_file: scratch.write("builds-url", &mm.builds_url),
            socket: Some(mm.socket.clone()),
            post_passes: false,
            max_body: None,
            extra: Vec::new(),
            nofile: None,
        }
    }

    /// Starts the relay on `listen` (port 0: any) and waits for its ready line.
    fn start(&self, listen: SocketAddr, generation: usize) -> Relay {
        let log = self.spool.with_extension(format!("log{generation}"));
        let mut cmd = match self.nofile {
            // prlimit execs the relay: the child's pid is the relay's.
            Some(n) => {
                let mut c = Command::new(require_tool("prlimit", "util-linux"));
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_cityd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_cityd")),
        };
        cmd.env_remove("CITYD_CITY")
            .env_remove("CITYD_STATE_DIR")
            .env("CITYD_LOG", "info")
            .arg("--state-dir")
            .arg(&self.state)
            .args(["relay", "serve", "--json", "--post-timeout", "2"])
            .arg("--listen")
            .arg(listen.to_string())
            .args(["--metrics", "127.0.0.1:0"])
            .arg("--spool")
            .arg(&self.spool)
            .arg("--secret-file")
            .arg(&self.secret_file)
            .arg("--webhook-url-file")
            .arg(format!("alerts={}", self.alerts_file.display()))
            .arg("--webhook-url-file")
            .arg(format!("builds={}", self.builds_file.display()));
        if let Some(socket) = &self.socket {
            cmd.arg("--mattermost-socket").arg(socket);
        }
        if self.post_passes {
            cmd.arg("--post-passes");
        }
        if let Some(max) = self.max_body {
            cmd.arg("--max-body").arg(max.to_string());
        }
        cmd.args(&self.extra);
        cmd.stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a relay log file"));
        let mut child = cmd.spawn().expect("cityd starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the relay printed no ready line; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let ready: Value = serde_json::from_str(&line).expect("a JSON ready line");
        assert_eq!(ready["event"], "ready", "{line}");
        Relay {
            child,
            listen: ready["relay"]["listen"].as_str().unwrap().parse().unwrap(),
            metrics: ready["relay"]["metrics"].as_str().unwrap().parse().unwrap(),
            log,
        }
    }
}

/// A relay left running by a failed test would outlive it: kill it (a no-op once it has exited).
impl Drop for Relay {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Relay {
    fn url(&self) -> String {
        format!("http://{}/sonarqube", self.listen)
    }

    fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the relay");
        self.child.wait().expect("reap the relay");
    }

    /// SIGTERM, then the exit status within a deadline.
    fn terminate(mut self) -> std::process::ExitStatus {
        let kill = require_tool("kill", "procps");
        let status = Command::new(kill)
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < end, "the relay did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn metric(&self, c: &reqwest::Client, series: &str) -> f64 {
        let text = c
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .expect("metrics answer")
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }
}

async fn send(
    c: &reqwest::Client,
    url: &str,
    body: &[u8],
    signature: Option<&str>,
    content_type: &str,
) -> reqwest::Result<(u16, String)> {
    let mut request = c
        .post(url)
        .header("Content-Type", content_type)
        .header("X-SonarQube-Project", "harbour-ledger")
        .body(body.to_vec());
    if let Some(sig) = signature {
        request = request.header("X-Sonar-Webhook-HMAC-SHA256", sig);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await.unwrap_or_default()))
}

const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The status SonarQube would get for `body`, correctly signed, as `application/json; charset=utf-8`.
async fn status_of_signed(c: &reqwest::Client, url: &str, body: &[u8]) -> u16 {
    send(c, url, body, Some(&sign(body)), JSON_UTF8)
        .await
        .unwrap()
        .0
}

fn field<'a>(post: &'a SnapPost, title: &str) -> &'a str {
    let fields = post.props["attachments"][0]["fields"]
        .as_array()
        .expect("fields");
    fields
        .iter()
        .find(|f| f["title"] == title)
        .and_then(|f| f["value"].as_str())
        .unwrap_or_else(|| panic!("no field {title} in {fields:#?}"))
}

#[test]
fn real_payloads_and_hmac_vectors_are_accepted_and_every_bad_request_refused() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let setup = RelaySetup::new(&scratch, &mm);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let c = client();
        let url = relay.url();
        let health = c
            .get(format!("http://{}/healthz", relay.listen))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);

        let vectors: Value = serde_json::from_slice(&payload_bytes("hmac-vectors.json")).unwrap();
        let compact = payload_bytes("webhook-gate-failed.compact.body");
        let pretty = payload_bytes("webhook-gate-failed.json");
        let v = |i: usize| {
            vectors["vectors"][i]["expected_header_value"]
                .as_str()
                .unwrap()
                .to_string()
        };

        // The vectors' own signatures: accepted; the second copy of the same task is a duplicate.
        let (status, text) = send(&c, &url, &compact, Some(&v(0)), JSON_UTF8)
            .await
            .unwrap();
        assert_eq!(status, 202, "{text}");
        assert!(text.contains("\"duplicate\":false"), "{text}");
        let (status, text) = send(&c, &url, &pretty, Some(&v(1)), "application/json")
            .await
            .unwrap();
        assert_eq!(status, 202, "{text}");
        assert!(
            text.contains("\"duplicate\":true"),
            "a redelivery of {REAL_TASK} must not post twice: {text}"
        );
        // `{}` is signed correctly but is no SonarQube payload.
        let (status, _) = send(&c, &url, b"{}", Some(&v(2)), JSON_UTF8).await.unwrap();
        assert_eq!(status, 400);

        // A changed byte, a wrong secret, no header, a signature of the pretty body on the compact one.
        let mut changed = compact.clone();
        let at = changed.iter().position(|&b| b == b'8').unwrap();
        changed[at] = b'9';
        assert_eq!(
            send(&c, &url, &changed, Some(&v(0)), JSON_UTF8)
                .await
                .unwrap()
                .0,
            401
        );
        let wrong = Verifier::new(&Secret::new("not-the-secret-0123456789".into())).sign(&compact);
        assert_eq!(
            send(&c, &url, &compact, Some(&wrong), JSON_UTF8)
                .await
                .unwrap()
                .0,
            401
        );
        assert_eq!(
            send(&c, &url, &compact, None, JSON_UTF8).await.unwrap().0,
            401
        );
        assert_eq!(
            send(&c, &url, &compact, Some(&v(1)), JSON_UTF8)
                .await
                .unwrap()
                .0,
            401
        );

        // Content types, size, malformed bodies (all correctly signed).
        assert_eq!(
            send(&c, &url, &compact, Some(&v(0)), "text/plain")
                .await
                .unwrap()
                .0,
            415
        );
        assert_eq!(
            send(
                &c,
                &url,
                &compact,
                Some(&v(0)),
                "application/json; charset=latin1"
            )
            .await
            .unwrap()
            .0,
            415
        );
        let mut huge = b"{\"project\":{\"key\":\"p\"},\"pad\":\"".to_vec();
        huge.resize(1024 * 1024 + 10, b'x');
        huge.extend_from_slice(b"\"}");
        assert_eq!(status_of_signed(&c, &url, &huge).await, 413);
        for bad in [
            &b"{\"project\":"[..],
            b"not json",
            b"",
            b"[1,2]",
            br#"{"project":{"name":"no key"}}"#,
        ] {
            let (status, text) = send(&c, &url, bad, Some(&sign(bad)), JSON_UTF8)
                .await
                .unwrap();
            assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(bad));
        }

        // The pull request payload (a different task) is accepted too.
        let pr = payload_bytes("webhook-pull-request.json");
        assert_eq!(status_of_signed(&c, &url, &pr).await, 202);

        let posts = eventually("two alert posts", Duration::from_secs(30), async || {
            let posts = posts_in(&mm, "alerts");
            (posts.len() >= 2).then_some(posts)
        })
        .await;
        assert_eq!(posts.len(), 2, "{posts:#?}");
        assert!(
            posts_in(&mm, "builds").is_empty(),
            "failures go to #alerts only"
        );

        let by_key = |key: &str| {
            posts
                .iter()
                .find(|p| p.props["cityd_relay_key"] == key)
                .unwrap_or_else(|| panic!("no post for {key}: {posts:#?}"))
        };
        let failed = by_key(&format!("task:{REAL_TASK}"));
        assert!(
            failed.message.contains("Quality gate failed"),
            "{}",
            failed.message
        );
        assert!(failed.message.contains(
            "[Harbour Ledger](http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger)"
        ));
        assert!(failed.message.contains("branch `main`"));
        let attachment = &failed.props["attachments"][0];
        assert_eq!(attachment["color"], message::COLOUR_FAILED);
        assert_eq!(
            attachment["title_link"],
            "http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger"
        );
        assert_eq!(field(failed, "Coverage"), "**63%** (threshold ≥ 80%)");
        assert_eq!(
            field(failed, "Duplicated lines"),
            "**12.7%** (threshold ≤ 3%)"
        );
        assert_eq!(field(failed, "Branch"), "`main` (main)");
        assert!(field(failed, "Project").contains("harbour-ledger"));
        assert_eq!(failed.props["sonar_task_id"], REAL_TASK);

        let pr_post = by_key("task:AZ3kZ1bTq9RsPe4hUo6y");
        assert!(
            pr_post.message.contains("pull request #57"),
            "{}",
            pr_post.message
        );
        assert_eq!(
            pr_post.props["attachments"][0]["title_link"],
            "http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger&pullRequest=57"
        );
        assert_eq!(field(pr_post, "Pull request"), "#57");
        assert_eq!(
            field(pr_post, "Coverage on new code"),
            "**55.5%** (threshold ≥ 80%)"
        );
        assert_eq!(field(pr_post, "New issues"), "**6** (threshold ≤ 0)");

        for (series, expected) in [
            ("cityd_relay_rejected_total{reason=\"signature\"}", 4.0),
            ("cityd_relay_rejected_total{reason=\"content_type\"}", 2.0),
            ("cityd_relay_rejected_total{reason=\"too_large\"}", 1.0),
            ("cityd_relay_rejected_total{reason=\"malformed\"}", 6.0),
            ("cityd_relay_spooled_total", 2.0),
            ("cityd_relay_duplicates_total", 1.0),
            ("cityd_relay_received_total", 16.0),
        ] {
            assert_eq!(relay.metric(&c, series).await, expected, "{series}");
        }
        let delivered = eventually("delivered = 2", Duration::from_secs(10), async || {
            let d = relay.metric(&c, "cityd_relay_delivered_total").await;
            (d == 2.0).then_some(d)
        })
        .await;
        assert_eq!(delivered, 2.0);
        assert_eq!(relay.metric(&c, "cityd_relay_undelivered").await, 0.0);
        let log = relay.log();
        assert!(
            !log.contains(&mm.alerts_url),
            "the webhook URL is a credential and must not be logged"
        );
        let status = tokio::task::block_in_place(|| relay.terminate());
        assert!(
            status.success(),
            "SIGTERM must end the relay with 0, got {status}"
        );
    });
}

#[test]
fn passes_go_to_builds_only_when_the_city_asks() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let c = client();
        let passed = payload_bytes("webhook-gate-passed.json");

        let mut setup = RelaySetup::new(&scratch, &mm);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        assert_eq!(status_of_signed(&c, &relay.url(), &passed).await, 202);
        eventually(
            "the pass to be skipped",
            Duration::from_secs(20),
            async || (relay.metric(&c, "cityd_relay_skipped_total").await == 1.0).then_some(()),
        )
        .await;
        assert!(posts_in(&mm, "builds").is_empty() && posts_in(&mm, "alerts").is_empty());
        tokio::task::block_in_place(|| assert!(relay.terminate().success()));

        setup.post_passes = true;
        setup.spool = scratch.path().join("spool-passes");
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 1));
        assert_eq!(status_of_signed(&c, &relay.url(), &passed).await, 202);
        let posts = eventually("a post in #builds", Duration::from_secs(20), async || {
            let p = posts_in(&mm, "builds");
            (!p.is_empty()).then_some(p)
        })
        .await;
        assert_eq!(posts.len(), 1);
        assert!(
            posts[0].message.contains("Quality gate passed"),
            "{}",
            posts[0].message
        );
        assert_eq!(
            posts[0].props["attachments"][0]["color"],
            message::COLOUR_PASSED
        );
        assert!(posts_in(&mm, "alerts").is_empty());
        tokio::task::block_in_place(|| assert!(relay.terminate().success()));
    });
}

#[test]
fn accepted_events_survive_sigterm_while_mattermost_is_down() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mut mm = mattermost(&scratch).await;
        let c = client();
        let setup = RelaySetup::new(&scratch, &mm);
        mm.double.go_down().await;
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let base = String::from_utf8(payload_bytes("webhook-gate-failed.compact.body")).unwrap();
        for i in 0..5 {
            let body = base.replace(REAL_TASK, &format!("DOWN{i:016}"));
            let (status, text) = send(
                &c,
                &relay.url(),
                body.as_bytes(),
                Some(&sign(body.as_bytes())),
                JSON_UTF8,
            )
            .await
            .unwrap();
            assert_eq!(status, 202, "{text}");
        }
        eventually(
            "retries while Mattermost is down",
            Duration::from_secs(20),
            async || (relay.metric(&c, "cityd_relay_retried_total").await >= 2.0).then_some(()),
        )
        .await;
        assert_eq!(relay.metric(&c, "cityd_relay_undelivered").await, 5.0);
        assert!(
            relay
                .metric(&c, "cityd_relay_oldest_undelivered_age_seconds")
                .await
                > 0.0
        );
        let listen = relay.listen;
        let status = tokio::task::block_in_place(|| relay.terminate());
        assert!(status.success(), "{status}");

        mm.double.come_back().await.unwrap();
        let relay = tokio::task::block_in_place(|| setup.start(listen, 1));
        let posts = eventually(
            "5 posts after the restart",
            Duration::from_secs(60),
            async || {
                let p = posts_in(&mm, "alerts");
                (p.len() >= 5).then_some(p)
            },
        )
        .await;
        let keys: HashSet<_> = posts
            .iter()
            .map(|p| p.props["cityd_relay_key"].to_string())
            .collect();
        assert_eq!((posts.len(), keys.len()), (5, 5));
        tokio::task::block_in_place(|| assert!(relay.terminate().success()));
    });
}

/// The crash window exactly-once is about: a post reached Mattermost but the relay died before
/// recording it. Built directly in the spool, then the relay must find the post and not repeat it;
/// an in-flight event that never reached Mattermost must be posted once.
#[test]
fn a_post_that_landed_before_a_crash_is_found_and_not_repeated() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let c = client();
        let setup = RelaySetup::new(&scratch, &mm);
        let base = String::from_utf8(payload_bytes("webhook-gate-failed.compact.body")).unwrap();
        let landed = base.replace(REAL_TASK, "LANDEDBEFORECRASH001");
        let lost = base.replace(REAL_TASK, "NEVERSENTBEFORECRASH");
        {
            let options = SpoolOptions::new(setup.spool.clone());
            let opened = tokio::task::spawn_blocking(move || {
                spool::open(options, Arc::new(cityd::relay::metrics::Metrics::default()))
            })
            .await
            .unwrap()
            .unwrap();
            for body in [&landed, &lost] {
                let appended = opened
                    .spool
                    .append(keyed(body), body.clone().into())
                    .await
                    .unwrap();
                assert!(matches!(appended, Appended::Spooled { .. }));
            }
            let claimed = opened.spool.claim(vec![1, 2]).await.unwrap();
            assert_eq!(claimed.len(), 2);
            drop(opened.spool);
            tokio::task::spawn_blocking(move || opened.writer.join().unwrap().unwrap())
                .await
                .unwrap();
        }
        // What the killed relay had sent for the first event before dying.
        let event = payload::parse(landed.as_bytes()).unwrap();
        let post = message::render(&event, &keyed(&landed), &MessageSettings::default());
        let r = c.post(&mm.alerts_url).json(&post).send().await.unwrap();
        assert_eq!(r.status(), 200);

        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        eventually(
            "both in-flight events settled",
            Duration::from_secs(30),
            async || (relay.metric(&c, "cityd_relay_undelivered").await == 0.0).then_some(()),
        )
        .await;
        let posts = posts_in(&mm, "alerts");
        let keys: Vec<String> = posts
            .iter()
            .map(|p| p.props["cityd_relay_key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(posts.len(), 2, "one post per event: {keys:?}");
        assert!(keys.contains(&keyed(&landed)) && keys.contains(&keyed(&lost)));
        assert_eq!(
            relay.metric(&c, "cityd_relay_found_in_channel_total").await,
            1.0
        );
        assert_eq!(relay.metric(&c, "cityd_relay_delivered_total").await, 2.0);
        tokio::task::block_in_place(|| assert!(relay.terminate().success()));
    });
}

fn keyed(body: &str) -> String {
    let event = payload::parse(body.as_bytes()).unwrap();
    payload::dedup_key(&event, body.as_bytes())
}

#[test]
fn arbitrary_bodies_over_http_get_400_or_202_and_never_break_the_relay() {
    use proptest::prelude::*;
    let scratch = Scratch::new();
    let rt = runtime();
    let (mm, relay) = rt.block_on(async {
        let mm = mattermost(&scratch).await;
        let setup = RelaySetup::new(&scratch, &mm);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        (mm, relay)
    });
    let c = client();
    let url = relay.url();
    let real = payload_bytes("webhook-gate-failed.compact.body");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200));
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        (0..real.len(), any::<u8>(), 1..real.len()).prop_map({
            let real = real.clone();
            move |(at, byte, cut)| {
                let mut body = real.clone();
                body[at] = byte;
                body.truncate(cut);
                body
            }
        }),
        "\\{\"project\":\\{\"key\":\"[a-z]{0,5}\"\\}(,\"taskId\":\"[A-Z0-9]{0,30}\")?\\}"
            .prop_map(String::into_bytes),
    ];
    runner
        .run(&strategy, |body| {
            let (status, text) = rt
                .block_on(send(&c, &url, &body, Some(&sign(&body)), JSON_UTF8))
                .expect("the relay answers");
            prop_assert!(status == 400 || status == 202, "{status} {text}");
            Ok(())
        })
        .unwrap();
    rt.block_on(async {
        let health = c
            .get(format!("http://{}/healthz", relay.listen))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
    });
    assert!(relay.terminate().success());
    drop(mm);
}

/// Ten thousand signed events; Mattermost is down for part of the run; the relay is SIGKILLed
/// twice (once while posting, once while Mattermost is down) and restarted on the same port.
/// The sender retries an event until it gets a 202: SonarQube would not, but the claim under test
/// is about accepted events — every event answered 202 is posted exactly once.
#[test]
fn ten_thousand_events_none_lost_none_duplicated_through_an_outage_and_two_sigkills() {
    const EVENTS: usize = 10_000;
    const SENDERS: usize = 32;
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mut mm = mattermost(&scratch).await;
        let setup = Arc::new(RelaySetup::new(&scratch, &mm));
        let first = {
            let setup = Arc::clone(&setup);
            tokio::task::spawn_blocking(move || setup.start("127.0.0.1:0".parse().unwrap(), 0))
                .await
                .unwrap()
        };
        let listen = first.listen;
        let url = first.url();

        let base = String::from_utf8(payload_bytes("webhook-gate-failed.compact.body")).unwrap();
        let events: Arc<Vec<(String, Vec<u8>, String)>> = Arc::new(
            (0..EVENTS)
                .map(|i| {
                    let task = format!("RELAY{i:015}");
                    let body = base.replace(REAL_TASK, &task).into_bytes();
                    let sig = sign(&body);
                    (format!("task:{task}"), body, sig)
                })
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let duplicates = Arc::new(AtomicUsize::new(0));
        let failed_requests = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        for _ in 0..SENDERS {
            let (events, next, accepted, duplicates, failed_requests, url) = (
                Arc::clone(&events),
                Arc::clone(&next),
                Arc::clone(&accepted),
                Arc::clone(&duplicates),
                Arc::clone(&failed_requests),
                url.clone(),
            );
            senders.push(tokio::spawn(async move {
                let c = client();
                loop {
                    let i = next.fetch_add(1, SeqCst);
                    let Some((_, body, sig)) = events.get(i) else { return };
                    let give_up = Instant::now() + Duration::from_secs(120);
                    loop {
                        match send(&c, &url, body, Some(sig), JSON_UTF8).await {
                            Ok((202, text)) => {
                                if text.contains("\"duplicate\":true") {
                                    duplicates.fetch_add(1, SeqCst);
                                }
                                accepted.fetch_add(1, SeqCst);
                                break;
                            }
                            // The relay is dead or restarting: poll until it answers again.
                            Ok((503, _)) | Err(_) => {
                                failed_requests.fetch_add(1, SeqCst);
                                assert!(Instant::now() < give_up, "event {i} was never accepted");
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                            Ok((status, text)) => panic!("event {i}: unexpected {status}: {text}"),
                        }
                    }
                }
            }));
        }

        let at_least = |n: usize| {
            let accepted = Arc::clone(&accepted);
            async move {
                eventually(&format!("{n} accepted events"), Duration::from_secs(120), async || {
                    (accepted.load(SeqCst) >= n).then_some(())
                })
                .await
            }
        };
        let restart = |generation: usize| {
            let setup = Arc::clone(&setup);
            tokio::task::spawn_blocking(move || setup.start(listen, generation))
        };

        // SIGKILL #1 while Mattermost is up and posts are in flight.
        at_least(2_000).await;
        tokio::task::block_in_place(|| first.kill9());
        let second = restart(1).await.unwrap();
        // Mattermost goes down.
        at_least(4_000).await;
        mm.double.go_down().await;
        // SIGKILL #2 while Mattermost is down.
        at_least(6_000).await;
        let c = client();
        let found_by_second = second.metric(&c, "cityd_relay_found_in_channel_total").await;
        let second_log = second.log();
        tokio::task::block_in_place(|| second.kill9());
        let third = restart(2).await.unwrap();
        // Mattermost comes back.
        at_least(8_000).await;
        mm.double.come_back().await.unwrap();
        for s in senders {
            s.await.expect("a sender");
        }
        assert_eq!(accepted.load(SeqCst), EVENTS, "every event got a 202");

        eventually("every accepted event delivered", Duration::from_secs(240), async || {
            let undelivered = third.metric(&c, "cityd_relay_undelivered").await;
            (undelivered == 0.0).then_some(())
        })
        .await;
        let posts = posts_in(&mm, "alerts");
        let mut per_key: HashMap<String, usize> = HashMap::new();
        for p in &posts {
            let key = p.props["cityd_relay_key"].as_str().expect("every post carries its key");
            *per_key.entry(key.to_string()).or_default() += 1;
        }
        let expected: HashSet<String> = events.iter().map(|(k, _, _)| k.clone()).collect();
        let missing = expected.iter().filter(|k| !per_key.contains_key(*k)).count();
        let twice: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
        eprintln!(
            "relay soak: {} posts, {} distinct, {} missing, {} duplicated; {} requests failed while the relay was down, {} answered as duplicates; posts found in the channel instead of reposted: {} after SIGKILL #1, {} after SIGKILL #2",
            posts.len(),
            per_key.len(),
            missing,
            twice.len(),
            failed_requests.load(SeqCst),
            duplicates.load(SeqCst),
            found_by_second,
            third.metric(&c, "cityd_relay_found_in_channel_total").await,
        );
        eprintln!(
            "relay after SIGKILL #1 (reconciliation lines):\n{}",
            second_log
                .lines()
                .filter(|l| l.contains("reconcil") || l.contains("in flight"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(missing, 0, "accepted events were lost");
        assert!(twice.is_empty(), "events posted more than once: {twice:?}");
        assert_eq!(posts.len(), EVENTS);
        assert_eq!(per_key.len(), EVENTS);
        assert!(per_key.keys().all(|k| expected.contains(k)));
        assert!(posts_in(&mm, "builds").is_empty());
        let log = third.log();
        tokio::task::block_in_place(|| assert!(third.terminate().success(), "{log}"));
    });
}

#[test]
fn dry_run_prints_the_settings_and_never_a_secret() {
    let scratch = Scratch::new();
    let secret = scratch.write("s", SECRET);
    let url_file = scratch.write("u", "http://127.0.0.1:1/hooks/abcdefghijklmnopqrstuvwxyz");
    let text = run_ok(
        scratch
            .cityd()
            .args(["relay", "serve", "--dry-run", "--json"])
            .arg("--secret-file")
            .arg(&secret)
            .arg("--webhook-url-file")
            .arg(format!("alerts={}", url_file.display())),
    );
    let plan: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(plan["listen"], "0.0.0.0:9180");
    assert_eq!(plan["metrics"], "127.0.0.1:9181");
    assert_eq!(plan["post_passes"], false);
    assert_eq!(plan["alerts_webhook_from"], url_file.display().to_string());
    assert!(!text.contains(SECRET) && !text.contains("abcdefghijklmnopqrstuvwxyz"));
    assert!(
        !scratch.state().join("relay-spool").exists(),
        "--dry-run creates nothing"
    );

    let out = scratch
        .cityd()
        .args(["relay", "serve", "--metrics", "0.0.0.0:9181", "--dry-run"])
        .output()
        .unwrap();
    assert!(stderr_of_exit(&out, 2).contains("loopback"));
}
