//! The JCasC YAML edit: sets `unclassified.mattermostNotifier` (endpoint, room, buildServerUrl,
//! icon) in a file the user owns, through yaml-edit's lossless syntax tree, so every other key,
//! comment, blank line and the order stay as they were. Pure text in, text out; the caller reads
//! and writes the file.
//!
//! Safety nets around the library: its panics become errors, the result is parsed again and must
//! carry exactly the wanted values, and every line of the original that cityd does not own must
//! still be in the result, in order. Anything else is refused, never written.

use std::str::FromStr;

use thiserror::Error;
use yaml_edit::{Document, Mapping, ScalarValue, YamlFile};

/// The top-level JCasC key of plugin settings that have no root of their own.
pub const UNCLASSIFIED: &str = "unclassified";
/// The Mattermost Notification plugin's JCasC symbol.
pub const NOTIFIER: &str = "mattermostNotifier";

/// The plugin's global settings cityd owns. Other keys of the mapping (proxy settings) are left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    /// The incoming-webhook URL, as a JCasC variable: `${MATTERMOST_JENKINS_WEBHOOK_URL}`.
    pub endpoint: String,
    /// Channel, or `username@channel`.
    pub room: String,
    /// Jenkins' root URL with a trailing slash.
    pub build_server_url: String,
    pub icon: String,
}

impl Notifier {
    /// The (key, value) pairs in the order they are written into a fresh mapping.
    pub fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            ("endpoint", self.endpoint.as_str()),
            ("room", self.room.as_str()),
            ("buildServerUrl", self.build_server_url.as_str()),
            ("icon", self.icon.as_str()),
        ]
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JcascError {
    #[error("it is not valid YAML: {0}; fix the file, then run again")]
    Parse(String),
    #[error(
        "it holds {0} YAML documents; JCasC reads one document per file, so cityd edits only single-document files (split the file)"
    )]
    MultipleDocuments(usize),
    #[error(
        "{path} is not a mapping, so cityd cannot add {NOTIFIER} under it without replacing what is there; make it a mapping (key: value lines)"
    )]
    NotAMapping { path: &'static str },
    #[error(
        "the edit did not come out as intended ({0}); the file was left untouched: set unclassified.mattermostNotifier by hand"
    )]
    Verify(String),
}

/// The outcome of an edit: the new text and which settings changed (empty = the text is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub text: String,
    pub changed: Vec<&'static str>,
}

impl Edit {
    pub fn is_unchanged(&self) -> bool {
        self.changed.is_empty()
    }
}

/// Sets the notifier settings in `text`. Values that already match (whatever their quoting) are
/// not touched; changed or new values are written double-quoted.
pub fn set_mattermost_notifier(text: &str, want: &Notifier) -> Result<Edit, JcascError> {
    let edit = std::panic::catch_unwind(|| edit(text, want)).map_err(|_| {
        JcascError::Verify("the YAML editor failed on this file's structure".into())
    })??;
    if edit.is_unchanged() {
        return Ok(edit);
    }
    verify(text, &edit, want)?;
    Ok(edit)
}

/// Reads `unclassified.mattermostNotifier`'s scalar settings as strings; `None` when absent.
pub fn read_mattermost_notifier(text: &str) -> Result<Option<Vec<(String, String)>>, JcascError> {
    std::panic::catch_unwind(|| read(text))
        .map_err(|_| JcascError::Parse("the YAML parser failed on this file".into()))?
}

fn parse(text: &str) -> Result<(YamlFile, Option<Document>), JcascError> {
    let file = YamlFile::from_str(text).map_err(|e| JcascError::Parse(e.to_string()))?;
    let docs: Vec<Document> = file.documents().collect();
    match docs.len() {
        0 => Ok((file, None)),
        1 => Ok((file, docs.into_iter().next())),
        n => Err(JcascError::MultipleDocuments(n)),
    }
}

fn read(text: &str) -> Result<Option<Vec<(String, String)>>, JcascError> {
    let (_file, doc) = parse(text)?;
    let Some(root) = doc.and_then(|d| d.as_mapping()) else {
        return Ok(None);
    };
    let Some(notifier) = root
        .get_mapping(UNCLASSIFIED)
        .and_then(|u| u.get_mapping(NOTIFIER))
    else {
        return Ok(None);
    };
    Ok(Some(
        notifier
            .iter()
            .filter_map(|(k, v)| Some((scalar_text(&k)?, scalar_text(&v)?)))
            .collect(),
    ))
}

fn scalar_text(node: &yaml_edit::YamlNode) -> Option<String> {
    node.as_scalar().map(|s| s.as_string())
}

