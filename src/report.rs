//! The one report every converger returns: an `Outcome` (what a step changed, or would change under
//! `--dry-run`), a `Step` (one thing looked at), a `Report` of steps, and its text and JSON renderings.
//! The JSON schema is documented in `docs/report.md`.

use serde::Serialize;

/// What one step did, or would do in a dry run. "Unchanged" is the kept state: the world already
/// matched the description, so nothing was written, restarted or requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
    Removed,
    Skipped,
    WouldCreate,
    WouldUpdate,
    WouldRemove,
}

impl Outcome {
    /// Every outcome, in the order `docs/report.md` lists them.
    pub const ALL: [Outcome; 8] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Unchanged,
        Outcome::Removed,
        Outcome::Skipped,
        Outcome::WouldCreate,
        Outcome::WouldUpdate,
        Outcome::WouldRemove,
    ];

    /// The word the text report and the JSON report both use.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
            Outcome::Removed => "removed",
            Outcome::Skipped => "skipped",
            Outcome::WouldCreate => "would create",
            Outcome::WouldUpdate => "would update",
            Outcome::WouldRemove => "would remove",
        }
    }

    /// Whether the step changed the world (or would, in a dry run).
    pub fn changes_something(self) -> bool {
        !matches!(self, Outcome::Unchanged | Outcome::Skipped)
    }

    /// Whether this is a dry run's "would …" form.
    pub fn is_planned(self) -> bool {
        matches!(
            self,
            Outcome::WouldCreate | Outcome::WouldUpdate | Outcome::WouldRemove
        )
    }

    /// `Created`, or `WouldCreate` in a dry run.
    pub fn created(dry_run: bool) -> Self {
        if dry_run {
            Outcome::WouldCreate
        } else {
            Outcome::Created
        }
    }

    /// `Updated`, or `WouldUpdate` in a dry run.
    pub fn updated(dry_run: bool) -> Self {
        if dry_run {
            Outcome::WouldUpdate
        } else {
            Outcome::Updated
        }
    }

    /// `Removed`, or `WouldRemove` in a dry run.
    pub fn removed(dry_run: bool) -> Self {
        if dry_run {
            Outcome::WouldRemove
        } else {
            Outcome::Removed
        }
    }

    /// `Unchanged` when nothing differs, else `updated(dry_run)`: the common shape of a step that
    /// brings an existing thing in line.
    pub fn updated_if(changed: bool, dry_run: bool) -> Self {
        if changed {
            Self::updated(dry_run)
        } else {
            Outcome::Unchanged
        }
    }

    /// `Unchanged` when nothing differs, else `created(dry_run)`.
    pub fn created_if(changed: bool, dry_run: bool) -> Self {
        if changed {
            Self::created(dry_run)
        } else {
            Outcome::Unchanged
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reported step: which step, on what, with what outcome and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub subject: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Step {
    pub fn new(step: &'static str, subject: impl Into<String>, outcome: Outcome) -> Self {
        Self {
            step,
            subject: subject.into(),
            outcome,
            detail: String::new(),
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The step as one text line: step, outcome and subject in columns, the detail in parentheses.
    pub fn text_line(&self) -> String {
        let detail = if self.detail.is_empty() {
            String::new()
        } else {
            format!("  ({})", self.detail)
        };
        format!(
            "{:<10} {:<13} {}{detail}",
            self.step,
            self.outcome.as_str(),
            self.subject
        )
    }
}

/// The steps a converge took, in order; printed line by line as they complete in text mode (so a
/// long run shows progress) and kept for the JSON report.
#[derive(Debug)]
pub struct Report {
    pub dry_run: bool,
    json: bool,
    pub steps: Vec<Step>,
}

impl Report {
    /// A report that prints each step as it is added unless `json` (then it prints at the end).
    pub fn new(dry_run: bool, json: bool) -> Self {
        Self {
            dry_run,
            json,
            steps: Vec::new(),
        }
    }

    /// A report that prints nothing by itself (a library caller that only wants the steps).
    pub fn quiet(dry_run: bool) -> Self {
        Self::new(dry_run, true)
    }

    pub fn json(&self) -> bool {
        self.json
    }

    pub fn add(&mut self, step: Step) {
        if !self.json {
            println!("{}", step.text_line());
        }
        self.steps.push(step);
    }

    pub fn extend(&mut self, steps: impl IntoIterator<Item = Step>) {
        for step in steps {
            self.add(step);
        }
    }

    /// Whether any step changed something (or would have, in a dry run).
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.outcome.changes_something())
    }

    /// The closing line of a text report: "no changes", the dry-run notice, or `done`.
    pub fn summary(&self, done: &str) -> String {
        summary(self.changed(), self.dry_run, done)
    }
}

/// The closing line of a text report for a run that `changed` (or would have) something.
pub fn summary(changed: bool, dry_run: bool, done: &str) -> String {
    match (changed, dry_run) {
        (false, _) => "no changes".to_string(),
        (true, true) => "dry run: nothing was changed".to_string(),
        (true, false) => done.to_string(),
    }
}

/// Prints a value as pretty JSON on stdout (the `--json` output of every command).
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_forms_are_the_would_be_outcomes() {
        assert_eq!(Outcome::created(true), Outcome::WouldCreate);
        assert_eq!(Outcome::created(false), Outcome::Created);
        assert_eq!(Outcome::updated_if(true, true), Outcome::WouldUpdate);
        assert_eq!(Outcome::updated_if(false, true), Outcome::Unchanged);
        assert_eq!(Outcome::removed(true), Outcome::WouldRemove);
        assert!(Outcome::WouldRemove.is_planned());
        assert!(!Outcome::Removed.is_planned());
        assert!(!Outcome::Skipped.changes_something());
        assert!(Outcome::WouldCreate.changes_something());
    }

    #[test]
    fn json_names_are_the_text_words_in_kebab_case() {
        for outcome in Outcome::ALL {
            let json = serde_json::to_value(outcome).unwrap();
            assert_eq!(json, outcome.as_str().replace(' ', "-"));
        }
    }

    #[test]
    fn a_step_renders_as_one_aligned_line_and_as_json_without_an_empty_detail() {
        let step = Step::new("volume", "cicd-mm-data", Outcome::Unchanged);
        assert_eq!(step.text_line(), "volume     unchanged     cicd-mm-data");
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"step": "volume", "subject": "cicd-mm-data", "outcome": "unchanged"})
        );
        let step = step.detail("kept");
        assert!(step.text_line().ends_with("  (kept)"));
    }

    /// docs/report.md's outcome table is the schema scripts read: it must list every outcome with
    /// its text and JSON words.
    #[test]
    fn the_documented_outcome_table_matches_the_type() {
        let doc = include_str!("../docs/report.md");
        for outcome in Outcome::ALL {
            let json = serde_json::to_string(&outcome).unwrap();
            let row = format!("| `{}` | `{json}` |", outcome.as_str());
            assert!(
                doc.contains(&row),
                "docs/report.md lacks the row part {row}"
            );
        }
    }

    #[test]
    fn summary_says_no_changes_or_dry_run_or_done() {
        let mut report = Report::quiet(false);
        assert_eq!(report.summary("city converged"), "no changes");
        report.add(Step::new("network", "cicd-net", Outcome::Created));
        assert!(report.changed());
        assert_eq!(report.summary("city converged"), "city converged");
        let mut dry = Report::quiet(true);
        dry.add(Step::new("network", "cicd-net", Outcome::WouldCreate));
        assert_eq!(
            dry.summary("city converged"),
            "dry run: nothing was changed"
        );
    }
}
