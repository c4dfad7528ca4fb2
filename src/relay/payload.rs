//! The SonarQube webhook payload (fields as `WebhookPayloadFactoryImpl` emits them, camelCase):
//! serde types that tolerate missing optional fields and numbers where strings are expected, the
//! event's verdict (gate failed, analysis failed, passed) and its dedup key.

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Longest task id used as a dedup key as-is; longer ones are hashed (SonarQube's are 20 chars).
const MAX_TASK_ID: usize = 128;

#[derive(Debug, Error)]
pub enum PayloadError {
    #[error(
        "the body is not a SonarQube webhook payload: {0} (expected JSON with at least project.key)"
    )]
    Invalid(String),
    #[error("the payload's project.key is empty; SonarQube always sends the project key")]
    EmptyProjectKey,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEvent {
    #[serde(default, deserialize_with = "text")]
    pub server_url: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub task_id: Option<String>,
    /// Compute Engine task status: `SUCCESS` or `FAILED`.
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub analysed_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub revision: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub changed_at: Option<String>,
    pub project: Project,
    #[serde(default)]
    pub branch: Option<Branch>,
    #[serde(default)]
    pub quality_gate: Option<QualityGate>,
    /// Scanner properties starting with `sonar.analysis.`; values are strings in practice.
    #[serde(default)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    #[serde(deserialize_with = "required_text")]
    pub key: String,
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    /// Branch name, or the pull request key when `type` is `PULL_REQUEST`.
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    /// `BRANCH` or `PULL_REQUEST` (`LONG`/`SHORT` on 7.x).
    #[serde(default, rename = "type", deserialize_with = "text")]
    pub kind: Option<String>,
    #[serde(default)]
    pub is_main: Option<bool>,
    #[serde(default, deserialize_with = "text")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualityGate {
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    /// `OK` or `ERROR` (`WARN` on 7.x and older).
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default, deserialize_with = "text")]
    pub metric: Option<String>,
    /// `GREATER_THAN` or `LESS_THAN` (`EQUALS`/`NOT_EQUALS` on old servers).
    #[serde(default, deserialize_with = "text")]
    pub operator: Option<String>,
    /// Absent when the status is `NO_VALUE`.
    #[serde(default, deserialize_with = "text")]
    pub value: Option<String>,
    /// `OK`, `ERROR`, `NO_VALUE` (`WARN` on old servers).
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub error_threshold: Option<String>,
    /// Only on 7.x and older.
    #[serde(default, deserialize_with = "text")]
    pub warning_threshold: Option<String>,
}

/// What the event means for the channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The quality gate is `ERROR` (or an unknown status, treated as a failure).
    GateFailed,
    /// The quality gate is `WARN` (servers before 8.0).
    GateWarning,
    /// The analysis itself failed (CE task `FAILED`, no gate).
    AnalysisFailed,
    /// The gate passed, or there is no gate for a successful analysis.
    Passed,
}

impl Verdict {
    /// Failures go to `#alerts`; passes only where the city asks for them.
    pub fn is_alert(self) -> bool {
        !matches!(self, Verdict::Passed)
    }
}

/// Parses and checks a webhook body.
pub fn parse(body: &[u8]) -> Result<WebhookEvent, PayloadError> {
    let event: WebhookEvent =
        serde_json::from_slice(body).map_err(|e| PayloadError::Invalid(e.to_string()))?;
    if event.project.key.trim().is_empty() {
        return Err(PayloadError::EmptyProjectKey);
    }
    Ok(event)
}

impl WebhookEvent {
    pub fn verdict(&self) -> Verdict {
        if self
            .status
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("FAILED"))
        {
            return Verdict::AnalysisFailed;
        }
        match self.quality_gate.as_ref().and_then(|g| g.status.as_deref()) {
            None => Verdict::Passed,
            Some(s) if s.eq_ignore_ascii_case("OK") => Verdict::Passed,
            Some(s) if s.eq_ignore_ascii_case("WARN") => Verdict::GateWarning,
            Some(_) => Verdict::GateFailed,
        }
    }

    /// The conditions that made the gate fail or warn, in payload order.
    pub fn failed_conditions(&self) -> impl Iterator<Item = &Condition> {
        self.quality_gate
            .iter()
            .flat_map(|g| g.conditions.iter())
            .filter(|c| {
                c.status.as_deref().is_some_and(|s| {
                    s.eq_ignore_ascii_case("ERROR") || s.eq_ignore_ascii_case("WARN")
                })
            })
    }

    pub fn is_pull_request(&self) -> bool {
        self.branch
            .as_ref()
            .and_then(|b| b.kind.as_deref())
            .is_some_and(|k| k.eq_ignore_ascii_case("PULL_REQUEST"))
    }
}

