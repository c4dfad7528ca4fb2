//! The one HTTP client of `cityd connect`: a base URL per product, request counting (all and
//! mutating), TLS trusting the system roots plus the city CA, and errors that name the product,
//! method and URL but never carry a token, a secret or a webhook URL (they are redacted from
//! every excerpt of a response body).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use thiserror::Error;

use crate::secrets::Secret;
use crate::tls::{self, CityCa, Trust};

/// How long one request may take before it counts as unanswered.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a response body an error message quotes.
const EXCERPT_CHARS: usize = 300;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error(
        "{product} URL {url:?} is not usable: {reason} (expected http(s)://host[:port][/path])"
    )]
    BadUrl {
        product: &'static str,
        url: String,
        reason: String,
    },
    #[error("cannot trust {product}'s certificate")]
    Ca {
        product: &'static str,
        #[source]
        source: tls::CaError,
    },
    #[error(
        "cannot reach {product} at {url}: {reason}; check that {product} runs and that the URL in the city ({field}) is right"
    )]
    Unreachable {
        product: &'static str,
        url: String,
        field: &'static str,
        reason: String,
    },
    #[error("{product} answered {method} {url} with HTTP {status}: {excerpt}")]
    Status {
        product: &'static str,
        method: String,
        url: String,
        status: u16,
        excerpt: String,
    },
    #[error(
        "{product} answered {method} {url} with a body cityd cannot read ({reason}): {excerpt}"
    )]
    Decode {
        product: &'static str,
        method: String,
        url: String,
        reason: String,
        excerpt: String,
    },
}

impl HttpError {
    /// The HTTP status of a `Status` error.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Requests made so far: all of them, and those that may change server state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    pub total: u64,
    pub mutating: u64,
}

/// How a request authenticates.
#[derive(Clone)]
pub enum Auth {
    None,
    /// `Authorization: Basic base64(user:password)`; a SonarQube token is `token:` (empty password).
    Basic {
        user: String,
        password: Secret,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(Secret),
    /// GitLab's `PRIVATE-TOKEN: <token>`.
    PrivateToken(Secret),
}

impl Auth {
    fn secret(&self) -> Option<&Secret> {
        match self {
            Auth::None => None,
            Auth::Basic { password, .. } => Some(password),
            Auth::Bearer(s) | Auth::PrivateToken(s) => Some(s),
        }
    }
}

/// A request body.
pub enum Body {
    Empty,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

/// A response: status, headers, raw body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
    /// Every `Set-Cookie` as `name=value` (attributes dropped), for echoing back as `Cookie`.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(|v| v.trim().to_string())
            .filter(|v| v.contains('='))
            .collect()
    }
}

/// One product's API: base URL, auth-free transport, counters and the values to redact.
pub struct HttpClient {
    product: &'static str,
    field: &'static str,
    base: String,
    http: reqwest::Client,
    total: AtomicU64,
    mutating: AtomicU64,
    redact: Mutex<Vec<String>>,
}

