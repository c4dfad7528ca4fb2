//! `[integrations]`: how cityd reaches Jenkins, GitLab and SonarQube for `cityd connect`.
//! Tokens are never written here: each `*_secret` names a file in the vault
//! (`<state>/secrets/<name>`, mode 0600).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::channels::Channel;
use super::rules::{Problems, docker_name_rule, is_http_url, is_vault_name};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integrations {
    pub jenkins: JenkinsIntegration,
    pub gitlab: GitlabIntegration,
    pub sonarqube: SonarqubeIntegration,
}

/// Jenkins: the env file and JCasC YAML cityd edits, and how it applies them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsIntegration {
    /// Jenkins' root URL: the API base and the `buildServerUrl` links point here.
    pub url: String,
    /// The user whose API token (vault file `token_secret`) reloads JCasC.
    pub user: String,
    /// Vault file holding that user's API token; absent = restart the container instead.
    pub token_secret: String,
    /// The `docker run --env-file` file of the Jenkins container (e.g. the blog's jenkins.env).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// The JCasC YAML Jenkins loads (e.g. ~/cicd_stack/jenkins/config/jenkins.yaml).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jcasc_file: Option<PathBuf>,
    /// The Jenkins container, restarted when no API token is in the vault.
    pub container: String,
    /// The channel build results go to; its webhook URL is the vault's `webhook-<channel>`.
    pub channel: String,
    /// Optional username the posts carry (the plugin's `user@channel` form). The part before `@`
    /// is a username, never a team: the team is fixed by the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Icon URL of the posts; unset = `<url>/favicon.ico` (served by Jenkins itself, so it works air-gapped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
}

impl JenkinsIntegration {
    /// `buildServerUrl`: the plugin wants a trailing slash.
    pub fn build_server_url(&self) -> String {
        format!("{}/", self.url.trim_end_matches('/'))
    }
    /// The plugin's `room`: `channel`, or `username@channel`.
    pub fn room(&self) -> String {
        match &self.username {
            Some(user) => format!("{user}@{}", self.channel),
            None => self.channel.clone(),
        }
    }
    pub fn icon_url(&self) -> String {
        self.icon
            .clone()
            .unwrap_or_else(|| format!("{}/favicon.ico", self.url.trim_end_matches('/')))
    }
}

/// GitLab: the project whose Mattermost integration cityd sets, and the optional OAuth application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitlabIntegration {
    pub url: String,
    /// Full path of the project, e.g. `articles/http-client` (groups and subgroups separated by `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Vault file with a token (Maintainer of the project, scope `api`).
    pub token_secret: String,
    /// Vault file with an admin token; when present, cityd creates the OAuth application of the
    /// Mattermost GitLab plugin.
    pub admin_token_secret: String,
    /// The channel notifications go to; its webhook URL is the vault's `webhook-<channel>`.
    pub channel: String,
    /// Username override of the posts; unset = GitLab's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Events that notify: push, issues, confidential_issues, merge_requests, note,
    /// confidential_note, tag_push, pipeline, wiki_page. The others are switched off.
    pub events: Vec<String>,
    /// Branches that notify: all, default, protected, default_and_protected.
    pub branches: String,
    /// Notify about broken pipelines only.
    pub notify_only_broken_pipelines: bool,
    /// Name of the OAuth application cityd creates for the Mattermost GitLab plugin.
    pub oauth_application: String,
}

/// The chat-notification events GitLab's Mattermost integration takes (`<event>_events` flags).
pub const GITLAB_EVENTS: &[&str] = &[
    "push",
    "issues",
    "confidential_issues",
    "merge_requests",
    "note",
    "confidential_note",
    "tag_push",
    "pipeline",
    "wiki_page",
];

const GITLAB_BRANCHES: &[&str] = &["all", "default", "protected", "default_and_protected"];

/// SonarQube: the webhook that sends analysis results to the cityd relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonarqubeIntegration {
    pub url: String,
    /// Vault file with a user token of a user with Administer permission.
    pub token_secret: String,
    /// Project key for a project-level webhook; unset = a global webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The webhook's name, how cityd finds it again.
    pub webhook_name: String,
    /// Where SonarQube reaches the relay; unset = `http://<relay.listen>/sonarqube`, with the first
    /// LAN address when relay.listen is a wildcard (0.0.0.0:9180 by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_url: Option<String>,
}

/// True when an http(s) URL has `user[:password]@` before its host.
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.contains('@')
}

