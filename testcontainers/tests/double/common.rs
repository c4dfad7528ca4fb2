//! Test fixtures: a double with both listeners, and a tiny HTTP/1.1 client for TCP and the socket.

use std::path::PathBuf;

use cityd_testcontainers::mattermost::{DoubleOptions, MattermostDouble};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

pub struct Fixture {
    pub double: MattermostDouble,
    /// Keeps the socket directory alive.
    pub _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new() -> Fixture {
        Self::with_config(Value::Null).await
    }

    pub async fn with_config(config: Value) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let opts = DoubleOptions {
            socket_path: Some(dir.path().join("mm.sock")),
            tcp: true,
            config,
        };
        let double = MattermostDouble::start(opts).await.expect("double starts");
        Fixture { double, _dir: dir }
    }

    /// A client on the local-mode socket.
    pub fn local(&self) -> Client {
        Client {
            target: Target::Socket(self.double.socket_path().expect("socket").to_owned()),
            token: None,
        }
    }

    /// A client on TCP with the seed admin's session.
    pub fn admin(&self) -> Client {
        self.tcp(Some(self.double.admin_token()))
    }

    pub fn tcp(&self, token: Option<String>) -> Client {
        let url = self.double.base_url().expect("tcp");
        Client {
            target: Target::Tcp(url.trim_start_matches("http://").to_owned()),
            token,
        }
    }
}

#[derive(Clone)]
pub enum Target {
    Tcp(String),
    Socket(PathBuf),
}

#[derive(Clone)]
pub struct Client {
    pub target: Target,
    pub token: Option<String>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts an AppError body with this status and id; returns the body.
    pub fn app_error(&self, status: u16, id: &str) -> Value {
        let body = self.json();
        assert_eq!(
            (self.status, body["id"].as_str().unwrap_or("")),
            (status, id),
            "body: {body}"
        );
        assert_eq!(body["status_code"], status);
        assert_eq!(body["detailed_error"], "");
        assert_eq!(
            body["request_id"].as_str().map(str::len),
            Some(26),
            "request_id: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "message: {body}"
        );
        body
    }
}

impl Client {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        req = match &self.target {
            Target::Tcp(addr) => req.header("host", addr.as_str()),
            Target::Socket(_) => req.header("host", "_"),
        };
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let req = req.body(Full::new(Bytes::from(body))).expect("request");
        let response = match &self.target {
            Target::Tcp(addr) => {
                let stream = tokio::net::TcpStream::connect(addr)
                    .await
                    .expect("connect tcp");
                exchange(TokioIo::new(stream), req).await
            }
            Target::Socket(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .expect("connect socket");
                exchange(TokioIo::new(stream), req).await
            }
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        Resp {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, vec![]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(
            Method::PUT,
            path,
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await
    }

    /// POST with a body and no JSON semantics (webhooks, multipart).
    pub async fn post_raw(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Resp {
        self.send(Method::POST, path, content_type, body).await
    }

    /// Creates an object and returns its JSON, asserting the status.
    pub async fn create(&self, path: &str, body: &Value, status: u16) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status, status, "POST {path}: {}", r.text());
        r.json()
    }
}

async fn exchange<I>(io: I, req: Request<Full<Bytes>>) -> hyper::Response<hyper::body::Incoming>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender.send_request(req).await.expect("response")
}

/// A multipart/form-data body; each part is `(name, file name, bytes)`.
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "doubleboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/gzip\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Objects most tests need: a team `city` with channel `builds`, and a bot `jenkins` on the team
/// and in the channel, made through local mode the way cityd does it.
pub struct World {
    pub team_id: String,
    pub channel_id: String,
    pub bot_id: String,
    pub admin_id: String,
}

pub async fn seed(local: &Client) -> World {
    let team = local
        .create(
            "/api/v4/teams",
            &serde_json::json!({"name": "city", "display_name": "City", "type": "O"}),
            201,
        )
        .await;
    let team_id = team["id"].as_str().unwrap().to_owned();
    let channel = local
        .create(
            "/api/v4/channels",
            &serde_json::json!({"team_id": team_id, "name": "builds", "display_name": "Builds", "type": "O"}),
            201,
        )
        .await;
    let channel_id = channel["id"].as_str().unwrap().to_owned();
    let user = local
        .create(
            "/api/v4/users",
            &serde_json::json!({"username": "jenkins", "email": "jenkins@localhost", "password": "correct-horse-1"}),
            201,
        )
        .await;
    let bot_id = user["id"].as_str().unwrap().to_owned();
    let r = local
        .post(
            &format!("/api/v4/users/{bot_id}/convert_to_bot"),
            &serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let admin_id = local.get("/api/v4/users/username/admin").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for uid in [&bot_id, &admin_id] {
        local
            .create(
                &format!("/api/v4/teams/{team_id}/members"),
                &serde_json::json!({"team_id": team_id, "user_id": uid}),
                201,
            )
            .await;
        local
            .create(
                &format!("/api/v4/channels/{channel_id}/members"),
                &serde_json::json!({"user_id": uid}),
                201,
            )
            .await;
    }
    World {
        team_id,
        channel_id,
        bot_id,
        admin_id,
    }
}

/// Creates a hook for `world.channel_id` owned by the bot, over local mode.
pub async fn hook(local: &Client, world: &World, locked: bool) -> String {
    let hook = local
        .create(
            "/api/v4/hooks/incoming",
            &serde_json::json!({"channel_id": world.channel_id, "user_id": world.bot_id,
                                "display_name": "Jenkins", "channel_locked": locked}),
            201,
        )
        .await;
    hook["id"].as_str().unwrap().to_owned()
}
