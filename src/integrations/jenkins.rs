//! `cityd connect jenkins`: puts the #builds webhook URL into the Jenkins container's env file
//! (`MATTERMOST_JENKINS_WEBHOOK_URL`, line-preserving, 0600), sets the Mattermost Notification
//! plugin's global settings in the JCasC YAML (lossless edit), and makes Jenkins load them.
//!
//! Applying, and why it is split: JCasC resolves `${MATTERMOST_JENKINS_WEBHOOK_URL}` from the
//! container's environment, which Docker fixes when the container is *created* from
//! `--env-file`; neither a restart nor a JCasC reload re-reads that file. So when the env file
//! changed, the container must be re-created (the operator's `docker run`), and JCasC then loads at
//! boot. When only the YAML changed, cityd reloads JCasC over the API (`POST
//! /configuration-as-code/reload` with a crumb) when the vault holds an API token, or restarts the
//! container otherwise. A "reload pending" record is written before the files, so a run killed or
//! failed between editing and applying applies on the next run.

use std::future::Future;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::http::{Auth, Body, HttpClient, HttpError};
use super::jcasc::{self, JcascError, Notifier};
use super::record::{RecordError, Records};
use super::{CommonArgs, Env, Product, Report, Unset, need_webhook, step};
use crate::envfile::{self, EnvFileError};
use crate::fsx;
use crate::report::Outcome;
use crate::secrets::Secret;

/// The subcommand's and the report's name.
pub const NAME: &str = "jenkins";
/// The variable the JCasC `endpoint` refers to.
pub const ENV_KEY: &str = "MATTERMOST_JENKINS_WEBHOOK_URL";
/// The record that says JCasC changed on disk but Jenkins has not loaded it yet.
pub const PENDING_RECORD: &str = "jenkins-reload-pending";
/// Jenkins' crumb issuer (CSRF protection); 404 when CSRF protection is off.
pub const CRUMB_PATH: &str = "/crumbIssuer/api/json";
/// The JCasC plugin's reload action (admin, POST).
pub const RELOAD_PATH: &str = "/configuration-as-code/reload";

/// Jenkins: the #builds webhook into its env file, the Mattermost notifier into its JCasC YAML, then reload.
///
/// Sets MATTERMOST_JENKINS_WEBHOOK_URL in the container's env file (only that line changes;
/// mode 0600) and unclassified.mattermostNotifier in the JCasC YAML (endpoint
/// ${MATTERMOST_JENKINS_WEBHOOK_URL}, room, buildServerUrl, icon; every other line and comment
/// stays). The webhook URL comes from the vault (webhook-<channel>, written by `cityd wire`).
///
/// Applying: when the env file changed, the container must be re-created (Docker reads
/// --env-file only then), and cityd says so. When only the YAML changed, cityd reloads JCasC
/// (POST /configuration-as-code/reload with a crumb) if the vault holds an API token
/// (integrations.jenkins.token_secret, default jenkins-api-token), else it restarts the
/// container (integrations.jenkins.container) through the Docker API (DOCKER_HOST, default the
/// local socket). A reload or restart that did not happen is retried by the next run.
///
/// Exit: 0 done (or nothing to do), 1 Jenkins refused or could not be reached, 2 bad input
/// (missing files, a YAML cityd will not edit, missing vault entries).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct JenkinsArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The Jenkins container's env file (overrides integrations.jenkins.env_file).
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// The JCasC YAML (overrides integrations.jenkins.jcasc_file).
    #[arg(long, value_name = "FILE")]
    pub jcasc: Option<PathBuf>,
}

/// Jenkins as a `cityd connect` product.
pub struct Jenkins;

impl Product for Jenkins {
    const NAME: &'static str = NAME;
    type Args = JenkinsArgs;
    type Target = JenkinsTarget;
    type Error = JenkinsError;

    fn common(args: &JenkinsArgs) -> &CommonArgs {
        &args.common
    }

    fn target(env: &Env<'_>, args: JenkinsArgs) -> anyhow::Result<JenkinsTarget> {
        let j = &env.city.integrations.jenkins;
        let env_file = args.env_file.or_else(|| j.env_file.clone()).ok_or(Unset(
            "no Jenkins env file: set integrations.jenkins.env_file in the city or pass --env-file (the file the Jenkins container's `docker run --env-file` uses)",
        ))?;
        let jcasc_file = args.jcasc.or_else(|| j.jcasc_file.clone()).ok_or(Unset(
            "no JCasC file: set integrations.jenkins.jcasc_file in the city or pass --jcasc (the YAML that CASC_JENKINS_CONFIG points at)",
        ))?;
        Ok(JenkinsTarget {
            env_file,
            jcasc_file,
            webhook_url: need_webhook(env.vault, &j.channel)?,
            notifier: JenkinsTarget::notifier_for(j),
            api_url: j.url.clone(),
            user: j.user.clone(),
            token: env
                .vault
                .read(&j.token_secret)
                .map_err(super::NeedError::from)?,
            token_path: env.vault.path_of(&j.token_secret),
            container: j.container.clone(),
            ca_pem: env.ca_pem.clone(),
        })
    }

