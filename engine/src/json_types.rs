//! The column types a JSON source's registry schema (a JSON Schema) gives the payload paths
//! its pipeline reads: `{"type": "number"}` reads as `float64`, as if declared in
//! `source.fields`. Only plain types are taken: a property whose schema is a combination
//! (`oneOf`, …), an array or has several types stays undeclared and is typed from its values,
//! as without a schema. A property that is only a `$ref` (with annotations at most) takes the
//! type of what it names: a definition of the same document (`#/$defs/money`) or a registry
//! reference by the name the schema uses (`customer.json`, `customer.json#/$defs/id`).

use serde_json::Value;
use std::collections::HashMap;
use weir_pipelines::FieldType;

/// How many `$ref`s one property may go through (a loop of them types nothing).
const MAX_REFS: usize = 16;

/// Keywords beside a `$ref` that do not change what it names.
const ANNOTATIONS: &[&str] = &[
    "$ref",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// The types of the schema's properties, by path (nested objects' properties too);
/// `references` are the documents its `$ref`s name, by name.
pub(crate) fn field_types(
    schema: &Value,
    references: &[(&str, Value)],
) -> HashMap<Vec<String>, FieldType> {
    let mut out = HashMap::new();
    let docs = Documents { references };
    collect(&docs, schema, schema, &mut Vec::new(), &mut out);
    out
}

/// The documents `$ref`s may name.
struct Documents<'a> {
    references: &'a [(&'a str, Value)],
}

impl<'a> Documents<'a> {
    /// What `schema` stands for (in document `doc`): itself, or what its `$ref` names, with
    /// the document that lies in; `None` when a `$ref` names nothing known.
    fn resolve(&self, mut doc: &'a Value, mut schema: &'a Value) -> Option<(&'a Value, &'a Value)> {
        for _ in 0..MAX_REFS {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
                return Some((doc, schema));
            };
            let only_ref = schema
                .as_object()
                .is_some_and(|o| o.keys().all(|k| ANNOTATIONS.contains(&k.as_str())));
            if !only_ref {
                return None;
            }
            let (name, pointer) = target.split_once('#').unwrap_or((target, ""));
            if !name.is_empty() {
                doc = &self.references.iter().find(|(n, _)| *n == name)?.1;
            }
            schema = doc.pointer(pointer)?;
        }
        None
    }
}

fn collect<'a>(
    docs: &Documents<'a>,
    doc: &'a Value,
    schema: &'a Value,
    at: &mut Vec<String>,
    out: &mut HashMap<Vec<String>, FieldType>,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in properties {
        let Some((doc, sub)) = docs.resolve(doc, sub) else {
            continue;
        };
        at.push(name.clone());
        if let Some(t) = plain_type(sub) {
            out.insert(at.clone(), t);
        } else if single_type(sub) == Some("object") {
            collect(docs, doc, sub, at, out);
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

    /// `types` holds exactly the `expected` dotted paths, with those types.
    fn assert_types(types: &HashMap<Vec<String>, FieldType>, expected: &[(&str, FieldType)]) {
        assert_eq!(types.len(), expected.len(), "{types:?}");
        for (p, t) in expected {
            let path: Vec<String> = p.split('.').map(str::to_string).collect();
            assert_eq!(types.get(&path), Some(t), "{p}");
        }
    }

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
        let types = field_types(&schema, &[]);
        let expected = [
            ("id", FieldType::String),
            ("amount", FieldType::Float64),
            ("qty", FieldType::Int64),
            ("paid", FieldType::Boolean),
            ("at", FieldType::Timestamp),
            ("customer.id", FieldType::String),
            ("customer.address.zip", FieldType::Int64),
        ];
        assert_types(&types, &expected);
    }

    #[test]
    fn refs_take_the_type_of_what_they_name() {
        let customer = json!({
            "$id": "customer.json",
            "type": "object",
            "properties": {"id": {"$ref": "#/$defs/id"}, "since": {"type": "string", "format": "date-time"}},
            "$defs": {"id": {"type": "string"}, "tier": {"type": "integer"}}
        });
        let schema = json!({
            "type": "object",
            "properties": {
                "amount": {"$ref": "#/$defs/money", "description": "in EUR"},
                "customer": {"$ref": "customer.json"},
                "tier": {"$ref": "customer.json#/$defs/tier"},
                "loop": {"$ref": "#/$defs/loop"},
                "unknown": {"$ref": "other.json"},
                "constrained": {"$ref": "#/$defs/money", "maximum": 5},
                "nowhere": {"$ref": "#/$defs/missing"}
            },
            "$defs": {
                "money": {"$ref": "#/$defs/decimal"},
                "decimal": {"type": "number"},
                "loop": {"$ref": "#/$defs/loop"}
            }
        });
        let types = field_types(&schema, &[("customer.json", customer)]);
        let expected = [
            ("amount", FieldType::Float64),
            ("customer.id", FieldType::String),
            ("customer.since", FieldType::Timestamp),
            ("tier", FieldType::Int64),
        ];
        assert_types(&types, &expected);
    }
}
