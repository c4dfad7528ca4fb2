//! `cityd connect sonarqube`: creates or updates the SonarQube webhook (found by name) that sends
//! analysis results to the cityd relay, signed with the vault's secret.
//!
//! Version differences handled here: the token goes as `Authorization: Bearer` (documented from
//! 10.0) and, when that answers 401 (9.9 LTS), as Basic `token:`; `api/webhooks/list` shows the
//! secret itself up to 10.0 and only `hasSecret` from 10.1; from 10.6 a secret has 16 to 200
//! characters (checked before sending).
//!
//! When the server shows only `hasSecret`, it cannot say whether its secret is ours. cityd keeps a
//! fingerprint of the secret it last set, with the webhook's key, in
//! `<state>/integrations/sonarqube-webhook.json`: matching key and fingerprint mean "unchanged";
//! anything else (no record, another key, another secret) means the webhook is updated once more.

use std::future::Future;
use std::net::IpAddr;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

use super::http::{Auth, Body, HttpClient, HttpError, Response, encode_query};
use super::record::{RecordError, Records, fingerprint};
use super::{CommonArgs, Env, NeedError, Product, Report, Unset, need_token, step};
use crate::report::Outcome;
use crate::secrets::{Secret, SecretName};

/// The subcommand's and the report's name.
pub const NAME: &str = "sonarqube";
/// SonarQube's limits on a webhook secret (10.6 and later; older servers accept shorter ones).
pub const SECRET_MIN: usize = 16;
pub const SECRET_MAX: usize = 200;
const RECORD: &str = "sonarqube-webhook";
const SECRET_PURPOSE: &str = "sonarqube-webhook-secret";

