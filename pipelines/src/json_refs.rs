//! JSON Schemas that refer to other registry subjects: a `$ref` to a reference's name (as
//! Confluent's JSON Schema references name them, e.g. `customer.json`) is served from the
//! referenced schemas embedded with it, never fetched. The registry checks a schema this way
//! when it is registered, and the engine builds its `validate` and `publish` validators so.

use serde_json::Value;

/// The validator of `schema`, with the `$ref`s among `references` (name → schema text)
/// resolved; `Err` says what is wrong (a `$ref` that no reference serves names it).
pub fn validator<'a>(
    schema: &Value,
    references: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    let docs = references
        .into_iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect();
    jsonschema::options()
        .with_retriever(References(docs))
        .build(schema)
}

/// The `$ref`s of `schema` that point outside it and that no reference (by `names`) serves,
/// each with the JSON pointer of the schema that holds it: `(pointer, $ref)`. A `$ref` to
/// `#…`, or to an `$id` the document declares, is the document's own.
pub fn unresolved<'a>(
    schema: &Value,
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, String)> {
    let names: Vec<&str> = names.into_iter().collect();
    let mut ids = Vec::new();
    let mut refs = Vec::new();
    collect(schema, String::new(), &mut ids, &mut refs);
    refs.into_iter()
        .filter(|(_, r)| {
            let uri = without_fragment(r);
            !uri.is_empty()
                && !names.iter().any(|name| serves(name, uri))
                && !ids.iter().any(|id| serves(without_fragment(id), uri))
        })
        .collect()
}

/// Whether a schema known as `name` is the one `uri` points to: the same, or one of them the
/// other resolved against a base (`customer.json` and `https://acme.example/customer.json`).
fn serves(name: &str, uri: &str) -> bool {
    name == uri || uri.ends_with(&format!("/{name}")) || name.ends_with(&format!("/{uri}"))
}

fn without_fragment(uri: &str) -> &str {
    uri.split('#').next().unwrap_or("")
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

/// The referenced schemas: (name, text).
struct References(Vec<(String, String)>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        // A relative `$ref` reaches here resolved against the base URI.
        let full = uri.as_str();
        let (name, text) = self
            .0
            .iter()
            .find(|(name, _)| serves(name, without_fragment(full)))
            .ok_or_else(|| format!("reference `{full}` is not among the schema's references"))?;
        serde_json::from_str(text)
            .map_err(|e| format!("reference `{name}` is not JSON: {e}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
            unresolved(&order, []),
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
        let names = ["customer.json", "https://acme.example/line.json"];
        assert!(unresolved(&order, names).is_empty());
    }

    #[test]
    fn refs_resolve_among_the_references_only() {
        let order = json!({
            "type": "object",
            "properties": {"customer": {"$ref": "customer.json"}},
            "required": ["customer"]
        });
        let customer =
            json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}})
                .to_string();
        let v = validator(&order, [("customer.json", customer.as_str())]).unwrap();
        assert!(v.is_valid(&json!({"customer": {"id": "c-1"}})));
        assert!(!v.is_valid(&json!({"customer": {"id": 7}})));

        let err = validator(&order, []).unwrap_err().to_string();
        assert!(err.contains("customer.json"), "{err}");
        let err = validator(&order, [("customer.json", "{")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("customer.json"), "{err}");
    }
}
