//! Avro payloads: the writer schema (by the wire format's id, or the pipeline's for bare
//! payloads) resolved into the pipeline's reader schema with `apache-avro`, then as JSON. One
//! datum reader per writer schema is built when the pipeline compiles (its named types
//! resolved once), and a payload written with the reader schema itself is not resolved.

use super::avro_json::{Node, Recording};
use super::typed_columns::{Leaf, Typed};
use super::{ById, Pick};
use crate::decode::PathTrie;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;
use weir_pipelines::spec::{EmbeddedSchema, SourceSchema};

/// The Avro schemas of one source: a datum reader per writer schema, and the direct
/// transcoder of the reader schema when it has one.
pub(crate) struct AvroPayload {
    schemas: ById<Decoder>,
    fast: Option<Node>,
    /// The type of each path slot, when the bound paths may be read straight into typed
    /// columns ([`AvroPayload::read_typed`]).
    leaves: Option<Vec<Leaf>>,
}

/// A writer schema, the reader schema it is resolved into (none when it is the reader), and
/// the datum reader over both.
#[ouroboros::self_referencing]
struct Decoder {
    writer: Schema,
    reader: Option<Schema>,
    /// The named types of the schema the values come out in (the reader, else the writer).
    names: Names,
    #[borrows(writer, reader)]
    #[not_covariant]
    datum: GenericDatumReader<'this>,
}

impl Decoder {
    fn build(writer: Schema, reader: Option<Schema>) -> Result<Decoder, String> {
        let mut names = Names::new();
        super::avro_encode::collect_names(reader.as_ref().unwrap_or(&writer), &mut names);
        DecoderTryBuilder {
            writer,
            reader,
            names,
            datum_builder: |w: &Schema, r: &Option<Schema>| match r {
                Some(r) => GenericDatumReader::builder(w).reader_schema(r).build(),
                None => GenericDatumReader::builder(w).build(),
            },
        }
        .try_build()
        .map_err(|e| e.to_string())
    }
}

/// A registry schema as one self-contained Avro schema: the named types it takes from its
/// references (other subjects' schemas, by full name) are written into it, defaults and docs
/// kept, so that its readers, writers and the transcoder never look anything up.
pub(super) fn self_contained(schema: &EmbeddedSchema) -> Result<Schema, String> {
    if schema.references.is_empty() {
        return Schema::parse_str(&schema.schema).map_err(|e| e.to_string());
    }
    let texts = schema.references.iter().map(|r| r.schema.as_str());
    let (mut main, named) =
        Schema::parse_str_with_list(&schema.schema, texts).map_err(|e| e.to_string())?;
    main.denormalize(&named).map_err(|e| e.to_string())?;
    Ok(main)
}

impl AvroPayload {
    /// Parses every embedded schema; `reader_id` must be one of them. The direct transcoder
    /// is compiled when the pipeline's paths are known ([`AvroPayload::bind`]).
    pub(crate) fn new(schema: &SourceSchema, reader_id: i64) -> Result<AvroPayload, String> {
        let mut parsed = Vec::new();
        for w in &schema.writers {
            let s = self_contained(w)
                .map_err(|e| format!("schema id {} is not a valid Avro schema: {e}", w.id))?;
            parsed.push((w.id, s));
        }
        let Some(reader) = parsed
            .iter()
            .find(|(id, _)| *id == reader_id)
            .map(|(_, s)| s.clone())
        else {
            return Err(format!(
                "schema id {reader_id} is not among the embedded schemas"
            ));
        };
        let mut by_id = Vec::new();
        for (id, writer) in parsed {
            let resolve_into = (id != reader_id).then(|| reader.clone());
            let decoder = Decoder::build(writer, resolve_into)
                .map_err(|e| format!("schema id {id} cannot be read as id {reader_id}: {e}"))?;
            by_id.push((id, decoder));
        }
        Ok(AvroPayload {
            fast: None,
            leaves: None,
            schemas: ById::new(by_id, reader_id, schema.subject.clone())?,
        })
    }

    /// Compiles the direct transcoder of the reader schema for the pipeline's paths `trie`,
    /// which [`AvroPayload::transcode_into`] then records.
    /// With `typed` (no path has a declared type), paths whose values are primitive in every
    /// payload may also be read straight into typed columns.
    pub(crate) fn bind(&mut self, trie: &PathTrie, n_slots: usize, typed: bool) {
        let reader = self.schemas.reader().borrow_writer();
        // Deeper than the JSON decoder takes: the slow path, whose text is checked.
        self.fast = Node::compile_for(reader, trie).filter(|n| n.depth() <= crate::scan::MAX_DEPTH);
        self.leaves = match &self.fast {
            Some(fast) if typed => fast.slot_leaves(n_slots),
            _ => None,
        };
    }

