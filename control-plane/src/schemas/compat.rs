//! Compatibility between schema versions, per Confluent's seven levels: whether the new schema
//! can read data written with the old (backward), the old can read the new (forward), or both,
//! against the latest version or all of them (transitive). Each incompatibility is explained.

use std::collections::BTreeSet;

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::formats::Parsed;

/// A subject's compatibility level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// No check.
    None,
    /// The new schema reads data written with the latest version.
    #[default]
    Backward,
    /// The new schema reads data written with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every version reads data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
}

impl Level {
    /// The name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Backward => "BACKWARD",
            Level::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Level::Forward => "FORWARD",
            Level::ForwardTransitive => "FORWARD_TRANSITIVE",
            Level::Full => "FULL",
            Level::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Result<Level, String> {
        serde_json::from_value(Value::String(text.to_ascii_uppercase())).map_err(|_| {
            format!(
                "unknown compatibility level `{text}` (known: NONE, BACKWARD, \
                 BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE)"
            )
        })
    }

    /// Whether the level checks against every earlier version, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        !matches!(
            self,
            Level::None | Level::Forward | Level::ForwardTransitive
        )
    }

    fn forward(self) -> bool {
        !matches!(
            self,
            Level::None | Level::Backward | Level::BackwardTransitive
        )
    }
}

/// The incompatibilities of `new` with `existing` (each a version number and its schema, oldest
/// first) under `level`; empty when compatible. With a non-transitive level only the last of
/// `existing` counts.
pub fn check(level: Level, new: &Parsed, existing: &[(i64, &Parsed)]) -> Vec<String> {
    let against: &[(i64, &Parsed)] = if level.transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut problems = Vec::new();
    for (version, old) in against {
        if level.backward() {
            for p in can_read(new, old) {
                problems.push(format!(
                    "backward (the new schema cannot read data written with version {version}): {p}"
                ));
            }
        }
        if level.forward() {
            for p in can_read(old, new) {
                problems.push(format!(
                    "forward (version {version} cannot read data written with the new schema): {p}"
                ));
            }
        }
    }
    problems
}

/// Why a consumer using `reader` cannot read every message written with `writer`.
pub fn can_read(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => {
            let mut out = Vec::new();
            json(r, w, "", &mut out);
            out
        }
        (Parsed::Protobuf { pool: r, file: rf }, Parsed::Protobuf { pool: w, file: wf }) => {
            protobuf(r, rf, w, wf)
        }
        _ => vec!["the schema type differs from the existing version's".into()],
    }
}

fn avro(reader: &apache_avro::Schema, writer: &apache_avro::Schema) -> Vec<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Vec::new(),
        Ok(Compatibility::Partial) => vec![
            "some values the writer may send do not resolve in the reader (an enum symbol \
             or a union branch the reader lacks)"
                .into(),
        ],
        Err(e) => vec![avro_reason(&e)],
    }
}

fn avro_reason(e: &apache_avro::error::CompatibilityError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.replace("Incompatible schemata! ", "")
        .replace("Incompatible schema types! ", "")
}

/// JSON types a (sub)schema admits; `None` when it does not restrict the type.
fn json_types(schema: &Value) -> Option<BTreeSet<String>> {
    let mut set: BTreeSet<String> = match schema.get("type")? {
        Value::String(t) => [t.clone()].into(),
        Value::Array(items) => items
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => return None,
    };
    if set.contains("number") {
        set.insert("integer".into());
    }
    Some(set)
}

fn closed(schema: &Value) -> bool {
    schema.get("additionalProperties") == Some(&Value::Bool(false))
}