/// What a key holds, as far as the edit cares.
enum Slot {
    Missing,
    Mapping(Mapping),
    Other,
}

fn slot(parent: &Mapping, key: &str) -> Slot {
    match parent.get(key) {
        None => Slot::Missing,
        Some(node) => {
            if let Some(m) = node.as_mapping() {
                Slot::Mapping(m.clone())
            } else if node.as_scalar().is_some_and(|s| s.is_null()) {
                // `unclassified:` with nothing under it, or `~` / `null`: nothing to keep.
                Slot::Missing
            } else {
                Slot::Other
            }
        }
    }
}

fn edit(text: &str, want: &Notifier) -> Result<Edit, JcascError> {
    let all_keys: Vec<&'static str> = want.pairs().iter().map(|(k, _)| *k).collect();
    let (file, doc) = parse(text)?;
    let root = match doc {
        None => return Ok(append_block(text, want, all_keys)),
        Some(doc) => match doc.as_mapping() {
            Some(root) => root,
            None if document_is_empty(&doc) => return Ok(append_block(text, want, all_keys)),
            None => {
                return Err(JcascError::NotAMapping {
                    path: "the document root",
                });
            }
        },
    };
    let unclassified = match slot(&root, UNCLASSIFIED) {
        Slot::Mapping(m) => m,
        Slot::Other => {
            return Err(JcascError::NotAMapping { path: UNCLASSIFIED });
        }
        Slot::Missing => {
            let fresh = fresh_mapping(&block(want, 0, true))?;
            root.set(UNCLASSIFIED, &fresh);
            return Ok(Edit {
                text: file.to_string(),
                changed: all_keys,
            });
        }
    };
    let notifier = match slot(&unclassified, NOTIFIER) {
        Slot::Mapping(m) => m,
        Slot::Other => {
            return Err(JcascError::NotAMapping {
                path: "unclassified.mattermostNotifier",
            });
        }
        Slot::Missing => {
            let fresh = fresh_mapping(&block(want, 0, false))?;
            unclassified.set(NOTIFIER, &fresh);
            return Ok(Edit {
                text: file.to_string(),
                changed: all_keys,
            });
        }
    };
    let mut changed = Vec::new();
    for (key, value) in want.pairs() {
        let current = notifier
            .get(key)
            .and_then(|n| n.as_scalar().map(|s| s.as_string()));
        if current.as_deref() != Some(value) {
            notifier.set(key, ScalarValue::double_quoted(value));
            changed.push(key);
        }
    }
    let text = if changed.is_empty() {
        text.to_string()
    } else {
        file.to_string()
    };
    Ok(Edit { text, changed })
}

fn document_is_empty(doc: &Document) -> bool {
    doc.as_sequence().is_none()
        && doc.as_tagged().is_none()
        && doc.as_scalar().is_none_or(|s| s.is_null())
}

fn fresh_mapping(yaml: &str) -> Result<Mapping, JcascError> {
    Document::from_str(yaml)
        .ok()
        .and_then(|d| d.as_mapping())
        .ok_or_else(|| JcascError::Verify("cannot build the new mapping".into()))
}

/// A YAML double-quoted scalar of `value`.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The notifier block as YAML text: the settings (at `indent`), or the whole `mattermostNotifier:`
/// mapping when `with_key`.
fn block(want: &Notifier, indent: usize, with_key: bool) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    let inner = if with_key {
        out.push_str(&format!("{pad}{NOTIFIER}:\n"));
        format!("{pad}  ")
    } else {
        pad
    };
    for (key, value) in want.pairs() {
        out.push_str(&format!("{inner}{key}: {}\n", quoted(value)));
    }
    out
}

/// For a file without any YAML content (empty, or comments only): keep it and append the section.
fn append_block(text: &str, want: &Notifier, changed: Vec<&'static str>) -> Edit {
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{UNCLASSIFIED}:\n"));
    out.push_str(&block(want, 2, true));
    Edit { text: out, changed }
}

