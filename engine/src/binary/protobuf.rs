//! Protobuf payloads: schemas compiled by [`weir_pipelines::proto_files`], messages decoded with
//! `prost-reflect` (the Confluent message indexes pick the message type; a bare payload is the
//! first message of the pipeline's schema), then as JSON with the `.proto` field names. Most
//! payloads skip the `DynamicMessage`: their text, or only the values of the paths a pipeline
//! reads, comes straight from the binary ([`super::protobuf_paths`]); this module's decoding
//! is the reference those agree with, and gives the errors.

use super::avro_json::Recording;
use super::protobuf_paths::Direct;
use super::typed_columns::{Leaf, Typed};
use super::{ById, Pick, wire_header};
use crate::decode::PathTrie;
use prost_reflect::{
    DynamicMessage, FileDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value as Pb,
};
use serde_json::{Map, Number, Value};
use weir_pipelines::spec::{EmbeddedSchema, NamedSchema, SourceSchema};

/// The name the main schema compiles under.
const MAIN: &str = "weir_source.proto";

/// The Protobuf schemas of one source.
pub(crate) struct ProtobufPayload {
    schemas: ById<FileDescriptor>,
    /// The direct reader of each schema (in the order of `schemas`), once bound.
    direct: Vec<Direct>,
    /// The type of each path slot in every message the direct readers take, when payloads
    /// may be read into typed columns.
    leaves: Option<Vec<Leaf>>,
}

impl ProtobufPayload {
    /// Compiles every embedded schema; `reader_id` must be one of them.
    pub(crate) fn new(schema: &SourceSchema, reader_id: i64) -> Result<ProtobufPayload, String> {
        let mut by_id = Vec::new();
        for w in &schema.writers {
            let file = compile(w)
                .map_err(|e| format!("schema id {} is not a valid Protobuf schema: {e}", w.id))?;
            if file.messages().len() == 0 {
                return Err(format!("schema id {} declares no message", w.id));
            }
            by_id.push((w.id, file));
        }
        Ok(ProtobufPayload {
            schemas: ById::new(by_id, reader_id, schema.subject.clone())?,
            direct: Vec::new(),
            leaves: None,
        })
    }

    /// Readies the direct readers for the pipeline's paths `trie` (`n_slots` of them); with
    /// `typed`, for typed columns too.
    pub(crate) fn bind(&mut self, trie: &PathTrie, n_slots: usize, typed: bool) {
        self.direct = self
            .schemas
            .by_id
            .iter()
            .map(|(_, file)| Direct::compile(file, trie, n_slots))
            .collect();
        // One type per slot over every message a payload may name.
        let mut leaves = vec![Leaf::Null; n_slots];
        let mut any = false;
        for d in &self.direct {
            for m in 0..d.messages() {
                if !d.takes(m) {
                    continue;
                }
                any = true;
                let Some(each) = d.leaves(m) else {
                    self.leaves = None;
                    return;
                };
                for (have, leaf) in leaves.iter_mut().zip(each) {
                    match have.merge(*leaf) {
                        Some(l) => *have = l,
                        None => {
                            self.leaves = None;
                            return;
                        }
                    }
                }
            }
        }
        self.leaves = (typed && any).then_some(leaves);
    }

    /// The type of each path slot, when payloads may be read into typed columns.
    pub(crate) fn leaves(&self) -> Option<&[Leaf]> {
        self.leaves.as_deref()
    }

