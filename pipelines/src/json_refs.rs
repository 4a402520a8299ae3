//! JSON Schemas that refer to other registry subjects: a `$ref` to a reference's name (as
//! Confluent's JSON Schema references name them, e.g. `customer.json`) is served from the
//! referenced schemas embedded with it, never fetched. The registry checks a schema this way
//! when it is registered, and the engine builds its `validate` and `publish` validators so.

use std::collections::HashMap;

use serde_json::Value;

use crate::spec::NamedSchema;

/// The validator of `schema`, with the `$ref`s among `references` (name → schema text)
/// resolved; `Err` says what is wrong (a `$ref` that no reference serves names it).
pub fn validator(
    schema: &Value,
    references: &[NamedSchema],
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    let docs = references
        .iter()
        .map(|r| (r.name.clone(), r.schema.clone()))
        .collect();
    jsonschema::options()
        .with_retriever(References(docs))
        .build(schema)
}

/// The `$ref`s of `schema` that point outside it and that no reference serves, each with the
/// JSON pointer of the schema that holds it: `(pointer, $ref)`. A `$ref` to `#…`, or to an
/// `$id` the document declares, is the document's own; one whose URI (without its `#…`) is a
/// reference's name, or ends with `/name`, is served.
pub fn unresolved(schema: &Value, references: &[NamedSchema]) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    let mut refs = Vec::new();
    collect(schema, String::new(), &mut ids, &mut refs);
    let served = |uri: &str| {
        references.iter().any(|r| {
            uri == r.name
                || uri.ends_with(&format!("/{}", r.name))
                || r.name.ends_with(&format!("/{uri}"))
        })
    };
    refs.into_iter()
        .filter(|(_, r)| {
            let uri = r.split('#').next().unwrap_or("");
            !uri.is_empty()
                && !served(uri)
                && !ids.iter().any(|id: &String| {
                    let id = id.split('#').next().unwrap_or("");
                    id == uri || id.ends_with(&format!("/{uri}"))
                })
        })
        .collect()
}

/// Every `$id` and every `$ref` (with the pointer of its schema) in `value`.
fn collect(value: &Value, at: String, ids: &mut Vec<String>, refs: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("$id") {
                ids.push(id.clone());
            }
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push((at.clone(), r.clone()));
            }
            for (k, v) in map {
                let key = k.replace('~', "~0").replace('/', "~1");
                collect(v, format!("{at}/{key}"), ids, refs);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect(v, format!("{at}/{i}"), ids, refs);
            }
        }
        _ => {}
    }
}

/// The referenced schemas' texts by name.
struct References(HashMap<String, String>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        // A relative `$ref` reaches here resolved against the base URI: the name is its
        // last segment when the whole URI is not a name.
        let full = uri.as_str();
        let short = full.rsplit('/').next().unwrap_or(full);
        let (name, text) = self
            .0
            .get_key_value(full)
            .or_else(|| self.0.get_key_value(short))
            .ok_or_else(|| format!("reference `{full}` is not among the schema's references"))?;
        serde_json::from_str(text)
            .map_err(|e| format!("reference `{name}` is not JSON: {e}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn named(name: &str, schema: Value) -> NamedSchema {
        NamedSchema {
            name: name.into(),
            schema: schema.to_string(),
        }
    }

    #[test]
    fn refs_nothing_serves_are_named_with_their_place() {
        let order = json!({
            "$id": "https://acme.example/order.json",
            "$defs": {"money": {"type": "number"}},
            "properties": {
                "total": {"$ref": "#/$defs/money"},
                "customer": {"$ref": "customer.json"},
                "lines": {"items": {"$ref": "line.json#/$defs/line"}},
                "self": {"$ref": "https://acme.example/order.json"}
            }
        });
        assert_eq!(
            unresolved(&order, &[]),
            vec![
                (
                    "/properties/customer".to_string(),
                    "customer.json".to_string()
                ),
                (
                    "/properties/lines/items".to_string(),
                    "line.json#/$defs/line".to_string()
                ),
            ]
        );
        let refs = [
            named("customer.json", json!({})),
            named("https://acme.example/line.json", json!({})),
        ];
        assert!(unresolved(&order, &refs).is_empty());
    }

    #[test]
    fn refs_resolve_among_the_references_only() {
        let order = json!({
            "type": "object",
            "properties": {"customer": {"$ref": "customer.json"}},
            "required": ["customer"]
        });
        let customer =
            json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}});
        let v = validator(&order, &[named("customer.json", customer)]).unwrap();
        assert!(v.is_valid(&json!({"customer": {"id": "c-1"}})));
        assert!(!v.is_valid(&json!({"customer": {"id": 7}})));

        let err = validator(&order, &[]).unwrap_err().to_string();
        assert!(err.contains("customer.json"), "{err}");
        let bad = NamedSchema {
            name: "customer.json".into(),
            schema: "{".into(),
        };
        let err = validator(&order, &[bad]).unwrap_err().to_string();
        assert!(err.contains("customer.json"), "{err}");
    }
}
