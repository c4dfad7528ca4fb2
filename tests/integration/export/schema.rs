//! A small validator for the structural OpenAPI v3 schemas Kubernetes uses (a CRD's
//! `openAPIV3Schema`, and the kinds' schemas written in `kinds.rs`): `type`, `properties` (a field
//! the schema does not declare is an error, since the API server would prune it silently),
//! `additionalProperties`, `required`, `items`, `enum`, `pattern`, `anyOf`, `format: int32`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `x-kubernetes-int-or-string` and
//! `x-kubernetes-preserve-unknown-fields`. Plus YAML read into JSON values.

use regex::Regex;
use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

/// Every document of a YAML stream, as JSON values.
pub fn yaml_documents(text: &str) -> Vec<Value> {
    YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
        .iter()
        .map(yaml_to_json)
        .collect()
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => json!(s),
        Yaml::Boolean(b) => json!(b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// Every way `value` breaks `schema`, each with its JSON path; empty when it conforms.
pub fn validate(schema: &Value, value: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, value, "$", &mut errors);
    errors
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut err = |m: String| errors.push(format!("{path}: {m}"));
    if schema.get("x-kubernetes-int-or-string") == Some(&json!(true)) {
        if !matches!(type_name(value), "integer" | "string") {
            err(format!(
                "must be an integer or a string, is {}",
                type_name(value)
            ));
        }
        return;
    }
    if let Some(any_of) = schema.get("anyOf").and_then(Value::as_array)
        && !any_of.iter().any(|s| {
            let mut e = Vec::new();
            check(s, value, path, &mut e);
            e.is_empty()
        })
    {
        err("matches none of anyOf".into());
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let got = type_name(value);
        let ok = got == want || (want == "number" && got == "integer");
        if !ok {
            err(format!("must be {want}, is {got}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        err(format!("{value} is not one of {allowed:?}"));
    }
    match value {
        Value::String(s) => {
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                let re = Regex::new(pattern).unwrap_or_else(|e| panic!("pattern {pattern}: {e}"));
                if !re.is_match(s) {
                    err(format!("{s:?} does not match {pattern}"));
                }
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && s.chars().count() as u64 > max
            {
                err(format!("{s:?} is longer than {max}"));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && (s.chars().count() as u64) < min
            {
                err(format!("{s:?} is shorter than {min}"));
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if schema.get("format").and_then(Value::as_str) == Some("int32")
                && !(f64::from(i32::MIN)..=f64::from(i32::MAX)).contains(&v)
            {
                err(format!("{v} is not an int32"));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && v < min
            {
                err(format!("{v} is below {min}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && v > max
            {
                err(format!("{v} is above {max}"));
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errors.push(format!("{path}: required field {r} is missing"));
                    }
                }
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            for (k, v) in map {
                let sub = format!("{path}.{k}");
                if let Some(s) = properties.and_then(|p| p.get(k)) {
                    check(s, v, &sub, errors);
                } else if let Some(s) = additional.filter(|a| a.is_object()) {
                    check(s, v, &sub, errors);
                } else if (properties.is_some() || additional == Some(&json!(false))) && !preserve {
                    errors.push(format!(
                        "{sub}: unknown field (the API server would drop it)"
                    ));
                }
            }
        }
        _ => {}
    }
}

#[test]
fn the_validator_can_fail() {
    let schema = json!({
        "type": "object",
        "required": ["a"],
        "properties": {
            "a": {"type": "integer", "format": "int32", "minimum": 1},
            "b": {"type": "string", "pattern": "^[a-z]+$", "enum": ["x", "yy"]},
            "c": {"type": "array", "items": {"type": "boolean"}},
            "d": {"x-kubernetes-int-or-string": true},
            "m": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    });
    assert_eq!(
        validate(
            &schema,
            &json!({"a": 3, "b": "x", "c": [true], "d": "1Gi", "m": {"k": "v"}})
        ),
        Vec::<String>::new()
    );
    let errors = validate(
        &schema,
        &json!({"b": "Z", "c": [1], "d": true, "m": {"k": 1}, "e": 0}),
    );
    for needle in [
        "required field a",
        "$.b: \"Z\" does not match",
        "$.b: \"Z\" is not one of",
        "$.c[0]: must be boolean",
        "$.d: must be an integer or a string",
        "$.m.k: must be string",
        "$.e: unknown field",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "{needle}: {errors:?}"
        );
    }
    assert!(!validate(&schema, &json!({"a": 0})).is_empty());
    assert!(!validate(&schema, &json!({"a": 3_000_000_000_i64})).is_empty());
}