    /// Reads one payload's path values into `typed`; `false` when the direct reader does not
    /// take it (then [`ProtobufPayload::decode`] gives its text or its error).
    pub(crate) fn read_typed<'v>(&'v self, payload: &'v [u8], typed: &mut [Typed<'v>]) -> bool {
        if self.leaves.is_none() {
            return false;
        }
        let Some((direct, message, body)) = self.direct_body(payload) else {
            return false;
        };
        direct.read_typed(message, body, typed).is_some()
    }

    /// Checks `payload` and writes the values of the bound paths into `values` (`slots` says
    /// where); `false` when the direct reader does not take it.
    pub(crate) fn skim_into(
        &self,
        payload: &[u8],
        values: &mut Vec<u8>,
        slots: &mut [Option<[u32; 2]>],
    ) -> bool {
        let Some((direct, message, body)) = self.direct_body(payload) else {
            return false;
        };
        direct.skim(message, body, values, slots).is_some()
    }

    /// The direct reader of a payload, the top-level message it holds and its body: a
    /// wire-format payload with a known id whose message indexes name a top-level message,
    /// or a bare one (the reader schema's first message). A message the reader has no plan
    /// for is refused by what reads it.
    fn direct_body<'p>(&self, payload: &'p [u8]) -> Option<(&Direct, usize, &'p [u8])> {
        match wire_header(payload) {
            Some((id, mut rest)) => {
                let at = self.schemas.by_id.iter().position(|(i, _)| *i == id)?;
                let message = match zigzag(&mut rest).ok()? {
                    0 => 0,
                    1 => usize::try_from(zigzag(&mut rest).ok()?).ok()?,
                    _ => return None,
                };
                Some((self.direct.get(at)?, message, rest))
            }
            None => Some((self.direct.get(self.schemas.reader)?, 0, payload)),
        }
    }

    /// Appends the JSON text of one payload to `out`: straight from the binary where the
    /// direct writer takes it, recording into `rec` where the bound paths and the top-level
    /// fields went when it can (`Ok(true)`: the text needs no scan); else through
    /// [`ProtobufPayload::decode`], which also gives the error of a payload that does not
    /// decode (`Ok(false)`).
    pub(crate) fn write_json(
        &self,
        payload: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
    ) -> Result<bool, String> {
        if let Some((direct, message, body)) = self.direct_body(payload)
            && let Some(recorded) = direct.write_json(message, body, out, rec)
        {
            return Ok(recorded);
        }
        serde_json::to_writer(out, &self.decode(payload)?)
            .map_err(|e| format!("re-encoding as JSON: {e}"))?;
        Ok(false)
    }

    /// Decodes one payload into JSON.
    pub(crate) fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        match self.schemas.pick(payload) {
            Pick::Wire(file, body) => {
                let (message, body) = message_by_indexes(file, body).map_err(|e| {
                    format!("corrupt Protobuf payload (Confluent wire format): {e}")
                })?;
                decode(message, body)
                    .map_err(|e| format!("corrupt Protobuf payload (Confluent wire format): {e}"))
            }
            Pick::Bare(unknown) => {
                let first = self.schemas.reader().messages().next();
                first
                    .ok_or_else(|| "no message".to_string())
                    .and_then(|m| decode(m, payload))
                    .map_err(|e| self.schemas.undecodable(unknown, &e, "Protobuf"))
            }
        }
    }
}

/// Compiles one schema with its references (and Google's well-known types).
pub(super) fn compile(schema: &EmbeddedSchema) -> Result<FileDescriptor, String> {
    let imports = schema.references.iter().map(NamedSchema::pair);
    weir_pipelines::proto_files::compile(MAIN, &schema.schema, imports)
        .map_err(|e| e.to_string())?
        .get_file_by_name(MAIN)
        .ok_or_else(|| "the compiled file is missing".to_string())
}

