//! What `cityd wire` reports: the plan's items with their outcomes, warnings, blockers, counts and
//! requests, serialized as `cityd wire --json` prints it, and its text lines. Also the one place
//! that maps `report::Outcome` to wire's own words ("create", "update", "unchanged" in the plan
//! and the JSON `change` field; "created", "updated", "enabled", "uploaded" once applied).

use serde::Serialize;

use super::plan::{Item, Kind, Plan};
use crate::mattermost::client::RequestCounts;
use crate::report::{Outcome, Step};

/// The word of an outcome in wire's plan and in its JSON `change` field, for the plan and for
/// what was applied alike.
pub fn change_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Created | Outcome::WouldCreate => "create",
        Outcome::Updated | Outcome::WouldUpdate => "update",
        Outcome::Unchanged | Outcome::Skipped => "unchanged",
        Outcome::Removed | Outcome::WouldRemove => "remove",
    }
}

pub(super) fn serialize_change<S: serde::Serializer>(
    outcome: &Outcome,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(change_word(*outcome))
}

/// One item as a text line: `  create     channel         #builds (detail)` while planned,
/// `  created    …` once applied (`enabled` for a plugin, `uploaded` for a bundle).
pub fn item_line(item: &Item) -> String {
    let (word, detail) = match (item.kind, item.outcome) {
        (Kind::Plugin, Outcome::Created) => ("enabled", "running"),
        (Kind::PluginBundle, Outcome::Created | Outcome::Updated) => {
            ("uploaded", item.detail.as_str())
        }
        (_, done @ (Outcome::Created | Outcome::Updated | Outcome::Removed)) => {
            (done.as_str(), item.detail.as_str())
        }
        (_, planned) => (change_word(planned), item.detail.as_str()),
    };
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    format!(
        "  {word:<10} {:<15} {}{detail}",
        item.kind.label(),
        item.name
    )
}

