//! Avro and Protobuf source payloads: each message is decoded with the registry schemas the
//! control plane embedded in the deployed spec into its JSON equivalent, which then takes the
//! ordinary JSON path (so `data.customer.id` reads the same in all formats). Avro payloads
//! written with the pipeline's schema, and Protobuf payloads of any embedded version, skip
//! the intermediate value: the transcoder writes their JSON text and records where the values
//! of the pipeline's paths went, or only reads those values (as text, or into typed columns),
//! the JSON texts written later for the messages that reach a node reading payloads
//! ([`LazyTexts`]). See [`avro_json`] and [`protobuf_paths`].
//!
//! A payload is the Confluent wire format (byte 0, a 4-byte big-endian schema id, then the
//! encoded message; Protobuf adds message indexes) when it starts with byte 0 and names an id
//! of the subject; otherwise it is bare, written with the pipeline's schema.

use crate::decode::{FieldSpan, PathTrie};
use crate::message::{FailureKind, InputMessage, MessageError};
use bytes::Bytes;
use weir_pipelines::PayloadFormat;
use weir_pipelines::spec::SourceSchema;

mod avro;
mod avro_encode;
mod avro_json;
mod json_text;
pub(crate) use avro_json::Recording;
use typed_columns::Typed;
pub(crate) mod encode;
mod protobuf;
mod protobuf_encode;
mod protobuf_paths;
mod typed_columns;

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

    /// Readies the decoder for the pipeline's paths `trie` (the ones
    /// [`BinaryPayload::transcode_into`] records); called once, when the pipeline compiles.
    /// With `typed` (no path has a declared type), batches may be read straight into typed
    /// columns ([`Transcoded::typed`]).
    pub(crate) fn bind(&mut self, trie: &PathTrie, n_slots: usize, typed: bool) {
        match self {
            BinaryPayload::Avro(a) => a.bind(trie, n_slots, typed),
            BinaryPayload::Protobuf(p) => p.bind(trie, n_slots, typed),
        }
    }

    /// The type of each path slot, when [`BinaryPayload::bind`] readied the decoder for
    /// typed columns.
    fn leaves(&self) -> Option<&[typed_columns::Leaf]> {
        match self {
            BinaryPayload::Avro(a) => a.leaves(),
            BinaryPayload::Protobuf(p) => p.leaves(),
        }
    }

    /// Reads one payload's path values into `typed`; `false` when the direct reader does not
    /// take it ([`BinaryPayload::transcode_into`] then gives its text or its error).
    fn read_typed<'v>(&'v self, payload: &'v [u8], typed: &mut [Typed<'v>]) -> bool {
        match self {
            BinaryPayload::Avro(a) => a.read_typed(payload, typed),
            BinaryPayload::Protobuf(p) => p.read_typed(payload, typed),
        }
    }

    /// Checks `payload` and records the values of the bound paths into `slots`, their text
    /// appended to `values`, without writing the payload's text; `false` when the direct
    /// transcoder does not take it ([`BinaryPayload::transcode_into`] then must).
    pub(crate) fn skim_into(
        &self,
        payload: &[u8],
        values: &mut Vec<u8>,
        slots: &mut [PathValue],
    ) -> bool {
        match self {
            BinaryPayload::Avro(a) => a.skim_into(payload, values, slots),
            BinaryPayload::Protobuf(p) => p.skim_into(payload, values, slots),
        }
    }

    /// Appends the payload's JSON text to `out`, or says why it cannot be decoded.
    /// `Ok(true)` when the binary was decoded straight into the values of the bound paths and
    /// the top-level field spans (recorded in `rec`, offsets from where this payload starts
    /// in `out`); `Ok(false)` when only the text was written and the JSON decoder must scan it.
    pub(crate) fn transcode_into(
        &self,
        payload: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
    ) -> Result<bool, String> {
        match self {
            BinaryPayload::Avro(a) => a.transcode_into(payload, out, rec),
            BinaryPayload::Protobuf(p) => p.write_json(payload, out, rec),
        }
    }
}

/// Where a path's raw JSON value lies in a payload's text (`[start, end)`), if it has one.
pub(crate) type PathValue = Option<[u32; 2]>;

