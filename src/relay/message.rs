//! Turns a SonarQube event into a Mattermost incoming-webhook body worth reading: a headline with
//! the project and the branch or pull request, an attachment coloured by the gate status whose
//! fields list each failed condition with its actual value and threshold, a dashboard link, and
//! `props` carrying the dedup key so a post can be found again after a crash.

use serde::Serialize;

use super::payload::{Condition, Verdict, WebhookEvent};

/// Attachment colours (hex: Mattermost documents only hex values).
pub const COLOUR_FAILED: &str = "#D0021B";
pub const COLOUR_WARNING: &str = "#F5A623";
pub const COLOUR_ANALYSIS_FAILED: &str = "#8B572A";
pub const COLOUR_PASSED: &str = "#2EA44F";

/// The post property that identifies the event; reconciliation searches the channel for it.
pub const KEY_PROP: &str = "cityd_relay_key";

/// At most this many failed conditions get their own field; the rest are counted.
const MAX_CONDITION_FIELDS: usize = 20;
/// Untrusted strings (names, branches) are cut to this many characters.
const MAX_NAME: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct MessageSettings {
    /// Public SonarQube root for links (the city's `relay.dashboard_url`); `None` keeps the
    /// payload's own links.
    pub dashboard_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IncomingPost {
    pub text: String,
    pub attachments: Vec<Attachment>,
    pub props: Props,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attachment {
    pub fallback: String,
    pub color: String,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title_link: Option<String>,
    pub text: String,
    pub fields: Vec<Field>,
    pub footer: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Field {
    pub title: String,
    pub value: String,
    pub short: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Props {
    pub cityd_relay_key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sonar_task_id: Option<String>,
    pub sonar_project: String,
    pub sonar_verdict: &'static str,
}

/// Renders the post for `event`, whose dedup key is `key`.
pub fn render(event: &WebhookEvent, key: &str, settings: &MessageSettings) -> IncomingPost {
    let verdict = event.verdict();
    let project_key = clip(&event.project.key);
    let project_name = clip(event.project.name.as_deref().unwrap_or(&event.project.key));
    let link = dashboard_link(event, settings);
    let target = target_label(event);
    let gate_name = event
        .quality_gate
        .as_ref()
        .and_then(|g| g.name.as_deref())
        .map(clip);

    let (emoji, headline, colour) = match verdict {
        Verdict::GateFailed => (":red_circle:", "Quality gate failed", COLOUR_FAILED),
        Verdict::GateWarning => (":warning:", "Quality gate warning", COLOUR_WARNING),
        Verdict::AnalysisFailed => (":x:", "Analysis failed", COLOUR_ANALYSIS_FAILED),
        Verdict::Passed => (":white_check_mark:", "Quality gate passed", COLOUR_PASSED),
    };
    let project_md = match &link {
        Some(url) => format!("[{}]({url})", escape(&project_name)),
        None => format!("**{}**", escape(&project_name)),
    };
    let target_md = target
        .as_ref()
        .map(|t| format!(" · {}", t.markdown()))
        .unwrap_or_default();
    let text = format!("{emoji} **{headline}**: {project_md}{target_md}");

    let failed: Vec<&Condition> = event.failed_conditions().collect();
    let mut fields = vec![Field {
        title: "Project".into(),
        value: format!(
            "{} (`{}`)",
            escape(&project_name),
            escape_code(&project_key)
        ),
        short: true,
    }];
    if let Some(t) = &target {
        fields.push(Field {
            title: t.title().into(),
            value: t.value_markdown(),
            short: true,
        });
    }
    if let Some(gate) = &gate_name {
        fields.push(Field {
            title: "Quality gate".into(),
            value: escape(gate),
            short: true,
        });
    }
    for condition in failed.iter().take(MAX_CONDITION_FIELDS) {
        let shown = describe(condition);
        fields.push(Field {
            // A metric key SonarQube sends can be anything: its derived name is escaped too.
            title: escape(&shown.metric),
            value: format!("**{}** (threshold {})", shown.value, shown.threshold),
            short: true,
        });
    }
    if failed.len() > MAX_CONDITION_FIELDS {
        fields.push(Field {
            title: "More conditions".into(),
            value: format!("{} more failed", failed.len() - MAX_CONDITION_FIELDS),
            short: true,
        });
    }
    for (name, value) in analysis_properties(event) {
        fields.push(Field {
            title: escape(&name),
            value,
            short: true,
        });
    }

    let summary_lines: Vec<String> = failed
        .iter()
        .take(MAX_CONDITION_FIELDS)
        .map(|c| {
            let shown = describe(c);
            format!(
                "{}: {} (threshold {})",
                shown.metric, shown.value, shown.threshold
            )
        })
        .collect();
    let attachment_text = match verdict {
        Verdict::GateFailed | Verdict::GateWarning if failed.is_empty() => {
            "SonarQube listed no failing condition.".to_string()
        }
        Verdict::GateFailed | Verdict::GateWarning => format!(
            "{} condition{} failed:\n{}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            summary_lines
                .iter()
                .map(|l| format!("- {}", escape(l)))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Verdict::AnalysisFailed => {
            "The SonarQube background task failed; there is no quality gate result. See the project's background tasks.".to_string()
        }
        Verdict::Passed => "All quality gate conditions passed.".to_string(),
    };
    let target_plain = target
        .as_ref()
        .map(|t| format!(" ({})", t.plain()))
        .unwrap_or_default();
    let mut fallback = format!("{headline}: {project_name}{target_plain}");
    for line in &summary_lines {
        fallback.push_str("; ");
        fallback.push_str(line);
    }
    if let Some(url) = &link {
        fallback.push_str(" - ");
        fallback.push_str(url);
    }
    let mut footer = "SonarQube".to_string();
    if let Some(at) = event.analysed_at.as_deref().or(event.changed_at.as_deref()) {
        footer.push_str(" · analysed ");
        footer.push_str(&clip(at));
    }
    if let Some(task) = &event.task_id {
        footer.push_str(" · task ");
        footer.push_str(&clip(task));
    }

    IncomingPost {
        text,
        attachments: vec![Attachment {
            fallback,
            color: colour.into(),
            // Mattermost renders titles as Markdown: escaped like the text and the field values.
            title: format!(
                "{}{}",
                escape(&project_name),
                gate_name
                    .as_ref()
                    .map(|g| format!(" · {}", escape(g)))
                    .unwrap_or_default()
            ),
            title_link: link,
            text: attachment_text,
            fields,
            footer,
        }],
        props: Props {
            cityd_relay_key: key.to_string(),
            sonar_task_id: event.task_id.clone(),
            sonar_project: event.project.key.clone(),
            sonar_verdict: match verdict {
                Verdict::GateFailed => "gate_failed",
                Verdict::GateWarning => "gate_warning",
                Verdict::AnalysisFailed => "analysis_failed",
                Verdict::Passed => "passed",
            },
        },
    }
}

/// Where the analysis ran: a branch or a pull request.
enum Target {
    Branch { name: String, main: bool },
    PullRequest(String),
}

impl Target {
    fn title(&self) -> &'static str {
        match self {
            Target::Branch { .. } => "Branch",
            Target::PullRequest(_) => "Pull request",
        }
    }
    fn value_markdown(&self) -> String {
        match self {
            Target::Branch { name, main } => format!(
                "`{}`{}",
                escape_code(name),
                if *main { " (main)" } else { "" }
            ),
            Target::PullRequest(key) => format!("#{}", escape(key)),
        }
    }
    fn markdown(&self) -> String {
        match self {
            Target::Branch { name, .. } => format!("branch `{}`", escape_code(name)),
            Target::PullRequest(key) => format!("pull request #{}", escape(key)),
        }
    }
    fn plain(&self) -> String {
        match self {
            Target::Branch { name, .. } => format!("branch {name}"),
            Target::PullRequest(key) => format!("pull request #{key}"),
        }
    }
}

fn target_label(event: &WebhookEvent) -> Option<Target> {
    let branch = event.branch.as_ref()?;
    let name = clip(branch.name.as_deref()?);
    Some(if event.is_pull_request() {
        Target::PullRequest(name)
    } else {
        Target::Branch {
            name,
            main: branch.is_main.unwrap_or(false),
        }
    })
}

/// The dashboard of exactly this analysis: the PR or branch view when there is one.
fn dashboard_link(event: &WebhookEvent, settings: &MessageSettings) -> Option<String> {
    let from_base = |base: &str| {
        let mut url = format!(
            "{}/dashboard?id={}",
            base.trim_end_matches('/'),
            urlencoding::encode(&event.project.key)
        );
        if let Some(branch) = &event.branch
            && let Some(name) = branch.name.as_deref()
        {
            if event.is_pull_request() {
                url.push_str("&pullRequest=");
                url.push_str(&urlencoding::encode(name));
            } else if branch.is_main != Some(true) {
                url.push_str("&branch=");
                url.push_str(&urlencoding::encode(name));
            }
        }
        url
    };
    if let Some(base) = &settings.dashboard_url {
        return Some(from_base(base));
    }
    let payload_link = event
        .branch
        .as_ref()
        .and_then(|b| b.url.as_deref())
        .or(event.project.url.as_deref());
    if let Some(url) = payload_link.and_then(safe_url) {
        return Some(url);
    }
    event
        .server_url
        .as_deref()
        .and_then(safe_url)
        .map(|base| from_base(&base))
}

/// Only http(s) links without characters that would break Markdown link syntax.
fn safe_url(url: &str) -> Option<String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || url.len() > 2048 {
        return None;
    }
    let mut out = String::with_capacity(url.len());
    for c in url.chars() {
        match c {
            ' ' => out.push_str("%20"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '"' => out.push_str("%22"),
            c if c.is_control() => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Backslash-escapes Markdown syntax and mention triggers in untrusted text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '|' | '~' | '#' | '@' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Text inside a code span: only backticks and line breaks matter there.
fn escape_code(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '`' => '\'',
            '\n' | '\r' | '\t' => ' ',
            c => c,
        })
        .filter(|c| !c.is_control())
        .collect()
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_NAME {
        s.to_string()
    } else {
        let mut cut: String = s.chars().take(MAX_NAME - 1).collect();
        cut.push('…');
        cut
    }
}

/// A condition as people read it.
struct Shown {
    metric: String,
    value: String,
    threshold: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Percent,
    Rating,
    Minutes,
    Count,
}

/// Human names for the metrics quality gates use most; others are derived from the key.
fn metric_name(key: &str) -> (String, Unit) {
    let known: Option<(&str, Unit)> = match key {
        "coverage" => Some(("Coverage", Unit::Percent)),
        "new_coverage" => Some(("Coverage on new code", Unit::Percent)),
        "line_coverage" => Some(("Line coverage", Unit::Percent)),
        "new_line_coverage" => Some(("Line coverage on new code", Unit::Percent)),
        "branch_coverage" => Some(("Condition coverage", Unit::Percent)),
        "new_branch_coverage" => Some(("Condition coverage on new code", Unit::Percent)),
        "duplicated_lines_density" => Some(("Duplicated lines", Unit::Percent)),
        "new_duplicated_lines_density" => Some(("Duplicated lines on new code", Unit::Percent)),
        "security_hotspots_reviewed" => Some(("Security hotspots reviewed", Unit::Percent)),
        "new_security_hotspots_reviewed" => {
            Some(("Security hotspots reviewed on new code", Unit::Percent))
        }
        "reliability_rating" => Some(("Reliability rating", Unit::Rating)),
        "new_reliability_rating" => Some(("Reliability rating on new code", Unit::Rating)),
        "security_rating" => Some(("Security rating", Unit::Rating)),
        "new_security_rating" => Some(("Security rating on new code", Unit::Rating)),
        "sqale_rating" | "maintainability_rating" => Some(("Maintainability rating", Unit::Rating)),
        "new_maintainability_rating" | "new_sqale_rating" => {
            Some(("Maintainability rating on new code", Unit::Rating))
        }
        "security_review_rating" => Some(("Security review rating", Unit::Rating)),
        "new_security_review_rating" => Some(("Security review rating on new code", Unit::Rating)),
        "violations" => Some(("Issues", Unit::Count)),
        "new_violations" => Some(("New issues", Unit::Count)),
        "bugs" => Some(("Bugs", Unit::Count)),
        "new_bugs" => Some(("New bugs", Unit::Count)),
        "vulnerabilities" => Some(("Vulnerabilities", Unit::Count)),
        "new_vulnerabilities" => Some(("New vulnerabilities", Unit::Count)),
        "code_smells" => Some(("Code smells", Unit::Count)),
        "new_code_smells" => Some(("New code smells", Unit::Count)),
        "blocker_violations" => Some(("Blocker issues", Unit::Count)),
        "critical_violations" => Some(("Critical issues", Unit::Count)),
        "sqale_index" => Some(("Technical debt", Unit::Minutes)),
        "new_technical_debt" => Some(("Technical debt on new code", Unit::Minutes)),
        "sqale_debt_ratio" => Some(("Technical debt ratio", Unit::Percent)),
        "new_sqale_debt_ratio" => Some(("Technical debt ratio on new code", Unit::Percent)),
        _ => None,
    };
    if let Some((name, unit)) = known {
        return (name.to_string(), unit);
    }
    let unit = if key.ends_with("_rating") {
        Unit::Rating
    } else if ["coverage", "density", "ratio", "reviewed", "percent"]
        .iter()
        .any(|w| key.contains(w))
    {
        Unit::Percent
    } else {
        Unit::Count
    };
    let (base, on_new) = match key.strip_prefix("new_") {
        Some(rest) => (rest, true),
        None => (key, false),
    };
    let mut words = base.replace('_', " ");
    if let Some(first) = words.get(..1) {
        words = first.to_ascii_uppercase() + &words[1..];
    }
    if on_new {
        words.push_str(" on new code");
    }
    (clip(&words), unit)
}

fn format_value(raw: &str, unit: Unit) -> String {
    let raw = raw.trim();
    let Ok(n) = raw.parse::<f64>() else {
        return escape(&clip(raw));
    };
    if !n.is_finite() {
        return escape(&clip(raw));
    }
    let number = if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n:.1}")
    };
    match unit {
        Unit::Percent => format!("{number}%"),
        Unit::Rating if n.fract() == 0.0 && (1.0..=5.0).contains(&n) => {
            ["A", "B", "C", "D", "E"][n as usize - 1].to_string()
        }
        Unit::Rating => number,
        Unit::Minutes => format!("{number} min"),
        Unit::Count => number,
    }
}

fn describe(c: &Condition) -> Shown {
    let (metric, unit) = metric_name(c.metric.as_deref().unwrap_or("unknown metric"));
    let value = c
        .value
        .as_deref()
        .map_or_else(|| "no value".to_string(), |v| format_value(v, unit));
    let limit = c
        .error_threshold
        .as_deref()
        .or(c.warning_threshold.as_deref())
        .map(|t| format_value(t, unit));
    // The operator says when the condition fails, so the threshold is the bound to stay within.
    let threshold = match (c.operator.as_deref(), limit) {
        (_, None) => "unknown".to_string(),
        (Some("GREATER_THAN"), Some(t)) if unit == Unit::Rating => format!("{t} or better"),
        (Some("GREATER_THAN"), Some(t)) => format!("≤ {t}"),
        (Some("LESS_THAN"), Some(t)) => format!("≥ {t}"),
        (Some("EQUALS"), Some(t)) => format!("≠ {t}"),
        (Some("NOT_EQUALS"), Some(t)) => format!("= {t}"),
        (_, Some(t)) => t,
    };
    Shown {
        metric,
        value,
        threshold,
    }
}

/// Up to three `sonar.analysis.*` scanner properties (build number, CI URL), as fields.
fn analysis_properties(event: &WebhookEvent) -> Vec<(String, String)> {
    let Some(props) = &event.properties else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("sonar.analysis.")?;
            let value = v.as_str()?;
            let shown = safe_url(value).unwrap_or_else(|| escape(&clip(value)));
            Some((clip(name), shown))
        })
        .take(3)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::payload::fixtures::{GATE_FAILED, GATE_PASSED, PULL_REQUEST};
    use crate::relay::payload::parse;

    fn field<'a>(post: &'a IncomingPost, title: &str) -> &'a str {
        &post.attachments[0]
            .fields
            .iter()
            .find(|f| f.title == title)
            .unwrap_or_else(|| panic!("no field {title}: {:#?}", post.attachments[0].fields))
            .value
    }

    #[test]
    fn a_failed_gate_names_each_condition_with_value_and_threshold() {
        let event = parse(GATE_FAILED).unwrap();
        let post = render(
            &event,
            "task:AZ3kYpQe7LmN0cW2xV8r",
            &MessageSettings::default(),
        );
        let a = &post.attachments[0];
        assert_eq!(a.color, COLOUR_FAILED);
        assert!(post.text.contains("Quality gate failed"), "{}", post.text);
        assert!(post.text.contains(
            "[Harbour Ledger](http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger)"
        ));
        assert!(post.text.contains("branch `main`"));
        assert_eq!(field(&post, "Coverage"), "**63%** (threshold ≥ 80%)");
        assert_eq!(
            field(&post, "Duplicated lines"),
            "**12.7%** (threshold ≤ 3%)"
        );
        assert_eq!(field(&post, "Branch"), "`main` (main)");
        assert!(!a.fields.iter().any(|f| f.title == "Maintainability rating"));
        assert_eq!(
            a.title_link.as_deref(),
            Some("http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger")
        );
        assert!(a.fallback.contains("Coverage: 63% (threshold ≥ 80%)"));
        assert_eq!(post.props.cityd_relay_key, "task:AZ3kYpQe7LmN0cW2xV8r");
        assert_eq!(
            post.props.sonar_task_id.as_deref(),
            Some("AZ3kYpQe7LmN0cW2xV8r")
        );
    }

    #[test]
    fn a_pull_request_links_its_own_dashboard() {
        let event = parse(PULL_REQUEST).unwrap();
        let post = render(&event, "k", &MessageSettings::default());
        assert!(post.text.contains("pull request \\#57") || post.text.contains("pull request #57"));
        assert_eq!(
            post.attachments[0].title_link.as_deref(),
            Some("http://sonarqube.harbour.test:9000/dashboard?id=harbour-ledger&pullRequest=57")
        );
        assert_eq!(
            field(&post, "Coverage on new code"),
            "**55.5%** (threshold ≥ 80%)"
        );
        assert_eq!(field(&post, "New issues"), "**6** (threshold ≤ 0)");
        assert_eq!(field(&post, "buildNumber"), "311");

        assert_eq!(
            link_under(&event, "https://sonar.cicd.local/").as_deref(),
            Some("https://sonar.cicd.local/dashboard?id=harbour-ledger&pullRequest=57")
        );
    }

    /// The title link of `event`'s post when the relay is told the dashboard lives at `base`.
    fn link_under(event: &WebhookEvent, base: &str) -> Option<String> {
        let settings = MessageSettings {
            dashboard_url: Some(base.into()),
        };
        render(event, "k", &settings).attachments[0]
            .title_link
            .clone()
    }

    #[test]
    fn dashboard_links_percent_encode_the_project_key_and_branch() {
        let mut event = parse(PULL_REQUEST).unwrap();
        event.project.key = "org:app x".into();
        event.branch.as_mut().unwrap().name = Some("fix/a&b~1".into());
        assert_eq!(
            link_under(&event, "https://sonar.cicd.local").as_deref(),
            Some("https://sonar.cicd.local/dashboard?id=org%3Aapp%20x&pullRequest=fix%2Fa%26b~1")
        );
    }

    #[test]
    fn a_pass_is_green_and_names_no_condition() {
        let event = parse(GATE_PASSED).unwrap();
        let post = render(&event, "k", &MessageSettings::default());
        assert_eq!(post.attachments[0].color, COLOUR_PASSED);
        assert!(post.text.contains("Quality gate passed"));
        assert_eq!(post.attachments[0].fields.len(), 3);
    }

    #[test]
    fn ratings_read_as_letters() {
        let event = parse(
            br#"{"project":{"key":"p"},"qualityGate":{"status":"ERROR","conditions":[
            {"metric":"new_security_rating","operator":"GREATER_THAN","value":"3","status":"ERROR","errorThreshold":"1"}]}}"#,
        )
        .unwrap();
        let post = render(&event, "k", &MessageSettings::default());
        assert_eq!(
            field(&post, "Security rating on new code"),
            "**C** (threshold A or better)"
        );
    }

    #[test]
    fn untrusted_names_cannot_inject_markdown_links_or_mentions() {
        let event = parse(
            br#"{"project":{"key":"p","name":"x](javascript:alert(1)) @channel","url":"javascript:alert(1)"},
            "branch":{"name":"a`b","type":"BRANCH"},"qualityGate":{"status":"ERROR"}}"#,
        )
        .unwrap();
        let post = render(&event, "k", &MessageSettings::default());
        assert!(post.text.contains("x\\](javascript"), "{}", post.text);
        assert!(post.text.contains("\\@channel"));
        assert!(post.attachments[0].title_link.is_none());
        assert!(post.text.contains("branch `a'b`"));
    }

    #[test]
    fn attachment_and_field_titles_are_escaped_like_the_text() {
        // Issue 12: the title carried the project and gate names raw.
        let event = parse(
            br#"{"project":{"key":"p","name":"x](javascript:alert(1)) @channel"},
            "qualityGate":{"name":"*gate* @all","status":"ERROR","conditions":[
              {"metric":"new_[evil](http://x)_count","operator":"GREATER_THAN","value":"3","errorThreshold":"0","status":"ERROR"}]},
            "properties":{"sonar.analysis.@here":"1"}}"#,
        )
        .unwrap();
        let post = render(&event, "k", &MessageSettings::default());
        let a = &post.attachments[0];
        assert_eq!(
            a.title,
            format!(
                "{} · {}",
                escape("x](javascript:alert(1)) @channel"),
                escape("*gate* @all")
            )
        );
        assert!(a.title.contains("x\\](javascript") && a.title.contains("\\@channel"));
        assert!(a.title.contains("\\*gate\\* \\@all"), "{}", a.title);
        let titles: Vec<&str> = a.fields.iter().map(|f| f.title.as_str()).collect();
        assert!(titles.contains(&"\\@here"), "{titles:?}");
        assert!(
            titles.iter().any(|t| t.contains("\\[evil\\]")),
            "{titles:?}"
        );
        assert!(!titles.iter().any(|t| t.contains("[evil]")), "{titles:?}");
    }
}