/// The report of one wiring run: exactly the fields `cityd wire --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct WireReport {
    /// The socket or URL, as shown to people.
    pub target: String,
    pub dry_run: bool,
    pub items: Vec<Item>,
    pub warnings: Vec<String>,
    pub blockers: Vec<String>,
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Items carried out by this run.
    pub applied: usize,
    pub requests: RequestCounts,
    pub seconds: f64,
    /// Why applying stopped, when it did (the same text goes to stderr).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl WireReport {
    /// The report as a person reads it after the run: the plan (when nothing was applied), then
    /// the summary; warnings go to stderr.
    pub fn print_text(&self) {
        if self.is_plan_only() {
            for line in self.plan_lines() {
                println!("{line}");
            }
        }
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        println!("{}", self.summary());
    }

    /// Progress as it happens, for a text report: where the wiring starts applying, then each
    /// item as it is applied.
    pub fn print_progress(event: super::Progress<'_>) {
        match event {
            super::Progress::Applying { target } => println!("wiring Mattermost at {target}"),
            super::Progress::Applied(item) => println!("{}", item_line(item)),
        }
    }

    pub(super) fn new(target: String, plan: Plan, dry_run: bool) -> Self {
        Self {
            target,
            dry_run,
            created: plan.count("create"),
            updated: plan.count("update"),
            unchanged: plan.count("unchanged"),
            items: plan.items,
            warnings: plan.warnings,
            blockers: plan.blockers,
            applied: 0,
            requests: RequestCounts::default(),
            seconds: 0.0,
            error: None,
        }
    }

    /// Objects to create or update (or that were).
    pub fn changes(&self) -> usize {
        self.created + self.updated
    }

    /// Whether the report is a plan that was not carried out (a dry run, or blockers).
    pub fn is_plan_only(&self) -> bool {
        self.dry_run || !self.blockers.is_empty()
    }

    /// The heading and one line per item of a plan that was not carried out.
    pub fn plan_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "plan for Mattermost at {} (dry run: nothing is changed)",
            self.target
        )];
        lines.extend(self.items.iter().map(item_line));
        lines
    }

    /// The closing line: no changes, what would change, what was wired, or where it stopped.
    pub fn summary(&self) -> String {
        let requests = format!(
            "{} requests, {} changing, {:.2}s",
            self.requests.total, self.requests.mutating, self.seconds
        );
        let (created, updated, unchanged) = (self.created, self.updated, self.unchanged);
        if self.changes() == 0 {
            format!("no changes ({unchanged} objects checked; {requests})")
        } else if self.is_plan_only() {
            format!(
                "would change {}: {created} to create, {updated} to update, {unchanged} unchanged ({requests})",
                self.changes()
            )
        } else if self.error.is_none() {
            format!(
                "wired: {created} created, {updated} updated, {unchanged} unchanged ({requests})"
            )
        } else {
            format!(
                "stopped after {} of {} changes ({requests}); rerun `cityd wire` to finish",
                self.applied,
                self.changes()
            )
        }
    }

    /// The items as the shared report's steps (step "wire", subject "<kind> <name>").
    pub fn steps(&self) -> Vec<Step> {
        self.items
            .iter()
            .map(|i| {
                Step::new("wire", format!("{} {}", i.kind.label(), i.name), i.outcome)
                    .detail(i.detail.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: Kind, outcome: Outcome, detail: &str) -> Item {
        Item {
            kind,
            name: "x".into(),
            outcome,
            detail: detail.into(),
            op: None,
        }
    }

    #[test]
    fn planned_and_applied_items_use_wires_words() {
        assert_eq!(
            item_line(&item(Kind::Channel, Outcome::WouldCreate, "")),
            "  create     channel         x"
        );
        assert_eq!(
            item_line(&item(Kind::Bot, Outcome::Updated, "display name")),
            "  updated    bot             x (display name)"
        );
        assert_eq!(
            item_line(&item(Kind::Plugin, Outcome::Created, "enable")),
            "  enabled    plugin          x (running)"
        );
        assert_eq!(
            item_line(&item(Kind::PluginBundle, Outcome::Updated, "1.1.0")),
            "  uploaded   plugin bundle   x (1.1.0)"
        );
    }

    #[test]
    fn json_change_is_the_plan_word_before_and_after_applying() {
        for (outcome, word) in [
            (Outcome::WouldCreate, "create"),
            (Outcome::Created, "create"),
            (Outcome::WouldUpdate, "update"),
            (Outcome::Updated, "update"),
            (Outcome::Unchanged, "unchanged"),
        ] {
            let json = serde_json::to_value(item(Kind::Team, outcome, "")).unwrap();
            assert_eq!(
                json,
                serde_json::json!({"kind": "team", "name": "x", "change": word})
            );
        }
    }

    #[test]
    fn the_report_serializes_as_wire_json_and_sums_up_like_wire() {
        let mut plan = Plan::default();
        plan.push(
            Kind::Team,
            "engineering".into(),
            Outcome::WouldCreate,
            "",
            None,
        );
        plan.push(
            Kind::Channel,
            "#builds".into(),
            Outcome::Unchanged,
            "",
            None,
        );
        let mut report = WireReport::new("unix socket /s".into(), plan, true);
        report.requests = RequestCounts {
            total: 7,
            mutating: 0,
        };
        // The fields in the order `cityd wire --json` has always printed them.
        let text = serde_json::to_string(&report).unwrap();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        let keys = [
            "target",
            "dry_run",
            "items",
            "warnings",
            "blockers",
            "created",
            "updated",
            "unchanged",
            "applied",
            "requests",
            "seconds",
        ];
        assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        assert!(!text.contains("\"error\""), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json.as_object().unwrap().len(), keys.len());
        assert_eq!(json["items"][0]["change"], "create");
        assert_eq!(
            report.summary(),
            "would change 1: 1 to create, 0 to update, 1 unchanged (7 requests, 0 changing, 0.00s)"
        );
        report.dry_run = false;
        report.items[0].outcome = Outcome::Created;
        report.applied = 1;
        assert_eq!(
            report.summary(),
            "wired: 1 created, 0 updated, 1 unchanged (7 requests, 0 changing, 0.00s)"
        );
        report.error = Some("creating team engineering failed".into());
        assert!(report.summary().starts_with("stopped after 1 of 1 changes"));
        assert_eq!(
            report.steps()[0],
            Step::new("wire", "team engineering", Outcome::Created)
        );
    }
}