/// The result must parse, carry the wanted values, and keep every line cityd does not own in order.
fn verify(original: &str, edit: &Edit, want: &Notifier) -> Result<(), JcascError> {
    let got = read(&edit.text)
        .map_err(|e| JcascError::Verify(format!("the result does not parse: {e}")))?
        .ok_or_else(|| JcascError::Verify(format!("the result has no {NOTIFIER}")))?;
    for (key, value) in want.pairs() {
        let found = got.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        if found != Some(value) {
            return Err(JcascError::Verify(format!(
                "{key} reads back as {found:?} instead of {value:?}"
            )));
        }
    }
    let owned = |line: &str| {
        let t = line.trim_start();
        t.starts_with(&format!("{UNCLASSIFIED}:"))
            || t.starts_with(&format!("{NOTIFIER}:"))
            || edit.changed.iter().any(|k| t.starts_with(&format!("{k}:")))
    };
    let mut result = edit.text.lines();
    for line in original.lines().filter(|l| !owned(l)) {
        if !result.any(|r| r == line) {
            return Err(JcascError::Verify(format!(
                "the line {line:?} would be lost or moved"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn want() -> Notifier {
        Notifier {
            endpoint: "${MATTERMOST_JENKINS_WEBHOOK_URL}".into(),
            room: "builds".into(),
            build_server_url: "https://jenkins.cicd.local:10400/".into(),
            icon: "https://jenkins.cicd.local:10400/favicon.ico".into(),
        }
    }

    const NOTIFIER_LINES: &str = "  mattermostNotifier:\n    endpoint: \"${MATTERMOST_JENKINS_WEBHOOK_URL}\"\n    room: \"builds\"\n    buildServerUrl: \"https://jenkins.cicd.local:10400/\"\n    icon: \"https://jenkins.cicd.local:10400/favicon.ico\"\n";

    #[test]
    fn adds_the_notifier_under_an_existing_unclassified_keeping_everything_else() {
        let text = "# controller\njenkins:\n  numExecutors: 0   # no builds here\n\nunclassified:\n  # where Jenkins lives\n  location:\n    url: \"https://j/\"\n\ntool:\n  git: {}\n";
        let edit = set_mattermost_notifier(text, &want()).unwrap();
        assert_eq!(edit.changed.len(), 4);
        let expected = text.replace(
            "    url: \"https://j/\"\n",
            &format!("    url: \"https://j/\"\n{NOTIFIER_LINES}"),
        );
        assert_eq!(edit.text, expected);
        let again = set_mattermost_notifier(&edit.text, &want()).unwrap();
        assert!(again.is_unchanged());
        assert_eq!(again.text, edit.text);
    }

    #[test]
    fn adds_unclassified_when_missing() {
        let text = "jenkins:\n  systemMessage: \"hi\"\n# last words\n";
        let edit = set_mattermost_notifier(text, &want()).unwrap();
        assert!(edit.text.starts_with(text), "{}", edit.text);
        assert!(
            edit.text
                .ends_with(&format!("unclassified:\n{NOTIFIER_LINES}")),
            "{}",
            edit.text
        );
    }

    #[test]
    fn empty_and_comment_only_files_get_the_section_appended() {
        for text in ["", "# nothing yet\n", "# no newline"] {
            let edit = set_mattermost_notifier(text, &want()).unwrap();
            assert!(edit.text.starts_with(text));
            assert_eq!(
                read_mattermost_notifier(&edit.text).unwrap().unwrap().len(),
                4
            );
        }
    }

    #[test]
    fn existing_values_are_replaced_in_place_with_comments_and_extra_keys_kept() {
        let text = "unclassified:\n  mattermostNotifier:\n    useCustomProxy: false   # direct\n    endpoint: 'old'   # the hook\n    room: \"engineering@builds\"\n    icon: \"https://jenkins.cicd.local:10400/favicon.ico\"\n    buildServerUrl: https://jenkins.cicd.local:10400/\n  location:\n    url: \"u\"\n";
        let edit = set_mattermost_notifier(text, &want()).unwrap();
        assert_eq!(edit.changed, ["endpoint", "room"]);
        assert!(edit.text.contains("    useCustomProxy: false   # direct\n"));
        assert!(
            edit.text
                .contains("    endpoint: \"${MATTERMOST_JENKINS_WEBHOOK_URL}\"   # the hook\n"),
            "{}",
            edit.text
        );
        // Matching values keep their quoting (or lack of it).
        assert!(
            edit.text
                .contains("    buildServerUrl: https://jenkins.cicd.local:10400/\n")
        );
        assert!(edit.text.ends_with("  location:\n    url: \"u\"\n"));
    }

    #[test]
    fn null_unclassified_is_filled() {
        let edit = set_mattermost_notifier("unclassified:\njenkins:\n  a: 1\n", &want()).unwrap();
        assert!(edit.text.ends_with("jenkins:\n  a: 1\n"), "{}", edit.text);
        assert_eq!(
            read_mattermost_notifier(&edit.text).unwrap().unwrap().len(),
            4
        );
    }

    #[test]
    fn values_that_need_escaping_survive() {
        let mut w = want();
        w.room = "jenkins@builds".into();
        w.icon = "https://h/a \"b\" \\c.png".into();
        let edit = set_mattermost_notifier("jenkins: {}\n", &w).unwrap();
        let got = read_mattermost_notifier(&edit.text).unwrap().unwrap();
        assert!(got.contains(&("icon".into(), w.icon.clone())), "{got:?}");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        assert!(matches!(
            set_mattermost_notifier("unclassified: [a, b]\n", &want()),
            Err(JcascError::NotAMapping {
                path: "unclassified"
            })
        ));
        assert!(matches!(
            set_mattermost_notifier("unclassified:\n  mattermostNotifier: off\n", &want()),
            Err(JcascError::NotAMapping { .. })
        ));
        assert!(matches!(
            set_mattermost_notifier("- a\n- b\n", &want()),
            Err(JcascError::NotAMapping { .. })
        ));
        assert!(matches!(
            set_mattermost_notifier("a: 1\n---\nb: 2\n", &want()),
            Err(JcascError::MultipleDocuments(2))
        ));
        assert!(matches!(
            set_mattermost_notifier("a: [unclosed\n", &want()),
            Err(JcascError::Parse(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever other sections and comments a file holds, they survive the edit line for line,
        /// and a second edit changes nothing.
        #[test]
        fn other_lines_survive(
            sections in proptest::collection::vec(("[a-z]{1,8}", "[a-z]{1,8}", "[a-z0-9 ]{0,12}", proptest::bool::ANY), 0..6),
            put_unclassified_first in proptest::bool::ANY,
        ) {
            let mut text = String::new();
            if put_unclassified_first {
                text.push_str("unclassified:\n  location:\n    url: \"u\"\n");
            }
            for (i, (key, sub, value, comment)) in sections.iter().enumerate() {
                if *comment {
                    text.push_str(&format!("# about {key}\n"));
                }
                text.push_str(&format!("k{i}{key}:\n  {sub}: \"{value}\"\n"));
            }
            let edit = set_mattermost_notifier(&text, &want()).unwrap();
            let mut out = edit.text.lines();
            for line in text.lines() {
                prop_assert!(out.any(|l| l == line), "lost {:?} in\n{}", line, edit.text);
            }
            let again = set_mattermost_notifier(&edit.text, &want()).unwrap();
            prop_assert!(again.is_unchanged());
        }

        /// Files in either house style (2 or 4 spaces), with a notifier holding any subset of the
        /// settings (some already right, some stale, plus a key cityd does not own): every line
        /// cityd does not own survives, the result reads back as wanted, and a second edit is a no-op.
        #[test]
        fn existing_notifiers_in_any_indentation_converge(
            indent in prop_oneof![Just(2usize), Just(4usize)],
            present in proptest::collection::vec((0usize..4, proptest::bool::ANY), 0..4),
            comment_between in proptest::bool::ANY,
            trailing in proptest::bool::ANY,
        ) {
            let pad = " ".repeat(indent);
            let w = want();
            let pairs = w.pairs();
            let mut text = format!("jenkins:\n{pad}numExecutors: 0\nunclassified:\n{pad}location:\n{pad}{pad}url: \"u\"\n");
            text.push_str(&format!("{pad}{NOTIFIER}:\n{pad}{pad}useCustomProxy: false  # direct\n"));
            let mut seen = std::collections::BTreeSet::new();
            for (i, right) in present {
                if !seen.insert(i) { continue; }
                let (key, value) = pairs[i];
                let value = if right { value.to_string() } else { "stale".to_string() };
                text.push_str(&format!("{pad}{pad}{key}: \"{value}\"\n"));
                if comment_between {
                    text.push_str(&format!("{pad}{pad}# after {key}\n"));
                }
            }
            if trailing {
                text.push_str("tool:\n  git: {}\n");
            }
            let edit = set_mattermost_notifier(&text, &w).unwrap();
            let owned = |l: &str| pairs.iter().any(|(k, _)| l.trim_start().starts_with(&format!("{k}:")));
            let mut out = edit.text.lines();
            for line in text.lines().filter(|l| !owned(l)) {
                prop_assert!(out.any(|l| l == line), "lost {:?} in\n{}", line, edit.text);
            }
            let got = read_mattermost_notifier(&edit.text).unwrap().unwrap();
            for (key, value) in pairs {
                prop_assert!(got.contains(&(key.to_string(), value.to_string())), "{key} in\n{}", edit.text);
            }
            prop_assert!(got.contains(&("useCustomProxy".to_string(), "false".to_string())));
            prop_assert!(set_mattermost_notifier(&edit.text, &w).unwrap().is_unchanged());
        }

        /// Arbitrary input never panics: it is edited or refused.
        #[test]
        fn arbitrary_text_never_panics(text in "[a-z:#\\- \n\"'{}\\[\\],]{0,120}") {
            let _ = set_mattermost_notifier(&text, &want());
        }
    }
}
