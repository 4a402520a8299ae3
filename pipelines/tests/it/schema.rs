//! The committed JSON Schema is the one generated from the types, and editors validating
//! the examples with it (here: the `jsonschema` crate) accept them.

use crate::crate_path;

const SCHEMA_FILE: &str = "schema/weir.v1.schema.json";

#[test]
fn committed_schema_is_current() {
    let path = crate_path(SCHEMA_FILE);
    let generated = weir_pipelines::schema::json_schema_text();
    if std::env::var_os("WEIR_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "pipelines/{SCHEMA_FILE} is stale: the spec types changed. Regenerate it with \
         `WEIR_BLESS=1 cargo test -p weir-pipelines --test it schema` or \
         `weir schema > pipelines/{SCHEMA_FILE}`, and commit it."
    );
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&weir_pipelines::json_schema())
        .expect("the schema is a valid JSON Schema")
}

#[test]
fn examples_validate_against_the_schema() {
    let validator = validator();
    for file in [
        "examples/order-processing.yaml",
        "examples/order-routing.yaml",
    ] {
        let resources = weir_pipelines::load_file(&crate_path(file)).unwrap();
        for r in resources {
            let value = serde_json::to_value(&r).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
        }
    }
}

#[test]
fn schema_rejects_unknown_fields() {
    let value = serde_json::json!({
        "apiVersion": "weir.dev/v1", "kind": "Stream",
        "metadata": { "name": "S" }, "spec": { "subjects": ["a"], "nope": 1 }
    });
    assert!(!validator().is_valid(&value));
}
