//! `cityd connect gitlab`: finds the project by its full path, sets its Mattermost notifications
//! integration (webhook of #code-reviews, the events the city names, all branches) and reads it
//! back; with an admin token, also keeps the OAuth application of the Mattermost GitLab plugin and
//! stores its client id and secret in the vault (`cityd wire` puts them into the plugin settings).
//!
//! GitLab never shows an integration's webhook again (it is write-only in `properties`), so cityd
//! keeps a fingerprint of the URL it last set (`<state>/integrations/gitlab-mattermost-<id>.json`);
//! without one, or when it differs, the integration is written again.

use std::future::Future;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use thiserror::Error;

use super::http::{Auth, Body, HttpClient, HttpError, encode_segment};
use super::record::{RecordError, Records, fingerprint};
use super::{CommonArgs, Env, Product, Report, Unset, need_token, need_webhook, step};
use crate::city::GITLAB_EVENTS;
use crate::report::Outcome;
use crate::secrets::{Secret, Vault, VaultError};

/// The subcommand's and the report's name.
pub const NAME: &str = "gitlab";
/// The Mattermost GitLab plugin's id (part of its OAuth redirect URI), and the vault files for
/// the OAuth application that `cityd wire` puts into the plugin's settings.
pub use crate::mattermost::plugins::{
    GITLAB_ID as GITLAB_PLUGIN_ID, GITLAB_OAUTH_ID as OAUTH_CLIENT_ID,
    GITLAB_OAUTH_SECRET as OAUTH_CLIENT_SECRET,
};
/// The scopes the plugin needs.
pub const OAUTH_SCOPES: &str = "api read_user";

/// The one redirect URI the plugin ever sends: `<SiteURL>/plugins/<id>/oauth/complete`.
pub fn oauth_redirect_uri(site_url: &str) -> String {
    format!(
        "{}/plugins/{GITLAB_PLUGIN_ID}/oauth/complete",
        site_url.trim_end_matches('/')
    )
}

/// GitLab: the project's Mattermost notifications (#code-reviews), and the GitLab plugin's OAuth app.
///
/// Finds integrations.gitlab.project by its full path, PUTs its Mattermost integration (webhook
/// from the vault, the city's events, branches and channel) and reads it back. With an admin
/// token in the vault (integrations.gitlab.admin_token_secret), also keeps the OAuth
/// application of the Mattermost GitLab plugin, redirect URI
/// <SiteURL>/plugins/com.github.manland.mattermost-plugin-gitlab/oauth/complete, and stores its
/// client id and secret in the vault (gitlab-oauth-client-id, gitlab-oauth-client-secret) for
/// `cityd wire`. When GitLab refuses the private webhook address, the error names the admin
/// setting that allows it.
///
/// Exit: 0 done, 1 GitLab refused or could not be reached, 2 bad input.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct GitlabArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

/// GitLab as a `cityd connect` product.
pub struct Gitlab;

impl Product for Gitlab {
    const NAME: &'static str = NAME;
    type Args = GitlabArgs;
    type Target = GitlabTarget;
    type Error = GitlabError;

    fn common(args: &GitlabArgs) -> &CommonArgs {
        &args.common
    }

    fn target(env: &Env<'_>, _args: GitlabArgs) -> anyhow::Result<GitlabTarget> {
        let g = &env.city.integrations.gitlab;
        let vault = env.vault;
        let project = g.project.clone().ok_or(Unset(
            "no GitLab project: set integrations.gitlab.project in the city to the project's full path, e.g. \"group/project\"",
        ))?;
        Ok(GitlabTarget {
            api_url: g.url.clone(),
            project,
            token: need_token(vault, &g.token_secret, "GitLab API token")?,
            token_path: vault.path_of(&g.token_secret).display().to_string(),
            admin_token: vault
                .read(&g.admin_token_secret)
                .map_err(super::NeedError::from)?,
            admin_token_path: vault.path_of(&g.admin_token_secret).display().to_string(),
            webhook_url: need_webhook(vault, &g.channel)?,
            channel: g.channel.clone(),
            username: g.username.clone(),
            events: g.events.clone(),
            branches: g.branches.clone(),
            notify_only_broken_pipelines: g.notify_only_broken_pipelines,
            oauth_name: g.oauth_application.clone(),
            oauth_redirect_uri: oauth_redirect_uri(&env.city.site_url()),
            ca_pem: env.ca_pem.clone(),
        })
    }

