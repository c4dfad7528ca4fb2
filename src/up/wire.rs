//! The wiring step of `up`, for now `cityd wire` run as a child process with the same city and
//! state, so its output and exit code stay its own. Isolated here so the in-process wiring
//! library can replace it in one place.

use std::path::Path;

use anyhow::Context as _;

use crate::state::StateDir;

/// Runs `cityd wire`; in JSON mode its report is captured into `report`, also when wire fails.
pub fn run_wire(
    city_path: Option<&Path>,
    state: &StateDir,
    json: bool,
    dry_run: bool,
    report: &mut Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the cityd binary to run `cityd wire`")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--state-dir").arg(state.root());
    if let Some(city) = city_path {
        cmd.arg("--city").arg(city);
    }
    cmd.arg("wire");
    if dry_run {
        cmd.arg("--dry-run");
    }
    let status = if json {
        cmd.arg("--json");
        let out = cmd
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("running `cityd wire`")?;
        *report = serde_json::from_slice(&out.stdout).ok();
        out.status
    } else {
        println!("wire       (cityd wire)");
        cmd.status().context("running `cityd wire`")?
    };
    anyhow::ensure!(
        status.success(),
        "`cityd wire` failed ({status}); the containers are up, fix the cause and run `cityd up` or `cityd wire` again"
    );
    Ok(())
}
