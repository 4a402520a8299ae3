//! Avro and Protobuf source payloads: each message is decoded with the registry schemas the
//! control plane embedded in the deployed spec and re-encoded as JSON, which then takes the
//! ordinary JSON path (so `data.customer.id` reads the same in all formats).
//!
//! A payload is the Confluent wire format (byte 0, a 4-byte big-endian schema id, then the
//! encoded message; Protobuf adds message indexes) when it starts with byte 0 and names an id
//! of the subject; otherwise it is bare, written with the pipeline's schema.

use std::collections::HashMap;
use weir_pipelines::PayloadFormat;
use weir_pipelines::spec::SourceSchema;

mod avro;
mod avro_encode;
mod avro_json;
pub(crate) mod encode;
mod protobuf;
mod protobuf_encode;

/// A decoder of one pipeline's binary payloads into JSON.
pub(crate) enum BinaryPayload {
    /// Avro, with schema resolution into the reader schema.
    Avro(avro::AvroPayload),
    /// Protobuf.
    Protobuf(protobuf::ProtobufPayload),
}

impl BinaryPayload {
    /// The decoder for `format` with `schema`; `None` for JSON and raw. `Err` says why the
    /// embedded schemas cannot be used; a schema the control plane has not embedded yet is an
    /// error unless `checking` (a file checked without the registry).
    pub(crate) fn build(
        format: PayloadFormat,
        schema: Option<&SourceSchema>,
        checking: bool,
    ) -> Result<Option<BinaryPayload>, String> {
        if matches!(format, PayloadFormat::Json | PayloadFormat::Raw) {
            return Ok(None);
        }
        let Some(schema) = schema.filter(|s| !s.writers.is_empty()) else {
            if checking {
                return Ok(None);
            }
            return Err(
                "the source's schema is not resolved: deploy the pipeline through the \
                 control plane, which embeds the registry subject's schemas"
                    .into(),
            );
        };
        let reader_id = schema.id.unwrap_or_else(|| {
            schema
                .writers
                .iter()
                .map(|w| w.id)
                .max()
                .unwrap_or_default()
        });
        Ok(Some(match format {
            PayloadFormat::Avro => BinaryPayload::Avro(avro::AvroPayload::new(schema, reader_id)?),
            _ => BinaryPayload::Protobuf(protobuf::ProtobufPayload::new(schema, reader_id)?),
        }))
    }

    /// The payload as JSON bytes, or why it cannot be decoded.
    pub(crate) fn to_json(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        match self {
            BinaryPayload::Avro(a) => a.to_json_bytes(payload),
            BinaryPayload::Protobuf(p) => serde_json::to_vec(&p.decode(payload)?)
                .map_err(|e| format!("re-encoding as JSON: {e}")),
        }
    }
}

/// The Confluent wire-format header: the schema id and the rest, when `payload` starts with
/// the magic byte 0 and has room for an id.
fn wire_header(payload: &[u8]) -> Option<(i64, &[u8])> {
    match payload {
        [0, a, b, c, d, rest @ ..] => Some((i64::from(u32::from_be_bytes([*a, *b, *c, *d])), rest)),
        _ => None,
    }
}

/// Parsed schemas by global id, and the reader's.
struct ById<T> {
    by_id: HashMap<i64, T>,
    reader: i64,
    subject: String,
}

impl<T> ById<T> {
    fn reader(&self) -> &T {
        &self.by_id[&self.reader]
    }

    /// Which schema decodes `payload`: the wire format's when its id is known, else the bare
    /// reader schema (with the unknown id, if any, for the error message).
    fn pick<'p>(&self, payload: &'p [u8]) -> Pick<'_, 'p, T> {
        match wire_header(payload) {
            Some((id, rest)) => match self.by_id.get(&id) {
                Some(w) => Pick::Wire(w, rest),
                None => Pick::Bare(Some(id)),
            },
            None => Pick::Bare(None),
        }
    }

    /// The message for a payload that is neither a known wire-format message nor bare.
    fn undecodable(&self, unknown_id: Option<i64>, bare_error: &str, format: &str) -> String {
        let mut ids: Vec<i64> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        match unknown_id {
            Some(id) => format!(
                "unknown schema id {id} in the Confluent wire-format header: subject `{}` has ids {ids:?} (as bare {format}: {bare_error})",
                self.subject
            ),
            None => format!(
                "not {format} of subject `{}` (schema id {}): {bare_error}; a Confluent wire-format payload starts with byte 0x00 and a known schema id",
                self.subject, self.reader
            ),
        }
    }
}

enum Pick<'s, 'p, T> {
    Wire(&'s T, &'p [u8]),
    Bare(Option<i64>),
}
