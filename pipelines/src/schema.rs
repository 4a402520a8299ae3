//! The JSON Schema of the format, generated from the spec types. Editors validate YAML with
//! the committed copy (`pipelines/schema/weir.v1.schema.json`); the loader checks structure
//! with it.

use std::sync::OnceLock;

use serde_json::Value;

use crate::spec::Resource;

/// The JSON Schema (draft 2020-12) of one resource of a pipeline file.
pub fn json_schema() -> Value {
    schema_ref().clone()
}

/// The schema, generated once.
pub(crate) fn schema_ref() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema = schemars::schema_for!(Resource);
        let mut value = serde_json::to_value(schema).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert(
                "title".into(),
                Value::String("Weir resource (apiVersion weir.dev/v1)".into()),
            );
        }
        value
    })
}

/// The committed schema text: pretty JSON with a final newline.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(schema_ref()).unwrap_or_default();
    text.push('\n');
    text
}