/// What the transcoder recorded of one payload.
pub(crate) struct Recorded<'t> {
    /// The value of each path slot, as offsets into the payload's text (or into `skimmed`).
    pub(crate) values: &'t [PathValue],
    /// Where its top-level field spans lie in the batch's span buffer (when wanted).
    pub(crate) fields: Option<(u32, u32)>,
    /// For a skimmed payload (whose own text is not written yet): the text its path values
    /// lie in.
    pub(crate) skimmed: Option<&'t str>,
}

/// How one input of a batch was decoded.
#[derive(Clone, Copy)]
enum Decoded {
    /// Only its text was written: the JSON decoder must scan it (or it failed).
    Scanned,
    /// Its text was written with its path values and, when wanted, where its top-level field
    /// spans lie in [`Transcoded::spans`].
    Recorded(Option<(u32, u32)>),
    /// Checked, with its path values written to [`Transcoded::values`]; its text is written
    /// when a node needs it ([`LazyTexts`]).
    Skimmed,
}

/// A batch's Avro or Protobuf payloads as JSON text, with what the transcoder recorded of
/// each (see [`BinaryPayload::transcode_into`]) so that the decoder need not scan it, and the
/// inputs that do not decode.
pub(crate) struct Transcoded {
    /// Each input's JSON text (empty for one that failed or was skimmed); slices of one
    /// buffer.
    payloads: Vec<Bytes>,
    /// `n_paths` path values per input, as offsets into its text (into `values` when skimmed).
    slots: Vec<PathValue>,
    n_paths: usize,
    decoded: Vec<Decoded>,
    /// The path values of the skimmed inputs, as JSON text.
    values: String,
    /// The top-level field spans of the recorded inputs: the batch's first spans.
    pub(crate) spans: Vec<FieldSpan>,
    /// The column of each path slot, when the batch was read straight into typed columns
    /// ([`Transcoded::typed`]): one value per input that did not fail, in input order.
    columns: Option<Vec<arrow::array::ArrayRef>>,
    /// The inputs that do not decode (a `decode` error of the source, so that they go to the
    /// dead-letter stream with their original bytes).
    pub(crate) failed: Vec<(usize, MessageError)>,
}

