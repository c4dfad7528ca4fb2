//! The validation rules several sections share (names, URLs, lengths, channel references, Docker
//! names, pinned images), each written once, and the `Problems` list every section reports into.

use std::collections::BTreeSet;

use serde::Serialize;

/// One validation failure: which field, what value, which rule, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: String,
    pub value: String,
    pub rule: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.rule)
    }
}

/// The problems found so far; each section's `check` adds to it.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    pub fn into_vec(self) -> Vec<Problem> {
        self.0
    }

    pub fn bad(
        &mut self,
        field: impl Into<String>,
        value: impl Into<String>,
        rule: impl Into<String>,
    ) {
        self.0.push(Problem {
            field: field.into(),
            value: value.into(),
            rule: rule.into(),
        });
    }

    /// Records `rule` against the field when a rule function found one.
    pub fn rule(&mut self, field: impl Into<String>, value: &str, rule: Option<&str>) {
        if let Some(rule) = rule {
            self.bad(field, value, rule);
        }
    }

    /// A name shown in Mattermost or SonarQube: 1 to `max` characters (characters, not bytes).
    /// `why`, when given, follows the rule in parentheses.
    pub fn length(&mut self, field: impl Into<String>, text: &str, max: usize, why: Option<&str>) {
        if (1..=max).contains(&text.chars().count()) {
            return;
        }
        let rule = match why {
            Some(why) => format!("must be 1-{max} characters ({why})"),
            None => format!("must be 1-{max} characters"),
        };
        self.bad(field, format!("{text:?}"), rule);
    }

    /// A free text of at most `max` characters; the problem names its length rather than repeat it.
    pub fn at_most(&mut self, field: impl Into<String>, text: &str, max: usize) {
        let len = text.chars().count();
        if len > max {
            self.bad(
                field,
                format!("{len} characters"),
                format!("must be at most {max} characters"),
            );
        }
    }

    /// A reference to one of the city's `[[channels]]`.
    pub fn channel_ref(&mut self, field: impl Into<String>, name: &str, channels: &BTreeSet<&str>) {
        if !channels.contains(name) {
            self.bad(
                field,
                name,
                "names no channel of the city; add it under [[channels]] or fix the name",
            );
        }
    }

    /// A port the city listens on: 0 means "any", which no client could find.
    pub fn port(&mut self, field: &str, port: u16) {
        if port == 0 {
            self.bad(field, "0", "must be a port between 1 and 65535");
        }
    }
}

/// Every string value of the description (at any depth) free of control characters: a newline,
/// a carriage return or a NUL in any field would split a line of a rendered file (Mattermost's env
/// file, coturn's config, JCasC) or the value cityd sends. One rule for every field, so a field
/// added later is covered too; the problem names the field by its dotted path.
pub(super) fn control_characters(table: &toml::Table, out: &mut Problems) {
    fn walk(value: &toml::Value, at: &str, out: &mut Problems) {
        match value {
            toml::Value::String(text) if text.chars().any(char::is_control) => out.bad(
                at,
                format!("{text:?}"),
                "must not contain control characters (newline, carriage return, tab, NUL, ...): they would split the line of a rendered file",
            ),
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{at}[{i}]"), out);
                }
            }
            toml::Value::Table(table) => {
                for (key, item) in table {
                    let path = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    walk(item, &path, out);
                }
            }
            _ => {}
        }
    }
    for (key, value) in table {
        walk(value, key, out);
    }
}

/// A DNS name of letters, digits, '-' and '.', each label 1-63 characters, not starting or
/// ending with '-'.
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// An `http://` or `https://` URL with a host and no whitespace.
pub fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && !s.contains(char::is_whitespace))
}

/// [`is_http_url`] as a rule, for the URLs the plugins are configured with.
pub fn http_url_rule(url: &str) -> Option<&'static str> {
    (!is_http_url(url)).then_some(
        "must be an http:// or https:// URL with a host, e.g. https://jenkins.cicd.local:8080",
    )
}

/// A file name in the vault (`<state>/secrets/<name>`): one the vault accepts, and no whitespace
/// (the names also travel through flags and logs).
pub fn is_vault_name(s: &str) -> bool {
    crate::secrets::is_plain_file_name(s) && !s.contains(char::is_whitespace)
}

/// Usernames Mattermost refuses (model/user.go restricted names).
const RESERVED_USERNAMES: &[&str] = &["all", "channel", "here", "matterbot", "system"];

/// A Mattermost username (the admin, the bots).
pub fn username_rule(name: &str) -> Option<&'static str> {
    if !(3..=22).contains(&name.len()) {
        return Some("Mattermost usernames are 3-22 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some("Mattermost usernames start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
    {
        return Some("Mattermost usernames use only a-z, 0-9, '.', '-' and '_'");
    }
    if RESERVED_USERNAMES.contains(&name) {
        return Some("Mattermost reserves this username (all, channel, here, matterbot, system)");
    }
    None
}

/// The name of a Docker container, volume or network.
///
/// Docker's own grammar, `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (the Engine's rule for container and
/// volume names), upper case included. This is the one rule because every name cityd checks
/// reaches the Engine API as written: `docker.prefix` starts the container, volume and network
/// names `up` creates, `docker.network` is a network name, and `integrations.jenkins.container`
/// names a container the user already has. Nothing in cityd folds case (containers are inspected
/// by exact name, `down` matches the `org.cityd.city` label exactly), so a lowercase-only rule
/// would refuse names the Engine accepts (an existing container called `Jenkins`), while the
/// looser "any of a-z0-9-_." rule let a name start with '-', '_' or '.', which the Engine refuses.
pub fn docker_name_rule(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    (!(starts_well && rest_ok && name.len() >= 2)).then_some(
        "must be a Docker name: a letter or digit, then letters, digits, '_', '.' or '-' ([a-zA-Z0-9][a-zA-Z0-9_.-]+)",
    )
}

/// How an image reference is pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImagePin<'a> {
    /// `repository:tag`; the tag may still be a moving one (`latest`), which the caller judges.
    Tag(&'a str),
    /// `repository[:tag]@sha256:...`: pinned by content.
    Digest,
    /// No tag and no digest: whatever the registry serves today.
    Unpinned,
}

/// Reads the pin of `repository[:tag][@sha256:digest]`: a digest pins whatever the tag says; a
/// ':' inside the registry's host:port part is not a tag.
pub fn image_pin(image: &str) -> ImagePin<'_> {
    if image.contains("@sha256:") {
        return ImagePin::Digest;
    }
    match image.rsplit_once(':') {
        Some((repo, tag)) if !repo.is_empty() && !tag.contains('/') => ImagePin::Tag(tag),
        _ => ImagePin::Unpinned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_follow_the_engines_grammar() {
        for ok in [
            "cicd-net",
            "jenkins-controller",
            "Jenkins",
            "t1_city.a",
            "ab",
        ] {
            assert_eq!(docker_name_rule(ok), None, "{ok}");
        }
        for bad in ["", "a", "-net", "_x", ".x", "has space", "a/b", "é-net"] {
            assert!(docker_name_rule(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn image_pins() {
        assert_eq!(image_pin("coturn/coturn:4.6.3"), ImagePin::Tag("4.6.3"));
        assert_eq!(image_pin("registry:5000/coturn"), ImagePin::Unpinned);
        assert_eq!(image_pin("registry:5000/coturn:1"), ImagePin::Tag("1"));
        assert_eq!(image_pin("coturn/coturn@sha256:abc"), ImagePin::Digest);
        assert_eq!(image_pin("coturn/coturn"), ImagePin::Unpinned);
    }
}