    fn connect(
        target: &GitlabTarget,
        env: &Env<'_>,
        dry_run: bool,
    ) -> impl Future<Output = (Report, Result<(), GitlabError>)> {
        connect(target, env.vault, env.records, dry_run)
    }
}

/// Everything `connect gitlab` needs, resolved from the city and the vault.
pub struct GitlabTarget {
    pub api_url: String,
    pub project: String,
    pub token: Secret,
    pub token_path: String,
    /// An admin token: when present, the OAuth application is managed too.
    pub admin_token: Option<Secret>,
    pub admin_token_path: String,
    pub webhook_url: Secret,
    pub channel: String,
    pub username: Option<String>,
    pub events: Vec<String>,
    pub branches: String,
    pub notify_only_broken_pipelines: bool,
    pub oauth_name: String,
    pub oauth_redirect_uri: String,
    pub ca_pem: Option<std::path::PathBuf>,
}

#[derive(Debug, Error)]
pub enum GitlabError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "GitLab refused the {what} in {token_path} (HTTP {status} at {url}); it needs scope `api` and {role}"
    )]
    Auth {
        what: &'static str,
        token_path: String,
        status: u16,
        url: String,
        role: String,
    },
    #[error(
        "GitLab has no project {project} visible to the token (HTTP 404 at {url}); check integrations.gitlab.project (the full path, e.g. group/project) and that the token's user is a member. A reverse proxy in front of GitLab that decodes %2F also causes this 404"
    )]
    ProjectNotFound { project: String, url: String },
    #[error(
        "GitLab refused the Mattermost webhook address: {message}. GitLab blocks webhooks and integrations that point at localhost or the local network unless an administrator allows it: Admin area › Settings › Network › Outbound requests › \"Allow requests to the local network from webhooks and integrations\" (application setting allow_local_requests_from_web_hooks_and_services, also `PUT /api/v4/application/settings?allow_local_requests_from_web_hooks_and_services=true` with an admin token), or add Mattermost's host to \"Local IP addresses and domain names that hooks and integrations can access\" (outbound_local_requests_whitelist); then run `cityd connect gitlab` again"
    )]
    LocalRequestsRefused { message: String },
    #[error("GitLab refused {method} {url} (HTTP {status}): {excerpt}")]
    Rejected {
        method: String,
        url: String,
        status: u16,
        excerpt: String,
    },
    #[error(
        "GitLab did not keep the Mattermost integration's {field} of project {project}: wanted {want}, read back {got}; set it by hand under the project's Settings › Integrations › Mattermost notifications"
    )]
    ReadBack {
        project: String,
        field: String,
        want: String,
        got: String,
    },
    #[error("GitLab's answer to {url} lacks {field}: {excerpt}")]
    Shape {
        url: String,
        field: &'static str,
        excerpt: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

#[derive(Debug, Deserialize)]
struct Project {
    id: u64,
    #[serde(default)]
    path_with_namespace: String,
}

#[derive(Debug, Deserialize)]
struct Application {
    id: u64,
    application_id: String,
    #[serde(default)]
    application_name: String,
    #[serde(default)]
    callback_url: String,
}

#[derive(Debug, Deserialize)]
struct CreatedApplication {
    id: u64,
    application_id: String,
    secret: String,
}

/// What cityd last set on a project's integration.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct IntegrationRecord {
    api_url: String,
    project_id: u64,
    webhook_fingerprint: String,
}

fn record_name(project_id: u64) -> String {
    format!("gitlab-mattermost-{project_id}")
}

const WEBHOOK_PURPOSE: &str = "gitlab-mattermost-webhook";

/// The settings cityd wants, as `(name, value)`: event flags are top-level booleans in GitLab's
/// answer, the rest live in `properties`.
struct Desired {
    flags: Vec<(String, bool)>,
    properties: Vec<(&'static str, Value)>,
}

impl Desired {
    fn of(t: &GitlabTarget) -> Self {
        let flags = GITLAB_EVENTS
            .iter()
            .map(|e| (format!("{e}_events"), t.events.iter().any(|n| n == e)))
            .collect();
        let mut properties = vec![
            ("channel", json!(t.channel)),
            ("branches_to_be_notified", json!(t.branches)),
            (
                "notify_only_broken_pipelines",
                json!(t.notify_only_broken_pipelines),
            ),
        ];
        if let Some(user) = &t.username {
            properties.push(("username", json!(user)));
        }
        Self { flags, properties }
    }

