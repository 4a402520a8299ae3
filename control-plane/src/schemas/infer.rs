//! Schema inference: reads the last messages of a stream and proposes a JSON Schema (types,
//! required fields, enums for low-cardinality strings, `date-time` formats), ready to register.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::body::QueryArgs;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

/// A string field becomes an enum when it has at most this many distinct values...
const MAX_ENUM_VALUES: usize = 10;
/// ...and each value was seen on average at least this often.
const MIN_ENUM_REPEATS: usize = 3;

/// Options of an inference.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct InferQuery {
    /// How many of the newest messages to read (1–1000, default 100).
    pub samples: Option<u32>,
}

/// A proposed schema.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct InferredSchema {
    /// The proposed JSON Schema (draft 2020-12).
    #[schema(value_type = Object)]
    pub schema: Value,
    /// Messages read.
    pub samples: usize,
    /// Messages left out because their payload is not JSON.
    pub skipped: usize,
}

/// Proposes a JSON Schema from the newest messages of one of your streams.
#[utoipa::path(post, path = "/api/v1/streams/{name}/infer-schema", tag = "schemas",
    params(("name" = String, Path, description = "Stream name"), InferQuery),
    responses((status = 200, body = InferredSchema), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn infer_schema(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<InferQuery>,
) -> ApiResult<Json<InferredSchema>> {
    caller.require(ApiResource::Messages, Action::Read)?;
    let samples = q.samples.unwrap_or(100);
    if !(1..=1000).contains(&samples) {
        return Err(ApiError::Unprocessable(format!(
            "samples must be between 1 and 1000, not {samples}"
        )));
    }
    let stream = crate::nats_views::open(&state, &caller, &name).await?;
    let info = stream.cached_info().state.clone();
    let (mut values, mut skipped, mut seq) = (Vec::new(), 0, info.last_sequence);
    // Deleted sequences leave gaps: at most twice as many reads as samples.
    let mut reads = 0;
    while seq >= info.first_sequence.max(1)
        && values.len() < samples as usize
        && reads < 2 * samples
    {
        reads += 1;
        if let Ok(m) = stream.get_raw_message(seq).await {
            match serde_json::from_slice::<Value>(&m.payload) {
                Ok(v) => values.push(v),
                Err(_) => skipped += 1,
            }
        }
        seq -= 1;
    }
    if values.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "stream `{name}` holds no JSON message to infer a schema from"
        )));
    }
    let mut schema = infer(&values);
    if let Value::Object(map) = &mut schema {
        map.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
    }
    Ok(Json(InferredSchema {
        schema,
        samples: values.len(),
        skipped,
    }))
}

/// The JSON Schema every one of `values` satisfies, as tight as the samples suggest.
pub fn infer(values: &[Value]) -> Value {
    let refs: Vec<&Value> = values.iter().collect();
    infer_refs(&refs)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn infer_refs(values: &[&Value]) -> Value {
    let mut types: BTreeSet<&str> = values.iter().map(|v| type_name(v)).collect();
    if types.contains("number") {
        types.remove("integer");
    }
    let mut out = Map::new();
    out.insert(
        "type".into(),
        match types.len() {
            1 => json!(types.iter().next()),
            _ => json!(types),
        },
    );
    let strings: Vec<&str> = values.iter().filter_map(|v| v.as_str()).collect();
    if !strings.is_empty() && types.len() == 1 {
        string_facets(&strings, &mut out);
    }
    let objects: Vec<&Map<String, Value>> = values.iter().filter_map(|v| v.as_object()).collect();
    if !objects.is_empty() {
        object_facets(&objects, &mut out);
    }
    let items: Vec<&Value> = values
        .iter()
        .filter_map(|v| v.as_array())
        .flatten()
        .collect();
    if !items.is_empty() {
        out.insert("items".into(), infer_refs(&items));
    }
    Value::Object(out)
}

fn string_facets(strings: &[&str], out: &mut Map<String, Value>) {
    if strings
        .iter()
        .all(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
    {
        out.insert("format".into(), json!("date-time"));
        return;
    }
    let distinct: BTreeSet<&str> = strings.iter().copied().collect();
    if distinct.len() <= MAX_ENUM_VALUES && strings.len() >= distinct.len() * MIN_ENUM_REPEATS {
        out.insert("enum".into(), json!(distinct));
    }
}

fn object_facets(objects: &[&Map<String, Value>], out: &mut Map<String, Value>) {
    let mut fields: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for o in objects {
        for (k, v) in o.iter() {
            fields.entry(k.as_str()).or_default().push(v);
        }
    }
    let required: Vec<&str> = fields
        .iter()
        .filter(|(_, seen)| seen.len() == objects.len())
        .map(|(k, _)| *k)
        .collect();
    let properties: Map<String, Value> = fields
        .iter()
        .map(|(k, seen)| (k.to_string(), infer_refs(seen)))
        .collect();
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), json!(required));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_types_required_enums_and_formats() {
        let values: Vec<Value> = (0..30)
            .map(|i| {
                let mut v = json!({
                    "id": format!("o-{i}"),
                    "amount": if i % 2 == 0 { json!(i) } else { json!(i as f64 + 0.5) },
                    "currency": (["USD", "EUR"][i % 2]),
                    "at": "2026-12-05T10:00:00Z",
                    "items": [{"sku": "A", "qty": 1}],
                });
                if i % 3 == 0 {
                    v["note"] = json!("hi");
                }
                v
            })
            .collect();
        let s = infer(&values);
        assert_eq!(s["type"], "object");
        assert_eq!(
            s["required"],
            json!(["amount", "at", "currency", "id", "items"])
        );
        assert_eq!(s["properties"]["amount"]["type"], "number");
        assert_eq!(s["properties"]["currency"]["enum"], json!(["EUR", "USD"]));
        assert!(
            s["properties"]["id"].get("enum").is_none(),
            "30 distinct ids are no enum"
        );
        assert_eq!(s["properties"]["at"]["format"], "date-time");
        assert_eq!(
            s["properties"]["items"]["items"]["properties"]["qty"]["type"],
            "integer"
        );
        // The samples satisfy what was inferred.
        let v = jsonschema::validator_for(&s).unwrap();
        assert!(values.iter().all(|x| v.is_valid(x)));
    }
}