impl HttpClient {
    /// A client for `base_url` (no trailing slash needed). `field` names the city setting the URL
    /// came from, for errors. `ca_pem`, when the file exists, is trusted besides the system roots.
    pub fn new(
        product: &'static str,
        field: &'static str,
        base_url: &str,
        ca_pem: Option<&Path>,
    ) -> Result<Self, HttpError> {
        let bad = |reason: &str| HttpError::BadUrl {
            product,
            url: mask_userinfo(base_url),
            reason: reason.to_string(),
        };
        let parsed = reqwest::Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("the scheme must be http or https"));
        }
        if parsed.host_str().is_none() {
            return Err(bad("there is no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(bad("a base URL has no query or fragment"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            // The city file is world-readable (the Nix store); tokens come from the vault.
            return Err(HttpError::BadUrl {
                product,
                url: without_userinfo(&parsed),
                reason: "a URL carries no user or password (user:password@); cityd sends the token from the vault".into(),
            });
        }
        let ca = ca_pem
            .filter(|p| p.is_file())
            .map(CityCa::load)
            .transpose()
            .map_err(|source| HttpError::Ca { product, source })?;
        let trust = ca.as_ref().map_or(Trust::System, Trust::SystemAndCityCa);
        let http = tls::http_client(trust, |builder| {
            builder
                .timeout(REQUEST_TIMEOUT)
                .connect_timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                // The products live on the lab's network; a proxy from the environment would only see tokens.
                .no_proxy()
                .user_agent(concat!("cityd/", env!("CARGO_PKG_VERSION")))
        })
        .map_err(|e| bad(&e.to_string()))?;
        Ok(Self {
            product,
            field,
            base: base_url.trim_end_matches('/').to_string(),
            http,
            total: AtomicU64::new(0),
            mutating: AtomicU64::new(0),
            redact: Mutex::new(Vec::new()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn product(&self) -> &'static str {
        self.product
    }

    pub fn counts(&self) -> RequestCounts {
        RequestCounts {
            total: self.total.load(Ordering::Relaxed),
            mutating: self.mutating.load(Ordering::Relaxed),
        }
    }

    /// Never let `value` appear in an error excerpt or URL (tokens, webhook URLs, webhook
    /// secrets), in any form it may take on the wire (`super::redact`).
    pub fn redact(&self, value: &Secret) {
        if value.is_empty() {
            return;
        }
        self.redact_forms(super::redact::forms(value.expose()));
    }

    fn redact_forms(&self, forms: Vec<String>) {
        let mut list = self.redact.lock().unwrap_or_else(|p| p.into_inner());
        for form in forms {
            if !form.is_empty() && !list.contains(&form) {
                list.push(form);
            }
        }
        // Longest first, so a form is never half-replaced by a shorter one inside it.
        list.sort_by_key(|f| std::cmp::Reverse(f.len()));
    }

    /// The full URL of `path_and_query` as errors and logs show it: scrubbed.
    pub fn shown_url(&self, path_and_query: &str) -> String {
        self.scrub(&self.url(path_and_query))
    }

    /// The full URL of `path_and_query` (which starts with '/').
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// Sends one request and returns whatever status came back; only transport failures are errors.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        auth: &Auth,
        body: Body,
        headers: &[(String, String)],
    ) -> Result<Response, HttpError> {
        match auth {
            // The header carries base64(user:password), a form the password alone does not match.
            Auth::Basic { user, password } => {
                self.redact_forms(super::redact::basic_forms(user, password.expose()))
            }
            _ => {
                if let Some(secret) = auth.secret() {
                    self.redact(secret);
                }
            }
        }
        let url = self.url(path_and_query);
        let shown = self.shown_url(path_and_query);
        let mutating = method != Method::GET && method != Method::HEAD;
        let mut request = self.http.request(method, &url);
        request = match auth {
            Auth::None => request,
            Auth::Basic { user, password } => {
                let raw = format!("{user}:{}", password.expose());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                request.header(
                    reqwest::header::AUTHORIZATION,
                    sensitive(&format!("Basic {encoded}")),
                )
            }
            Auth::Bearer(token) => request.header(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", token.expose())),
            ),
            Auth::PrivateToken(token) => request.header(
                HeaderName::from_static("private-token"),
                sensitive(token.expose()),
            ),
        };
        for (name, value) in headers {
            request = request.header(name.as_str(), sensitive(value));
        }
        request = match body {
            Body::Empty => request,
            Body::Json(value) => request.json(&value),
            Body::Form(pairs) => request.form(&pairs),
        };
        self.total.fetch_add(1, Ordering::Relaxed);
        if mutating {
            self.mutating.fetch_add(1, Ordering::Relaxed);
        }
        let response = request.send().await.map_err(|e| HttpError::Unreachable {
            product: self.product,
            url: shown.clone(),
            field: self.field,
            reason: self.scrub(&crate::exit::causes_text(&e)),
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| HttpError::Unreachable {
                product: self.product,
                url: shown.clone(),
                field: self.field,
                reason: self.scrub(&crate::exit::causes_text(&e)),
            })?
            .to_vec();
        tracing::debug!(product = self.product, url = %shown, status, "request done");
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// A `Status` error for an unexpected answer.
    pub fn status_error(&self, method: &Method, path_and_query: &str, r: &Response) -> HttpError {
        HttpError::Status {
            product: self.product,
            method: method.to_string(),
            url: self.shown_url(path_and_query),
            status: r.status,
            excerpt: self.excerpt(&r.body),
        }
    }

    /// Decodes a JSON body, or a `Decode` error quoting it.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        method: &Method,
        path_and_query: &str,
        r: &Response,
    ) -> Result<T, HttpError> {
        serde_json::from_slice(&r.body).map_err(|e| HttpError::Decode {
            product: self.product,
            method: method.to_string(),
            url: self.shown_url(path_and_query),
            reason: e.to_string(),
            excerpt: self.excerpt(&r.body),
        })
    }

    /// A short, single-line, redacted quote of a body for error messages.
    pub fn excerpt(&self, body: &[u8]) -> String {
        let text = self.scrub(&String::from_utf8_lossy(body));
        crate::mattermost::error::excerpt_of(&text, EXCERPT_CHARS)
    }

    /// `text` with every registered secret replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let list = self.redact.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = text.to_string();
        for value in list.iter() {
            out = out.replace(value.as_str(), "<redacted>");
        }
        out
    }
}

/// A URL text that may not parse, with whatever stands between `://` and an `@` of its authority
/// masked: an unparsable URL can still carry a password.
fn mask_userinfo(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let authority_end = text[start..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| start + i);
    match text[start..authority_end].rfind('@') {
        Some(at) => format!("{}<redacted>{}", &text[..start], &text[start + at..]),
        None => text.to_string(),
    }
}

/// `url` with its userinfo replaced, for an error that must name the URL but not its password.
fn without_userinfo(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("<redacted>");
    let _ = shown.set_password(None);
    shown.to_string()
}

fn sensitive(value: &str) -> HeaderValue {
    let mut v = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters), so a GitLab
/// project path `group/sub/proj` becomes `group%2Fsub%2Fproj`.
pub fn encode_segment(segment: &str) -> String {
    urlencoding::encode(segment).into_owned()
}

/// Percent-encodes a query value.
pub fn encode_query(value: &str) -> String {
    encode_segment(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("group/sub/proj"), "group%2Fsub%2Fproj");
        assert_eq!(encode_segment("a b+c"), "a%20b%2Bc");
        assert_eq!(encode_segment("plain-name_1.2~"), "plain-name_1.2~");
    }

    #[test]
    fn excerpts_never_show_registered_secrets() {
        let c = HttpClient::new(
            "GitLab",
            "integrations.gitlab.url",
            "http://127.0.0.1:1",
            None,
        )
        .unwrap();
        c.redact(&Secret::new("tok-123".into()));
        let e = c.excerpt(b"{\"message\": \"bad token tok-123\nhere\"}");
        assert!(!e.contains("tok-123"), "{e}");
        assert!(e.contains("<redacted>"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn a_base_url_with_a_password_is_refused_without_showing_it() {
        for url in [
            "http://admin:hunter2-secret@127.0.0.1:8080",
            "http://admin:hunter2-secret@bad host:8080",
        ] {
            let err = HttpClient::new("Jenkins", "integrations.jenkins.url", url, None)
                .err()
                .unwrap()
                .to_string();
            assert!(!err.contains("hunter2-secret"), "{err}");
            assert!(err.contains("Jenkins URL"), "{err}");
        }
    }

    #[test]
    fn urls_in_errors_are_scrubbed() {
        let c = HttpClient::new(
            "GitLab",
            "integrations.gitlab.url",
            "http://127.0.0.1:1",
            None,
        )
        .unwrap();
        c.redact(&Secret::new("query-token-0123456789".into()));
        let shown = c.shown_url("/api?private_token=query-token-0123456789");
        assert!(!shown.contains("query-token-0123456789"), "{shown}");
    }

    #[test]
    fn bad_base_urls_are_refused_with_the_reason() {
        for url in ["ftp://x", "not a url", "http://h/?q=1"] {
            let err = HttpClient::new("Jenkins", "integrations.jenkins.url", url, None)
                .err()
                .unwrap();
            assert!(err.to_string().contains("Jenkins URL"), "{err}");
        }
    }
}
