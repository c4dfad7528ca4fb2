//! The test-facing handle: mutation counting, fault injection, readiness, request log, snapshot,
//! the blocking form and the standalone binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use cityd_testcontainers::mattermost::{DoubleOptions, MattermostDouble, Snapshot, Transport};
use serde_json::json;

use crate::common::{Fixture, hook, seed};

#[tokio::test]
async fn mutations_are_counted_whatever_their_outcome_but_reads_and_deliveries_are_not() {
    let f = Fixture::new().await;
    let local = f.local();
    assert_eq!(f.double.mutating_requests(), 0);
    local
        .create(
            "/api/v4/teams",
            &json!({"name": "city", "display_name": "City", "type": "O"}),
            201,
        )
        .await;
    local
        .post(
            "/api/v4/teams",
            &json!({"name": "city", "display_name": "City", "type": "O"}),
        )
        .await; // 400
    local.post("/api/v4/bots", &json!({})).await; // 404 on the socket
    f.tcp(None).post("/api/v4/teams", &json!({})).await; // 401
    local.get("/api/v4/teams/name/city").await;
    assert_eq!(f.double.mutating_requests(), 4);

    let f2 = Fixture::new().await;
    let w = seed(&f2.local()).await;
    let id = hook(&f2.local(), &w, true).await;
    let before = f2.double.mutating_requests();
    f2.tcp(None)
        .post_raw(&format!("/hooks/{id}"), None, b"{\"text\":\"x\"}".to_vec())
        .await;
    assert_eq!(
        f2.double.mutating_requests(),
        before,
        "deliveries are not mutations"
    );
    assert_eq!(f2.double.webhook_deliveries(), 1);
}

#[tokio::test]
async fn the_kth_mutation_fails_with_500_and_changes_nothing() {
    let f = Fixture::new().await;
    let local = f.local();
    f.double.fail_nth_mutation(2);
    local
        .create(
            "/api/v4/teams",
            &json!({"name": "one", "display_name": "One", "type": "O"}),
            201,
        )
        .await;
    local.get("/api/v4/teams/name/one").await; // reads do not count
    let r = local
        .post(
            "/api/v4/teams",
            &json!({"name": "two", "display_name": "Two", "type": "O"}),
        )
        .await;
    r.app_error(500, "app.injected_failure.app_error");
    assert!(f.double.snapshot().team("two").is_none());
    local
        .create(
            "/api/v4/teams",
            &json!({"name": "two", "display_name": "Two", "type": "O"}),
            201,
        )
        .await;
    // k = 0 cancels a pending injection.
    f.double.fail_nth_mutation(1);
    f.double.fail_nth_mutation(0);
    local
        .create(
            "/api/v4/teams",
            &json!({"name": "three", "display_name": "Three", "type": "O"}),
            201,
        )
        .await;
}

#[tokio::test]
async fn a_server_that_is_not_ready_answers_503() {
    let f = Fixture::new().await;
    f.double.set_ready(false);
    f.local()
        .get("/api/v4/system/ping")
        .await
        .app_error(503, "api.system.not_ready.app_error");
    f.tcp(None)
        .get("/api/v4/system/ping")
        .await
        .app_error(503, "api.system.not_ready.app_error");
    f.local()
        .post("/api/v4/teams", &json!({}))
        .await
        .app_error(503, "api.system.not_ready.app_error");
    assert_eq!(f.double.mutating_requests(), 0);
    f.double.set_ready(true);
    assert_eq!(f.local().get("/api/v4/system/ping").await.status, 200);
}

#[tokio::test]
async fn requests_are_logged_in_order_with_transport_and_status() {
    let f = Fixture::new().await;
    f.local()
        .get("/api/v4/system/ping?get_server_status=true")
        .await;
    f.admin().get("/api/v4/teams/name/nope").await;
    let log = f.double.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].status),
        ("GET", "/api/v4/system/ping", 200)
    );
    assert_eq!(log[0].query.as_deref(), Some("get_server_status=true"));
    assert_eq!(log[0].transport, Transport::Socket);
    assert_eq!((log[1].status, log[1].transport), (404, Transport::Tcp));
}

#[tokio::test]
async fn snapshot_round_trips_through_json() {
    let f = Fixture::new().await;
    let w = seed(&f.local()).await;
    hook(&f.local(), &w, true).await;
    let snap = f.double.snapshot();
    assert_eq!(
        snap.user("admin").unwrap().roles,
        "system_admin system_user"
    );
    assert!(snap.user("jenkins").unwrap().is_bot);
    assert_eq!(snap.bots[0].owner, "jenkins");
    assert_eq!(
        (snap.hooks[0].channel.as_str(), snap.hooks[0].owner.as_str()),
        ("builds", "jenkins")
    );
    let back: Snapshot = serde_json::from_str(&serde_json::to_string(&snap).unwrap()).unwrap();
    assert_eq!(back, snap);
}

#[tokio::test]
async fn stopping_removes_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mm.sock");
    std::fs::write(&path, b"stale").unwrap();
    let double = MattermostDouble::start(DoubleOptions {
        socket_path: Some(path.clone()),
        tcp: false,
        config: json!(null),
    })
    .await
    .unwrap();
    assert!(double.base_url().is_none());
    assert!(
        tokio::net::UnixStream::connect(&path).await.is_ok(),
        "a stale file is replaced by the socket"
    );
    double.stop().await;
    assert!(!path.exists());
    let missing = DoubleOptions {
        socket_path: Some(dir.path().join("no/such/dir/mm.sock")),
        tcp: false,
        config: json!(null),
    };
    let err = MattermostDouble::start(missing)
        .await
        .err()
        .expect("a missing socket directory is an error");
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// Raw HTTP/1.1 over std: what a plain `#[test]` (no runtime) can do against `start_blocking`.
fn blocking_get(addr: &str, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn blocking_double_serves_plain_tests() {
    let double = MattermostDouble::start_blocking(DoubleOptions {
        tcp: true,
        ..DoubleOptions::default()
    })
    .unwrap();
    let addr = double
        .base_url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let response = blocking_get(&addr, "/api/v4/system/ping");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"status\":\"OK\""), "{response}");
    double.stop_blocking();
    assert!(std::net::TcpStream::connect(&addr).is_err(), "stopped");
}

#[test]
fn standalone_binary_serves_and_dumps_state() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("mm.sock");
    let dump = dir.path().join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mattermost-double"))
        .args(["--listen", "127.0.0.1:0", "--socket"])
        .arg(&socket)
        .arg("--state-dump")
        .arg(&dump)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = ready["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    assert_eq!(ready["admin_token"].as_str().map(str::len), Some(26));
    assert!(blocking_get(&addr, "/api/v4/system/ping").starts_with("HTTP/1.1 200"));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success());
    let snap: Snapshot = serde_json::from_slice(&std::fs::read(&dump).unwrap()).unwrap();
    assert!(snap.user("admin").is_some());
}
