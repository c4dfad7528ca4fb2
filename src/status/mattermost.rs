//! Mattermost's lines, over its local-mode socket: ping with the server status (database and file
//! store), the version (`X-Version-ID`), the Calls plugin's version, and the plugins running.

use std::time::Duration;

use super::Line;
use crate::mattermost::{ApiClient, Target};
use crate::state::StateDir;

const CALLS: &str = "com.mattermost.calls";

pub async fn lines(state: &StateDir, container: &str) -> Vec<Line> {
    let socket = state.mattermost_socket();
    let fix_down = format!(
        "`cityd up` starts Mattermost; `docker logs {container}` shows why it is not answering"
    );
    let client =
        match ApiClient::with_timeout(Target::Socket(socket.clone()), Duration::from_secs(3)) {
            Ok(c) => c,
            Err(e) => return vec![Line::red("mattermost", "ping", e.to_string(), fix_down)],
        };
    let (status, plugins) = tokio::join!(client.server_status(), client.get_plugins());
    let mut lines = Vec::new();
    match status {
        Err(e) => {
            lines.push(Line::red(
                "mattermost",
                "ping",
                format!("no answer on {}: {e}", socket.display()),
                fix_down,
            ));
            return lines;
        }
        Ok(s) => {
            let bad: Vec<String> = [
                ("status", &s.status),
                ("database", &s.database_status),
                ("filestore", &s.filestore_status),
            ]
            .iter()
            .filter(|(_, v)| v.as_str() != "OK")
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
            let text = format!("answers in {:.0} ms", s.millis);
            lines.push(if bad.is_empty() {
                Line::green(
                    "mattermost",
                    "ping",
                    format!("{text}; database and file store OK"),
                )
            } else {
                Line::red(
                    "mattermost",
                    "ping",
                    format!("{text} but {}", bad.join(", ")),
                    format!("check the postgres lines and `docker logs {container}`"),
                )
            });
            let version = s.version.split('.').take(3).collect::<Vec<_>>().join(".");
            lines.push(if version.is_empty() {
                Line::yellow(
                    "mattermost",
                    "version",
                    "not reported (no X-Version-ID)",
                    "check the image in [mattermost] image",
                )
            } else {
                Line::green("mattermost", "version", version)
            });
        }
    }
    match plugins {
        Err(e) => lines.push(Line::red(
            "mattermost",
            "plugins",
            e.to_string(),
            "`cityd wire` reports plugin problems",
        )),
        Ok(p) => {
            lines.push(match p.active.iter().find(|m| m.id == CALLS) {
                Some(calls) => Line::green(
                    "mattermost",
                    "calls",
                    format!("Calls {} running", calls.version),
                ),
                None => Line::yellow(
                    "mattermost",
                    "calls",
                    "the Calls plugin is not running",
                    format!(
                        "enable it: `docker exec {container} mmctl --local plugin enable {CALLS}`"
                    ),
                ),
            });
            let running: Vec<String> = p
                .active
                .iter()
                .map(|m| format!("{} {}", m.id, m.version))
                .collect();
            let stopped: Vec<&str> = p.inactive.iter().map(|m| m.id.as_str()).collect();
            let text = format!(
                "{} running{}",
                running.len(),
                if running.is_empty() {
                    String::new()
                } else {
                    format!(": {}", running.join(", "))
                }
            );
            lines.push(if stopped.is_empty() {
                Line::green("mattermost", "plugins", text)
            } else {
                Line::yellow(
                    "mattermost",
                    "plugins",
                    format!("{text}; installed but not running: {}", stopped.join(", ")),
                    "`cityd wire` enables the city's plugins; disable the others in the System Console",
                )
            });
        }
    }
    lines
}