/// `http://<lan address>:<port>/sonarqube`, the relay's endpoint as SonarQube should reach it.
pub fn default_relay_url(lan: IpAddr, port: u16) -> String {
    match lan {
        IpAddr::V4(v4) => format!("http://{v4}:{port}/sonarqube"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/sonarqube"),
    }
}

/// SonarQube: a webhook to the cityd relay, signed with the vault's sonarqube-webhook-secret.
///
/// Lists the webhooks (global, or of integrations.sonarqube.project), then creates or updates
/// the one named integrations.sonarqube.webhook_name. Works with 9.9 (Basic token auth, the
/// list shows secrets) and 10.x/2025 (Bearer, `hasSecret`, secrets of 16-200 characters).
/// When SonarQube refuses the relay's address, the error explains sonar.validateWebhooks.
///
/// Exit: 0 done, 1 SonarQube refused or could not be reached, 2 bad input.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct SonarArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// SonarQube as a `cityd connect` product.
pub struct Sonarqube;

impl Product for Sonarqube {
    const NAME: &'static str = NAME;
    type Args = SonarArgs;
    type Target = SonarTarget;
    type Error = SonarError;

    fn common(args: &SonarArgs) -> &CommonArgs {
        &args.common
    }

    fn target(env: &Env<'_>, _args: SonarArgs) -> anyhow::Result<SonarTarget> {
        let city = env.city;
        let s = &city.integrations.sonarqube;
        let vault = env.vault;
        let relay_url = match &s.relay_url {
            Some(url) => url.clone(),
            // Where `relay serve` listens (relay.listen); a wildcard listen address means
            // SonarQube reaches it on the first LAN address.
            None if !city.relay.listen.ip().is_unspecified() => {
                default_relay_url(city.relay.listen.ip(), city.relay.listen.port())
            }
            None => {
                let lan = (env.lan)()?;
                let first = lan.first().ok_or(Unset(
                    "lan.addresses resolved to nothing; set integrations.sonarqube.relay_url",
                ))?;
                default_relay_url(*first, city.relay.listen.port())
            }
        };
        let secret_name = SecretName::SonarqubeWebhookSecret;
        Ok(SonarTarget {
            api_url: s.url.clone(),
            token: need_token(vault, &s.token_secret, "SonarQube user token")?,
            token_path: vault.path_of(&s.token_secret).display().to_string(),
            project: s.project.clone(),
            name: s.webhook_name.clone(),
            relay_url,
            secret: vault.get(secret_name).map_err(NeedError::from)?,
            secret_path: vault.path_of(secret_name.file_name()).display().to_string(),
            ca_pem: env.ca_pem.clone(),
        })
    }

    fn connect(
        target: &SonarTarget,
        env: &Env<'_>,
        dry_run: bool,
    ) -> impl Future<Output = (Report, Result<(), SonarError>)> {
        connect(target, env.records, dry_run)
    }
}

/// Everything `connect sonarqube` needs, resolved from the city and the vault.
pub struct SonarTarget {
    pub api_url: String,
    pub token: Secret,
    pub token_path: String,
    pub project: Option<String>,
    pub name: String,
    pub relay_url: String,
    pub secret: Secret,
    pub secret_path: String,
    pub ca_pem: Option<std::path::PathBuf>,
}

#[derive(Debug, Error)]
pub enum SonarError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "the SonarQube webhook secret in {path} has {len} characters; SonarQube (10.6 and later) takes {SECRET_MIN} to {SECRET_MAX}. The vault generates 64, so the file was changed by hand: restore a value of that length"
    )]
    SecretLength { path: String, len: usize },
    #[error(
        "SonarQube refused the token in {token_path} both as Bearer and as Basic `token:` (HTTP 401 at {url}); use a user token (not a project analysis token) of a user with Administer permission"
    )]
    Auth { token_path: String, url: String },
    #[error(
        "SonarQube answered HTTP 403 at {url}: the token's user lacks {needed}; grant it, or use an administrator's user token"
    )]
    Forbidden { url: String, needed: String },
    #[error(
        "SonarQube refused the relay URL {relay_url}: {message}. With `sonar.validateWebhooks` on (the default), SonarQube refuses webhook URLs on loopback, wildcard and its own addresses (newer releases also private networks such as 10/8, 172.16/12, 192.168/16). Give the relay an address SonarQube may call (integrations.sonarqube.relay_url), or switch the check off: Administration › Configuration › General Settings › Security › \"Enable local webhooks validation\", or `POST api/settings/set` with key=sonar.validateWebhooks&value=false (it also applies when SonarQube delivers); then run `cityd connect sonarqube` again"
    )]
    ValidateWebhooks { relay_url: String, message: String },
    #[error("SonarQube refused {action} of webhook {name:?} (HTTP {status} at {url}): {message}")]
    Rejected {
        action: &'static str,
        name: String,
        status: u16,
        url: String,
        message: String,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl SonarError {
    pub fn is_bad_input(&self) -> bool {
        matches!(self, SonarError::SecretLength { .. })
    }
}

impl crate::exit::ExitCoded for SonarError {
    fn exit_code(&self) -> u8 {
        crate::exit::failure_code(self.is_bad_input())
    }
}

/// One webhook as `api/webhooks/list` shows it, across versions.
#[derive(Debug, Clone)]
struct Hook {
    key: String,
    name: String,
    url: String,
    /// The secret itself (up to 10.0).
    secret: Option<String>,
    /// Whether a secret is set (10.1 and later; may arrive as a string).
    has_secret: Option<bool>,
}

impl Hook {
    fn from_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let has_secret = match v.get("hasSecret") {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(t)) => Some(t == "true"),
            _ => None,
        };
        Some(Self {
            key: s("key")?,
            name: s("name")?,
            url: s("url").unwrap_or_default(),
            secret: s("secret"),
            has_secret,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct HookRecord {
    api_url: String,
    project: Option<String>,
    key: String,
    secret_fingerprint: String,
}

#[derive(Debug, Deserialize)]
struct Created {
    webhook: CreatedHook,
}

#[derive(Debug, Deserialize)]
struct CreatedHook {
    key: String,
}

/// The first error message of a SonarQube error body (`{"errors":[{"msg":"..."}]}`).
fn error_message(client: &HttpClient, r: &Response) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| {
            v.get("errors")?
                .as_array()?
                .iter()
                .filter_map(|e| e.get("msg")?.as_str())
                .map(|m| client.scrub(m))
                .reduce(|a, b| format!("{a}; {b}"))
        })
        .unwrap_or_else(|| client.excerpt(&r.body))
}

/// Plans and applies; the report lists what happened even when a step failed.
pub async fn connect(
    t: &SonarTarget,
    records: &Records,
    dry_run: bool,
) -> (Report, Result<(), SonarError>) {
    let mut report = Report::new(NAME, dry_run);
    let client = match HttpClient::new(
        "SonarQube",
        "integrations.sonarqube.url",
        &t.api_url,
        t.ca_pem.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => return (report, Err(e.into())),
    };
    client.redact(&t.secret);
    let result = run(&client, t, records, dry_run, &mut report).await;
    report.requests = client.counts();
    (report, result)
}

async fn run(
    client: &HttpClient,
    t: &SonarTarget,
    records: &Records,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), SonarError> {
    let len = t.secret.expose().chars().count();
    if !(SECRET_MIN..=SECRET_MAX).contains(&len) {
        return Err(SonarError::SecretLength {
            path: t.secret_path.clone(),
            len,
        });
    }
    let list_path = match &t.project {
        Some(p) => format!("/api/webhooks/list?project={}", encode_query(p)),
        None => "/api/webhooks/list".to_string(),
    };
    let (auth, r) = negotiate(client, t, &list_path).await?;
    let scope = t
        .project
        .as_ref()
        .map_or("global webhooks".to_string(), |p| format!("project {p}"));
    let needed = t
        .project
        .as_ref()
        .map_or("global Administer".to_string(), |p| {
            format!("Administer on project {p}")
        });
    let hooks: Vec<Hook> = match r.status {
        200 => {
            let v: Value = client.decode(&Method::GET, &list_path, &r)?;
            v.get("webhooks")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Hook::from_json).collect())
                .unwrap_or_default()
        }
        403 => {
            return Err(SonarError::Forbidden {
                url: client.shown_url(&list_path),
                needed,
            });
        }
        _ => return Err(client.status_error(&Method::GET, &list_path, &r).into()),
    };
    let fp = fingerprint(SECRET_PURPOSE, &t.secret);
    let subject = format!("webhook {:?} ({scope})", t.name);
    let mut ours = hooks.iter().filter(|h| h.name == t.name);
    let existing = ours.next().cloned();
    for extra in ours {
        report.push(step(
            NAME,
            format!("webhook {:?} key {}", extra.name, extra.key),
            Outcome::Skipped,
            "another webhook of the same name; cityd manages only the first, delete this one in SonarQube",
        ));
    }
    let record = |key: &str| HookRecord {
        api_url: client.base().to_string(),
        project: t.project.clone(),
        key: key.to_string(),
        secret_fingerprint: fp.clone(),
    };
    let via = match &auth {
        Auth::Bearer(_) => "Bearer token",
        _ => "Basic token: (9.x)",
    };

    let Some(hook) = existing else {
        let detail = format!("to {} with the vault's secret ({via})", t.relay_url);
        if dry_run {
            report.push(step(NAME, subject, Outcome::created(dry_run), detail));
            return Ok(());
        }
        let mut form = vec![
            ("name".to_string(), t.name.clone()),
            ("url".to_string(), t.relay_url.clone()),
            ("secret".to_string(), t.secret.expose().to_string()),
        ];
        if let Some(p) = &t.project {
            form.push(("project".into(), p.clone()));
        }
        let path = "/api/webhooks/create";
        let r = client
            .send(Method::POST, path, &auth, Body::Form(form), &[])
            .await?;
        check(client, t, &r, "creation", path, &needed)?;
        let created: Created = client.decode(&Method::POST, path, &r)?;
        records.save(RECORD, &record(&created.webhook.key))?;
        report.push(step(NAME, subject, Outcome::created(dry_run), detail));
        return Ok(());
    };

    let mut differs = Vec::new();
    if hook.url != t.relay_url {
        differs.push("url");
    }
    let secret_same = match (&hook.secret, hook.has_secret) {
        (Some(s), _) => s == t.secret.expose(),
        (None, Some(false)) => false,
        // Only `hasSecret`: trust the record of what cityd set on this very webhook.
        _ => records.load::<HookRecord>(RECORD).as_ref() == Some(&record(&hook.key)),
    };
    if !secret_same {
        differs.push("secret");
    }
    if differs.is_empty() {
        if hook.secret.is_some() {
            // Keep the record in step, so an upgrade to 10.1+ still knows the secret is ours.
            if !dry_run {
                records.save(RECORD, &record(&hook.key))?;
            }
        }
        report.push(step(
            NAME,
            subject,
            Outcome::Unchanged,
            format!("key {}, to {}, signed", hook.key, t.relay_url),
        ));
        return Ok(());
    }
    let detail = format!(
        "key {}, to {} (differs: {}; {via})",
        hook.key,
        t.relay_url,
        differs.join(", ")
    );
    if dry_run {
        report.push(step(NAME, subject, Outcome::updated(dry_run), detail));
        return Ok(());
    }
    let form = vec![
        ("webhook".to_string(), hook.key.clone()),
        ("name".to_string(), t.name.clone()),
        ("url".to_string(), t.relay_url.clone()),
        ("secret".to_string(), t.secret.expose().to_string()),
    ];
    let path = "/api/webhooks/update";
    let r = client
        .send(Method::POST, path, &auth, Body::Form(form), &[])
        .await?;
    check(client, t, &r, "the update", path, &needed)?;
    records.save(RECORD, &record(&hook.key))?;
    report.push(step(NAME, subject, Outcome::updated(dry_run), detail));
    Ok(())
}