/// The key a redelivery of the same event shares: SonarQube's task id when there is one, else a
/// digest of the exact body (issue-change re-evaluations carry no task id).
pub fn dedup_key(event: &WebhookEvent, body: &[u8]) -> String {
    match event.task_id.as_deref().map(str::trim) {
        Some(id) if !id.is_empty() && id.len() <= MAX_TASK_ID => format!("task:{id}"),
        _ => format!("body-sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// A string field that may arrive as a string, a number or a boolean; null counts as absent.
/// A direct visitor (not an untagged enum, which buffers every value) keeps parsing cheap.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_option(LooseText)
}

struct LooseText;

impl<'de> serde::de::Visitor<'de> for LooseText {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string, a number, a boolean or null")
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(LooseText)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
}

fn required_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    text(d)?.ok_or_else(|| serde::de::Error::custom("project.key must be a string"))
}

/// The repository's SonarQube webhook bodies (`tests/fixtures/sonarqube`, written from the
/// documented format), compiled into the relay's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    pub const GATE_FAILED: &[u8] =
        include_bytes!("../../tests/fixtures/sonarqube/webhook-gate-failed.json");
    pub const GATE_PASSED: &[u8] =
        include_bytes!("../../tests/fixtures/sonarqube/webhook-gate-passed.json");
    pub const PULL_REQUEST: &[u8] =
        include_bytes!("../../tests/fixtures/sonarqube/webhook-pull-request.json");
    pub const WITHOUT_BRANCH_7X: &[u8] =
        include_bytes!("../../tests/fixtures/sonarqube/webhook-7x-without-branch.json");
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_real_payloads_parse_with_their_verdicts() {
        let failed = parse(GATE_FAILED).unwrap();
        assert_eq!(failed.verdict(), Verdict::GateFailed);
        let metrics: Vec<_> = failed
            .failed_conditions()
            .map(|c| c.metric.as_deref().unwrap())
            .collect();
        assert_eq!(metrics, ["coverage", "duplicated_lines_density"]);
        assert_eq!(
            dedup_key(&failed, b""),
            "task:AZ3kYpQe7LmN0cW2xV8r".to_string()
        );

        let passed = parse(GATE_PASSED).unwrap();
        assert_eq!(passed.verdict(), Verdict::Passed);
        assert_eq!(passed.failed_conditions().count(), 0);

        let pr = parse(PULL_REQUEST).unwrap();
        assert!(pr.is_pull_request());
        assert_eq!(pr.branch.as_ref().unwrap().name.as_deref(), Some("57"));
        assert_eq!(pr.failed_conditions().count(), 2);

        let legacy = parse(WITHOUT_BRANCH_7X).unwrap();
        assert_eq!(legacy.verdict(), Verdict::Passed);
        assert!(legacy.branch.is_none());
    }

    #[test]
    fn missing_optional_fields_and_loose_types_are_tolerated() {
        let body = br#"{"project":{"key":"k"},"taskId":null,"status":"FAILED",
            "qualityGate":{"conditions":[{"metric":"coverage","value":12.5,"errorThreshold":80,"status":"ERROR"}]}}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.verdict(), Verdict::AnalysisFailed);
        let c = e.quality_gate.as_ref().unwrap().conditions[0].clone();
        assert_eq!(c.value.as_deref(), Some("12.5"));
        assert_eq!(c.error_threshold.as_deref(), Some("80"));
        assert!(dedup_key(&e, body).starts_with("body-sha256:"));
    }

    #[test]
    fn payloads_without_the_required_fields_are_refused() {
        for body in [
            &b"{}"[..],
            b"[]",
            b"null",
            br#"{"project":{}}"#,
            br#"{"project":{"key":""}}"#,
            br#"{"project":"k"}"#,
            br#"{"project":{"key":"k"},"qualityGate":"ERROR"}"#,
            b"{\"project\":{\"key\":\"k\"}",
        ] {
            assert!(
                parse(body).is_err(),
                "{} was accepted",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_unknown_gate_status_is_an_alert() {
        let e = parse(br#"{"project":{"key":"k"},"qualityGate":{"status":"RED"}}"#).unwrap();
        assert!(e.verdict().is_alert());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&body);
        }

        #[test]
        fn json_shaped_input_never_panics(
            key in proptest::option::of("[a-z:_\\-]{0,12}"),
            status in proptest::option::of(prop_oneof![Just("OK"), Just("ERROR"), Just("WARN"), Just(""), Just("x")]),
            value in proptest::option::of(any::<f64>()),
            task in proptest::option::of("[A-Za-z0-9_\\-]{0,200}"),
        ) {
            let mut project = serde_json::Map::new();
            if let Some(k) = &key { project.insert("key".into(), k.clone().into()); }
            let body = serde_json::json!({
                "taskId": task,
                "project": project,
                "qualityGate": {"status": status, "conditions": [{"metric": "coverage", "value": value, "status": status}]},
            });
            let bytes = serde_json::to_vec(&body).unwrap();
            if let Ok(e) = parse(&bytes) {
                let _ = e.verdict();
                let _ = e.failed_conditions().count();
                prop_assert!(!dedup_key(&e, &bytes).is_empty());
            }
        }
    }
}
