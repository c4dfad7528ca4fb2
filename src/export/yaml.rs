//! A small YAML writer for the manifests: block style from a JSON value, every string quoted as a
//! JSON string (valid YAML double-quoted scalars, so nothing is read back as a number, a bool or
//! `null`), multi-line text as literal blocks. The output depends only on the value, so an
//! unchanged city exports byte-identical files.

use serde_json::Value;

/// Several documents, each opened with `---`.
pub fn documents(values: &[Value]) -> String {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_yaml(value));
    }
    out
}

/// One document (a mapping or a sequence at the top level).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => mapping(map, 0, &mut out),
        Value::Array(items) if !items.is_empty() => sequence(items, 0, &mut out),
        other => {
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
    out
}

fn pad(indent: usize) -> String {
    " ".repeat(indent)
}

/// A key written plain when YAML cannot mistake it for anything else, else as a JSON string.
fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
        );
    if plain {
        k.to_string()
    } else {
        serde_json::to_string(k).expect("a string serializes")
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        // JSON's escapes are a subset of YAML's double-quoted ones.
        other => serde_json::to_string(other).expect("a scalar serializes"),
    }
}

/// Text that a literal block (`|`, clip chomping) carries exactly: ends with one line break, no
/// line starts with white space (that would need an indentation indicator), only printable text.
fn fits_literal_block(text: &str) -> bool {
    text.contains('\n')
        && text.ends_with('\n')
        && !text.ends_with("\n\n")
        && text
            .lines()
            .all(|l| !l.starts_with([' ', '\t']) && !l.ends_with([' ', '\t']))
        && !text.chars().any(|c| c.is_control() && c != '\n')
}

/// `value` after `prefix` (a `key:` or a `-`), continuing on the next lines at `indent`.
fn entry(prefix: &str, value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push_str(prefix);
            out.push('\n');
            mapping(map, indent, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str(prefix);
            out.push('\n');
            sequence(items, indent, out);
        }
        Value::String(text) if fits_literal_block(text) => {
            out.push_str(prefix);
            out.push_str(" |\n");
            for line in text.lines() {
                if !line.is_empty() {
                    out.push_str(&pad(indent));
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        other => {
            out.push_str(prefix);
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn mapping(map: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in map {
        let prefix = format!("{}{}:", pad(indent), key(k));
        entry(&prefix, v, indent + 2, out);
    }
}

fn sequence(items: &[Value], indent: usize, out: &mut String) {
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key shares the dash's line; the rest line up under it.
                let mut inner = String::new();
                mapping(map, indent + 2, &mut inner);
                out.push_str(&pad(indent));
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            }
            other => entry(&format!("{}-", pad(indent)), other, indent + 2, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_style_with_quoted_strings_and_literal_blocks() {
        let doc = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "x", "labels": {"app.kubernetes.io/name": "cityd"}},
            "data": {"tls.crt": "QUJD"},
            "list": [{"name": "A", "value": "true"}, {"name": "B", "valueFrom": {"secretKeyRef": {"key": "k", "name": "s"}}}],
            "ports": [1, 2],
            "empty": {},
            "none": [],
            "conf": "a=1\n\nb=2\n",
            "yes": "no",
        });
        let text = to_yaml(&doc);
        assert_eq!(
            text,
            "apiVersion: \"v1\"\nconf: |\n  a=1\n\n  b=2\ndata:\n  tls.crt: \"QUJD\"\nempty: {}\nkind: \"Secret\"\n\
             list:\n  - name: \"A\"\n    value: \"true\"\n  - name: \"B\"\n    valueFrom:\n      secretKeyRef:\n        key: \"k\"\n        name: \"s\"\n\
             metadata:\n  labels:\n    app.kubernetes.io/name: \"cityd\"\n  name: \"x\"\nnone: []\nports:\n  - 1\n  - 2\n\"yes\": \"no\"\n"
        );
    }

    #[test]
    fn text_a_literal_block_cannot_carry_exactly_is_quoted() {
        for text in [
            "no newline",
            "two\n\n",
            " leading\n",
            "trailing \n",
            "tab\there\n",
        ] {
            let out = to_yaml(&json!({ "k": text }));
            assert_eq!(
                out,
                format!("k: {}\n", serde_json::to_string(text).unwrap())
            );
        }
    }
}