/// The first request decides the authentication form: Bearer, then Basic `token:` on a 401.
async fn negotiate(
    client: &HttpClient,
    t: &SonarTarget,
    path: &str,
) -> Result<(Auth, Response), SonarError> {
    let bearer = Auth::Bearer(t.token.clone());
    let r = client
        .send(Method::GET, path, &bearer, Body::Empty, &[])
        .await?;
    if r.status != 401 {
        return Ok((bearer, r));
    }
    let basic = Auth::Basic {
        user: t.token.expose().to_string(),
        password: Secret::new(String::new()),
    };
    let r = client
        .send(Method::GET, path, &basic, Body::Empty, &[])
        .await?;
    if r.status == 401 {
        return Err(SonarError::Auth {
            token_path: t.token_path.clone(),
            url: client.shown_url(path),
        });
    }
    Ok((basic, r))
}

/// Turns a refusal of create/update into the error that explains it.
fn check(
    client: &HttpClient,
    t: &SonarTarget,
    r: &Response,
    action: &'static str,
    path: &str,
    needed: &str,
) -> Result<(), SonarError> {
    if r.is_success() {
        return Ok(());
    }
    if r.status == 403 {
        return Err(SonarError::Forbidden {
            url: client.shown_url(path),
            needed: needed.to_string(),
        });
    }
    let message = error_message(client, r);
    if r.status == 400 && message.contains("Invalid URL") {
        return Err(SonarError::ValidateWebhooks {
            relay_url: t.relay_url.clone(),
            message,
        });
    }
    Err(SonarError::Rejected {
        action,
        name: t.name.clone(),
        status: r.status,
        url: client.shown_url(path),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn list_entries_of_every_version_are_read() {
        let old = Hook::from_json(&json!({"key":"k","name":"n","url":"u","secret":"s"})).unwrap();
        assert_eq!((old.secret.as_deref(), old.has_secret), (Some("s"), None));
        let new =
            Hook::from_json(&json!({"key":"k","name":"n","url":"u","hasSecret":true})).unwrap();
        assert_eq!(new.has_secret, Some(true));
        // The official example shows the flag as a string.
        let doc =
            Hook::from_json(&json!({"key":"k","name":"n","url":"u","hasSecret":"false"})).unwrap();
        assert_eq!(doc.has_secret, Some(false));
        assert!(Hook::from_json(&json!({"name":"n"})).is_none());
    }

    #[tokio::test]
    async fn a_secret_sonarqube_would_refuse_is_stopped_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let records = Records::new(&crate::state::StateDir::at(dir.path().join("s")).unwrap());
        let target = SonarTarget {
            api_url: "http://127.0.0.1:9".into(),
            token: Secret::new("t".into()),
            token_path: "/v/token".into(),
            project: None,
            name: "cityd-relay".into(),
            relay_url: "http://203.0.113.1:9180/sonarqube".into(),
            secret: Secret::new("fifteen-chars-x".into()),
            secret_path: "/v/sonarqube-webhook-secret".into(),
            ca_pem: None,
        };
        let (report, result) = connect(&target, &records, false).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, SonarError::SecretLength { len: 15, .. }),
            "{err}"
        );
        assert!(err.is_bad_input());
        assert!(!err.to_string().contains("fifteen"));
        assert_eq!(report.requests.total, 0);
    }

    #[test]
    fn relay_urls_bracket_ipv6() {
        assert_eq!(
            default_relay_url("192.168.1.20".parse().unwrap(), 9180),
            "http://192.168.1.20:9180/sonarqube"
        );
        assert_eq!(
            default_relay_url("fd00::5".parse().unwrap(), 9180),
            "http://[fd00::5]:9180/sonarqube"
        );
    }
}
