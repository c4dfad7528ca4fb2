//! The `docker run --env-file` dialect: a writer that only produces lines Docker reads back exactly,
//! a parser with Docker's semantics (quotes are part of the value), a lenient reader for blog-style
//! files, and a line-preserving upsert for files users own.
//!
//! Docker's rules (docker/cli `pkg/kvfile`): lines are split on `\n` (a trailing `\r` is dropped),
//! leading whitespace is trimmed, empty and `#` lines are skipped, the key is everything before the
//! first `=`, the value everything after it, verbatim: no quotes, escapes or interpolation.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EnvFileError {
    #[error(
        "env key {key:?} is not a valid variable name (letters, digits and '_', not starting with a digit)"
    )]
    BadKey { key: String },
    #[error(
        "the value of {key} contains a line break or NUL, which an env file cannot carry; remove it"
    )]
    BadValue { key: String },
    #[error(
        "the value of {key} starts with whitespace, which Docker keeps but most readers strip; remove it"
    )]
    LeadingSpace { key: String },
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
}

/// One `KEY=value` line as Docker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub key: String,
    pub value: String,
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks that `KEY=value` survives a Docker round trip unchanged.
pub fn check(key: &str, value: &str) -> Result<(), EnvFileError> {
    if !valid_key(key) {
        return Err(EnvFileError::BadKey { key: key.into() });
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(EnvFileError::BadValue { key: key.into() });
    }
    if value.starts_with(char::is_whitespace) {
        return Err(EnvFileError::LeadingSpace { key: key.into() });
    }
    Ok(())
}

/// Renders entries as an env file: one `KEY=value` per line, never quoted, with an optional header comment.
pub fn render<'a>(
    header: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<String, EnvFileError> {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    for (key, value) in entries {
        check(key, value)?;
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

/// Parses text exactly as `docker run --env-file` does. Lines without `=` (which Docker fills from its
/// own environment) are reported with an empty value.
pub fn parse_docker(text: &str) -> Result<Vec<Entry>, EnvFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        if key.contains(char::is_whitespace) {
            return Err(EnvFileError::Parse {
                line: i + 1,
                message: format!("variable {key:?} contains whitespace"),
            });
        }
        out.push(Entry {
            line: i + 1,
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    Ok(out)
}

/// How a blog-style value was quoted: Docker keeps these quotes, Compose and shells strip them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    None,
    Double,
    Single,
}

/// Strips one pair of matching surrounding quotes (what a shell or Compose would do) and says which.
pub fn unquote(value: &str) -> (&str, Quoting) {
    let v = value.trim_end();
    for (q, kind) in [('"', Quoting::Double), ('\'', Quoting::Single)] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return (&v[1..v.len() - 1], kind);
        }
    }
    (value, Quoting::None)
}

