//! Where each value of the effective city came from (the city file or the embedded default), and
//! the TOML `cityd config show` prints with the file's values marked.

use std::collections::BTreeSet;

use serde::Serialize;

/// The comment that follows a value the city file set.
pub const FROM_FILE: &str = "# from file";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Origins {
    /// The file laid over the embedded default; `None` when the embedded default is used alone.
    pub file: Option<String>,
    /// Dotted paths of the values the file set (`mattermost.port`; an array as a whole:
    /// `channels`, `lan.addresses`). Every other value is the embedded default's.
    pub from_file: BTreeSet<String>,
}

impl Origins {
    pub fn is_from_file(&self, path: &str) -> bool {
        self.from_file.contains(path)
    }

    /// `text` (the effective city as `toml::to_string` writes it) with [`FROM_FILE`] after each
    /// value the file set: a `key = value` line, or the `[[header]]` of each element of an array
    /// the file set. Comments only, so the result is still the same TOML.
    pub fn annotate(&self, text: &str) -> String {
        let mut out = String::new();
        if let Some(file) = &self.file {
            out.push_str(&format!(
                "# The effective city: {file} laid over the embedded default.\n\
                 # Values marked \"{FROM_FILE}\" come from {file}; the others are defaults.\n"
            ));
        }
        let mut table = String::new();
        let mut in_array = false;
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let trimmed = line.trim();
            let mut entry = line.to_string();
            let marked = if let Some(header) = header_of(trimmed, "[[", "]]") {
                (table, in_array) = (header, true);
                self.is_from_file(&table)
            } else if let Some(header) = header_of(trimmed, "[", "]") {
                (table, in_array) = (header, false);
                false
            } else if trimmed.is_empty() || trimmed.starts_with('#') {
                false
            } else {
                // A value may span lines (a string holding a newline): the mark goes after its end.
                while entry.parse::<toml::Table>().is_err() {
                    let Some(next) = lines.next() else { break };
                    entry.push('\n');
                    entry.push_str(next);
                }
                let key = trimmed.split('=').next().unwrap_or_default().trim();
                let path = if table.is_empty() {
                    key.to_string()
                } else {
                    format!("{table}.{key}")
                };
                !in_array && self.is_from_file(&path)
            };
            out.push_str(&entry);
            if marked {
                out.push_str("  ");
                out.push_str(FROM_FILE);
            }
            out.push('\n');
        }
        out
    }
}

fn header_of(line: &str, open: &str, close: &str) -> Option<String> {
    let inner = line.strip_prefix(open)?.strip_suffix(close)?;
    Some(inner.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(paths: &[&str]) -> Origins {
        Origins {
            file: Some("city.toml".into()),
            from_file: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn marks_values_and_array_elements_the_file_set_and_stays_the_same_toml() {
        let text = "domain = \"x\"\n\n[t]\nport = 1\nhost = \"h\"\n\n[a.b]\nc = 1\n\n\
                    [[list]]\nname = \"one\"\n\n[[list]]\nname = \"two\"\n";
        let shown = origins(&["domain", "t.port", "a.b.c", "list"]).annotate(text);
        assert!(shown.contains("domain = \"x\"  # from file\n"), "{shown}");
        assert!(shown.contains("port = 1  # from file\n"), "{shown}");
        assert!(shown.contains("host = \"h\"\n"), "{shown}");
        assert!(shown.contains("c = 1  # from file\n"), "{shown}");
        assert_eq!(shown.matches("[[list]]  # from file").count(), 2, "{shown}");
        assert!(shown.contains("name = \"one\"\n"), "{shown}");
        assert_eq!(
            shown.parse::<toml::Table>().unwrap(),
            text.parse::<toml::Table>().unwrap()
        );
    }

    #[test]
    fn a_value_spanning_lines_is_marked_after_its_end() {
        let text = "[t]\npurpose = \"\"\"\nport = 2\n\"\"\"\nport = 1\n";
        let shown = origins(&["t.purpose"]).annotate(text);
        assert!(
            shown.contains("port = 2\n\"\"\"  # from file\nport = 1\n"),
            "{shown}"
        );
        assert_eq!(
            shown.parse::<toml::Table>().unwrap(),
            text.parse::<toml::Table>().unwrap()
        );
    }

    #[test]
    fn the_embedded_default_alone_is_shown_unchanged() {
        let text = "domain = \"x\"\n\n[t]\nport = 1\n";
        assert_eq!(Origins::default().annotate(text), text);
    }
}
