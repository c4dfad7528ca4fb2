//! Findings with fixes: audits of blog-style `mattermost.env` / `cicd.env` files against the known
//! pitfalls (reference/mattermost.md §9), and of the city's own state (vault shapes, rendered files).
//! Pure over text and directory reads; `state` puts them together with the live checks of the
//! tenant and the containers. Printing and exit codes live in `cmd::doctor`.

pub mod state;

use serde::Serialize;

use crate::envfile::{self, Entry, Quoting};
use crate::secrets::{SecretName, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// One problem: a stable code, what it is about, what is wrong, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: &'static str,
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    /// The one constructor of a finding, for every audit (env files, the state, containers, schema).
    pub fn new(
        severity: Severity,
        code: &'static str,
        subject: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            code,
            subject: subject.into(),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

fn subject(file: &str, e: &Entry) -> String {
    format!("{} (line {} of {file})", e.key, e.line)
}

/// Keys whose values must never be echoed back in a finding.
fn is_secret_key(key: &str) -> bool {
    [
        "KEY",
        "SECRET",
        "SALT",
        "PASSWORD",
        "DATASOURCE",
        "TOKEN",
        "ICE_SERVERS",
    ]
    .iter()
    .any(|w| key.contains(w))
}

fn is_bool_key(key: &str) -> bool {
    const BOOL_SETTINGS: &[&str] = &[
        "REQUIREPLUGINSIGNATURE",
        "AUTOMATICPREPACKAGEDPLUGINS",
        "POSTPRIORITY",
    ];
    const CALLS_BOOLS: &[&str] = &[
        "MM_CALLS_SERVER_SIDE_TURN",
        "MM_CALLS_ALLOW_SCREEN_SHARING",
        "MM_CALLS_DISABLE",
    ];
    let last = key.rsplit('_').next().unwrap_or("");
    last.starts_with("ENABLE") || BOOL_SETTINGS.contains(&last) || CALLS_BOOLS.contains(&key)
}

/// Audits a Mattermost env file as `docker run --env-file` will read it.
pub fn audit_mattermost_env(file: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let entries = envfile::parse_lenient(text);
    let get = |k: &str| entries.iter().find(|e| e.key == k);

    for e in &entries {
        let (inner, quoting) = envfile::unquote(&e.value);
        if quoting != Quoting::None {
            let consequence = if e.key == "MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS" {
                "so the first and last tokens carry a quote and never match (the first and last CIDRs are ignored)".to_string()
            } else if e.key == "MM_SERVICESETTINGS_SITEURL" {
                "so the SiteURL fails URL parsing and Mattermost refuses to start".to_string()
            } else if is_bool_key(&e.key) || inner.parse::<i64>().is_ok() {
                "so the value no longer parses and Mattermost silently keeps its default"
                    .to_string()
            } else if inner.starts_with('{') || inner.starts_with('[') {
                "so the JSON does not parse and the setting is silently ignored".to_string()
            } else {
                "so the quotes become part of the value".to_string()
            };
            out.push(Finding::new(
                Severity::Error,
                "quoted-value",
                subject(file, e),
                format!("the value is quoted; `docker run --env-file` keeps quotes literally, {consequence}"),
                if is_secret_key(&e.key) {
                    format!("remove the surrounding quotes from {}", e.key)
                } else {
                    format!("write it unquoted: {}={inner}", e.key)
                },
            ));
        }
    }

    if let Some(e) = get("MM_CALLS_ICE_SERVERS_CONFIGS") {
        let (inner, _) = envfile::unquote(&e.value);
        match serde_json::from_str::<serde_json::Value>(inner) {
            Ok(servers) => {
                let static_cred = servers.as_array().into_iter().flatten().any(|s| {
                    let turn = s["urls"].as_array().into_iter().flatten().any(|u| u.as_str().is_some_and(|u| u.starts_with("turn")));
                    turn && (s.get("username").is_some() || s.get("credential").is_some() || s.get("credentials").is_some())
                });
                if static_cred {
                    out.push(Finding::new(
                        Severity::Error,
                        "static-turn-credential",
                        subject(file, e),
                        "a TURN entry carries a static username/credential: coturn with use-auth-secret reads the expiry from the username (\"mattermost\" = 0, long past) and answers 401 to every Allocate, and Calls hands the credential to every client through /plugins/com.mattermost.calls/config",
                        "drop username and credential from the TURN entries and set MM_CALLS_TURN_STATIC_AUTH_SECRET to coturn's static-auth-secret; Calls then mints time-limited credentials",
                    ));
                }
                let has_turn = servers.as_array().into_iter().flatten().any(|s| {
                    s["urls"].as_array().into_iter().flatten().any(|u| u.as_str().is_some_and(|u| u.starts_with("turn")))
                });
                if has_turn && get("MM_CALLS_TURN_STATIC_AUTH_SECRET").is_none() && !static_cred {
                    out.push(Finding::new(
                        Severity::Error,
                        "turn-secret-missing",
                        subject(file, e),
                        "TURN servers are listed without credentials but MM_CALLS_TURN_STATIC_AUTH_SECRET is not set, so Calls leaves them out",
                        "set MM_CALLS_TURN_STATIC_AUTH_SECRET to coturn's static-auth-secret",
                    ));
                }
            }
            Err(err) => out.push(Finding::new(
                Severity::Error,
                "ice-servers-not-json",
                subject(file, e),
                format!("the value is not a JSON array ({err}); Calls logs the error and ignores the override"),
                "write the array on one line, unquoted: [{\"urls\":[\"turn:<lan-ip>:3478?transport=udp\"]}]",
            )),
        }
    }

    if let Some(e) = get("MM_PLUGINSETTINGS_PLUGINSTATES") {
        out.push(Finding::new(
            Severity::Error,
            "plugin-states-pinned",
            subject(file, e),
            "PluginStates set from the environment replaces the whole map on every load: enabling or disabling a plugin through the API or mmctl returns 200 and does nothing, and plugins missing from the JSON stay disabled",
            "remove MM_PLUGINSETTINGS_PLUGINSTATES and enable plugins through the API after their settings are written (`cityd wire` does this)",
        ));
    }
    if let Some(e) = get("MM_PLUGINSETTINGS_PLUGINS") {
        out.push(Finding::new(
            Severity::Warning,
            "plugin-settings-pinned",
            subject(file, e),
            "Plugins set from the environment replaces every plugin's settings on each load, including keys plugins generate for themselves",
            "remove MM_PLUGINSETTINGS_PLUGINS and write plugin settings through the config API (`cityd wire`)",
        ));
    }
    if let Some(e) = get("MM_SERVICESETTINGS_ALLOWCORSFROM") {
        let (inner, _) = envfile::unquote(&e.value);
        if inner.split_whitespace().any(|o| o == "*") {
            out.push(Finding::new(
                Severity::Error,
                "cors-wildcard",
                subject(file, e),
                "AllowCorsFrom=* lets any web page call the API with a user's session and also disables the WebSocket origin check",
                "list the exact origins: https://mattermost.<domain>:8065 https://<lan-ip>:8065",
            ));
        }
    }
    if let Some(e) = get("MM_SERVICESETTINGS_ENABLEINSECUREOUTGOINGCONNECTIONS")
        && envfile::unquote(&e.value).0.eq_ignore_ascii_case("true")
    {
        out.push(Finding::new(
                Severity::Error,
                "insecure-outgoing",
                subject(file, e),
                "EnableInsecureOutgoingConnections=true turns off TLS verification for every outgoing request (plugins, webhooks, link previews)",
                "set it to false and trust the city CA instead (mount a CA bundle that includes it)",
            ));
    }
    if let Some(e) = get("MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS") {
        let (inner, _) = envfile::unquote(&e.value);
        for token in inner.split([' ', ',']).filter(|t| !t.is_empty()) {
            if token.parse::<std::net::IpAddr>().is_ok() {
                out.push(Finding::new(
                    Severity::Warning,
                    "untrusted-bare-ip",
                    subject(file, e),
                    format!("{token} is a bare IP: Mattermost matches IPs only through CIDR tokens, so it allows nothing"),
                    format!("write {token}/32"),
                ));
            }
        }
        out.push(Finding::new(
            Severity::Info,
            "untrusted-is-outgoing-only",
            subject(file, e),
            "AllowedUntrustedInternalConnections only governs Mattermost's outgoing requests; incoming webhooks from other containers never needed it",
            "keep only the hosts Mattermost itself must call (Jenkins, GitLab)",
        ));
    }
    for (key, name) in [
        ("MM_SQLSETTINGS_ATRESTENCRYPTKEY", "AtRestEncryptKey"),
        ("MM_FILESETTINGS_PUBLICLINKSALT", "PublicLinkSalt"),
    ] {
        if let Some(e) = get(key) {
            let (inner, _) = envfile::unquote(&e.value);
            if !inner.is_empty() && inner.len() < 32 {
                out.push(Finding::new(
                    Severity::Error,
                    "short-key",
                    subject(file, e),
                    format!(
                        "{name} is {} characters; Mattermost refuses to start below 32",
                        inner.len()
                    ),
                    "use at least 32 characters (`cityd secrets ensure` generates them)",
                ));
            }
        }
    }
    if let Some(e) = get("MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS")
        && envfile::unquote(&e.value).0.eq_ignore_ascii_case("true")
    {
        out.push(Finding::new(
                Severity::Info,
                "user-tokens-unneeded",
                subject(file, e),
                "EnableUserAccessTokens is not needed for bot tokens; it only lets ordinary users mint tokens",
                "leave it false unless people need personal tokens",
            ));
    }
    for e in &entries {
        let (inner, quoting) = envfile::unquote(&e.value);
        if quoting == Quoting::None
            && is_bool_key(&e.key)
            && !inner.is_empty()
            && parse_go_bool(inner).is_none()
            && !inner.contains(['/', ' ', '*', ':'])
        {
            out.push(Finding::new(
                Severity::Warning,
                "bool-not-parsed",
                subject(file, e),
                format!(
                    "{inner:?} is not a boolean Mattermost accepts; the setting is silently ignored"
                ),
                "use true or false",
            ));
        }
        if inner.contains("public_private") {
            out.push(Finding::new(
                Severity::Error,
                "codepreview-invalid",
                subject(file, e),
                "enablecodepreview \"public_private\" is not an option of the GitLab plugin",
                "use public, privateAndPublic or disable",
            ));
        }
    }
    out
}

/// Go's strconv.ParseBool, which Mattermost uses for env values.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Audits the blog's secrets file (`cicd.env`): every known secret present, of the right shape.
pub fn audit_secrets_env(file: &str, text: &str) -> Vec<Finding> {
    let entries = envfile::parse_lenient(text);
    let mut out = Vec::new();
    for (var, name) in crate::secrets::import_env::BLOG_VARIABLES {
        let Some(e) = entries.iter().find(|e| e.key == var) else {
            out.push(Finding::new(
                Severity::Warning,
                "secret-absent",
                format!("{var} ({file})"),
                format!(
                    "{var} is not set, so `cityd secrets import-env` would generate a new {}",
                    name.file_name()
                ),
                "add it if an installation already uses a value, or let cityd generate it",
            ));
            continue;
        };
        let (inner, _) = envfile::unquote(&e.value);
        let shape = name.shape();
        if !shape.accepts(inner) {
            let aes_hint = matches!(shape, Shape::Exactly(_)) && matches!(inner.len(), 16 | 24);
            out.push(Finding::new(
                if aes_hint { Severity::Warning } else { Severity::Error },
                "secret-shape",
                subject(file, e),
                format!("{} characters do not match the rule for {}: {}", inner.len(), name.file_name(), shape.rule()),
                if aes_hint {
                    "16 and 24 bytes are valid AES keys for the plugin, but cityd keeps 32-byte keys; rotate it deliberately (the plugin loses what it encrypted) or keep it outside cityd".to_string()
                } else {
                    format!("regenerate it with the right shape ({}), knowing that rotating it loses what it protected", shape.rule())
                },
            ));
        }
    }
    out
}

/// The worst severity, for exit codes.
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

/// Checks the vault: every generated secret present, of its shape, 0600 in a 0700 directory.
pub fn audit_vault(vault: &crate::secrets::Vault) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let dir = vault.dir();
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            out.push(Finding::new(
                Severity::Error,
                "vault-dir-mode",
                dir.display().to_string(),
                format!(
                    "the vault directory is mode {mode:03o}; other users can list or read secrets"
                ),
                format!("chmod 700 {}", dir.display()),
            ));
        }
    }
    for name in SecretName::ALL {
        let path = vault.path_of(name.file_name());
        match vault.read(name.file_name()) {
            Ok(Some(_)) => {
                if let Ok(meta) = std::fs::metadata(&path) {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode != 0o600 {
                        out.push(Finding::new(
                            Severity::Error,
                            "secret-mode",
                            path.display().to_string(),
                            format!("mode {mode:03o}; secrets must be 0600"),
                            format!("chmod 600 {}", path.display()),
                        ));
                    }
                }
            }
            Ok(None) => out.push(Finding::new(
                Severity::Warning,
                "secret-missing",
                path.display().to_string(),
                format!("{} has not been generated yet", name.file_name()),
                "run `cityd secrets ensure`",
            )),
            Err(e) => out.push(Finding::new(
                Severity::Error,
                "secret-invalid",
                path.display().to_string(),
                crate::exit::causes_text(&e),
                "see the rule above; cityd never replaces it for you",
            )),
        }
    }
    out
}