    fn body(&self, webhook: &Secret) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("webhook".into(), json!(webhook.expose()));
        for (k, v) in &self.flags {
            body.insert(k.clone(), json!(v));
        }
        for (k, v) in &self.properties {
            body.insert((*k).into(), v.clone());
        }
        Value::Object(body)
    }

    /// Fields of `current` that differ from what cityd wants (the webhook is judged separately).
    fn differences(&self, current: &Value) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        if current.get("active").and_then(as_bool) != Some(true) {
            out.push(("active".into(), "true".into(), shown(current.get("active"))));
        }
        for (k, want) in &self.flags {
            if current.get(k).and_then(as_bool) != Some(*want) {
                out.push((k.clone(), want.to_string(), shown(current.get(k))));
            }
        }
        let props = current.get("properties");
        for (k, want) in &self.properties {
            let got = props.and_then(|p| p.get(*k));
            let same = match (want, got) {
                (Value::Bool(b), Some(g)) => as_bool(g) == Some(*b),
                (Value::String(s), Some(Value::String(g))) => s == g,
                _ => false,
            };
            if !same {
                out.push(((*k).into(), want.to_string(), shown(got)));
            }
        }
        out
    }
}

/// GitLab has answered booleans as JSON booleans and, in older versions, as strings.
fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "1" => Some(true),
        Value::String(s) if s == "false" || s == "0" || s.is_empty() => Some(false),
        _ => None,
    }
}

fn shown(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".into(), |v| v.to_string())
}

fn refused_locally(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("local network are not allowed")
        || t.contains("localhost are not allowed")
        || t.contains("loopback") && t.contains("not allowed")
}

/// Plans and applies; the report lists what happened even when a later step failed.
pub async fn connect(
    t: &GitlabTarget,
    vault: &Vault,
    records: &Records,
    dry_run: bool,
) -> (Report, Result<(), GitlabError>) {
    let mut report = Report::new(NAME, dry_run);
    let client = match HttpClient::new(
        "GitLab",
        "integrations.gitlab.url",
        &t.api_url,
        t.ca_pem.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => return (report, Err(e.into())),
    };
    client.redact(&t.webhook_url);
    let mut result = integration(&client, t, records, dry_run, &mut report).await;
    if result.is_ok() {
        result = oauth_application(&client, t, vault, dry_run, &mut report).await;
    }
    report.requests = client.counts();
    (report, result)
}