    fn connect(
        target: &JenkinsTarget,
        env: &Env<'_>,
        dry_run: bool,
    ) -> impl Future<Output = (Report, Result<(), JenkinsError>)> {
        connect(target, env.records, dry_run)
    }
}

/// Everything `connect jenkins` needs, resolved from the city, the flags and the vault.
pub struct JenkinsTarget {
    pub env_file: PathBuf,
    pub jcasc_file: PathBuf,
    pub webhook_url: Secret,
    pub notifier: Notifier,
    pub api_url: String,
    pub user: String,
    /// The API token, when the vault has one.
    pub token: Option<Secret>,
    /// Where that token lives (or would live), for messages.
    pub token_path: PathBuf,
    pub container: String,
    /// The city CA, trusted for an https Jenkins.
    pub ca_pem: Option<PathBuf>,
}

impl JenkinsTarget {
    /// The notifier settings cityd writes for a city's Jenkins section.
    pub fn notifier_for(j: &crate::city::JenkinsIntegration) -> Notifier {
        Notifier {
            endpoint: format!("${{{ENV_KEY}}}"),
            room: j.room(),
            build_server_url: j.build_server_url(),
            icon: j.icon_url(),
        }
    }
}

#[derive(Debug, Error)]
pub enum JenkinsError {
    #[error(
        "the Jenkins env file {path} does not exist; set integrations.jenkins.env_file (or --env-file) to the file the Jenkins container's `docker run --env-file` uses"
    )]
    EnvFileMissing { path: PathBuf },
    #[error(
        "the JCasC file {path} does not exist; set integrations.jenkins.jcasc_file (or --jcasc) to the YAML that CASC_JENKINS_CONFIG points Jenkins at"
    )]
    JcascMissing { path: PathBuf },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set {ENV_KEY} in the Jenkins env file {path}")]
    Env {
        path: PathBuf,
        #[source]
        source: EnvFileError,
    },
    #[error("cannot set unclassified.mattermostNotifier in the JCasC file {path}")]
    Jcasc {
        path: PathBuf,
        #[source]
        source: JcascError,
    },
    #[error(transparent)]
    Write(#[from] fsx::WriteError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(
        "Jenkins refused the API token of user {user} (HTTP {status} from {url}); check the token in {token_path} and that it belongs to {user} (integrations.jenkins.user), an administrator"
    )]
    Auth {
        user: String,
        status: u16,
        url: String,
        token_path: PathBuf,
    },
    #[error(
        "Jenkins refused the JCasC reload at {url} with HTTP 403 ({excerpt}); the crumb from {CRUMB_PATH} was not accepted, or {user} lacks Overall/Administer"
    )]
    Refused {
        url: String,
        user: String,
        excerpt: String,
    },
    #[error(
        "Jenkins must restart to load the new JCasC, and restarting container {container} failed: {}; set integrations.jenkins.container to the Jenkins container's name, or put an API token of {user} into {token_path} so cityd reloads JCasC over the API instead; the next `cityd connect jenkins` retries",
        crate::exit::causes_text(.cause.as_ref())
    )]
    Restart {
        container: String,
        user: String,
        token_path: PathBuf,
        // Not `#[source]`: the message already carries it, and `{:#}` would print it twice.
        cause: Box<crate::docker::DockerError>,
    },
}

impl crate::exit::ExitCoded for JenkinsError {
    fn exit_code(&self) -> u8 {
        crate::exit::failure_code(self.is_bad_input())
    }
}

impl JenkinsError {
    /// Input the operator must fix (exit 2) rather than an operation that failed (exit 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            JenkinsError::EnvFileMissing { .. }
                | JenkinsError::JcascMissing { .. }
                | JenkinsError::Env { .. }
                | JenkinsError::Jcasc { .. }
        )
    }
}

/// The pending-reload record's content.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    jcasc_file: PathBuf,
}

