//! Connecting Jenkins, GitLab and SonarQube to the city's Mattermost (`cityd connect`): the
//! `Product` trait every product implements (one module each), the JCasC editor, the shared HTTP
//! client, the records cityd keeps of what it set, and the report every `connect` prints (what
//! changed, what would change, requests made).

pub mod gitlab;
pub mod http;
pub mod jcasc;
pub mod jenkins;
pub mod record;
pub mod redact;
pub mod sonarqube;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::city::City;
use crate::report::{Outcome, Step};
use crate::secrets::{Secret, Vault, VaultError};
use http::RequestCounts;
use record::Records;

/// A product `cityd connect` wires to Mattermost. Adding one is a module implementing this, its
/// double under `testcontainers/`, its tests, and one line in `cmd/connect.rs`'s product list.
pub trait Product {
    /// The subcommand's name and the report's `product`.
    const NAME: &'static str;
    /// Its flags on `cityd connect <name>`; the struct's `#[command]` carries the help.
    type Args: clap::Args + std::fmt::Debug;
    /// Everything a run needs, resolved from the city, the flags and the vault.
    type Target;
    /// Why a run failed; its exit code travels with it (`exit::ExitCoded`).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The flags every product has.
    fn common(args: &Self::Args) -> &CommonArgs;

    /// Resolves the target; settings or vault entries that are missing are input errors.
    fn target(env: &Env<'_>, args: Self::Args) -> anyhow::Result<Self::Target>;

    /// Plans and applies (only plans with `dry_run`). The report lists what happened even when a
    /// step failed; the error, if any, comes second.
    fn connect(
        target: &Self::Target,
        env: &Env<'_>,
        dry_run: bool,
    ) -> impl Future<Output = (Report, Result<(), Self::Error>)>;
}

/// What every product's run may draw on.
pub struct Env<'a> {
    pub city: &'a City,
    pub vault: &'a Vault,
    pub records: &'a Records,
    /// The city CA, when it exists, trusted for https product URLs.
    pub ca_pem: Option<PathBuf>,
    /// The city's LAN addresses, resolved only when a product needs them.
    pub lan: &'a dyn Fn() -> anyhow::Result<Vec<IpAddr>>,
}

/// The flags every `cityd connect <product>` takes.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Show what would change; send no changing request and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable report (steps, request counts, next steps; never secrets).
    #[arg(long)]
    pub json: bool,
}

/// A setting or flag a product needs is not given (exit 2); the message names where to set it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unset(pub &'static str);

impl crate::exit::ExitCoded for Unset {
    fn exit_code(&self) -> u8 {
        crate::exit::BAD_INPUT
    }
}

/// One step of a product's run: the shared `report::Step`, with the product as its step.
pub fn step(
    product: &'static str,
    subject: impl Into<String>,
    outcome: Outcome,
    detail: impl Into<String>,
) -> Step {
    Step::new(product, subject, outcome).detail(detail)
}

/// The outcome of one `cityd connect <product>`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub product: &'static str,
    pub dry_run: bool,
    /// Anything created or updated (or, in a dry run, would be).
    pub changed: bool,
    pub steps: Vec<Step>,
    /// Requests sent to the product's API; a rerun with nothing to do sends no mutating one.
    pub requests: RequestCounts,
    /// What the operator still has to do, in order.
    pub next_steps: Vec<String>,
    /// Why the run stopped early, when it did (the same text goes to stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Report {
    pub fn new(product: &'static str, dry_run: bool) -> Self {
        Self {
            product,
            dry_run,
            changed: false,
            steps: Vec::new(),
            requests: RequestCounts::default(),
            next_steps: Vec::new(),
            error: None,
        }
    }

    pub fn push(&mut self, step: Step) {
        if step.outcome.changes_something() {
            self.changed = true;
        }
        self.steps.push(step);
    }

    /// The report for people: one line per step, then a summary and the next steps.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            out.push_str(&format!(
                "{:<13} {}: {}\n",
                step.outcome.as_str(),
                step.subject,
                step.detail
            ));
        }
        let changes = self
            .steps
            .iter()
            .filter(|s| s.outcome.changes_something())
            .count();
        let summary = match (changes, self.dry_run) {
            (0, _) => format!("{}: no changes", self.product),
            (n, false) => format!("{}: {n} change(s)", self.product),
            (n, true) => format!("{}: dry run, {n} change(s) would be made", self.product),
        };
        out.push_str(&format!(
            "{summary} ({} request(s), {} mutating)\n",
            self.requests.total, self.requests.mutating
        ));
        for next in &self.next_steps {
            out.push_str(&format!("next: {next}\n"));
        }
        out
    }
}

/// Errors reading what `connect` needs from the vault; the message says which file and how to fill it.
#[derive(Debug, thiserror::Error)]
pub enum NeedError {
    #[error(
        "the vault has no incoming-webhook URL for #{channel} ({path}); run `cityd wire` first, it creates the webhook and stores its URL there"
    )]
    Webhook { channel: String, path: String },
    #[error(
        "the vault has no {what} ({path}); put it there as one line in a 0600 file, e.g. `install -m 600 /dev/stdin {path}` and paste it (never pass tokens as arguments)"
    )]
    Token { what: String, path: String },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl NeedError {
    pub fn is_bad_input(&self) -> bool {
        match self {
            NeedError::Webhook { .. } | NeedError::Token { .. } => true,
            NeedError::Vault(e) => e.is_bad_input(),
        }
    }
}

impl crate::exit::ExitCoded for NeedError {
    fn exit_code(&self) -> u8 {
        crate::exit::failure_code(self.is_bad_input())
    }
}

/// The webhook URL of `channel`, which must be there.
pub fn need_webhook(vault: &Vault, channel: &str) -> Result<Secret, NeedError> {
    let name = crate::state::StateDir::webhook_secret_name(channel);
    vault.read(&name)?.ok_or_else(|| NeedError::Webhook {
        channel: channel.to_string(),
        path: vault.path_of(&name).display().to_string(),
    })
}

/// A token that must be in the vault under `name`.
pub fn need_token(vault: &Vault, name: &str, what: &str) -> Result<Secret, NeedError> {
    vault.read(name)?.ok_or_else(|| NeedError::Token {
        what: what.to_string(),
        path: vault.path_of(name).display().to_string(),
    })
}