/// Reads a blog-style env file (shell `export` prefixes allowed) with Docker's key rules and
/// returns raw values; callers decide what quoting means for them.
pub fn parse_lenient(text: &str) -> Vec<Entry> {
    text.split('\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, value) = line.split_once('=')?;
            valid_key(key.trim_end()).then(|| Entry {
                line: i + 1,
                key: key.trim_end().to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

/// Sets `key=value` in a user's env file text, keeping every other line, comment and the order:
/// every line assigning `key` is rewritten in place (Docker lets the last one win, so a stale later
/// duplicate would otherwise be the value the container sees), or a line is appended. A line's own
/// ending (`\n` or `\r\n`) is kept.
pub fn upsert(text: &str, key: &str, value: &str) -> Result<String, EnvFileError> {
    check(key, value)?;
    let new_line = format!("{key}={value}");
    let mut replaced = false;
    let mut lines: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let trimmed = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        if trimmed.split_once('=').is_some_and(|(k, _)| k == key) {
            let ending = &line[body.len()..];
            lines.push(format!(
                "{new_line}{}",
                if ending.is_empty() { "\n" } else { ending }
            ));
            replaced = true;
        } else {
            lines.push(line.to_string());
        }
    }
    let mut out = lines.concat();
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&new_line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_are_part_of_the_value_for_docker() {
        let entries = parse_docker("A=\"x y\"\n  # c\n\nB='1'\r\nC=\n").unwrap();
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(got, [("A", "\"x y\""), ("B", "'1'"), ("C", "")]);
        assert_eq!(unquote("\"x y\""), ("x y", Quoting::Double));
        assert_eq!(unquote("plain"), ("plain", Quoting::None));
    }

    #[test]
    fn render_refuses_what_docker_cannot_carry() {
        assert!(matches!(
            render("", [("A", "a\nb")]),
            Err(EnvFileError::BadValue { .. })
        ));
        assert!(matches!(
            render("", [("1A", "x")]),
            Err(EnvFileError::BadKey { .. })
        ));
        assert!(matches!(
            render("", [("A", " x")]),
            Err(EnvFileError::LeadingSpace { .. })
        ));
    }

    #[test]
    fn upsert_keeps_comments_order_and_other_lines() {
        let text = "# jenkins env\nJAVA_OPTS=-Xmx1g\n\n# webhook\nMATTERMOST_JENKINS_WEBHOOK_URL=old\nTZ=UTC";
        let out = upsert(text, "MATTERMOST_JENKINS_WEBHOOK_URL", "https://new").unwrap();
        assert_eq!(
            out,
            "# jenkins env\nJAVA_OPTS=-Xmx1g\n\n# webhook\nMATTERMOST_JENKINS_WEBHOOK_URL=https://new\nTZ=UTC"
        );
        let appended = upsert(text, "NEW", "1").unwrap();
        assert_eq!(appended, format!("{text}\nNEW=1\n"));
        assert_eq!(
            upsert(&out, "MATTERMOST_JENKINS_WEBHOOK_URL", "https://new").unwrap(),
            out
        );
    }

    #[test]
    fn upsert_rewrites_every_assignment_so_the_last_one_docker_uses_is_right() {
        let text = "A=1\r\nK=\"quoted\"\r\n# note\nexport K=stale\nB=2";
        let out = upsert(text, "K", "v").unwrap();
        assert_eq!(out, "A=1\r\nK=v\r\n# note\nK=v\nB=2");
        let docker = parse_docker(&out).unwrap();
        let last = docker.iter().rev().find(|e| e.key == "K").unwrap();
        assert_eq!(last.value, "v");
        assert!(matches!(
            upsert(text, "K", "a\nb"),
            Err(EnvFileError::BadValue { .. })
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Lines that do not assign the key come back byte for byte and in order.
        #[test]
        fn upsert_keeps_every_other_line(
            lines in proptest::collection::vec("[A-Za-z#=_0-9\"']{0,16}", 0..12),
            value in "[A-Za-z0-9:/._-]{1,20}",
        ) {
            let text = lines.join("\n");
            let out = upsert(&text, "KEY_X", &value).unwrap();
            let others = |t: &str| -> Vec<String> {
                t.split('\n')
                    .filter(|l| !l.trim_start().trim_start_matches("export ").starts_with("KEY_X="))
                    .map(String::from)
                    .collect()
            };
            let before = others(&text);
            let after = others(&out);
            // Appending may only add the empty piece after a new final newline.
            prop_assert!(after.len() >= before.len());
            prop_assert_eq!(&after[..before.len()], &before[..]);
            prop_assert!(after[before.len()..].iter().all(|l| l.is_empty()));
            let docker = parse_docker(&out).unwrap();
            let last = docker.iter().rev().find(|e| e.key == "KEY_X").unwrap();
            prop_assert_eq!(&last.value, &value);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever we render, Docker reads back exactly; whatever we refuse, Docker would have changed.
        #[test]
        fn rendered_values_round_trip_through_docker_semantics(
            pairs in proptest::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,12}", any::<String>()), 0..8)
        ) {
            match render("header", pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                Ok(text) => {
                    let back = parse_docker(&text).unwrap();
                    let back: Vec<_> = back.into_iter().map(|e| (e.key, e.value)).collect();
                    prop_assert_eq!(back, pairs);
                }
                Err(_) => prop_assert!(pairs.iter().any(|(_, v)| v.contains(['\n', '\r', '\0']) || v.starts_with(char::is_whitespace))),
            }
        }
    }
}