async fn integration(
    client: &HttpClient,
    t: &GitlabTarget,
    records: &Records,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), GitlabError> {
    let auth = Auth::PrivateToken(t.token.clone());
    let role = format!("the Maintainer role on {}", t.project);
    let auth_error = |status: u16, path: &str| GitlabError::Auth {
        what: "token",
        token_path: t.token_path.clone(),
        status,
        url: client.shown_url(path),
        role: role.clone(),
    };

    let project_path = format!("/api/v4/projects/{}", encode_segment(&t.project));
    let r = client
        .send(Method::GET, &project_path, &auth, Body::Empty, &[])
        .await?;
    let project: Project = match r.status {
        200 => client.decode(&Method::GET, &project_path, &r)?,
        404 => {
            return Err(GitlabError::ProjectNotFound {
                project: t.project.clone(),
                url: client.shown_url(&project_path),
            });
        }
        401 | 403 => return Err(auth_error(r.status, &project_path)),
        _ => return Err(client.status_error(&Method::GET, &project_path, &r).into()),
    };
    let found = if project.path_with_namespace.is_empty() {
        t.project.clone()
    } else {
        project.path_with_namespace.clone()
    };
    report.push(step(
        NAME,
        format!("project {found}"),
        Outcome::Unchanged,
        format!("id {}", project.id),
    ));

    let path = format!("/api/v4/projects/{}/integrations/mattermost", project.id);
    let desired = Desired::of(t);
    let current = read_integration(client, &auth, &path, &auth_error).await?;
    let webhook_fp = fingerprint(WEBHOOK_PURPOSE, &t.webhook_url);
    let record_name = record_name(project.id);
    let wanted_record = IntegrationRecord {
        api_url: client.base().to_string(),
        project_id: project.id,
        webhook_fingerprint: webhook_fp.clone(),
    };
    let subject = format!("Mattermost integration of {found}");
    let mut reasons: Vec<String> = Vec::new();
    let exists = current
        .as_ref()
        .is_some_and(|c| c.get("active").and_then(as_bool) == Some(true));
    if let Some(current) = &current {
        reasons.extend(desired.differences(current).into_iter().map(|(k, _, _)| k));
        let shown_webhook = current
            .get("properties")
            .and_then(|p| p.get("webhook"))
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty());
        let webhook_same = match shown_webhook {
            Some(w) => w == t.webhook_url.expose(),
            None => {
                records.load::<IntegrationRecord>(&record_name).as_ref() == Some(&wanted_record)
            }
        };
        if !webhook_same {
            reasons.push("webhook".into());
        }
    } else {
        reasons.push("absent".into());
    }
    reasons.dedup();
    if reasons.is_empty() {
        report.push(step(
            NAME,
            subject,
            Outcome::Unchanged,
            format!("webhook of #{}, events {}", t.channel, t.events.join(", ")),
        ));
        return Ok(());
    }
    let action = if exists {
        Outcome::updated(dry_run)
    } else {
        Outcome::created(dry_run)
    };
    let detail = format!(
        "webhook of #{}, events {}, branches {} (differs: {})",
        t.channel,
        t.events.join(", "),
        t.branches,
        reasons.join(", ")
    );
    if dry_run {
        report.push(step(NAME, subject, action, detail));
        return Ok(());
    }
    let r = client
        .send(
            Method::PUT,
            &path,
            &auth,
            Body::Json(desired.body(&t.webhook_url)),
            &[],
        )
        .await?;
    match r.status {
        200 | 201 => {}
        401 | 403 => return Err(auth_error(r.status, &path)),
        _ => {
            let excerpt = client.excerpt(&r.body);
            if refused_locally(&excerpt) {
                return Err(GitlabError::LocalRequestsRefused { message: excerpt });
            }
            return Err(GitlabError::Rejected {
                method: "PUT".into(),
                url: client.shown_url(&path),
                status: r.status,
                excerpt,
            });
        }
    }
    // Read it back: what GitLab kept is what counts.
    let back = read_integration(client, &auth, &path, &auth_error)
        .await?
        .unwrap_or(Value::Null);
    if let Some((field, want, got)) = desired.differences(&back).into_iter().next() {
        return Err(GitlabError::ReadBack {
            project: found,
            field,
            want,
            got,
        });
    }
    records.save(&record_name, &wanted_record)?;
    report.push(step(NAME, subject, action, detail + ", read back"));
    Ok(())
}

/// GET of the integration; `None` when GitLab has none (404).
async fn read_integration(
    client: &HttpClient,
    auth: &Auth,
    path: &str,
    auth_error: &dyn Fn(u16, &str) -> GitlabError,
) -> Result<Option<Value>, GitlabError> {
    let r = client
        .send(Method::GET, path, auth, Body::Empty, &[])
        .await?;
    match r.status {
        200 => Ok(Some(client.decode(&Method::GET, path, &r)?)),
        404 => Ok(None),
        401 | 403 => Err(auth_error(r.status, path)),
        _ => Err(client.status_error(&Method::GET, path, &r).into()),
    }
}

