//! `mmctl system status --local` as the double's image runs it for its health check (the real
//! image's HEALTHCHECK since 10.12): GET /api/v4/system/ping with the server status over the
//! local-mode socket, printing the statuses and failing unless every one is OK.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The socket mmctl uses without `--local-socket-path` (Mattermost's default).
const DEFAULT_SOCKET: &str = "/var/tmp/mattermost_local.socket";

/// Runs `mmctl ARGS`; the exit code is the result.
pub async fn run(args: &[String]) -> anyhow::Result<i32> {
    let mut words = Vec::new();
    let mut socket = std::env::var("MMCTL_LOCAL_SOCKET_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(DEFAULT_SOCKET));
    let mut local = std::env::var("MMCTL_LOCAL").is_ok_and(|v| v == "true");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--local" => local = true,
            "--local-socket-path" => {
                socket = it
                    .next()
                    .context("--local-socket-path needs a path")?
                    .into()
            }
            other => words.push(other),
        }
    }
    if words != ["system", "status"] || !local {
        bail!("the double's mmctl knows only `system status --local`, not {args:?}");
    }
    let mut stream = tokio::net::UnixStream::connect(&socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream
        .write_all(b"GET /api/v4/system/ping?get_server_status=true&use_rest_semantics=true HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json: serde_json::Value = serde_json::from_str(body.trim())
        .or_else(|_| serde_json::from_str(dechunk(body).trim()))
        .context("the server's status is not JSON")?;
    let mut ok = true;
    for key in ["status", "database_status", "filestore_status"] {
        let value = json[key].as_str().unwrap_or("missing");
        println!("{key}: {value}");
        ok &= value == "OK";
    }
    Ok(if ok { 0 } else { 1 })
}

/// A chunked body's data (the double's server may chunk).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
