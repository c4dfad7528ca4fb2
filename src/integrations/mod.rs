//! Connecting Jenkins, GitLab and SonarQube to the city's Mattermost (`cityd connect`): one module
//! per product, the JCasC editor, the shared HTTP client, the records cityd keeps of what it set,
//! and the report every `connect` prints (what changed, what would change, requests made).

pub mod gitlab;
pub mod http;
pub mod jcasc;
pub mod jenkins;
pub mod record;
pub mod sonarqube;

use serde::Serialize;

use crate::secrets::{Secret, Vault, VaultError};
use http::RequestCounts;

/// What one step did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Unchanged,
    /// Not done, and why is in the detail (a dry run's reload, an optional step without its token).
    Skip,
}

/// One thing `connect` looked at: a file, a setting, a remote object, the apply step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub subject: String,
    pub action: Action,
    pub detail: String,
}

impl Step {
    pub fn new(subject: impl Into<String>, action: Action, detail: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            action,
            detail: detail.into(),
        }
    }
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
        if matches!(step.action, Action::Create | Action::Update) {
            self.changed = true;
        }
        self.steps.push(step);
    }

    /// The report for people: one line per step, then a summary and the next steps.
    pub fn human(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let verb = match (step.action, self.dry_run) {
                (Action::Create, false) => "created",
                (Action::Create, true) => "would create",
                (Action::Update, false) => "updated",
                (Action::Update, true) => "would update",
                (Action::Unchanged, _) => "unchanged",
                (Action::Skip, _) => "skipped",
            };
            out.push_str(&format!("{verb:<13} {}: {}\n", step.subject, step.detail));
        }
        let changes = self
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Create | Action::Update))
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

/// The vault file holding the incoming-webhook URL of `channel` (written by `cityd wire`).
pub fn webhook_secret_name(channel: &str) -> String {
    crate::state::StateDir::webhook_secret_name(channel)
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

/// The webhook URL of `channel`, which must be there.
pub fn need_webhook(vault: &Vault, channel: &str) -> Result<Secret, NeedError> {
    let name = webhook_secret_name(channel);
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
