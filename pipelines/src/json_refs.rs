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