/// The message type the Confluent message indexes name (a zigzag varint count, then that many
/// zigzag varint indexes: top-level message, then nested ones; a lone 0 means the first
/// message), and the bytes after them.
fn message_by_indexes<'b>(
    file: &FileDescriptor,
    mut body: &'b [u8],
) -> Result<(MessageDescriptor, &'b [u8]), String> {
    let count = zigzag(&mut body)?;
    let indexes: Vec<i64> = if count == 0 {
        vec![0]
    } else {
        if !(1..=32).contains(&count) {
            return Err(format!("{count} message indexes"));
        }
        (0..count)
            .map(|_| zigzag(&mut body))
            .collect::<Result<_, _>>()?
    };
    let missing = || format!("message indexes {indexes:?} name no message of the schema");
    let nth = |mut it: Box<dyn Iterator<Item = MessageDescriptor> + '_>, i: i64| {
        usize::try_from(i).ok().and_then(|i| it.nth(i))
    };
    let mut message = nth(Box::new(file.messages()), indexes[0]).ok_or_else(missing)?;
    for &i in &indexes[1..] {
        let parent = message.clone();
        message = nth(
            Box::new(parent.child_messages().filter(|m| !m.is_map_entry())),
            i,
        )
        .ok_or_else(missing)?;
    }
    Ok((message, body))
}

/// One zigzag-encoded varint.
fn zigzag(body: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = body
            .split_first()
            .ok_or_else(|| "truncated message indexes".to_string())?;
        *body = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err("malformed message indexes".into())
}

fn decode(message: MessageDescriptor, body: &[u8]) -> Result<Value, String> {
    DynamicMessage::decode(message, body)
        .map(|m| message_json(&m))
        .map_err(|e| e.to_string())
}

/// A message as a JSON object keyed by `.proto` field names; fields without presence are
/// present with their defaults, `optional` and `oneof` fields only when set;
/// `google.protobuf.Timestamp` as RFC 3339 text.
pub(super) fn message_json(m: &DynamicMessage) -> Value {
    let desc = m.descriptor();
    if desc.full_name() == "google.protobuf.Timestamp" {
        return timestamp(m);
    }
    let mut out = Map::new();
    for f in desc.fields() {
        if f.supports_presence() && !m.has_field(&f) {
            continue;
        }
        out.insert(
            f.name().to_string(),
            value_json(&m.get_field(&f), &f.kind()),
        );
    }
    Value::Object(out)
}

fn value_json(v: &Pb, kind: &Kind) -> Value {
    use base64::Engine as _;
    match v {
        Pb::Bool(b) => Value::Bool(*b),
        Pb::I32(i) => Value::from(*i),
        Pb::I64(i) => Value::from(*i),
        Pb::U32(i) => Value::from(*i),
        Pb::U64(i) => Value::from(*i),
        Pb::F32(f) => float(f64::from(*f)),
        Pb::F64(f) => float(*f),
        Pb::String(s) => Value::String(s.clone()),
        Pb::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Pb::EnumNumber(n) => match kind.as_enum().and_then(|e| e.get_value(*n)) {
            Some(v) => Value::String(v.name().to_string()),
            None => Value::from(*n),
        },
        Pb::Message(m) => message_json(m),
        Pb::List(items) => Value::Array(items.iter().map(|i| value_json(i, kind)).collect()),
        Pb::Map(entries) => {
            let value_kind = kind
                .as_message()
                .map(|e| e.map_entry_value_field().kind())
                .unwrap_or(Kind::String);
            let mut pairs: Vec<(String, Value)> = entries
                .iter()
                .map(|(k, v)| (map_key(k), value_json(v, &value_kind)))
                .collect();
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(pairs.into_iter().collect())
        }
    }
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(i) => i.to_string(),
        MapKey::I64(i) => i.to_string(),
        MapKey::U32(i) => i.to_string(),
        MapKey::U64(i) => i.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

fn timestamp(m: &DynamicMessage) -> Value {
    let seconds = m.get_field_by_name("seconds").and_then(|v| v.as_i64());
    let nanos = m.get_field_by_name("nanos").and_then(|v| v.as_i32());
    let total = i128::from(seconds.unwrap_or(0)) * 1_000_000_000 + i128::from(nanos.unwrap_or(0));
    time::OffsetDateTime::from_unix_timestamp_nanos(total)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map_or(Value::Null, Value::String)
}
