//! Output payloads written with a registry schema (`publish: {format, schema, wire}`): the
//! output's JSON is checked against a JSON Schema, or converted into an Avro datum or a
//! Protobuf message, then framed in the Confluent wire format (or left bare). A value that
//! does not fit is that message's failure, with the path of the field that does not fit.

use super::avro_encode::AvroWriter;
use super::protobuf_encode::ProtobufWriter;
use serde_json::Value;
use weir_pipelines::spec::{NamedSchema, OutputFormat, PublishSpec, WireFormat};

/// The header naming the registry schema id an output was written with.
pub(crate) const SCHEMA_ID_HEADER: &str = "Weir-Schema-Id";

/// How one `publish` node writes its outputs.
pub(crate) struct OutputEncoder {
    /// The registry schema's global id.
    pub(crate) id: i64,
    subject: String,
    confluent: bool,
    kind: Writer,
}

enum Writer {
    /// The validator, and its fast path when the schema is within its subset.
    Json(
        jsonschema::Validator,
        Option<Box<crate::json_check::FastSchema>>,
    ),
    Avro(AvroWriter),
    Protobuf(ProtobufWriter),
}

impl OutputEncoder {
    /// The encoder of `spec`: `Ok(None)` without a registry schema; `Err` when the schema is
    /// not resolved yet (the control plane embeds it at deploy) or cannot be used.
    pub(crate) fn build(spec: &PublishSpec) -> Result<Option<OutputEncoder>, String> {
        let Some(schema) = &spec.schema else {
            return Ok(None);
        };
        let Some(writer) = &schema.writer else {
            return Err(format!(
                "registry schema `{}` was not resolved: a `publish` with a registry schema \
                 runs when deployed through the control plane, which embeds the schema",
                schema.subject
            ));
        };
        let bad = |e: String| format!("schema id {} of `{}`: {e}", writer.id, schema.subject);
        let kind = match spec.format {
            OutputFormat::Json => {
                let doc: Value = serde_json::from_str(&writer.schema)
                    .map_err(|e| bad(format!("not JSON: {e}")))?;
                Writer::Json(
                    weir_pipelines::json_refs::validator(
                        &doc,
                        writer.references.iter().map(NamedSchema::pair),
                    )
                    .map_err(|e| bad(format!("not a valid JSON Schema: {e}")))?,
                    crate::json_check::FastSchema::compile(&doc).map(Box::new),
                )
            }
            OutputFormat::Avro => Writer::Avro(AvroWriter::new(writer).map_err(bad)?),
            OutputFormat::Protobuf => {
                let file = super::protobuf::compile(writer).map_err(bad)?;
                Writer::Protobuf(
                    ProtobufWriter::new(&file, schema.message.as_deref()).map_err(bad)?,
                )
            }
        };
        let confluent = match spec.wire {
            Some(w) => w == WireFormat::Confluent,
            None => spec.format != OutputFormat::Json,
        };
        Ok(Some(OutputEncoder {
            id: writer.id,
            subject: schema.subject.clone(),
            confluent,
            kind,
        }))
    }

    /// The output payload for the JSON `payload`, or why it does not fit the schema.
    pub(crate) fn encode(&self, payload: bytes::Bytes) -> Result<bytes::Bytes, String> {
        if let Writer::Json(_, Some(fast)) = &self.kind
            && std::str::from_utf8(&payload).is_ok_and(|t| fast.valid(t))
        {
            return Ok(self.frame(payload, &[]));
        }
        let value: Value =
            serde_json::from_slice(&payload).map_err(|e| format!("the output is not JSON: {e}"))?;
        let what = |kind: &str, e: String| {
            format!(
                "the output does not fit {kind} schema `{}` (id {}): {e}",
                self.subject, self.id
            )
        };
        let (body, indexes): (bytes::Bytes, &[u8]) = match &self.kind {
            Writer::Json(v, _) => {
                if !v.is_valid(&value) {
                    return Err(what("JSON", crate::schema_failures::failures(v, &value)));
                }
                (payload, &[])
            }
            Writer::Avro(a) => (a.encode(&value).map_err(|e| what("Avro", e))?.into(), &[]),
            Writer::Protobuf(p) => (
                p.encode(&value).map_err(|e| what("Protobuf", e))?.into(),
                &p.indexes,
            ),
        };
        Ok(self.frame(body, indexes))
    }

    /// `body` in the Confluent wire format (magic byte, schema id, message indexes), or bare.
    fn frame(&self, body: bytes::Bytes, indexes: &[u8]) -> bytes::Bytes {
        if !self.confluent {
            return body;
        }
        let id = u32::try_from(self.id).unwrap_or_default();
        let mut out = Vec::with_capacity(5 + indexes.len() + body.len());
        out.push(0);
        out.extend(id.to_be_bytes());
        out.extend(indexes);
        out.extend(body);
        out.into()
    }
}

/// Where a value is, as a JSON pointer rendered only when a reason needs it (`/` for the
/// whole output).
pub(super) enum At<'a> {
    /// The whole output.
    Root,
    /// A member of an object.
    Key(&'a At<'a>, &'a str),
    /// An element of an array.
    Index(&'a At<'a>, usize),
}

impl At<'_> {
    fn write(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(parent, key) => {
                parent.write(f)?;
                write!(f, "/{}", key.replace('~', "~0").replace('/', "~1"))
            }
            At::Index(parent, i) => {
                parent.write(f)?;
                write!(f, "/{i}")
            }
        }
    }
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            At::Root => f.write_str("/"),
            other => other.write(f),
        }
    }
}