    /// The type of each path slot, when payloads may be read into typed columns.
    pub(crate) fn leaves(&self) -> Option<&[Leaf]> {
        self.leaves.as_deref()
    }

    /// Reads one payload's path values into `typed` (see [`Node::read_typed`]); `false` when
    /// the direct reader does not take it (then [`AvroPayload::transcode_into`] gives its text
    /// or its error).
    pub(crate) fn read_typed<'v>(&'v self, payload: &'v [u8], typed: &mut [Typed<'v>]) -> bool {
        let (Some(fast), Some(_)) = (&self.fast, &self.leaves) else {
            return false;
        };
        let Some(body) = self.reader_body(payload) else {
            return false;
        };
        fast.read_typed(body, typed).is_some()
    }

    /// Appends the JSON text of one payload to `out`. Straight from the binary when it is
    /// written with the reader schema and the transcoder takes it: then `rec` says where the
    /// pipeline's paths (those it was bound to) and the top-level fields went, and the result
    /// is `Ok(true)`. Otherwise through [`AvroPayload::decode`], with nothing recorded
    /// (`Ok(false)`: the JSON decoder scans the text).
    pub(crate) fn transcode_into(
        &self,
        payload: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
    ) -> Result<bool, String> {
        if let Some(fast) = &self.fast
            && let Some(body) = self.reader_body(payload)
        {
            if fast.transcode_recording(body, out, rec).is_some() {
                return Ok(true);
            }
            // The direct transcoder checks all that apache-avro checks: a body it refuses is
            // corrupt, even where apache-avro reads it (a string cut short by the end of the
            // payload reads as null there). apache-avro's message, when it has one.
            self.decode(payload)?;
            let why = "the record ends early, or holds a value its schema does not allow";
            return Err(if std::ptr::eq(body, payload) {
                self.schemas.undecodable(None, why, "Avro")
            } else {
                format!("corrupt Avro payload (Confluent wire format): {why}")
            });
        }
        serde_json::to_writer(out, &self.decode(payload)?)
            .map_err(|e| format!("re-encoding as JSON: {e}"))?;
        Ok(false)
    }

    /// Checks one payload and records the values of the paths the transcoder was bound to
    /// (as [`Node::skim_recording`]) without writing its text; `false` when the direct
    /// transcoder does not take it (then [`AvroPayload::transcode_into`] gives its text or
    /// its error).
    pub(crate) fn skim_into(
        &self,
        payload: &[u8],
        values: &mut Vec<u8>,
        slots: &mut [Option<[u32; 2]>],
    ) -> bool {
        let Some(fast) = &self.fast else {
            return false;
        };
        let Some(body) = self.reader_body(payload) else {
            return false;
        };
        fast.skim_recording(body, values, slots).is_some()
    }

    /// The datum of a payload written with the reader schema (wire format with its id, or
    /// bare): the one the direct transcoder reads.
    fn reader_body<'p>(&self, payload: &'p [u8]) -> Option<&'p [u8]> {
        match self.schemas.pick(payload) {
            Pick::Wire(w, body) if std::ptr::eq(w, self.schemas.reader()) => Some(body),
            Pick::Bare(None) => Some(payload),
            _ => None,
        }
    }

    /// Decodes one payload into JSON.
    pub(crate) fn decode(&self, payload: &[u8]) -> Result<Value, String> {
        match self.schemas.pick(payload) {
            Pick::Wire(writer, body) => datum(writer, body)
                .map_err(|e| format!("corrupt Avro payload (Confluent wire format): {e}")),
            Pick::Bare(unknown) => datum(self.schemas.reader(), payload)
                .map_err(|e| self.schemas.undecodable(unknown, &e, "Avro")),
        }
    }
}

/// One datum read with `decoder`; every byte must be used, and none past the end.
fn datum(decoder: &Decoder, body: &[u8]) -> Result<Value, String> {
    let mut body = Watched {
        rest: body,
        short: false,
    };
    let value = decoder
        .with_datum(|d| d.read_value(&mut body))
        .map_err(|e| e.to_string())?;
    if body.short {
        return Err(ENDS_EARLY.into());
    }
    if !body.rest.is_empty() {
        return Err(format!("{} bytes left after the record", body.rest.len()));
    }
    Ok(decoder.with(|d| {
        let schema = d.reader.as_ref().unwrap_or(d.writer);
        to_json(value, Some(schema), d.names)
    }))
}

