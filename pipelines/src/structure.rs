//! The structural check: a resource's value against the JSON Schema generated from the spec
//! types. Unlike deserializing, it reports every unknown field (with the nearest known name),
//! missing field and wrong type at once, each at its JSON pointer.

use serde_json::Value;

use crate::document::escape;
use crate::problem::Problem;
use crate::suggest::nearest;

/// Checks `value` against `schema` (a subschema of `root`). Unknown fields are reported and
/// removed, so that what remains can still be deserialized and checked for meaning; the
/// result is `false` when any other problem was found.
pub(crate) fn check(
    root: &Value,
    schema: &Value,
    value: &mut Value,
    path: &str,
    out: &mut Vec<Problem>,
) -> bool {
    let schema = resolve(root, schema);
    if let Some(branches) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        return check_alternatives(root, branches, value, path, out);
    }
    if let Some(expected) = schema.get("const") {
        if value != expected {
            out.push(Problem::new(
                path,
                "invalid-value",
                format!("expected {}, found {}", show(expected), show(value)),
            ));
            return false;
        }
        return true;
    }
    if let Some(types) = schema.get("type")
        && let Some(typed) = check_type(types, value, path, out)
    {
        return typed;
    }
    let mut ok = check_range(schema, value, path, out);
    if let Value::Object(map) = value {
        ok &= check_object(root, schema, map, path, out);
    }
    if let (Value::Array(items), Some(item_schema)) = (&mut *value, schema.get("items")) {
        for (i, item) in items.iter_mut().enumerate() {
            ok &= check(root, item_schema, item, &format!("{path}/{i}"), out);
        }
    }
    ok
}

/// The `type` keyword: `None` when `value` has one of `types` (the check goes on), else the
/// verdict (a number or boolean where text is expected becomes text, as plain YAML reads).
fn check_type(
    types: &Value,
    value: &mut Value,
    path: &str,
    out: &mut Vec<Problem>,
) -> Option<bool> {
    let types: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.iter().any(|t| type_matches(t, value)) {
        return None;
    }
    // A plain YAML scalar such as `version: 2` where text is expected reads as text.
    if types.contains(&"string") && (value.is_number() || value.is_boolean()) {
        *value = Value::String(value.to_string());
        return Some(true);
    }
    let expected: Vec<&str> = types.iter().map(|t| type_name(t)).collect();
    out.push(Problem::new(
        path,
        "invalid-type",
        format!(
            "expected {}, found {}",
            expected.join(" or "),
            describe(value)
        ),
    ));
    Some(false)
}

/// `minimum` and `maximum` of a number.
fn check_range(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>) -> bool {
    let Value::Number(n) = value else {
        return true;
    };
    let mut ok = true;
    if let (Some(min), Some(v)) = (schema.get("minimum").and_then(Value::as_f64), n.as_f64())
        && v < min
    {
        out.push(Problem::new(
            path,
            "invalid-value",
            format!("{n} is below the minimum {min}"),
        ));
        ok = false;
    }
    if let (Some(max), Some(v)) = (schema.get("maximum").and_then(Value::as_f64), n.as_f64())
        && v > max
    {
        out.push(Problem::new(
            path,
            "invalid-value",
            format!("{n} is above the maximum {max}"),
        ));
        ok = false;
    }
    ok
}

/// An object's fields: each known one checked, unknown ones reported (with the nearest known
/// name) and removed, required ones present.
fn check_object(
    root: &Value,
    schema: &Value,
    map: &mut serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<Problem>,
) -> bool {
    let mut ok = true;
    let properties = schema.get("properties").and_then(Value::as_object);
    let extra = schema.get("additionalProperties");
    let mut unknown = Vec::new();
    for (key, child) in map.iter_mut() {
        let child_path = format!("{path}/{}", escape(key));
        if let Some(s) = properties.and_then(|p| p.get(key)) {
            ok &= check(root, s, child, &child_path, out);
            continue;
        }
        match extra {
            Some(Value::Bool(false)) => {
                out.push(unknown_field(properties, key, child_path));
                unknown.push(key.clone());
            }
            Some(s @ Value::Object(_)) => ok &= check(root, s, child, &child_path, out),
            _ => {}
        }
    }
    for key in unknown {
        map.shift_remove(&key);
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                out.push(Problem::new(
                    path,
                    "missing-field",
                    format!("missing field `{name}`"),
                ));
                ok = false;
            }
        }
    }
    ok
}