/// Compares a rendered file on disk with what rendering produces now.
pub fn audit_rendered(path: &std::path::Path, expected: &str, command: &str) -> Vec<Finding> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read_to_string(path) {
        Err(_) => vec![Finding::new(
            Severity::Warning,
            "render-missing",
            path.display().to_string(),
            "not rendered yet",
            format!("run `{command}`"),
        )],
        Ok(actual) => {
            let mut out = Vec::new();
            if actual != expected {
                out.push(Finding::new(
                    Severity::Warning,
                    "render-stale",
                    path.display().to_string(),
                    "differs from what the city and vault produce now (a LAN address moved, or the file was edited)",
                    format!("run `{command}` and restart the service that reads it"),
                ));
            }
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    out.push(Finding::new(
                        Severity::Error,
                        "render-mode",
                        path.display().to_string(),
                        format!("mode {mode:03o}, but the file holds secrets"),
                        format!("chmod 600 {}", path.display()),
                    ));
                }
            }
            out
        }
    }
}

/// Checks the PKI against the current LAN addresses: the server certificate names every wanted
/// address, chains to the CA, is not close to expiry, and keys are 0600.
pub fn audit_pki(
    summary: Option<&crate::pki::PkiSummary>,
    wanted: &crate::pki::SanSet,
) -> Vec<Finding> {
    let Some(summary) = summary else {
        return vec![Finding::new(
            Severity::Warning,
            "pki-missing",
            "pki",
            "no CA or server certificate yet",
            "run `cityd pki ensure`",
        )];
    };
    let dir = summary.dir.display().to_string();
    let mut out = Vec::new();
    match &summary.server {
        None => out.push(Finding::new(
            Severity::Warning,
            "server-cert-missing",
            format!("{dir}/server.pem"),
            "no server certificate",
            "run `cityd pki ensure`",
        )),
        Some(server) => {
            let missing = wanted.missing_from(&server.sans);
            if !missing.is_empty() {
                out.push(Finding::new(
                    Severity::Error,
                    "cert-sans-stale",
                    format!("{dir}/server.pem"),
                    format!("the certificate does not name {}: phones connecting by that address will refuse it (the LAN address moved?)", missing.join(", ")),
                    "run `cityd pki ensure` and restart Mattermost",
                ));
            }
            if server.days_left < 0 {
                out.push(Finding::new(
                    Severity::Error,
                    "cert-expired",
                    format!("{dir}/server.pem"),
                    format!("expired on {}", server.not_after),
                    "run `cityd pki ensure`",
                ));
            } else if server.days_left < 30 {
                out.push(Finding::new(
                    Severity::Warning,
                    "cert-expiring",
                    format!("{dir}/server.pem"),
                    format!(
                        "{} days left (until {})",
                        server.days_left, server.not_after
                    ),
                    "run `cityd pki ensure` (it renews below 30 days)",
                ));
            }
            if !server.server_auth {
                out.push(Finding::new(
                    Severity::Error,
                    "cert-no-server-auth",
                    format!("{dir}/server.pem"),
                    "no serverAuth extended key usage: Apple platforms refuse it",
                    "run `cityd pki ensure`",
                ));
            }
        }
    }
    if let Some(ca) = &summary.ca {
        out.extend(audit_ca_scope(&dir, ca, wanted));
    }
    if summary.server_verifies == Some(false) {
        out.push(Finding::new(
            Severity::Error,
            "cert-chain",
            format!("{dir}/server.pem"),
            summary
                .server_problem
                .clone()
                .unwrap_or_else(|| "does not chain to ca.pem".into()),
            "run `cityd pki ensure`",
        ));
    }
    for f in summary.bad_modes() {
        out.push(Finding::new(
            Severity::Error,
            "pki-mode",
            f.path.display().to_string(),
            format!(
                "mode {}, expected {}",
                f.mode.as_deref().unwrap_or("?"),
                f.expected_mode
            ),
            format!("chmod {} {}", f.expected_mode, f.path.display()),
        ));
    }
    out
}

