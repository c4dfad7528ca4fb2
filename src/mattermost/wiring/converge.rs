//! The whole wiring as one call: wait until the server answers, observe, plan (the plugins
//! included), fetch and verify plugin bundles, stop on blockers, apply, count. Prints nothing:
//! progress goes to a callback and the outcome is a `WireReport` (`cityd wire`, `cityd up`).

use std::time::{Duration, Instant};

use thiserror::Error;

use super::apply::{Applier, ApplyError};
use super::desired::Desired;
use super::observe::{ObserveError, observe};
use super::plan::{Item, Plan, plan};
use super::report::WireReport;
use crate::city::City;
use crate::mattermost::client::ApiClient;
use crate::mattermost::error::ApiError;
use crate::mattermost::plugins::{self, PluginApplier, PluginError, PluginOp};
use crate::mattermost::ready::wait_until_ready;
use crate::secrets::{Vault, VaultError};

/// How a wiring run behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Plan only: observe, print the plan, change nothing.
    pub dry_run: bool,
    /// How long to wait for the server to answer its ping.
    pub ready_timeout: Duration,
    /// How long an enabled plugin may take to show up as running.
    pub plugin_timeout: Duration,
}

/// What a run tells its caller while it applies (nothing is reported during a dry run).
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// Applying starts, against this target.
    Applying { target: &'a str },
    /// One item was carried out; its outcome is the applied form ("created", "updated").
    Applied(&'a Item),
}

#[derive(Debug, Error)]
pub enum WireError {
    #[error(transparent)]
    NotReady(ApiError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Plugins(ApiError),
    #[error(
        "cityd wire changed nothing: {} problem(s) must be fixed first:\n  - {}",
        blockers.len(),
        blockers.join("\n  - ")
    )]
    Blocked { blockers: Vec<String> },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// A run that failed, with its report when it got as far as planning (blockers, or a failure
/// while applying: the report says what was already done). Displays as its error.
#[derive(Debug)]
pub struct WireFailure {
    pub report: Option<Box<WireReport>>,
    pub error: WireError,
}

impl std::fmt::Display for WireFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for WireFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

impl<E: Into<WireError>> From<E> for WireFailure {
    fn from(error: E) -> Self {
        Self {
            report: None,
            error: error.into(),
        }
    }
}

/// Converges the city's Mattermost objects and plugins on the server `client` talks to.
/// `converge` as `cityd wire` shows it: progress and the closing text on stdout unless `json`.
/// Returns the report (also when the wiring failed part-way) beside the outcome, so a caller can
/// print it as JSON or embed it (`cityd up --json`).
pub async fn converge_shown(
    city: &City,
    vault: &Vault,
    client: &ApiClient,
    options: Options,
    json: bool,
) -> (Option<WireReport>, Result<(), WireFailure>) {
    let progress = |event: Progress<'_>| {
        if !json {
            WireReport::print_progress(event);
        }
    };
    let (report, result) = match converge(city, vault, client, options, progress).await {
        Ok(report) => (Some(report), Ok(())),
        Err(mut failure) => (failure.report.take().map(|r| *r), Err(failure)),
    };
    if let Some(report) = report.as_ref().filter(|_| !json) {
        report.print_text();
    }
    (report, result)
}

pub async fn converge(
    city: &City,
    vault: &Vault,
    client: &ApiClient,
    options: Options,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<WireReport, WireFailure> {
    let started = Instant::now();
    wait_until_ready(client, options.ready_timeout)
        .await
        .map_err(WireError::NotReady)?;

    let desired = Desired::from_city(city);
    let (observed, config) = observe(client, &desired, vault).await?;
    let mut plan: Plan = plan(&desired, &observed);

    let (specs, plugin_warnings) = plugins::desired(city, vault)?;
    plan.warnings.extend(plugin_warnings);
    let installed = plugins::observe(client, &specs)
        .await
        .map_err(WireError::Plugins)?;
    let plugin_plan = plugins::plan(&specs, &config, &installed, client.target().is_local());
    // Bundles are fetched and checked against their pins before anything changes.
    let mut bundles = Vec::new();
    for op in &plugin_plan.ops {
        if let PluginOp::Upload { plugin } = op {
            let spec = &specs[*plugin];
            let bundle = spec.bundle.as_ref().expect("uploads have bundles");
            match plugins::load_verified(spec.name, bundle).await {
                Ok(b) => bundles.push((*plugin, b)),
                Err(e) => plan.blockers.push(e.to_string()),
            }
        }
    }
    let plugin_ops = plugin_plan.ops;
    plan.extend(plugin_plan.plan);

    let target = client.target().to_string();
    let finish = |mut report: WireReport| {
        report.requests = client.counts();
        report.seconds = started.elapsed().as_secs_f64();
        report
    };
    if !plan.blockers.is_empty() || options.dry_run {
        let report = finish(WireReport::new(target, plan, options.dry_run));
        if report.blockers.is_empty() {
            return Ok(report);
        }
        return Err(WireFailure {
            error: WireError::Blocked {
                blockers: report.blockers.clone(),
            },
            report: Some(Box::new(report)),
        });
    }

    progress(Progress::Applying { target: &target });
    let mut applied = 0usize;
    let mut done = |item: &Item| {
        applied += 1;
        let shown = Item {
            outcome: item.applied(),
            ..item.clone()
        };
        progress(Progress::Applied(&shown));
    };
    let mut applier = Applier::new(client, vault, &desired, &observed);
    let result = match applier.apply(&plan, &mut done).await {
        Ok(()) => PluginApplier {
            client,
            specs: &specs,
            bundles: &bundles,
            start_timeout: options.plugin_timeout,
        }
        .apply(&plan, &plugin_ops, &mut done)
        .await
        .map_err(WireError::from),
        Err(e) => Err(WireError::from(e)),
    };
    // Items are applied in plan order, so the first `applied` changes are the ones done.
    for item in plan
        .items
        .iter_mut()
        .filter(|i| i.is_change())
        .take(applied)
    {
        item.outcome = item.applied();
    }
    let mut report = WireReport::new(target, plan, false);
    report.applied = applied;
    match result {
        Ok(()) => Ok(finish(report)),
        Err(error) => {
            report.error = Some(crate::exit::causes_text(&error));
            Err(WireFailure {
                report: Some(Box::new(finish(report))),
                error,
            })
        }
    }
}
