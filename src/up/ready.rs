//! Waiting for Mattermost to answer on its local-mode socket, failing early (with its last log
//! lines) if its container stops meanwhile.

use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::docker::Engine;
use crate::mattermost::{ApiClient, Target, ready::wait_until_ready};
use crate::state::StateDir;

/// Waits until Mattermost answers, checking every two seconds that container `name` still runs.
/// Returns how long it took.
pub async fn wait(
    engine: &Engine,
    name: &str,
    state: &StateDir,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let client = ApiClient::new(Target::Socket(state.mattermost_socket()))?;
    let ready = wait_until_ready(&client, timeout);
    tokio::pin!(ready);
    loop {
        tokio::select! {
            result = &mut ready => {
                result.context("waiting for Mattermost")?;
                return Ok(started.elapsed());
            }
            _ = tokio::time::sleep(Duration::from_secs(2)) => {
                engine.require_running(name).await?;
            }
        }
    }
}
