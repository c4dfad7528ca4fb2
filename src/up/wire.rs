//! The wiring step of `up`: `mattermost::wiring::converge` in this process, over Mattermost's
//! local-mode socket, with the city and vault `up` already holds. Its report goes under "wire" in
//! `up --json`, also when the wiring fails; in text mode it prints as `cityd wire` does.

use std::time::Duration;

use crate::city::City;
use crate::mattermost::wiring::{self, Options, WireReport};
use crate::mattermost::{ApiClient, Target};
use crate::secrets::Vault;
use crate::state::StateDir;

/// How long an enabled plugin may take to show up as running (as `cityd wire`'s default).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Mattermost answered before this step; a short wait only covers a restart in between.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Converges the wiring; `report` receives the wiring's report, also when it fails.
pub async fn wire(
    city: &City,
    state: &StateDir,
    vault: &Vault,
    json: bool,
    dry_run: bool,
    report: &mut Option<WireReport>,
) -> anyhow::Result<()> {
    let client = ApiClient::new(Target::Socket(state.mattermost_socket()))?;
    let options = Options {
        dry_run,
        ready_timeout: READY_TIMEOUT,
        plugin_timeout: PLUGIN_TIMEOUT,
    };
    if !json {
        println!("wire       (cityd wire)");
    }
    let (wire_report, result) = wiring::converge_shown(city, vault, &client, options, json).await;
    *report = wire_report;
    result.map_err(|failure| {
        anyhow::Error::new(failure).context(
            "the wiring failed; the containers are up, fix the cause and run `cityd up` or `cityd wire` again",
        )
    })
}
