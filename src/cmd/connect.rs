//! `cityd connect jenkins|gitlab|sonarqube`: wire each product to the city's Mattermost. Resolves
//! the city's `[integrations.*]` settings, the flags and the vault into a target, runs the
//! product's converge step, prints the report (or JSON), and maps failures to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::Context;
use crate::exit::{self, Failure};
use crate::integrations::gitlab::{self, GitlabTarget};
use crate::integrations::jenkins::{self, JenkinsTarget};
use crate::integrations::record::Records;
use crate::integrations::sonarqube::{self, SonarTarget};
use crate::integrations::{NeedError, Report, need_token, need_webhook};
use crate::secrets::{SecretName, Vault};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
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
    #[command(verbatim_doc_comment)]
    Jenkins(JenkinsArgs),
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
    #[command(verbatim_doc_comment)]
    Gitlab(CommonArgs),
    /// SonarQube: a webhook to the cityd relay, signed with the vault's sonarqube-webhook-secret.
    ///
    /// Lists the webhooks (global, or of integrations.sonarqube.project), then creates or updates
    /// the one named integrations.sonarqube.webhook_name. Works with 9.9 (Basic token auth, the
    /// list shows secrets) and 10.x/2025 (Bearer, `hasSecret`, secrets of 16-200 characters).
    /// When SonarQube refuses the relay's address, the error explains sonar.validateWebhooks.
    ///
    /// Exit: 0 done, 1 SonarQube refused or could not be reached, 2 bad input.
    #[command(verbatim_doc_comment)]
    Sonarqube(CommonArgs),
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Show what would change; send no changing request and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Machine-readable report (steps, request counts, next steps; never secrets).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
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

pub fn run(ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    let city = ctx.city()?;
    let state = ctx.state()?;
    let vault = Vault::new(state);
    let records = Records::new(state);
    let ca = state.ca_pem();
    let ca_pem = ca.is_file().then_some(ca);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;

    match command {
        Command::Jenkins(args) => {
            let j = &city.integrations.jenkins;
            let env_file = args
                .env_file
                .or_else(|| j.env_file.clone())
                .ok_or_else(|| bad_input(
                    "no Jenkins env file: set integrations.jenkins.env_file in the city or pass --env-file (the file the Jenkins container's `docker run --env-file` uses)",
                ))?;
            let jcasc_file = args.jcasc.or_else(|| j.jcasc_file.clone()).ok_or_else(|| {
                bad_input(
                    "no JCasC file: set integrations.jenkins.jcasc_file in the city or pass --jcasc (the YAML that CASC_JENKINS_CONFIG points at)",
                )
            })?;
            let target = JenkinsTarget {
                env_file,
                jcasc_file,
                webhook_url: need_webhook(&vault, &j.channel).map_err(need)?,
                notifier: JenkinsTarget::notifier_for(j),
                api_url: j.url.clone(),
                user: j.user.clone(),
                token: vault.read(&j.token_secret).map_err(|e| need(e.into()))?,
                token_path: vault.path_of(&j.token_secret),
                container: j.container.clone(),
                ca_pem,
            };
            let (report, result) =
                runtime.block_on(jenkins::connect(&target, &records, args.common.dry_run));
            finish(
                report,
                result.map_err(|e| (exit::failure_code(e.is_bad_input()), e.to_string())),
                args.common.json,
            )
        }
        Command::Gitlab(args) => {
            let g = &city.integrations.gitlab;
            let project = g.project.clone().ok_or_else(|| {
                bad_input(
                    "no GitLab project: set integrations.gitlab.project in the city to the project's full path, e.g. \"group/project\"",
                )
            })?;
            let target = GitlabTarget {
                api_url: g.url.clone(),
                project,
                token: need_token(&vault, &g.token_secret, "GitLab API token").map_err(need)?,
                token_path: vault.path_of(&g.token_secret).display().to_string(),
                admin_token: vault
                    .read(&g.admin_token_secret)
                    .map_err(|e| need(e.into()))?,
                admin_token_path: vault.path_of(&g.admin_token_secret).display().to_string(),
                webhook_url: need_webhook(&vault, &g.channel).map_err(need)?,
                channel: g.channel.clone(),
                username: g.username.clone(),
                events: g.events.clone(),
                branches: g.branches.clone(),
                notify_only_broken_pipelines: g.notify_only_broken_pipelines,
                oauth_name: g.oauth_application.clone(),
                oauth_redirect_uri: gitlab::oauth_redirect_uri(&city.site_url()),
                ca_pem,
            };
            let (report, result) =
                runtime.block_on(gitlab::connect(&target, &vault, &records, args.dry_run));
            finish(
                report,
                result.map_err(|e| (exit::FAILED, e.to_string())),
                args.json,
            )
        }
        Command::Sonarqube(args) => {
            let s = &city.integrations.sonarqube;
            let relay_url = match &s.relay_url {
                Some(url) => url.clone(),
                // Where `relay serve` listens (relay.listen); a wildcard listen address means
                // SonarQube reaches it on the first LAN address.
                None if !city.relay.listen.ip().is_unspecified() => {
                    sonarqube::default_relay_url(city.relay.listen.ip(), city.relay.listen.port())
                }
                None => {
                    let lan = crate::lan::resolve(&city.lan.addresses)?;
                    let first = lan.first().ok_or_else(|| {
                        bad_input("lan.addresses resolved to nothing; set integrations.sonarqube.relay_url")
                    })?;
                    sonarqube::default_relay_url(first.address, city.relay.listen.port())
                }
            };
            let secret_name = SecretName::SonarqubeWebhookSecret;
            let target = SonarTarget {
                api_url: s.url.clone(),
                token: need_token(&vault, &s.token_secret, "SonarQube user token").map_err(need)?,
                token_path: vault.path_of(&s.token_secret).display().to_string(),
                project: s.project.clone(),
                name: s.webhook_name.clone(),
                relay_url,
                secret: vault.get(secret_name).map_err(|e| need(e.into()))?,
                secret_path: vault.path_of(secret_name.file_name()).display().to_string(),
                ca_pem,
            };
            let (report, result) =
                runtime.block_on(sonarqube::connect(&target, &records, args.dry_run));
            finish(
                report,
                result.map_err(|e| (exit::failure_code(e.is_bad_input()), e.to_string())),
                args.json,
            )
        }
    }
}

fn bad_input(message: &str) -> anyhow::Error {
    Failure::new(exit::BAD_INPUT, message).into()
}

fn need(e: NeedError) -> anyhow::Error {
    Failure::new(exit::failure_code(e.is_bad_input()), e.to_string()).into()
}

/// Prints the report (even after a failure: it says what was already done), then the error.
fn finish(
    mut report: Report,
    result: Result<(), (u8, String)>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if let Err((_, message)) = &result {
        report.error = Some(message.clone());
    }
    if json {
        crate::cmd::print_json(&report)?;
    } else {
        print!("{}", report.human());
    }
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err((code, message)) => Err(Failure::new(code, message).into()),
    }
}
