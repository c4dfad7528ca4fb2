//! Fuzz target: whatever body arrives at `POST /sonarqube` with a valid signature and content
//! type, the relay either admits it (202) or calls it malformed (400), never panics; an admitted
//! event renders to a Mattermost post and gets a bounded dedup key. The same bytes as a signature
//! header (checked before any body is read) are judged without a panic, and only 64 lowercase hex
//! digits pass.

#![no_main]

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use cityd::relay::http::{Rejection, admit};
use cityd::relay::message::{MessageSettings, render};
use cityd::relay::payload;
use cityd::relay::signature::{HEADER, Verifier, parse_header};
use cityd::secrets::Secret;
use libfuzzer_sys::fuzz_target;

fn verifier() -> &'static Verifier {
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    VERIFIER.get_or_init(|| Verifier::new(&Secret::new("fuzz-webhook-secret-0123456789".into())))
}

fuzz_target!(|body: &[u8]| {
    let verifier = verifier();
    let as_header = body.trim_ascii();
    assert_eq!(
        parse_header(Some(body)).is_ok(),
        as_header.len() == 64
            && as_header
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(HEADER, HeaderValue::from_str(&verifier.sign(body)).unwrap());
    match admit(verifier, &headers, body) {
        Ok(admitted) => {
            assert!(!admitted.key.is_empty());
            let event = payload::parse(body).expect("an admitted body parses");
            let settings = MessageSettings {
                dashboard_url: Some("https://sonarqube.example".into()),
            };
            let post = render(&event, &admitted.key, &settings);
            assert!(!post.text.is_empty());
        }
        Err(rejection @ Rejection::Malformed(_)) => {
            assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
        }
        Err(other) => panic!("a signed JSON body was refused for another reason: {other:?}"),
    }
    // Unsigned, the same body is refused before it is examined.
    headers.remove(HEADER);
    assert_eq!(
        admit(verifier, &headers, body).map_err(|r| r.status()),
        Err(StatusCode::UNAUTHORIZED)
    );
});
