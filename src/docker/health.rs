//! Waiting on Docker's own health status (the containers' HEALTHCHECKs, exec form), with a progress
//! line on stderr every few seconds, failing early when a container stops or turns unhealthy; and
//! reading a container's health, restarts and loopback-published port for `up` and `status`.

use std::time::{Duration, Instant};

use bollard::models::{ContainerInspectResponse, HealthStatusEnum};

use super::{DockerError, Engine};

/// One container `up` waited on: what proved it healthy and how long it took.
#[derive(Debug, Clone)]
pub struct Waited {
    pub name: String,
    pub command: String,
    pub seconds: f64,
}

/// The health status Docker reports, as a word (`healthy`, `starting`, `unhealthy`, `none`).
pub fn status_of(c: &ContainerInspectResponse) -> String {
    c.state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map_or_else(|| "none".to_string(), |s| s.to_string())
}

/// The output of the latest health check, trimmed.
pub fn last_output(c: &ContainerInspectResponse) -> String {
    c.state
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.log.as_ref())
        .and_then(|l| l.last())
        .and_then(|r| r.output.clone())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The health check's command as configured on the container (exec form, without "CMD").
pub fn command_of(c: &ContainerInspectResponse) -> String {
    c.config
        .as_ref()
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| h.test.as_ref())
        .map(|t| t.iter().skip(1).cloned().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The host port a container's `port/tcp` is published on, if it is.
pub fn published_port(c: &ContainerInspectResponse, port: u16) -> Option<u16> {
    c.network_settings
        .as_ref()?
        .ports
        .as_ref()?
        .get(&format!("{port}/tcp"))?
        .as_ref()?
        .iter()
        .find_map(|b| b.host_port.as_deref()?.parse().ok())
}

/// Waits until every container in `names` reports `healthy`. Fails when one stops (with its last
/// log lines), turns unhealthy (with its check's output), or `timeout` passes.
pub async fn wait_healthy(
    engine: &Engine,
    names: &[String],
    timeout: Duration,
) -> Result<Vec<Waited>, DockerError> {
    let started = Instant::now();
    let mut pending: Vec<String> = names.to_vec();
    let mut done = Vec::new();
    let mut last_progress = Instant::now();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for name in pending {
            let Some(c) = engine.inspect(&name).await? else {
                engine.require_running(&name).await?;
                continue;
            };
            let health = c
                .state
                .as_ref()
                .and_then(|s| s.health.as_ref())
                .and_then(|h| h.status);
            match health {
                Some(HealthStatusEnum::HEALTHY) | None | Some(HealthStatusEnum::NONE) => {
                    done.push(Waited {
                        command: command_of(&c),
                        name,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(DockerError::Unhealthy {
                        command: command_of(&c),
                        output: last_output(&c),
                        name,
                    });
                }
                _ => {
                    engine.require_running(&name).await?;
                    still.push(name);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if started.elapsed() > timeout {
            return Err(DockerError::HealthTimeout {
                names: pending.join(", "),
                seconds: timeout.as_secs(),
            });
        }
        if last_progress.elapsed() >= Duration::from_secs(3) {
            eprintln!(
                "  waiting for {} to turn healthy ({:.0}s)",
                pending.join(", "),
                started.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(done)
}