fn read_existing(path: &Path, missing: JenkinsError) -> Result<(String, u32), JenkinsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = crate::fsx::mode_of(path).map_err(|source| JenkinsError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            Ok((text, mode))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing),
        Err(source) => Err(JenkinsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Plans, writes and applies. The report lists what happened even when applying failed; the
/// error, if any, comes second.
pub async fn connect(
    t: &JenkinsTarget,
    records: &Records,
    dry_run: bool,
) -> (Report, Result<(), JenkinsError>) {
    let mut report = Report::new(NAME, dry_run);
    let result = run(t, records, dry_run, &mut report).await;
    (report, result)
}

async fn run(
    t: &JenkinsTarget,
    records: &Records,
    dry_run: bool,
    report: &mut Report,
) -> Result<(), JenkinsError> {
    // Plan both edits before touching anything.
    let (env_text, env_mode) = read_existing(
        &t.env_file,
        JenkinsError::EnvFileMissing {
            path: t.env_file.clone(),
        },
    )?;
    let new_env =
        envfile::upsert(&env_text, ENV_KEY, t.webhook_url.expose()).map_err(|source| {
            JenkinsError::Env {
                path: t.env_file.clone(),
                source,
            }
        })?;
    let env_changed = new_env != env_text;
    let env_had_key = envfile::parse_lenient(&env_text)
        .iter()
        .any(|e| e.key == ENV_KEY);

    let (yaml_text, yaml_mode) = read_existing(
        &t.jcasc_file,
        JenkinsError::JcascMissing {
            path: t.jcasc_file.clone(),
        },
    )?;
    let edit = jcasc::set_mattermost_notifier(&yaml_text, &t.notifier).map_err(|source| {
        JenkinsError::Jcasc {
            path: t.jcasc_file.clone(),
            source,
        }
    })?;
    let yaml_changed = !edit.is_unchanged();
    let pending = records.exists(PENDING_RECORD);

    let env_subject = format!("env file {}", t.env_file.display());
    let yaml_subject = format!("JCasC {}", t.jcasc_file.display());
    let reload_needed = !env_changed && (yaml_changed || pending);

    if !dry_run && reload_needed && !pending {
        records.save(
            PENDING_RECORD,
            &Pending {
                jcasc_file: t.jcasc_file.clone(),
            },
        )?;
    }

    // The YAML first: if a run dies between the two writes, the next one still sees the env
    // change and asks for the re-create that the env change needs.
    let yaml_step = if yaml_changed {
        if !dry_run {
            fsx::write_if_changed(&t.jcasc_file, edit.text.as_bytes(), yaml_mode)?;
        }
        let action = if jcasc::read_mattermost_notifier(&yaml_text)
            .ok()
            .flatten()
            .is_some()
        {
            Outcome::updated(dry_run)
        } else {
            Outcome::created(dry_run)
        };
        step(
            NAME,
            yaml_subject,
            action,
            format!(
                "unclassified.mattermostNotifier: {}",
                edit.changed.join(", ")
            ),
        )
    } else {
        step(
            NAME,
            yaml_subject,
            Outcome::Unchanged,
            "unclassified.mattermostNotifier is as wanted",
        )
    };
    report.push(yaml_step);

    let env_step = if env_changed || env_mode != 0o600 {
        if !dry_run {
            fsx::write_if_changed(&t.env_file, new_env.as_bytes(), 0o600)?;
        }
        let detail = match (env_changed, env_had_key) {
            (true, true) => format!("{ENV_KEY} replaced (value in the vault, not shown)"),
            (true, false) => format!("{ENV_KEY} added (value in the vault, not shown)"),
            (false, _) => format!("mode {env_mode:04o} narrowed to 0600 (it holds secrets)"),
        };
        let action = if env_changed && !env_had_key {
            Outcome::created(dry_run)
        } else {
            Outcome::updated(dry_run)
        };
        step(NAME, env_subject, action, detail)
    } else {
        step(
            NAME,
            env_subject,
            Outcome::Unchanged,
            format!("{ENV_KEY} is set"),
        )
    };
    report.push(env_step);

    if env_changed {
        if !dry_run && pending {
            // Re-creating the container loads JCasC at boot; no reload is owed any more.
            records.remove(PENDING_RECORD)?;
        }
        report.push(step(
            NAME,
            "apply",
            Outcome::Skipped,
            "the env file changed: Docker reads it only when the container is created, so a restart or a JCasC reload would not see the new URL",
        ));
        report.next_steps.push(format!(
            "re-create the Jenkins container so it reads {}: `docker rm -f {}` and your `docker run --env-file {} ...` (the blog's 03-deploy-controller.sh); JCasC loads at boot",
            t.env_file.display(),
            t.container,
            t.env_file.display()
        ));
        return Ok(());
    }
    // Every report line of this step is Jenkins' "apply" with its outcome and why.
    let apply = |outcome: Outcome, detail: String| step(NAME, "apply", outcome, detail);
    if !reload_needed {
        report.push(apply(
            Outcome::Unchanged,
            "nothing to apply: neither file changed and no reload is pending".into(),
        ));
        return Ok(());
    }
    let why = if yaml_changed {
        "JCasC changed"
    } else {
        "a reload is pending from an earlier run"
    };
    let updated = Outcome::updated(dry_run);
    let result = match &t.token {
        Some(token) => {
            if dry_run {
                let through = format!("{}{RELOAD_PATH}", t.api_url);
                report.push(apply(
                    updated,
                    format!("{why}: would reload JCasC through {through}"),
                ));
                return Ok(());
            }
            reload(t, token, report).await.map(|crumb| {
                let how = if crumb {
                    "with a crumb"
                } else {
                    "CSRF protection is off"
                };
                let through = format!("{}{RELOAD_PATH}", t.api_url);
                apply(
                    updated,
                    format!("{why}: reloaded JCasC through {through} ({how})"),
                )
            })
        }
        None => {
            if dry_run {
                let detail = format!(
                    "{why}: no API token in {}; would restart container {}",
                    t.token_path.display(),
                    t.container
                );
                report.push(apply(updated, detail));
                return Ok(());
            }
            restart_container(t).await.map(|()| {
                apply(
                    updated,
                    format!("{why}: restarted container {}", t.container),
                )
            })
        }
    };
    match result {
        Ok(step) => {
            records.remove(PENDING_RECORD)?;
            report.push(step);
            Ok(())
        }
        Err(e) => {
            report.push(apply(
                Outcome::Skipped,
                format!("{why}, but Jenkins has not loaded it yet (retried on the next run)"),
            ));
            Err(e)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Crumb {
    crumb: String,
    crumb_request_field: String,
}

/// Fetches a crumb (keeping the session cookie it is bound to) and posts the reload. Returns
/// whether a crumb was used.
async fn reload(
    t: &JenkinsTarget,
    token: &Secret,
    report: &mut Report,
) -> Result<bool, JenkinsError> {
    let client = HttpClient::new(
        "Jenkins",
        "integrations.jenkins.url",
        &t.api_url,
        t.ca_pem.as_deref(),
    )?;
    let result = reload_with(&client, t, token).await;
    report.requests = client.counts();
    result
}

async fn reload_with(
    client: &HttpClient,
    t: &JenkinsTarget,
    token: &Secret,
) -> Result<bool, JenkinsError> {
    let auth = Auth::Basic {
        user: t.user.clone(),
        password: token.clone(),
    };
    let auth_error = |status: u16, path: &str| JenkinsError::Auth {
        user: t.user.clone(),
        status,
        url: client.shown_url(path),
        token_path: t.token_path.clone(),
    };
    let r = client
        .send(Method::GET, CRUMB_PATH, &auth, Body::Empty, &[])
        .await?;
    let mut headers: Vec<(String, String)> = Vec::new();
    let crumb = match r.status {
        200 => {
            let c: Crumb = client.decode(&Method::GET, CRUMB_PATH, &r)?;
            client.redact(&Secret::new(c.crumb.clone()));
            headers.push((c.crumb_request_field, c.crumb));
            let cookies = r.cookies();
            if !cookies.is_empty() {
                // The default crumb is bound to the web session that issued it.
                headers.push(("Cookie".into(), cookies.join("; ")));
            }
            true
        }
        404 => false,
        401 | 403 => return Err(auth_error(r.status, CRUMB_PATH)),
        _ => return Err(client.status_error(&Method::GET, CRUMB_PATH, &r).into()),
    };
    let r = client
        .send(Method::POST, RELOAD_PATH, &auth, Body::Empty, &headers)
        .await?;
    match r.status {
        // The action answers with a redirect to the management page.
        200..=399 => Ok(crumb),
        401 => Err(auth_error(r.status, RELOAD_PATH)),
        403 => Err(JenkinsError::Refused {
            url: client.shown_url(RELOAD_PATH),
            user: t.user.clone(),
            excerpt: client.excerpt(&r.body),
        }),
        _ => Err(client.status_error(&Method::POST, RELOAD_PATH, &r).into()),
    }
}

/// Restarts the Jenkins container through the Docker API (DOCKER_HOST, default the local socket):
/// JCasC loads at boot. The env file is not re-read by a restart; `run` asks for a re-create then.
async fn restart_container(t: &JenkinsTarget) -> Result<(), JenkinsError> {
    let restart = async {
        let engine = crate::docker::connect().await?;
        engine.restart_container(&t.container).await
    };
    restart.await.map_err(|cause| JenkinsError::Restart {
        container: t.container.clone(),
        user: t.user.clone(),
        token_path: t.token_path.clone(),
        cause: Box::new(cause),
    })
}
