//! Readiness: poll GET /api/v4/system/ping until the server says OK or a deadline passes, with a
//! progress line on stderr once the wait exceeds a second. Writes only to stderr.

use std::time::{Duration, Instant};

use super::client::ApiClient;
use super::error::{ApiError, ConnectProblem};
use super::transport::Target;

/// How often the progress line is repeated while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Waits until the server answers the ping with `status: OK`. A permission problem fails at once
/// (waiting cannot fix it); anything else is retried until `timeout`.
pub async fn wait_until_ready(client: &ApiClient, timeout: Duration) -> Result<(), ApiError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut last_progress: Option<Instant> = None;
    loop {
        let problem = match attempt(client).await {
            Ok(()) => {
                if last_progress.is_some() {
                    eprintln!(
                        "Mattermost at {} is ready after {:.1}s",
                        client.target(),
                        started.elapsed().as_secs_f32()
                    );
                }
                return Ok(());
            }
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::NotYet(problem)) => problem,
        };
        let waited = started.elapsed();
        if waited >= timeout {
            return Err(ApiError::NotReady {
                target: client.target().to_string(),
                timeout,
                last: problem,
                what: match client.target() {
                    Target::Socket(_) => {
                        "the socket directory is bind-mounted at that path and EnableLocalMode is on"
                    }
                    Target::Url { .. } => {
                        "the URL's host and port reach the container (port published, firewall open)"
                    }
                },
            });
        }
        if waited >= Duration::from_secs(1)
            && last_progress.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY)
        {
            eprintln!(
                "waiting for Mattermost at {} ({:.0}s of {}s): {problem}",
                client.target(),
                waited.as_secs_f32(),
                timeout.as_secs_f32().ceil()
            );
            last_progress = Some(Instant::now());
        }
        let remaining = timeout.saturating_sub(waited);
        tokio::time::sleep(pause.min(remaining)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

enum Attempt {
    NotYet(String),
    Fatal(ApiError),
}

async fn attempt(client: &ApiClient) -> Result<(), Attempt> {
    match client.ping().await {
        Ok(ping) if ping.status.eq_ignore_ascii_case("OK") => Ok(()),
        Ok(ping) => Err(Attempt::NotYet(format!(
            "the server answered status {:?} instead of OK",
            ping.status
        ))),
        Err(ApiError::Connect { problem, .. }) if problem.is_permanent() => {
            Err(Attempt::Fatal(ApiError::Connect {
                target: client.target().to_string(),
                endpoint: "GET /api/v4/system/ping".into(),
                problem,
            }))
        }
        Err(ApiError::Connect { problem, .. }) => Err(Attempt::NotYet(describe(&problem))),
        Err(e @ ApiError::App { .. }) | Err(e @ ApiError::Http { .. }) => {
            Err(Attempt::NotYet(format!(
                "it answered HTTP {} ({})",
                e.status().unwrap_or_default(),
                short(&e)
            )))
        }
        Err(e) => Err(Attempt::NotYet(e.to_string())),
    }
}

fn describe(problem: &ConnectProblem) -> String {
    problem.to_string()
}

fn short(e: &ApiError) -> String {
    match e {
        ApiError::App { error, .. } => error.to_string(),
        ApiError::Http { body, .. } => body.clone(),
        other => other.to_string(),
    }
}