/// Why a payload cut short is refused.
const ENDS_EARLY: &str = "the record ends early: a value is cut short by the end of the payload";

/// A payload's bytes as apache-avro reads them, noting a read that asked for more bytes than
/// were left. apache-avro 0.22 reads a boolean, a string or a union's branch cut short by the
/// end of the payload as null (`decode.rs`: `UnexpectedEof => Ok(Value::Null)`); a whole
/// datum never reads past its end, so such a read means the payload was truncated.
struct Watched<'a> {
    rest: &'a [u8],
    short: bool,
}

impl std::io::Read for Watched<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.short |= buf.len() > self.rest.len();
        self.rest.read(buf)
    }
}

/// Named types by name (a named type's later uses in a schema are references to it).
pub(super) type Names = HashMap<apache_avro::schema::Name, Schema>;

/// The JSON equivalent of an Avro value, guided by its `schema` where one is given: records as
/// objects, unions as their branch, enums as their symbol, bytes as base64, decimals as exact
/// decimal text (`"12.30"`, the scale from the schema), durations as `{months, days, millis}`,
/// timestamps and dates as RFC 3339 text.
pub(super) fn to_json(value: Avro, schema: Option<&Schema>, names: &Names) -> Value {
    use base64::Engine as _;
    let schema = match schema {
        Some(Schema::Ref { name }) => names.get(name),
        other => other,
    };
    let part = |i: usize| match schema {
        Some(Schema::Union(u)) => u.variants().get(i),
        _ => None,
    };
    match value {
        Avro::Union(i, v) => to_json(*v, part(i as usize), names),
        Avro::Array(items) => {
            let items_schema = match schema {
                Some(Schema::Array(a)) => Some(&*a.items),
                _ => None,
            };
            Value::Array(
                items
                    .into_iter()
                    .map(|v| to_json(v, items_schema, names))
                    .collect(),
            )
        }
        Avro::Map(m) => {
            let values = match schema {
                Some(Schema::Map(m)) => Some(&*m.types),
                _ => None,
            };
            let mut keys: Vec<(String, Avro)> = m.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                keys.into_iter()
                    .map(|(k, v)| (k, to_json(v, values, names)))
                    .collect(),
            )
        }
        Avro::Record(fields) => {
            let record = match schema {
                Some(Schema::Record(r)) => Some(r),
                _ => None,
            };
            Value::Object(
                fields
                    .into_iter()
                    .enumerate()
                    .map(|(i, (k, v))| {
                        // A record value's fields come in its schema's order.
                        let field = record
                            .and_then(|r| {
                                r.fields
                                    .get(i)
                                    .filter(|f| f.name == k)
                                    .or_else(|| r.lookup.get(&k).and_then(|j| r.fields.get(*j)))
                            })
                            .map(|f| &f.schema);
                        let v = to_json(v, field, names);
                        (k, v)
                    })
                    .collect::<Map<_, _>>(),
            )
        }
        Avro::Decimal(d) => match schema {
            Some(Schema::Decimal(ds)) => {
                let scale = i64::try_from(ds.scale).unwrap_or(0);
                Value::String(apache_avro::BigDecimal::new(d.into(), scale).to_string())
            }
            // No schema to say the scale: the unscaled two's-complement bytes, as base64.
            _ => Value::String(
                base64::engine::general_purpose::STANDARD
                    .encode(Vec::<u8>::try_from(d).unwrap_or_default()),
            ),
        },
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(b),
        Avro::Int(i) | Avro::TimeMillis(i) => Value::from(i),
        Avro::Long(i) | Avro::TimeMicros(i) => Value::from(i),
        Avro::Float(f) => float(f64::from(f)),
        Avro::Double(f) => float(f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s),
        Avro::Date(days) => timestamp(i128::from(days) * 86_400_000_000_000, true),
        Avro::TimestampMillis(t) | Avro::LocalTimestampMillis(t) => {
            timestamp(i128::from(t) * 1_000_000, false)
        }
        Avro::TimestampMicros(t) | Avro::LocalTimestampMicros(t) => {
            timestamp(i128::from(t) * 1_000, false)
        }
        Avro::TimestampNanos(t) | Avro::LocalTimestampNanos(t) => timestamp(i128::from(t), false),
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
        Avro::Uuid(u) => Value::String(u.to_string()),
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// RFC 3339 text of nanoseconds since the epoch (a date alone when `date_only`).
fn timestamp(nanos: i128, date_only: bool) -> Value {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return Value::from(nanos as i64);
    };
    if date_only {
        return Value::String(t.date().to_string());
    }
    t.format(&time::format_description::well_known::Rfc3339)
        .map_or(Value::Null, Value::String)
}
