//! The three schema formats of the registry — Avro, JSON Schema, Protobuf — parsed by their own
//! libraries (`apache-avro`, `jsonschema`, `protox`/`prost-reflect`), with the references a
//! schema names resolved to the texts of other registered schemas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A schema's format, named as Confluent names it (`AVRO` is the default when a request leaves
/// `schemaType` out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (`.avsc` JSON).
    #[default]
    Avro,
    /// JSON Schema (draft 7 or 2020-12; `$schema` decides, 2020-12 when absent).
    Json,
    /// Protocol Buffers (`.proto` text, proto2 or proto3, or a base64-encoded
    /// `FileDescriptorProto` as Confluent's serializers register it).
    Protobuf,
}

impl SchemaType {
    /// The name as stored and sent (`AVRO`, `JSON`, `PROTOBUF`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(text: &str) -> Result<SchemaType, String> {
        match text.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            other => Err(format!(
                "unknown schema type `{other}` (known: AVRO, JSON, PROTOBUF)"
            )),
        }
    }
}

/// A schema another one refers to, resolved to its text: `name` is how the referring schema
/// names it (an Avro full name, a JSON Schema `$ref` URI, a Protobuf import path). The same
/// shape as the references a deployed spec embeds.
pub use weir_pipelines::spec::NamedSchema as ResolvedRef;

/// A schema that parsed, ready for compatibility checks.
pub enum Parsed {
    /// An Avro schema with its named types resolved.
    Avro(apache_avro::Schema),
    /// A JSON Schema document (it compiled as a validator).
    Json(serde_json::Value),
    /// The descriptors of a `.proto` file and its imports; `file` names the main file.
    Protobuf {
        /// All descriptors.
        pool: prost_reflect::DescriptorPool,
        /// The main file's name in the pool.
        file: String,
    },
}

/// The name under which a Protobuf schema's own text is compiled.
const PROTO_MAIN: &str = "__schema__.proto";

/// Parses `text` as a schema of `kind`, or says why it is not one.
pub fn parse(kind: SchemaType, text: &str, refs: &[ResolvedRef]) -> Result<Parsed, String> {
    match kind {
        SchemaType::Avro => parse_avro(text, refs),
        SchemaType::Json => parse_json(text, refs),
        SchemaType::Protobuf => parse_protobuf(text, refs),
    }
}

/// The text by which identical schemas are recognised (registering the same schema twice gives
/// the same id): Avro's parsing canonical form, compact JSON, the `.proto` text trimmed (a
/// base64 descriptor has been turned into its `.proto` text by then, see [`stored_text`], so
/// the same descriptor sent twice is recognised by the same text).
pub fn normalized(kind: SchemaType, parsed: &Parsed, text: &str) -> String {
    match (kind, parsed) {
        (_, Parsed::Avro(schema)) => schema.canonical_form(),
        (_, Parsed::Json(value)) => value.to_string(),
        _ => text.trim().to_string(),
    }
}

/// The text to store instead of `text`, if any: a Protobuf schema sent as a base64
/// `FileDescriptorProto` (what Confluent's `ProtobufSerializer` registers) is stored as its
/// `.proto` text, as Confluent's registry stores it, when that text compiles back to the same
/// descriptor (with `refs` as its imports); anything else is stored as sent.
pub fn stored_text(kind: SchemaType, text: &str, refs: &[ResolvedRef]) -> Option<String> {
    if kind != SchemaType::Protobuf {
        return None;
    }
    weir_pipelines::proto_text::as_proto_text(text, refs.iter().map(ResolvedRef::pair))
}

fn parse_avro(text: &str, refs: &[ResolvedRef]) -> Result<Parsed, String> {
    let schema = if refs.is_empty() {
        apache_avro::Schema::parse_str(text)
    } else {
        apache_avro::Schema::parse_str_with_list(text, refs.iter().map(|r| r.schema.as_str()))
            .map(|(schema, _)| schema)
    };
    schema
        .map(Parsed::Avro)
        .map_err(|e| format!("invalid Avro schema: {e}"))
}