impl Transcoded {
    /// Decodes `batch` into JSON, recording the values of the paths `binary` is bound to
    /// (`n_paths` of them) and, when `want_fields`, the top-level field spans. With `skim`,
    /// the payloads the direct transcoder takes are only checked and their path values
    /// written: their texts come later, from [`LazyTexts`], for the messages that need them.
    pub(crate) fn batch(
        binary: &BinaryPayload,
        batch: &[InputMessage],
        n_paths: usize,
        want_fields: bool,
        skim: bool,
    ) -> Transcoded {
        // JSON text is about 2.5 times the Avro binary of the same record (field names and
        // quotes): room for 3 times, so that the buffer seldom moves while it fills.
        let room: usize = batch.iter().map(|m| m.payload.len() * 3 + 16).sum();
        let mut out = Vec::with_capacity(if skim { 0 } else { room });
        let mut values = Vec::with_capacity(if skim { batch.len() * n_paths * 8 } else { 0 });
        let mut bounds = Vec::with_capacity(batch.len());
        let mut slots = vec![None; batch.len() * n_paths];
        let mut decoded = Vec::with_capacity(batch.len());
        let mut spans = Vec::new();
        let mut failed = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            let start = out.len();
            let slots = &mut slots[i * n_paths..(i + 1) * n_paths];
            if skim && binary.skim_into(&m.payload, &mut values, slots) {
                decoded.push(Decoded::Skimmed);
                bounds.push(start..start);
                continue;
            }
            let spans_start = spans.len() as u32;
            let rec = Recording {
                slots,
                spans: want_fields.then_some(&mut spans),
            };
            decoded.push(match binary.transcode_into(&m.payload, &mut out, rec) {
                Ok(true) => {
                    Decoded::Recorded(want_fields.then_some((spans_start, spans.len() as u32)))
                }
                Ok(false) => Decoded::Scanned,
                Err(message) => {
                    out.truncate(start);
                    failed.push((i, decode_error(message)));
                    Decoded::Scanned
                }
            });
            bounds.push(start..out.len());
        }
        let all = Bytes::from(out);
        Transcoded {
            payloads: bounds.into_iter().map(|r| all.slice(r)).collect(),
            slots,
            n_paths,
            decoded,
            // The transcoder writes only checked UTF-8; a failure here would be its bug, and
            // leaves the values unread (every path null) rather than wrong.
            values: String::from_utf8(values).unwrap_or_default(),
            spans,
            columns: None,
            failed,
        }
    }

    /// Reads `batch` straight into one typed column per path slot, with no JSON text written
    /// or scanned (their texts come later, from [`LazyTexts`]): `None` unless `binary` is
    /// bound for it and every input is either read so or fails to decode (an input written
    /// with another schema, or a batch whose columns the JSON decoder would split, takes
    /// [`Transcoded::batch`]).
    pub(crate) fn typed(
        binary: &BinaryPayload,
        batch: &[InputMessage],
        n_paths: usize,
    ) -> Option<Transcoded> {
        let leaves = binary.leaves()?;
        let mut columns: Vec<typed_columns::TypedColumn> = leaves
            .iter()
            .map(|l| typed_columns::TypedColumn::new(*l, batch.len()))
            .collect();
        let mut typed = vec![Typed::Null; n_paths];
        let mut decoded = Vec::with_capacity(batch.len());
        let mut failed = Vec::new();
        for (i, m) in batch.iter().enumerate() {
            if binary.read_typed(&m.payload, &mut typed) {
                for (column, value) in columns.iter_mut().zip(&typed) {
                    column.push(*value)?;
                }
                decoded.push(Decoded::Skimmed);
                continue;
            }
            // Not taken: a payload that does not decode fails alone; any other is for the
            // general path.
            let mut slots = vec![None; n_paths];
            let rec = Recording {
                slots: &mut slots,
                spans: None,
            };
            match binary.transcode_into(&m.payload, &mut Vec::new(), rec) {
                Ok(_) => return None,
                Err(message) => failed.push((i, decode_error(message))),
            }
            decoded.push(Decoded::Scanned);
        }
        let columns = columns
            .into_iter()
            .map(typed_columns::TypedColumn::finish)
            .collect::<Option<Vec<_>>>()?;
        Some(Transcoded {
            payloads: vec![Bytes::new(); batch.len()],
            slots: Vec::new(),
            n_paths,
            decoded,
            values: String::new(),
            spans: Vec::new(),
            columns: Some(columns),
            failed,
        })
    }

    /// The typed column of each path slot, when the batch was read into them
    /// ([`Transcoded::typed`]).
    pub(crate) fn columns(&self) -> Option<&[arrow::array::ArrayRef]> {
        self.columns.as_deref()
    }

    /// What was recorded of input `input`; `None` when its text must be scanned.
    pub(crate) fn recorded(&self, input: u32) -> Option<Recorded<'_>> {
        let i = input as usize;
        let (fields, skimmed) = match *self.decoded.get(i)? {
            Decoded::Scanned => return None,
            Decoded::Recorded(fields) => (fields, None),
            Decoded::Skimmed => (None, Some(self.values.as_str())),
        };
        Some(Recorded {
            values: self.slots.get(i * self.n_paths..(i + 1) * self.n_paths)?,
            fields,
            skimmed,
        })
    }

    /// Input `input`'s JSON text, moved out (each text has one row); `None` for one that was
    /// skimmed, whose text is not written yet.
    pub(crate) fn take_text(&mut self, input: u32) -> Option<Bytes> {
        let i = input as usize;
        match self.decoded.get(i)? {
            Decoded::Skimmed => None,
            _ => Some(std::mem::take(&mut self.payloads[i])),
        }
    }

    /// The inputs whose texts are still to be written.
    pub(crate) fn lazy<'b>(&self, binary: &'b BinaryPayload) -> Option<LazyTexts<'b>> {
        let pending: Vec<bool> = self
            .decoded
            .iter()
            .map(|d| matches!(d, Decoded::Skimmed))
            .collect();
        pending.contains(&true).then(|| LazyTexts {
            binary,
            n_paths: self.n_paths,
            texts: pending.into_iter().map(|p| p.then_some(None)).collect(),
        })
    }
}

/// The JSON texts of a batch's skimmed payloads, written the first time a node that reads
/// payloads gets their messages (a message a filter drops never needs one).
pub(crate) struct LazyTexts<'b> {
    binary: &'b BinaryPayload,
    n_paths: usize,
    /// Per input: `None` when it was not skimmed, `Some(None)` while its text is unwritten.
    texts: Vec<Option<Option<Bytes>>>,
}

