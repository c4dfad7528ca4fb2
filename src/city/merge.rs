//! A city file laid over the embedded default: parsing the file (TOML, or the JSON the NixOS
//! module writes) into a table, merging it onto the default table, and noting what it set.
//!
//! The merge rules:
//! - tables merge key by key, recursively: a file holding `[mattermost] port = 9065` keeps every
//!   other `[mattermost]` value of the default;
//! - every other value replaces the default's whole, arrays included: `channels`, `bots`,
//!   `webhooks`, `lan.addresses`, `integrations.gitlab.events`. An array's elements have no key
//!   to pair them with the default's, and a list means "exactly these": a city listing two
//!   channels wants two channels, not the default's four with two edited. `bots = []` removes
//!   the default bots;
//! - a JSON `null` means "not set": the default applies (the NixOS module leaves unset options
//!   out, a hand-written JSON file may spell them null).
//!
//! Keys the default does not have are kept as written, so the deserializer refuses unknown ones
//! (`deny_unknown_fields`) and accepts the optional ones (`plugins.jenkins`, `mattermost.host`...).

use std::collections::BTreeSet;

use toml::{Table, Value};

/// The format of a city file's text: JSON when it starts with `{` (the NixOS module's form), else
/// TOML. Errors name it, so a JSON file's error never says "TOML".
pub(super) fn format_of(text: &str) -> &'static str {
    if text.trim_start().starts_with('{') {
        "JSON"
    } else {
        "TOML"
    }
}

/// Parses a city file's text in its [`format_of`]. The error is the parser's own message, which
/// names the line and column.
pub(super) fn parse(text: &str) -> Result<Table, String> {
    if format_of(text) == "JSON" {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match toml_of_json(json, "")? {
            Value::Table(table) => Ok(table),
            _ => Err("the top level must be an object".into()),
        }
    } else {
        text.parse::<Table>().map_err(|e| e.to_string())
    }
}

/// JSON to TOML values. An object member that is `null` is left out (unset); TOML has no null, so
/// a null anywhere else (inside an array) is an error naming where it is.
fn toml_of_json(json: serde_json::Value, at: &str) -> Result<Value, String> {
    use serde_json::Value as Json;
    Ok(match json {
        Json::Null => {
            return Err(format!(
                "{at}: null is allowed only as an object member (unset)"
            ));
        }
        Json::Bool(b) => Value::Boolean(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None if n.is_f64() => Value::Float(n.as_f64().unwrap_or_default()),
            None => return Err(format!("{at}: the number {n} is out of range")),
        },
        Json::String(s) => Value::String(s),
        Json::Array(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| toml_of_json(item, &format!("{at}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(members) => {
            let mut table = Table::new();
            for (key, member) in members {
                if !member.is_null() {
                    let value = toml_of_json(member, &join(at, &key))?;
                    table.insert(key, value);
                }
            }
            Value::Table(table)
        }
    })
}

/// Merges `file` onto `base` (see the module's rules) and returns the dotted paths of the values
/// the file set: each scalar, and each array as a whole (`channels`, `lan.addresses`).
pub(super) fn overlay(base: &mut Table, file: Table) -> BTreeSet<String> {
    let mut set = BTreeSet::new();
    overlay_at(base, file, "", &mut set);
    set
}

fn overlay_at(base: &mut Table, file: Table, at: &str, set: &mut BTreeSet<String>) {
    for (key, value) in file {
        let path = join(at, &key);
        match (base.get_mut(&key), value) {
            (Some(Value::Table(under)), Value::Table(over)) => overlay_at(under, over, &path, set),
            (_, value) => {
                leaves(&path, &value, set);
                base.insert(key, value);
            }
        }
    }
}

/// The paths of the values in `value`: itself, or for a table each of its values.
fn leaves(path: &str, value: &Value, set: &mut BTreeSet<String>) {
    match value {
        Value::Table(table) => {
            for (key, v) in table {
                leaves(&join(path, key), v, set);
            }
        }
        _ => {
            set.insert(path.to_string());
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        parse(text).unwrap()
    }

    #[test]
    fn tables_merge_key_by_key_and_note_what_the_file_set() {
        let mut base = table("a = 1\n[t]\nx = 1\ny = 2\n[t.deep]\nz = 3\n");
        let set = overlay(&mut base, table("[t]\ny = 20\n[t.deep]\nz = 30\nnew = 4\n"));
        assert_eq!(
            base,
            table("a = 1\n[t]\nx = 1\ny = 20\n[t.deep]\nz = 30\nnew = 4\n")
        );
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["t.deep.new", "t.deep.z", "t.y"]
        );
    }

    #[test]
    fn arrays_are_replaced_whole() {
        let mut base =
            table("list = [1, 2, 3]\n[[items]]\nname = \"a\"\n[[items]]\nname = \"b\"\n");
        let set = overlay(&mut base, table("list = [9]\n[[items]]\nname = \"c\"\n"));
        assert_eq!(base, table("list = [9]\n[[items]]\nname = \"c\"\n"));
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["items", "list"]);
        let mut base = table("list = [1]\n");
        overlay(&mut base, table("list = []\n"));
        assert_eq!(base, table("list = []\n"));
    }

    #[test]
    fn json_nulls_leave_the_default_and_nulls_in_arrays_are_refused() {
        let file = parse(r#"{"t": {"x": null, "y": 5}, "gone": null}"#).unwrap();
        assert_eq!(file, table("[t]\ny = 5\n"));
        let err = parse(r#"{"t": {"list": [1, null]}}"#).unwrap_err();
        assert!(err.contains("t.list[1]"), "{err}");
        assert!(parse("[1, 2]").unwrap_err().contains("line 1"));
        assert!(parse(" [1, 2]").is_err());
    }

    #[test]
    fn a_table_where_the_default_has_none_is_set_leaf_by_leaf() {
        let mut base = table("[p]\n");
        let set = overlay(
            &mut base,
            table("[p.jenkins]\nsource = \"/x\"\nsri = \"s\"\n"),
        );
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            ["p.jenkins.source", "p.jenkins.sri"]
        );
    }
}