async fn oauth_application(
    client: &HttpClient,
    t: &GitlabTarget,
    vault: &Vault,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), GitlabError> {
    let subject = format!("OAuth application {:?}", t.oauth_name);
    let Some(admin) = &t.admin_token else {
        report.push(step(
            NAME,
            subject,
            Outcome::Skipped,
            format!(
                "no admin token in {}; create it by hand (redirect URI {}, scopes {OAUTH_SCOPES}) or store an admin token there",
                t.admin_token_path, t.oauth_redirect_uri
            ),
        ));
        return Ok(());
    };
    let auth = Auth::PrivateToken(admin.clone());
    let auth_error = |status: u16, path: &str| GitlabError::Auth {
        what: "admin token",
        token_path: t.admin_token_path.clone(),
        status,
        url: client.shown_url(path),
        role: "an administrator's account".into(),
    };
    let list_path = "/api/v4/applications";
    let r = client
        .send(Method::GET, list_path, &auth, Body::Empty, &[])
        .await?;
    let apps: Vec<Application> = match r.status {
        200 => client.decode(&Method::GET, list_path, &r)?,
        401 | 403 => return Err(auth_error(r.status, list_path)),
        _ => return Err(client.status_error(&Method::GET, list_path, &r).into()),
    };
    let stored_id = vault.read(OAUTH_CLIENT_ID)?;
    let stored_secret = vault.read(OAUTH_CLIENT_SECRET)?;
    let ours = apps
        .iter()
        .find(|a| {
            stored_id
                .as_ref()
                .is_some_and(|id| id.expose() == a.application_id)
        })
        .or_else(|| apps.iter().find(|a| a.application_name == t.oauth_name));
    let why_recreate = match ours {
        Some(app) => {
            let current = app.callback_url == t.oauth_redirect_uri
                && stored_id
                    .as_ref()
                    .is_some_and(|id| id.expose() == app.application_id)
                && stored_secret.is_some();
            if current {
                report.push(step(
                    NAME,
                    subject,
                    Outcome::Unchanged,
                    format!(
                        "redirect URI {}; client id and secret in the vault",
                        t.oauth_redirect_uri
                    ),
                ));
                return Ok(());
            }
            Some(if app.callback_url != t.oauth_redirect_uri {
                "its redirect URI differs"
            } else {
                "the vault lacks its client secret, which GitLab never shows again"
            })
        }
        None => None,
    };
    let detail = format!(
        "redirect URI {}, scopes {OAUTH_SCOPES}{}; client id and secret go to the vault ({OAUTH_CLIENT_ID}, {OAUTH_CLIENT_SECRET})",
        t.oauth_redirect_uri,
        why_recreate.map_or(String::new(), |w| format!(", re-created because {w}"))
    );
    let action = if why_recreate.is_some() {
        Outcome::updated(dry_run)
    } else {
        Outcome::created(dry_run)
    };
    if dry_run {
        report.push(step(NAME, subject, action, detail));
        return Ok(());
    }
    if let (Some(app), Some(_)) = (ours, why_recreate) {
        // The admin API has no update: delete and create again.
        let path = format!("/api/v4/applications/{}", app.id);
        let r = client
            .send(Method::DELETE, &path, &auth, Body::Empty, &[])
            .await?;
        match r.status {
            200..=299 | 404 => {}
            401 | 403 => return Err(auth_error(r.status, &path)),
            _ => return Err(client.status_error(&Method::DELETE, &path, &r).into()),
        }
    }
    let body = json!({
        "name": t.oauth_name,
        "redirect_uri": t.oauth_redirect_uri,
        "scopes": OAUTH_SCOPES,
        "confidential": true,
    });
    let r = client
        .send(Method::POST, list_path, &auth, Body::Json(body), &[])
        .await?;
    let created: CreatedApplication = match r.status {
        200 | 201 => client.decode(&Method::POST, list_path, &r)?,
        401 | 403 => return Err(auth_error(r.status, list_path)),
        _ => {
            return Err(GitlabError::Rejected {
                method: "POST".into(),
                url: client.shown_url(list_path),
                status: r.status,
                excerpt: client.excerpt(&r.body),
            });
        }
    };
    if created.secret.is_empty() || created.application_id.is_empty() {
        return Err(GitlabError::Shape {
            url: client.shown_url(list_path),
            field: "application_id and secret",
            excerpt: format!("application {} without them", created.id),
        });
    }
    let secret = Secret::new(created.secret);
    client.redact(&secret);
    vault.store(OAUTH_CLIENT_ID, &Secret::new(created.application_id))?;
    vault.store(OAUTH_CLIENT_SECRET, &secret)?;
    report.push(step(NAME, subject, action, detail));
    report.next_steps.push(
        "run `cityd wire` so the Mattermost GitLab plugin gets the new client id and secret".into(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_uri_is_the_site_url_one() {
        assert_eq!(
            oauth_redirect_uri("https://mattermost.cicd.local:8065/"),
            "https://mattermost.cicd.local:8065/plugins/com.github.manland.mattermost-plugin-gitlab/oauth/complete"
        );
    }

    #[test]
    fn string_and_boolean_flags_compare_alike() {
        assert_eq!(as_bool(&json!("true")), Some(true));
        assert_eq!(as_bool(&json!(false)), Some(false));
        assert_eq!(as_bool(&json!("0")), Some(false));
        assert_eq!(as_bool(&json!(3)), None);
    }

    #[test]
    fn local_network_refusals_are_recognised() {
        assert!(refused_locally(
            "{\"message\":{\"webhook\":[\"is blocked: Requests to the local network are not allowed\"]}}"
        ));
        assert!(refused_locally("Requests to localhost are not allowed"));
        assert!(!refused_locally("{\"message\":\"webhook is invalid\"}"));
    }
}