/// What the CA may vouch for: a root without NameConstraints lets whoever holds its key
/// impersonate any site to every device that trusts it; a constrained one must still cover the
/// names the LAN wants.
fn audit_ca_scope(
    dir: &str,
    ca: &crate::pki::CertSummary,
    wanted: &crate::pki::SanSet,
) -> Vec<Finding> {
    let subject = format!("{dir}/ca.pem");
    match &ca.name_constraints {
        None => vec![Finding::new(
            Severity::Warning,
            "ca-unconstrained",
            subject,
            "the city CA has no name constraints: every phone and browser that trusts it accepts a certificate it signs for any site, public ones included (a bank, a mail provider), so ca.key is as powerful as a public CA's key for those devices",
            format!(
                "keep {dir}/ca.key private; for a CA limited to the city's names and LAN, move {dir} aside and run `cityd pki ensure` (phones must then trust the new CA: `cityd onboard`)"
            ),
        )],
        Some(scope) => {
            let outside = scope.outside(wanted);
            if outside.is_empty() {
                return Vec::new();
            }
            vec![Finding::new(
                Severity::Error,
                "ca-scope-lan",
                subject,
                format!(
                    "the CA may vouch only for {}, and the city needs {}: no server certificate for those names can be issued",
                    scope.describe(),
                    outside.join(", ")
                ),
                format!(
                    "put lan.addresses inside that scope, or move {dir} aside and run `cityd pki ensure` for a new CA"
                ),
            )]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    #[test]
    fn the_rendered_env_file_has_no_error_findings() {
        let city = crate::city::City::default_city();
        let lan = ["192.168.1.20".parse().unwrap()];
        let inputs = crate::render::Inputs {
            city: &city,
            lan: &lan,
            origin: "t",
        };
        let s = crate::secrets::Secret::new("a".repeat(64));
        let secrets = crate::render::mattermost_env::MattermostSecrets {
            db_password: &s,
            at_rest_encrypt_key: &s,
            public_link_salt: &s,
            turn_static_auth_secret: &s,
        };
        let text = crate::render::mattermost_env::render(&inputs, &secrets).unwrap();
        let findings = audit_mattermost_env("m.env", &text);
        assert_eq!(worst(&findings), Some(Severity::Info), "{findings:#?}");
    }

    #[test]
    fn quoted_bool_and_bare_ip_are_found() {
        let f = audit_mattermost_env(
            "m.env",
            "MM_SERVICESETTINGS_ENABLELOCALMODE=\"true\"\nMM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS=10.0.0.5\n",
        );
        assert_eq!(
            codes(&f),
            [
                "quoted-value",
                "untrusted-bare-ip",
                "untrusted-is-outgoing-only"
            ]
        );
        assert!(f[0].problem.contains("silently keeps its default"));
    }
}