impl Integrations {
    /// `defaults` is the embedded default city's table: a city that keeps it is not wrong for
    /// lacking `#builds`, and `cityd connect` names the missing channel if it is ever used.
    pub(super) fn check(
        &self,
        team: &str,
        channels: &[Channel],
        defaults: &Integrations,
        out: &mut Problems,
    ) {
        let (j, g, s) = (&self.jenkins, &self.gitlab, &self.sonarqube);
        for (field, url) in [
            ("integrations.jenkins.url", &j.url),
            ("integrations.gitlab.url", &g.url),
            ("integrations.sonarqube.url", &s.url),
        ] {
            if !is_http_url(url) {
                out.bad(
                    field,
                    url,
                    "must be an http(s) URL such as https://host:port",
                );
            } else if has_userinfo(url) {
                // Never echo the password: the problem is printed and the city is world-readable.
                out.bad(
                    field,
                    "<a URL with user:password@>",
                    "must not carry a user or password (the city file is world-readable, e.g. in the Nix store); cityd sends the token named by token_secret from the vault",
                );
            }
        }
        for (field, name) in [
            ("integrations.jenkins.token_secret", &j.token_secret),
            ("integrations.gitlab.token_secret", &g.token_secret),
            (
                "integrations.gitlab.admin_token_secret",
                &g.admin_token_secret,
            ),
            ("integrations.sonarqube.token_secret", &s.token_secret),
        ] {
            if !is_vault_name(name) {
                out.bad(
                    field,
                    name,
                    "must be a file name in the vault (no '/', not starting with '.'), e.g. jenkins-api-token",
                );
            }
        }
        if self != defaults {
            for (field, channel) in [
                ("integrations.jenkins.channel", &j.channel),
                ("integrations.gitlab.channel", &g.channel),
            ] {
                if !channels.iter().any(|c| c.name == *channel) {
                    out.bad(
                        field,
                        channel,
                        "must be the name of one of the city's [[channels]]",
                    );
                }
            }
        }
        j.check(team, out);
        g.check(out);
        s.check(out);
    }
}

impl JenkinsIntegration {
    fn check(&self, team: &str, out: &mut Problems) {
        if self.user.is_empty() || self.user.contains(char::is_whitespace) {
            out.bad(
                "integrations.jenkins.user",
                format!("{:?}", self.user),
                "must be a Jenkins user id",
            );
        }
        for (field, path) in [
            ("integrations.jenkins.env_file", &self.env_file),
            ("integrations.jenkins.jcasc_file", &self.jcasc_file),
        ] {
            if let Some(path) = path
                && !path.is_absolute()
            {
                out.bad(
                    field,
                    path.display().to_string(),
                    "must be an absolute path",
                );
            }
        }
        out.rule(
            "integrations.jenkins.container",
            &self.container,
            docker_name_rule(&self.container),
        );
        if let Some(user) = &self.username {
            if user == team {
                out.bad(
                    "integrations.jenkins.username",
                    user,
                    "is the team's name, but the plugin's `x@channel` means username@channel (the team comes from the webhook); use a username such as jenkins, or leave it unset",
                );
            } else if user.is_empty() || user.contains(['@', ',', ';', ' ']) {
                out.bad(
                    "integrations.jenkins.username",
                    format!("{user:?}"),
                    "must be a plain username without '@', ',', ';' or spaces",
                );
            }
        }
        if let Some(icon) = &self.icon
            && !is_http_url(icon)
        {
            out.bad("integrations.jenkins.icon", icon, "must be an http(s) URL");
        }
    }
}

impl GitlabIntegration {
    fn check(&self, out: &mut Problems) {
        if let Some(project) = &self.project {
            let ok = project.contains('/')
                && !project.starts_with('/')
                && !project.ends_with('/')
                && !project.contains("//")
                && !project.contains(char::is_whitespace);
            if !ok {
                out.bad(
                    "integrations.gitlab.project",
                    project,
                    "must be the project's full path, namespace/project (e.g. articles/http-client)",
                );
            }
        }
        if self.events.is_empty() {
            out.bad(
                "integrations.gitlab.events",
                "[]",
                "needs at least one event, e.g. [\"push\", \"merge_requests\", \"pipeline\", \"tag_push\"]",
            );
        }
        for (i, event) in self.events.iter().enumerate() {
            if !GITLAB_EVENTS.contains(&event.as_str()) {
                out.bad(
                    format!("integrations.gitlab.events[{i}]"),
                    event,
                    format!("must be one of {}", GITLAB_EVENTS.join(", ")),
                );
            }
        }
        if !GITLAB_BRANCHES.contains(&self.branches.as_str()) {
            out.bad(
                "integrations.gitlab.branches",
                &self.branches,
                format!("must be one of {}", GITLAB_BRANCHES.join(", ")),
            );
        }
        if self.oauth_application.trim().is_empty() {
            out.bad(
                "integrations.gitlab.oauth_application",
                "\"\"",
                "must be a non-empty application name",
            );
        }
    }
}

impl SonarqubeIntegration {
    fn check(&self, out: &mut Problems) {
        out.length(
            "integrations.sonarqube.webhook_name",
            &self.webhook_name,
            100,
            Some("SonarQube's limit"),
        );
        if let Some(project) = &self.project
            && (project.is_empty() || project.len() > 400)
        {
            out.bad(
                "integrations.sonarqube.project",
                format!("{project:?}"),
                "must be a project key of 1-400 characters",
            );
        }
        if let Some(url) = &self.relay_url
            && (!is_http_url(url) || url.len() > 512)
        {
            out.bad(
                "integrations.sonarqube.relay_url",
                url,
                "must be an http(s) URL of at most 512 characters, e.g. http://192.168.1.20:9180/sonarqube",
            );
        }
    }
}
