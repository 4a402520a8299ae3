//! The column types a JSON source's registry schema (a JSON Schema) gives the payload paths
//! its pipeline reads: `{"type": "number"}` reads as `float64`, as if declared in
//! `source.fields`. Only plain types are taken: a property whose schema is a `$ref`, a
//! combination (`oneOf`, …), an array or has several types stays undeclared and is typed from
//! its values, as without a schema.

use serde_json::Value;
use std::collections::HashMap;
use weir_pipelines::FieldType;

/// The types of the schema's properties, by path (nested objects' properties too).
pub(crate) fn field_types(schema: &Value) -> HashMap<Vec<String>, FieldType> {
    let mut out = HashMap::new();
    collect(schema, &mut Vec::new(), &mut out);
    out
}

fn collect(schema: &Value, at: &mut Vec<String>, out: &mut HashMap<Vec<String>, FieldType>) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in properties {
        at.push(name.clone());
        if let Some(t) = plain_type(sub) {
            out.insert(at.clone(), t);
        } else if single_type(sub) == Some("object") {
            collect(sub, at, out);
        }
        at.pop();
    }
}

/// `type` when it names one type, or one type and `null`.
fn single_type(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(types) => {
            let mut named = types
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null");
            let t = named.next()?;
            (named.next().is_none() && types.iter().all(Value::is_string)).then_some(t)
        }
        _ => None,
    }
}

/// The column type of a scalar schema with nothing that could make it another type.
fn plain_type(schema: &Value) -> Option<FieldType> {
    let combined = ["$ref", "oneOf", "anyOf", "allOf", "not", "if"]
        .iter()
        .any(|k| schema.get(k).is_some());
    if combined {
        return None;
    }
    Some(match single_type(schema)? {
        "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
            FieldType::Timestamp
        }
        "string" => FieldType::String,
        "integer" => FieldType::Int64,
        "number" => FieldType::Float64,
        "boolean" => FieldType::Boolean,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_types_by_path_and_nothing_else() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "amount": {"type": "number", "minimum": 0},
                "qty": {"type": ["integer", "null"]},
                "paid": {"type": "boolean"},
                "at": {"type": "string", "format": "date-time"},
                "customer": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "address": {"type": "object", "properties": {"zip": {"type": "integer"}}}
                }},
                "items": {"type": "array", "items": {"type": "object"}},
                "either": {"type": ["string", "integer"]},
                "ref": {"$ref": "#/$defs/x"},
                "one": {"type": "string", "oneOf": [{"maxLength": 2}]},
                "free": {}
            }
        });
        let types = field_types(&schema);
        let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        let expected = [
            ("id", FieldType::String),
            ("amount", FieldType::Float64),
            ("qty", FieldType::Int64),
            ("paid", FieldType::Boolean),
            ("at", FieldType::Timestamp),
            ("customer.id", FieldType::String),
            ("customer.address.zip", FieldType::Int64),
        ];
        assert_eq!(types.len(), expected.len(), "{types:?}");
        for (p, t) in expected {
            assert_eq!(types.get(&path(p)), Some(&t), "{p}");
        }
    }
}