fn parse_json(text: &str, refs: &[ResolvedRef]) -> Result<Parsed, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON Schema: not JSON: {e}"))?;
    let names = refs.iter().map(|r| r.name.as_str());
    if let Some((at, r)) = weir_pipelines::json_refs::unresolved(&value, names)
        .into_iter()
        .next()
    {
        return Err(format!(
            "invalid JSON Schema at `{at}`: `$ref` `{r}` is neither in the schema nor among its \
             references; register the schema it names as a subject and list it in `references` \
             (`{{\"name\": \"{r}\", \"subject\": …, \"version\": …}}`)",
            r = r.split('#').next().unwrap_or(&r)
        ));
    }
    weir_pipelines::json_refs::validator(&value, refs.iter().map(ResolvedRef::pair))
        .map_err(|e| format!("invalid JSON Schema at `{}`: {e}", e.schema_path()))?;
    Ok(Parsed::Json(value))
}

fn parse_protobuf(text: &str, refs: &[ResolvedRef]) -> Result<Parsed, String> {
    let imports = refs.iter().map(ResolvedRef::pair);
    let pool = weir_pipelines::proto_files::compile(PROTO_MAIN, text, imports)
        .map_err(|e| format!("invalid Protobuf schema: {e}"))?;
    Ok(Parsed::Protobuf {
        pool,
        file: PROTO_MAIN.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_parses_and_refuses_garbage() {
        let avro = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
        assert!(parse(SchemaType::Avro, avro, &[]).is_ok());
        let err = parse(SchemaType::Avro, r#"{"type":"recrd"}"#, &[])
            .err()
            .unwrap();
        assert!(err.starts_with("invalid Avro schema"), "{err}");

        let json = r#"{"type":"object","properties":{"id":{"type":"string"}}}"#;
        assert!(parse(SchemaType::Json, json, &[]).is_ok());
        let err = parse(SchemaType::Json, r#"{"type":"strng"}"#, &[])
            .err()
            .unwrap();
        assert!(err.starts_with("invalid JSON Schema"), "{err}");

        let proto = "syntax = \"proto3\"; message Order { string id = 1; }";
        assert!(parse(SchemaType::Protobuf, proto, &[]).is_ok());
        let err = parse(SchemaType::Protobuf, "message Order { strin id = 1; }", &[])
            .err()
            .unwrap();
        assert!(err.starts_with("invalid Protobuf schema"), "{err}");
    }

    #[test]
    fn references_resolve_in_each_format() {
        let customer = ResolvedRef {
            name: "com.acme.Customer".into(),
            schema: r#"{"type":"record","name":"Customer","namespace":"com.acme","fields":[{"name":"id","type":"string"}]}"#.into(),
        };
        let order = r#"{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"customer","type":"com.acme.Customer"}]}"#;
        assert!(parse(SchemaType::Avro, order, &[]).is_err());
        assert!(parse(SchemaType::Avro, order, &[customer]).is_ok());

        let proto_ref = ResolvedRef {
            name: "customer.proto".into(),
            schema: "syntax = \"proto3\"; package acme; message Customer { string id = 1; }".into(),
        };
        let proto = "syntax = \"proto3\"; package acme; import \"customer.proto\"; \
                     message Order { Customer customer = 1; }";
        assert!(parse(SchemaType::Protobuf, proto, &[]).is_err());
        assert!(parse(SchemaType::Protobuf, proto, &[proto_ref]).is_ok());

        let json_ref = ResolvedRef {
            name: "customer.json".into(),
            schema: r#"{"type":"object","required":["id"]}"#.into(),
        };
        let json = r#"{"type":"object","properties":{"customer":{"$ref":"customer.json"}}}"#;
        assert!(parse(SchemaType::Json, json, &[json_ref]).is_ok());
        // Without the reference: what to do, and where.
        let err = parse(SchemaType::Json, json, &[]).err().unwrap();
        assert!(
            err.contains("at `/properties/customer`")
                && err.contains("`$ref` `customer.json`")
                && err.contains("references"),
            "{err}"
        );
    }
}
