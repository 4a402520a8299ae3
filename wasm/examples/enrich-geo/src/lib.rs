//! `enrich-geo`: reads a country code from a top-level field of a JSON object (`country` by
//! default), looks it up in a small embedded table and sets the region (`region` by default)
//! and the header `Weir-Region`. An unknown or missing country gives `unknown`; a payload that
//! is not a JSON object is an error (the message goes to the DLQ). Config (optional):
//! `{"field": "country", "target": "region"}`.

extern crate alloc;

use alloc::string::{String, ToString};
use serde_json::{Map, Value};
use weir_guest::{Error, Message, Output, Outputs, Result};

weir_guest::export! { enrich => enrich }

/// ISO 3166 alpha-2 code → region.
const TABLE: &[(&str, &str)] = &[
    ("US", "na"),
    ("CA", "na"),
    ("MX", "latam"),
    ("BR", "latam"),
    ("AR", "latam"),
    ("CL", "latam"),
    ("GB", "eu"),
    ("IE", "eu"),
    ("FR", "eu"),
    ("DE", "eu"),
    ("ES", "eu"),
    ("IT", "eu"),
    ("NL", "eu"),
    ("PL", "eu"),
    ("SE", "eu"),
    ("ZA", "mea"),
    ("AE", "mea"),
    ("EG", "mea"),
    ("NG", "mea"),
    ("IN", "apac"),
    ("JP", "apac"),
    ("CN", "apac"),
    ("SG", "apac"),
    ("AU", "apac"),
    ("NZ", "apac"),
];

/// The region of a country code (case-insensitive), `unknown` when not in the table.
pub fn region(country: &str) -> &'static str {
    TABLE
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(country))
        .map_or("unknown", |(_, r)| r)
}

fn setting(key: &str, default: &str) -> String {
    serde_json::from_str::<Value>(weir_guest::config())
        .ok()
        .and_then(|c| c.get(key).and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| default.to_string())
}

/// The batch function.
pub fn enrich(m: &Message<'_>) -> Result<Outputs> {
    let (field, target) = (setting("field", "country"), setting("target", "region"));
    let mut object: Map<String, Value> = serde_json::from_slice(m.payload)
        .map_err(|e| Error(alloc::format!("enrich-geo: payload is not a JSON object: {e}")))?;
    let region = object.get(&field).and_then(Value::as_str).map_or("unknown", region);
    object.insert(target, Value::String(region.to_string()));
    let bytes = serde_json::to_vec(&object)?;
    Ok(Output::payload(bytes).with_header("Weir-Region", region).into())
}