/// The problem of an unknown field `key`, with the nearest known name or the list of them.
fn unknown_field(
    properties: Option<&serde_json::Map<String, Value>>,
    key: &str,
    path: String,
) -> Problem {
    let known: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let hint = match nearest(key, known.iter().copied()) {
        Some(near) => format!(", did you mean `{near}`?"),
        None => format!(
            "; known fields here: {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Problem::new(
        path,
        "unknown-field",
        format!("unknown field `{key}`{hint}"),
    )
    .at_key()
}

fn check_alternatives(
    root: &Value,
    branches: &[Value],
    value: &mut Value,
    path: &str,
    out: &mut Vec<Problem>,
) -> bool {
    let mut attempts = Vec::new();
    for branch in branches {
        let mut candidate = value.clone();
        let mut problems = Vec::new();
        let ok = check(root, branch, &mut candidate, path, &mut problems);
        if ok && problems.is_empty() {
            *value = candidate;
            return true;
        }
        attempts.push((resolve(root, branch), ok, candidate, problems));
    }
    // Named values (`format: json`, `deliver: all`): say which ones exist.
    let names: Vec<&str> = attempts
        .iter()
        .filter_map(|(s, ..)| s.get("const").and_then(Value::as_str))
        .collect();
    if let Value::String(text) = value {
        let string_branch = attempts
            .iter()
            .any(|(s, ..)| s.get("const").is_none() && branch_accepts(s, "string"));
        if !names.is_empty() && !string_branch {
            let hint = nearest(text, names.iter().copied())
                .map(|n| format!(" (did you mean `{n}`?)"))
                .unwrap_or_default();
            out.push(Problem::new(
                path,
                "invalid-value",
                format!(
                    "unknown value `{text}`{hint}; expected one of {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            return false;
        }
    }
    // Otherwise report the problems of the best branch of the value's type.
    let actual = json_type(value);
    let best = attempts
        .into_iter()
        .filter(|(s, ..)| s.get("const").is_none() && branch_accepts(s, actual))
        .min_by_key(|(_, ok, _, problems)| (!*ok as usize, problems.len()));
    match best {
        Some((_, ok, candidate, problems)) => {
            // Unknown fields alone do not block: keep the cleaned-up value.
            *value = candidate;
            out.extend(problems);
            ok
        }
        None => {
            let mut expected: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            for branch in branches {
                let s = resolve(root, branch);
                if s.get("const").is_some() {
                    continue;
                }
                if let Some(t) = s.get("type").and_then(Value::as_str) {
                    let name = type_name(t).to_string();
                    if !expected.contains(&name) {
                        expected.push(name);
                    }
                }
            }
            out.push(Problem::new(
                path,
                "invalid-type",
                format!(
                    "expected {}, found {}",
                    expected.join(" or "),
                    describe(value)
                ),
            ));
            false
        }
    }
}

fn resolve<'a>(root: &'a Value, mut schema: &'a Value) -> &'a Value {
    for _ in 0..32 {
        match schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            Some(name) => match root.get("$defs").and_then(|d| d.get(name)) {
                Some(s) => schema = s,
                None => return schema,
            },
            None => return schema,
        }
    }
    schema
}

fn branch_accepts(schema: &Value, actual: &str) -> bool {
    match schema.get("type") {
        None => true,
        Some(Value::String(t)) => t == actual || (t == "number" && actual == "integer"),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .any(|t| t == actual || (t == "number" && actual == "integer")),
        Some(_) => true,
    }
}

fn type_matches(t: &str, value: &Value) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        _ => true,
    }
}

fn json_type(value: &Value) -> &'static str {
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

fn type_name(t: &str) -> &'static str {
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "boolean" => "true or false",
        "null" => "nothing",
        "number" => "a number",
        "integer" => "a whole number",
        _ => "a value",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

fn show(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{s}`"),
        other => describe(other),
    }
}
