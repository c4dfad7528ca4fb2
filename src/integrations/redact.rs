//! Every form a registered secret can take on the wire, so an error excerpt quoting what a server
//! echoed never carries it: the raw value, its percent- and form-encodings (either hex case), its
//! JSON escaping, its base64 (a `Basic` header carries `base64(user:token)`), and for a URL the
//! password of its userinfo, its query values and its last path segment (a Mattermost hook id).
//!
//! Why: a server that echoes request headers put `Authorization: Basic …` into the error of
//! `cityd connect jenkins` while only the raw token was registered (issue 12, defect 4).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Forms shorter than this are not registered on their own: replacing a two-letter query value
/// everywhere would shred the excerpt and protect nothing (the full value is registered anyway).
const SHORTEST_FORM: usize = 8;

/// The wire forms of `value` (itself included), longest first, without duplicates.
pub fn forms(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |form: String| {
        if form.len() >= SHORTEST_FORM.min(value.len().max(1)) && !out.contains(&form) {
            out.push(form);
        }
    };
    for part in parts_of(value) {
        for encoded in encodings(&part) {
            add(encoded);
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out
}

/// The forms of a `Basic` credential: `user:password` and its base64, besides the password's own.
pub fn basic_forms(user: &str, password: &str) -> Vec<String> {
    let pair = format!("{user}:{password}");
    let mut out = forms(&pair);
    for form in forms(password) {
        if !out.contains(&form) {
            out.push(form);
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.len()));
    out
}

/// The value and, when it is a URL, the secret parts inside it.
fn parts_of(value: &str) -> Vec<String> {
    let mut parts = vec![value.to_string()];
    let Ok(url) = reqwest::Url::parse(value) else {
        return parts;
    };
    if !matches!(url.scheme(), "http" | "https") {
        return parts;
    }
    let mut push = |part: String| {
        if part.len() >= SHORTEST_FORM && !parts.contains(&part) {
            parts.push(part);
        }
    };
    if let Some(password) = url.password() {
        push(password.to_string());
        push(decoded(password));
    }
    for (_, v) in url.query_pairs() {
        push(v.into_owned());
    }
    if let Some(last) = url.path_segments().and_then(|mut s| s.next_back()) {
        push(last.to_string());
        push(decoded(last));
    }
    parts
}

fn decoded(text: &str) -> String {
    urlencoding::decode(text).map_or_else(|_| text.to_string(), |d| d.into_owned())
}

/// One text as it may travel: raw, percent-encoded (upper and lower hex), form-encoded, JSON-escaped
/// (with and without `\/`), and base64 in the four common alphabets and paddings.
fn encodings(text: &str) -> Vec<String> {
    let percent = urlencoding::encode(text).into_owned();
    let form = form_encode(text);
    let json = serde_json::to_string(text).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or(text)
        .to_string();
    let mut out = vec![
        text.to_string(),
        lower_hex(&percent),
        percent,
        lower_hex(&form),
        form,
        json.replace('/', "\\/"),
        json,
        text.replace('/', "\\/"),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(text));
    }
    out
}

/// `application/x-www-form-urlencoded`, as reqwest's form bodies write it.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `%2F` as `%2f`: some servers re-encode with lowercase hex.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let hex = rest.get(i + 1..i + 3).unwrap_or("");
        out.push('%');
        out.push_str(&hex.to_ascii_lowercase());
        rest = &rest[(i + 1 + hex.len()).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_credential_is_known_in_its_base64_form() {
        let token = "11aa22bb33cc44dd55ee66ff77aa88bb99";
        let forms = basic_forms("admin", token);
        let header = STANDARD.encode(format!("admin:{token}"));
        assert!(forms.contains(&header), "{forms:?}");
        assert!(forms.contains(&token.to_string()));
    }

    #[test]
    fn a_webhook_url_is_known_encoded_escaped_and_by_its_hook_id() {
        let url = "https://mattermost.cicd.local:8065/hooks/b8x1q3k7zt4m9c2w6r5y0p1n3e";
        let forms = forms(url);
        for want in [
            url.to_string(),
            urlencoding::encode(url).into_owned(),
            urlencoding::encode(url).to_lowercase(),
            url.replace('/', "\\/"),
            "b8x1q3k7zt4m9c2w6r5y0p1n3e".to_string(),
        ] {
            assert!(forms.contains(&want), "{want} missing from {forms:?}");
        }
        assert!(forms.windows(2).all(|w| w[0].len() >= w[1].len()));
    }

    #[test]
    fn url_userinfo_and_query_tokens_are_known() {
        let forms = forms("https://ci:s3cr%2Ft-pass@ci.example/api?token=query-token-123&x=1");
        for want in ["s3cr%2Ft-pass", "s3cr/t-pass", "query-token-123"] {
            assert!(forms.contains(&want.to_string()), "{want}: {forms:?}");
        }
        assert!(
            !forms.contains(&"1".to_string()),
            "short values are not registered alone"
        );
    }

    #[test]
    fn form_encoding_matches_what_a_form_body_sends() {
        assert_eq!(form_encode("a b/c~d*"), "a+b%2Fc%7Ed*");
        assert_eq!(lower_hex("a%2Fb%7E"), "a%2fb%7e");
    }
}