fn required(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn properties(schema: &Value) -> serde_json::Map<String, Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// JSON Schema: whether every document `writer` accepts, `reader` accepts too, judged on types,
/// enums, properties, `required` and `additionalProperties` (recursing into properties and
/// `items`). `at` is the JSON pointer of the subschema.
fn json(reader: &Value, writer: &Value, at: &str, out: &mut Vec<String>) {
    let here = if at.is_empty() { "/" } else { at };
    if let Some(r) = json_types(reader) {
        match json_types(writer) {
            Some(w) if w.is_subset(&r) => {}
            Some(w) => {
                let missing: Vec<_> = w.difference(&r).cloned().collect();
                out.push(format!(
                    "at `{here}`: type narrowed, `{}` no longer accepted",
                    missing.join("`, `")
                ));
            }
            None => out.push(format!(
                "at `{here}`: type restricted to `{}` where any type was accepted",
                r.into_iter().collect::<Vec<_>>().join("`, `")
            )),
        }
    }
    if let Some(Value::Array(r_enum)) = reader.get("enum") {
        match writer.get("enum") {
            Some(Value::Array(w_enum)) => {
                for v in w_enum.iter().filter(|v| !r_enum.contains(v)) {
                    out.push(format!("at `{here}`: enum value {v} removed"));
                }
            }
            _ => out.push(format!(
                "at `{here}`: enum added where any value was accepted"
            )),
        }
    }
    json_object(reader, writer, at, out);
    if let (Some(r), Some(w)) = (reader.get("items"), writer.get("items")) {
        json(r, w, &format!("{at}/items"), out);
    }
}

fn json_object(reader: &Value, writer: &Value, at: &str, out: &mut Vec<String>) {
    let here = if at.is_empty() { "/" } else { at };
    let (r_props, w_props) = (properties(reader), properties(writer));
    let w_required = required(writer);
    for name in required(reader).difference(&w_required) {
        out.push(format!(
            "at `{here}`: property `{name}` is required but the writer may leave it out"
        ));
    }
    if closed(reader) && !closed(writer) {
        out.push(format!(
            "at `{here}`: additionalProperties is false where the writer allows other properties"
        ));
    }
    for (name, w_schema) in &w_props {
        let path = format!("{at}/properties/{name}");
        match r_props.get(name) {
            Some(r_schema) => json(r_schema, w_schema, &path, out),
            None if closed(reader) => out.push(format!(
                "at `{here}`: property `{name}` is not accepted: the reader has \
                 additionalProperties: false"
            )),
            None => {}
        }
    }
    for (name, r_schema) in &r_props {
        if !w_props.contains_key(name) && !closed(writer) && json_types(r_schema).is_some() {
            // The writer may send this property with any value; only an unrestricted reader
            // property takes them all.
            out.push(format!(
                "at `{here}`: property `{name}` added with a type while the writer's open \
                 content model may send it with any value (close the writer with \
                 additionalProperties: false)"
            ));
        }
    }
}

/// Protobuf: for each message of the writer's file that the reader also has, every field
/// number both use must keep its type and cardinality, and a number must not be reused for a
/// field of another name; a message the reader lacks is a removed message.
fn protobuf(
    reader: &prost_reflect::DescriptorPool,
    reader_file: &str,
    writer: &prost_reflect::DescriptorPool,
    writer_file: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    let messages = writer
        .all_messages()
        .filter(|m| m.parent_file().name() == writer_file && !m.is_map_entry());
    for w_msg in messages {
        let Some(r_msg) = reader
            .get_message_by_name(w_msg.full_name())
            .filter(|m| m.parent_file().name() == reader_file)
        else {
            out.push(format!("message `{}` removed", w_msg.full_name()));
            continue;
        };
        for w_field in w_msg.fields() {
            let Some(r_field) = r_msg.get_field(w_field.number()) else {
                continue;
            };
            let msg = w_msg.full_name();
            let n = w_field.number();
            if r_field.name() != w_field.name() {
                out.push(format!(
                    "message `{msg}`: field number {n} reused: `{}` became `{}`",
                    w_field.name(),
                    r_field.name()
                ));
            }
            let (wk, rk) = (kind_name(&w_field.kind()), kind_name(&r_field.kind()));
            if wk != rk && !wire_compatible(&wk, &rk) {
                out.push(format!(
                    "message `{msg}`: field {n} (`{}`) changed type from {wk} to {rk}",
                    w_field.name()
                ));
            }
            if w_field.is_list() != r_field.is_list() || w_field.is_map() != r_field.is_map() {
                out.push(format!(
                    "message `{msg}`: field {n} (`{}`) changed between singular, repeated and map",
                    w_field.name()
                ));
            }
        }
    }
    out
}

fn kind_name(kind: &prost_reflect::Kind) -> String {
    match kind {
        prost_reflect::Kind::Message(m) => m.full_name().to_string(),
        prost_reflect::Kind::Enum(e) => e.full_name().to_string(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Scalar types that share a wire encoding and value range closely enough that protobuf
/// documents them as compatible (`int32`, `uint32`, `int64`, `uint64`, `bool`; `string` and
/// `bytes`; `fixed32`/`sfixed32`; `fixed64`/`sfixed64`; `sint32`/`sint64`).
fn wire_compatible(a: &str, b: &str) -> bool {
    const GROUPS: &[&[&str]] = &[
        &["int32", "uint32", "int64", "uint64", "bool"],
        &["string", "bytes"],
        &["fixed32", "sfixed32"],
        &["fixed64", "sfixed64"],
        &["sint32", "sint64"],
    ];
    GROUPS.iter().any(|g| g.contains(&a) && g.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schemas::formats::{SchemaType, parse};

    /// The verdicts expected under BACKWARD, FORWARD and FULL (true = compatible).
    type Verdicts = [bool; 3];

    fn verdicts(kind: SchemaType, old: &str, new: &str) -> (Verdicts, Vec<String>) {
        let old = parse(kind, old, &[]).unwrap_or_else(|e| panic!("old: {e}"));
        let new = parse(kind, new, &[]).unwrap_or_else(|e| panic!("new: {e}"));
        let existing = [(1, &old)];
        let mut all = Vec::new();
        let mut v = [false; 3];
        for (i, level) in [Level::Backward, Level::Forward, Level::Full]
            .iter()
            .enumerate()
        {
            let problems = check(*level, &new, &existing);
            v[i] = problems.is_empty();
            all.extend(problems);
        }
        assert!(check(Level::None, &new, &existing).is_empty());
        (v, all)
    }

    fn avro_record(fields: &str) -> String {
        format!(r#"{{"type":"record","name":"Order","namespace":"acme","fields":[{fields}]}}"#)
    }

    const ID: &str = r#"{"name":"id","type":"string"}"#;

    #[test]
    fn avro_table() {
        let status_enum = |symbols: &str| {
            format!(
                r#"{{"name":"status","type":{{"type":"enum","name":"Status","symbols":[{symbols}]}}}}"#
            )
        };
        let cases: Vec<(&str, String, String, Verdicts, &str)> = vec![
            (
                "field added with default",
                avro_record(ID),
                avro_record(&format!(
                    r#"{ID},{{"name":"qty","type":"int","default":0}}"#
                )),
                [true, true, true],
                "",
            ),
            (
                "field added without default",
                avro_record(ID),
                avro_record(&format!(r#"{ID},{{"name":"qty","type":"int"}}"#)),
                [false, true, false],
                "qty",
            ),
            (
                "field removed (no default)",
                avro_record(&format!(r#"{ID},{{"name":"qty","type":"int"}}"#)),
                avro_record(ID),
                [true, false, false],
                "qty",
            ),
            (
                "field removed (had a default)",
                avro_record(&format!(
                    r#"{ID},{{"name":"qty","type":"int","default":0}}"#
                )),
                avro_record(ID),
                [true, true, true],
                "",
            ),
            (
                "int promoted to long",
                avro_record(r#"{"name":"qty","type":"int"}"#),
                avro_record(r#"{"name":"qty","type":"long"}"#),
                [true, false, false],
                "qty",
            ),
            (
                "long narrowed to int",
                avro_record(r#"{"name":"qty","type":"long"}"#),
                avro_record(r#"{"name":"qty","type":"int"}"#),
                [false, true, false],
                "qty",
            ),
            (
                "string to int",
                avro_record(r#"{"name":"qty","type":"string"}"#),
                avro_record(r#"{"name":"qty","type":"int"}"#),
                [false, false, false],
                "qty",
            ),
            (
                "enum symbol added",
                avro_record(&status_enum(r#""NEW","PAID""#)),
                avro_record(&status_enum(r#""NEW","PAID","SHIPPED""#)),
                [true, false, false],
                "enum",
            ),
            (
                "enum symbol removed",
                avro_record(&status_enum(r#""NEW","PAID","SHIPPED""#)),
                avro_record(&status_enum(r#""NEW","PAID""#)),
                [false, true, false],
                "enum",
            ),
        ];
        for (name, old, new, expected, mention) in cases {
            let (got, problems) = verdicts(SchemaType::Avro, &old, &new);
            assert_eq!(got, expected, "{name}: {problems:?}");
            assert!(
                problems.iter().all(|p| p.contains(mention)),
                "{name}: {problems:?}"
            );
        }
    }

    #[test]
    fn json_schema_table() {
        let closed = |props: &str, req: &str| {
            format!(
                r#"{{"type":"object","additionalProperties":false,"properties":{{{props}}},"required":[{req}]}}"#
            )
        };
        let open = |props: &str| format!(r#"{{"type":"object","properties":{{{props}}}}}"#);
        let id = r#""id":{"type":"string"}"#;
        let id_qty = r#""id":{"type":"string"},"qty":{"type":"integer"}"#;
        let cases: Vec<(&str, String, String, Verdicts, &str)> = vec![
            (
                "optional property added, closed model",
                closed(id, r#""id""#),
                closed(id_qty, r#""id""#),
                [true, false, false],
                "qty",
            ),
            (
                "required property added, closed model",
                closed(id, r#""id""#),
                closed(id_qty, r#""id","qty""#),
                [false, false, false],
                "qty",
            ),
            (
                "property removed, closed model",
                closed(id_qty, r#""id""#),
                closed(id, r#""id""#),
                [false, true, false],
                "qty",
            ),
            (
                "property added, open model",
                open(id),
                open(id_qty),
                [false, true, false],
                "qty",
            ),
            (
                "property removed, open model",
                open(id_qty),
                open(id),
                [true, false, false],
                "qty",
            ),
            (
                "integer widened to number",
                open(r#""qty":{"type":"integer"}"#),
                open(r#""qty":{"type":"number"}"#),
                [true, false, false],
                "/properties/qty",
            ),
            (
                "enum value added",
                open(r#""s":{"enum":["a","b"]}"#),
                open(r#""s":{"enum":["a","b","c"]}"#),
                [true, false, false],
                "enum value",
            ),
            ("unchanged", open(id), open(id), [true, true, true], ""),
        ];
        for (name, old, new, expected, mention) in cases {
            let (got, problems) = verdicts(SchemaType::Json, &old, &new);
            assert_eq!(got, expected, "{name}: {problems:?}");
            assert!(
                problems.iter().all(|p| p.contains(mention)),
                "{name}: {problems:?}"
            );
        }
    }

    #[test]
    fn protobuf_table() {
        let msg =
            |body: &str| format!("syntax = \"proto3\"; package acme; message Order {{ {body} }}");
        let cases: Vec<(&str, String, String, Verdicts, &str)> = vec![
            ("field added", msg("string id = 1;"), msg("string id = 1; int32 qty = 2;"),
             [true, true, true], ""),
            ("field removed", msg("string id = 1; int32 qty = 2;"), msg("string id = 1;"),
             [true, true, true], ""),
            ("field number reused", msg("string id = 1; int32 qty = 2;"),
             msg("string id = 1; int32 count = 2;"), [false, false, false], "reused"),
            ("field type changed", msg("string id = 1; int32 qty = 2;"),
             msg("string id = 1; double qty = 2;"), [false, false, false], "changed type"),
            ("int32 to int64", msg("int32 qty = 2;"), msg("int64 qty = 2;"),
             [true, true, true], ""),
            ("made repeated", msg("int32 qty = 2;"), msg("repeated int32 qty = 2;"),
             [false, false, false], "repeated"),
            ("message removed",
             "syntax = \"proto3\"; package acme; message Order { string id = 1; } message Line { int32 n = 1; }".into(),
             msg("string id = 1;"), [false, true, false], "Line"),
        ];
        for (name, old, new, expected, mention) in cases {
            let (got, problems) = verdicts(SchemaType::Protobuf, &old, &new);
            assert_eq!(got, expected, "{name}: {problems:?}");
            assert!(
                problems.iter().all(|p| p.contains(mention)),
                "{name}: {problems:?}"
            );
        }
    }

    #[test]
    fn transitive_levels_check_every_version() {
        // v1 has no `qty`; v2 adds it with a default; v3 drops the default. v3 reads v2's data
        // but not v1's, so BACKWARD passes and BACKWARD_TRANSITIVE fails, naming version 1.
        let v1 = parse(SchemaType::Avro, &avro_record(ID), &[]).unwrap();
        let v2 = parse(
            SchemaType::Avro,
            &avro_record(&format!(
                r#"{ID},{{"name":"qty","type":"int","default":0}}"#
            )),
            &[],
        )
        .unwrap();
        let v3 = parse(
            SchemaType::Avro,
            &avro_record(&format!(r#"{ID},{{"name":"qty","type":"int"}}"#)),
            &[],
        )
        .unwrap();
        let existing = [(1, &v1), (2, &v2)];
        assert!(check(Level::Backward, &v3, &existing).is_empty());
        let problems = check(Level::BackwardTransitive, &v3, &existing);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("version 1") && problems[0].contains("qty"),
            "{problems:?}"
        );
        assert!(check(Level::ForwardTransitive, &v3, &existing).is_empty());
        assert!(!check(Level::FullTransitive, &v3, &existing).is_empty());
    }

    #[test]
    fn levels_parse_in_any_case_and_refuse_others() {
        assert_eq!(Level::parse("full_transitive"), Ok(Level::FullTransitive));
        assert!(
            Level::parse("SIDEWAYS")
                .unwrap_err()
                .contains("BACKWARD_TRANSITIVE")
        );
    }
}