impl LazyTexts<'_> {
    /// Whether input `input` was skimmed and its text is not written yet.
    pub(crate) fn unwritten(&self, input: u32) -> bool {
        matches!(self.texts.get(input as usize), Some(Some(None)))
    }

    /// The JSON text of skimmed input `input`, once written.
    pub(crate) fn text(&self, input: u32) -> Option<&Bytes> {
        self.texts.get(input as usize)?.as_ref()?.as_ref()
    }

    /// Writes the JSON texts of the inputs `wanted` that were skimmed and have none yet, into
    /// one buffer. Returns the inputs whose text could not be written, with why: none, unless
    /// the transcoder disagrees with its own check.
    pub(crate) fn write(
        &mut self,
        inputs: &[InputMessage],
        wanted: &[u32],
    ) -> Vec<(u32, MessageError)> {
        let room: usize = wanted
            .iter()
            .map(|&i| inputs[i as usize].payload.len() * 3 + 16)
            .sum();
        let mut out = Vec::with_capacity(room);
        let mut bounds = Vec::new();
        let mut failed = Vec::new();
        let mut slots = vec![None; self.n_paths];
        let mut seen = vec![false; self.texts.len()];
        for &input in wanted {
            // An input wanted twice is written once.
            if !self.unwritten(input) || std::mem::replace(&mut seen[input as usize], true) {
                continue;
            }
            let start = out.len();
            let rec = Recording {
                slots: &mut slots,
                spans: None,
            };
            match self
                .binary
                .transcode_into(&inputs[input as usize].payload, &mut out, rec)
            {
                Ok(_) => bounds.push((input, start..out.len())),
                Err(message) => {
                    out.truncate(start);
                    failed.push((input, decode_error(message)));
                }
            }
        }
        let all = Bytes::from(out);
        for (input, r) in bounds {
            self.texts[input as usize] = Some(Some(all.slice(r)));
        }
        failed
    }
}

/// A payload that does not decode: a `decode` error of the source, so that it goes to the
/// dead-letter stream with its original bytes.
fn decode_error(message: String) -> MessageError {
    MessageError {
        node: "source".into(),
        kind: FailureKind::Decode,
        message,
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

/// Parsed schemas by global id, and the reader's. A subject has a handful of versions, and
/// the id is looked up for every payload: a short list searched in order beats hashing.
struct ById<T> {
    by_id: Vec<(i64, T)>,
    reader: usize,
    subject: String,
}

impl<T> ById<T> {
    /// The schemas of `subject`; `Err` when `reader` is not among them.
    fn new(by_id: Vec<(i64, T)>, reader: i64, subject: String) -> Result<ById<T>, String> {
        let Some(reader) = by_id.iter().position(|(id, _)| *id == reader) else {
            return Err(format!(
                "schema id {reader} is not among the embedded schemas"
            ));
        };
        Ok(ById {
            by_id,
            reader,
            subject,
        })
    }

    fn reader(&self) -> &T {
        &self.by_id[self.reader].1
    }

    fn reader_id(&self) -> i64 {
        self.by_id[self.reader].0
    }

    fn get(&self, id: i64) -> Option<&T> {
        self.by_id.iter().find(|(i, _)| *i == id).map(|(_, t)| t)
    }

    /// Which schema decodes `payload`: the wire format's when its id is known, else the bare
    /// reader schema (with the unknown id, if any, for the error message).
    fn pick<'p>(&self, payload: &'p [u8]) -> Pick<'_, 'p, T> {
        match wire_header(payload) {
            Some((id, rest)) => match self.get(id) {
                Some(w) => Pick::Wire(w, rest),
                None => Pick::Bare(Some(id)),
            },
            None => Pick::Bare(None),
        }
    }

    /// The message for a payload that is neither a known wire-format message nor bare.
    fn undecodable(&self, unknown_id: Option<i64>, bare_error: &str, format: &str) -> String {
        let mut ids: Vec<i64> = self.by_id.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        match unknown_id {
            Some(id) => format!(
                "unknown schema id {id} in the Confluent wire-format header: subject `{}` has ids {ids:?} (as bare {format}: {bare_error})",
                self.subject
            ),
            None => format!(
                "not {format} of subject `{}` (schema id {}): {bare_error}; a Confluent wire-format payload starts with byte 0x00 and a known schema id",
                self.subject,
                self.reader_id()
            ),
        }
    }
}

enum Pick<'s, 'p, T> {
    Wire(&'s T, &'p [u8]),
    Bare(Option<i64>),
}
