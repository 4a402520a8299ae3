//! A frame is a batch of messages at one node: the messages (which input each came from, its
//! payload and pending edits) and the Arrow columns the pipeline's expressions read, row-aligned.

use crate::binary::{LazyTexts, Recorded, Transcoded};
use crate::columns::{Catalog, ColumnSource, timestamp_type};
use crate::decode::{FieldSpan, PathTrie, build_column, check_payload, extract, kind_groups};
use crate::message::{FailureKind, InputMessage, MessageError, OutputMessage};
use crate::payload::{Edit, apply};
use arrow::array::{
    Array, ArrayRef, BooleanArray, StringBuilder, TimestampMicrosecondArray, UInt64Array,
};
use arrow::datatypes::DataType;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use bytes::Bytes;
use datafusion::execution::SessionState;
use std::sync::Arc;

/// Top-level fields a payload is expected to have, for sizing the batch's span buffer.
const SPANS_PER_PAYLOAD: usize = 16;

/// One message inside the pipeline.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Index of the input message it derives from.
    pub(crate) input: u32,
    /// Replacement payload (after `split`, or after edits were materialized); `None` = the
    /// input's original bytes.
    pub(crate) base: Option<Bytes>,
    /// Pending edits of `base`, with the id of the node that made them.
    pub(crate) edits: Vec<Edit>,
    /// Node that made the pending edits (for errors while encoding them).
    pub(crate) edited_by: Option<Arc<str>>,
    /// Whether the payload is a JSON object.
    pub(crate) is_object: bool,
    /// Where the top-level field spans of `base` lie in the batch's span buffer (recorded by
    /// the decoder when a `map` may edit the payload), so that encoding needs no second parse.
    pub(crate) fields: Option<(u32, u32)>,
    /// Subject and headers a `wasm` node gave the message; `None` = the input's.
    pub(crate) meta: Option<Arc<RowMeta>>,
}

/// A message's subject and headers after a `wasm` node changed them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowMeta {
    pub(crate) subject: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Row {
    /// The message's subject now (the input's unless a `wasm` node changed it).
    pub(crate) fn subject<'a>(&'a self, inputs: &'a [InputMessage]) -> &'a str {
        match &self.meta {
            Some(m) => &m.subject,
            None => &inputs[self.input as usize].subject,
        }
    }

    /// The message's headers now (the input's unless a `wasm` node changed them).
    pub(crate) fn headers<'a>(&'a self, inputs: &'a [InputMessage]) -> &'a [(String, String)] {
        match &self.meta {
            Some(m) => &m.headers,
            None => &inputs[self.input as usize].headers,
        }
    }

    /// The current payload bytes before pending edits.
    pub(crate) fn base<'a>(&'a self, inputs: &'a [InputMessage]) -> &'a Bytes {
        self.base
            .as_ref()
            .unwrap_or(&inputs[self.input as usize].payload)
    }

    /// The payload with pending edits applied: the original bytes (zero-copy) when unchanged.
    pub(crate) fn encode(
        &self,
        inputs: &[InputMessage],
        spans: &[FieldSpan],
    ) -> Result<Bytes, MessageError> {
        let base = self.base(inputs);
        if self.edits.is_empty() {
            return Ok(base.clone());
        }
        let fields = self
            .fields
            .and_then(|(a, b)| spans.get(a as usize..b as usize));
        apply(base, &self.edits, fields).map_err(|message| MessageError {
            node: self.edited_by.as_deref().unwrap_or("source").to_string(),
            kind: FailureKind::Shape,
            message,
        })
    }
}

/// Messages at a node with their columns (`columns[i]` is catalog column `i`).
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) rows: Vec<Row>,
    pub(crate) columns: Vec<ArrayRef>,
}

impl Frame {
    /// The Arrow batch expressions are evaluated on.
    pub(crate) fn batch(&self, catalog: &Catalog) -> RecordBatch {
        let types: Vec<DataType> = self.columns.iter().map(|c| c.data_type().clone()).collect();
        let schema = catalog.schema(&types);
        RecordBatch::try_new_with_options(
            schema,
            self.columns.clone(),
            &RecordBatchOptions::new().with_row_count(Some(self.rows.len())),
        )
        .expect("frame columns match the catalog")
    }

    /// One frame per mask (null = false), consuming this one. A row goes to every frame
    /// whose mask is true for it: moved into the last of them, cloned for the others, so a
    /// filter or a route without fan-out copies no row.
    pub(crate) fn split(self, masks: &[BooleanArray]) -> Vec<Frame> {
        let Frame { rows, columns } = self;
        let n = rows.len();
        let masks: Vec<BooleanArray> = masks
            .iter()
            .map(|m| {
                if m.null_count() > 0 {
                    arrow::compute::prep_null_mask_filter(m)
                } else {
                    m.clone()
                }
            })
            .collect();
        let mut last_use = vec![usize::MAX; n];
        for (k, mask) in masks.iter().enumerate() {
            for i in mask.values().set_indices() {
                last_use[i] = k;
            }
        }
        let mut rows: Vec<Option<Row>> = rows.into_iter().map(Some).collect();
        masks
            .iter()
            .enumerate()
            .map(|(k, mask)| {
                let mut taken = Vec::with_capacity(mask.true_count());
                for i in mask.values().set_indices() {
                    let row = if last_use[i] == k {
                        rows[i].take()
                    } else {
                        rows[i].clone()
                    };
                    taken.push(row.expect("a row is moved out only at its last use"));
                }
                let columns = if taken.len() == n {
                    columns.clone()
                } else {
                    columns
                        .iter()
                        .map(|c| arrow::compute::filter(c, mask).expect("filter kernel"))
                        .collect()
                };
                Frame {
                    rows: taken,
                    columns,
                }
            })
            .collect()
    }

    /// The frame without the rows in `drop` (sorted or not).
    pub(crate) fn without(self, drop: &[usize]) -> Frame {
        if drop.is_empty() {
            return self;
        }
        let mut keep = vec![true; self.rows.len()];
        for &i in drop {
            keep[i] = false;
        }
        let mut kept = self.split(&[BooleanArray::from(keep)]);
        kept.pop().expect("one mask gives one frame")
    }
}

/// The payload a row reads: its replacement (after a `map` or `split`) or its input's.
fn payload_of<'b>(inputs: &'b [InputMessage], row: &Row, replaced: &'b Option<Bytes>) -> &'b [u8] {
    match replaced {
        Some(b) => b,
        None => &inputs[row.input as usize].payload,
    }
}

/// A message an operator sends outside the row flow (a window's result, a late event with
/// headers added): the pipeline runs it through the targets of `port` after the batch.
pub(crate) struct SideOutput {
    /// The operator's output port.
    pub(crate) port: usize,
    /// The message, as if it came from the source.
    pub(crate) message: crate::message::InputMessage,
    /// What it derives from.
    pub(crate) origin: Origin,
}

/// Where a side output comes from.
pub(crate) enum Origin {
    /// A late event: its outputs belong to this input of the batch.
    Input(u32),
    /// A window result, with its deterministic id.
    Window(String),
}

/// Per-batch state shared by the operators: inputs, fates being built, and the session.
pub(crate) struct BatchContext<'a> {
    pub(crate) inputs: &'a [InputMessage],
    pub(crate) state: &'a SessionState,
    pub(crate) catalog: &'a Catalog,
    pub(crate) trie: &'a PathTrie,
    /// `format: raw`: payloads are opaque bytes, not parsed.
    pub(crate) raw: bool,
    /// Whether the decoder records top-level field spans (some `map` may edit payloads).
    pub(crate) want_fields: bool,
    /// Top-level field spans of the payloads decoded in this batch (see [`Row::fields`]).
    pub(crate) spans: Vec<FieldSpan>,
    /// The first error of each input.
    pub(crate) errors: Vec<Option<MessageError>>,
    /// How many inputs have failed so far (first errors), for per-node counts.
    pub(crate) failures: u64,
    /// How many outputs sinks have made so far, for per-node counts.
    pub(crate) emitted: u64,
    /// Outputs of each input, in the order sinks produced them.
    pub(crate) outputs: Vec<Vec<OutputMessage>>,
    /// Messages operators sent outside the row flow (window results, late events), run
    /// through their port's targets once the batch has passed every node.
    pub(crate) side: Vec<SideOutput>,
    /// Named counts the running node kept for this batch (moved into its `NodeCount`).
    pub(crate) counts: Vec<(String, u64)>,
    /// Headers nodes added to an input on its way (`validate` with `on_invalid: tag`), by
    /// input; empty until a node adds one.
    pub(crate) tags: Vec<Vec<(String, String)>>,
    /// The JSON texts of the inputs decoded without one (Avro read straight into columns),
    /// written when a node that reads payloads first gets them.
    pub(crate) lazy: Option<LazyTexts<'a>>,
}

impl BatchContext<'_> {
    /// Records an error for the input of `row` (the first one wins).
    pub(crate) fn fail(&mut self, row: &Row, node: &str, kind: FailureKind, message: String) {
        let slot = &mut self.errors[row.input as usize];
        if slot.is_none() {
            self.failures += 1;
            *slot = Some(MessageError {
                node: node.to_string(),
                kind,
                message,
            });
        }
    }

    /// Adds header `name` to every output of the input of `row` (replacing one of that name).
    pub(crate) fn tag(&mut self, row: &Row, name: &str, value: String) {
        if self.tags.is_empty() {
            self.tags = vec![Vec::new(); self.inputs.len()];
        }
        let tags = &mut self.tags[row.input as usize];
        tags.retain(|(k, _)| k != name);
        tags.push((name.to_string(), value));
    }

    /// `frame` with a JSON text for each row whose input was decoded without one (see
    /// [`BatchContext::lazy`]), for a node that reads payloads.
    pub(crate) fn with_texts(&mut self, mut frame: Frame) -> Frame {
        let Some(lazy) = self.lazy.as_mut() else {
            return frame;
        };
        let wanted: Vec<u32> = frame
            .rows
            .iter()
            .filter(|r| r.base.is_none() && lazy.unwritten(r.input))
            .map(|r| r.input)
            .collect();
        // Inputs written for another frame (a route's other port) are only shared.
        let failed = if wanted.is_empty() {
            Vec::new()
        } else {
            lazy.write(self.inputs, &wanted)
        };
        for row in &mut frame.rows {
            if row.base.is_none()
                && let Some(text) = lazy.text(row.input)
            {
                row.base = Some(text.clone());
            }
        }
        if failed.is_empty() {
            return frame;
        }
        let mut drop = Vec::new();
        for (k, row) in frame.rows.iter().enumerate() {
            if let Some((_, error)) = failed.iter().find(|(input, _)| *input == row.input) {
                drop.push(k);
                self.fail_with(row, error.clone());
            }
        }
        frame.without(&drop)
    }

    /// Records an error already built.
    pub(crate) fn fail_with(&mut self, row: &Row, error: MessageError) {
        let slot = &mut self.errors[row.input as usize];
        if slot.is_none() {
            self.failures += 1;
            *slot = Some(error);
        }
    }

    /// Whether the input of `row` has already failed on another path.
    pub(crate) fn failed(&self, row: &Row) -> bool {
        self.errors[row.input as usize].is_some()
    }

    /// Decodes `rows` into frames: validates and parses each payload once, extracts the
    /// pipeline's paths into typed columns, and builds the metadata and header columns. Rows
    /// that fail are recorded as errors of `node` and left out.
    ///
    /// Usually one frame. When an undeclared payload field holds values of different kinds in
    /// this batch (`"21.5"` among numbers), the messages are grouped so that each frame holds
    /// messages whose values have the same kinds: each message then sees the types it would
    /// see alone, and an expression that cannot take a string fails only the messages that
    /// carry one, never their well-typed neighbours.
    pub(crate) fn decode(&mut self, rows: Vec<Row>, node: &str) -> Vec<Frame> {
        self.decode_with(rows, node, None)
    }

    /// [`BatchContext::decode`] of the rows as they come from the source; with `json`, their
    /// payloads are the JSON texts of Avro or Protobuf inputs, and the ones whose path values
    /// the transcoder recorded are not scanned again.
    pub(crate) fn decode_source(
        &mut self,
        rows: Vec<Row>,
        json: Option<&Transcoded>,
    ) -> Vec<Frame> {
        self.decode_with(rows, "source", json)
    }

    fn decode_with(
        &mut self,
        mut rows: Vec<Row>,
        node: &str,
        json: Option<&Transcoded>,
    ) -> Vec<Frame> {
        if let Some(columns) = json.and_then(Transcoded::columns) {
            // Read straight into typed columns: one value per row, in order.
            let kept: Vec<Row> = rows
                .into_iter()
                .map(|row| Row {
                    is_object: true,
                    fields: None,
                    ..row
                })
                .collect();
            debug_assert!(columns.iter().all(|c| c.len() == kept.len()));
            let members: Vec<usize> = (0..kept.len()).collect();
            let texts = vec![""; kept.len()];
            return vec![self.build_frame(kept, &members, &texts, &[], 0, node, Some(columns))];
        }
        let paths = self.catalog.paths();
        let n_paths = paths.len();
        let inputs = self.inputs;
        let mut raws: Vec<Option<&str>> = Vec::with_capacity(rows.len() * n_paths);
        let mut texts: Vec<&str> = Vec::with_capacity(rows.len());
        let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
        let mut failures: Vec<(Row, String)> = Vec::new();
        // Replacement payloads are held here so that the texts can borrow them while the rows
        // move; original payloads are borrowed from the inputs.
        let replaced: Vec<Option<Bytes>> = rows.iter().map(|r| r.base.clone()).collect();
        let want_fields = self.want_fields;
        if want_fields {
            // Room for the top-level fields of typical payloads, so that the buffer does not
            // grow (and copy) a dozen times per batch.
            self.spans.reserve(rows.len() * SPANS_PER_PAYLOAD);
        }
        // `format: raw`: a pipeline that reads `data` reads it as text, so a payload that is
        // not UTF-8 is that message's decode error; one that never reads it passes any bytes.
        let reads_payload = self.catalog.index_of(&ColumnSource::Payload).is_some();
        for (row, replaced) in rows.drain(..).zip(&replaced) {
            let base = payload_of(inputs, &row, replaced);
            let start = raws.len();
            raws.resize(start + n_paths, None);
            let recorded = json.and_then(|j| j.recorded(row.input));
            let result = if let Some(Recorded {
                values,
                skimmed: Some(text),
                ..
            }) = recorded
            {
                // Skimmed: its path values lie in their own text; its text comes later.
                for (raw, value) in raws[start..].iter_mut().zip(values) {
                    *raw = value.and_then(|[a, b]| text.get(a as usize..b as usize));
                }
                Ok(("", true, None))
            } else if let Some(recorded) = recorded {
                // The transcoder wrote this text and recorded where each value went.
                std::str::from_utf8(base)
                    .map(|text| {
                        for (raw, value) in raws[start..].iter_mut().zip(recorded.values) {
                            *raw = value.map(|[a, b]| &text[a as usize..b as usize]);
                        }
                        (text, true, recorded.fields)
                    })
                    .map_err(|e| format!("the decoded payload is not UTF-8: {e}"))
            } else if self.raw {
                match std::str::from_utf8(base) {
                    Ok(text) => Ok((text, false, None)),
                    Err(_) if !reads_payload => Ok(("", false, None)),
                    Err(e) => Err(format!(
                        "the payload is not UTF-8 text ({e}), and this pipeline reads `data` as \
                         text (format: raw); read only subject, headers and metadata to pass \
                         binary payloads"
                    )),
                }
            } else {
                let spans = want_fields.then_some(&mut self.spans);
                check_payload(base).and_then(|text| {
                    extract(text, self.trie, &mut raws[start..], spans)
                        .map(|x| (text, x.is_object, x.fields))
                })
            };
            match result {
                Ok((text, is_object, fields)) => {
                    texts.push(text);
                    kept.push(Row {
                        is_object,
                        fields,
                        ..row
                    });
                }
                Err(message) => {
                    raws.truncate(start);
                    failures.push((row, message));
                }
            }
        }
        for (row, message) in failures {
            self.fail(&row, node, FailureKind::Decode, message);
        }
        let undeclared: Vec<usize> = paths
            .iter()
            .enumerate()
            .filter(|(_, (idx, _))| self.catalog.declared(*idx).is_none())
            .map(|(no, _)| no)
            .collect();
        match kind_groups(kept.len(), |i| kept[i].input, &raws, n_paths, &undeclared) {
            None => {
                let all: Vec<usize> = (0..kept.len()).collect();
                vec![self.build_frame(kept, &all, &texts, &raws, n_paths, node, None)]
            }
            Some(groups) => {
                let mut rows: Vec<Option<Row>> = kept.into_iter().map(Some).collect();
                groups
                    .into_iter()
                    .map(|members| {
                        let group_rows = members
                            .iter()
                            .map(|&i| rows[i].take().expect("a row is in one group"))
                            .collect();
                        self.build_frame(group_rows, &members, &texts, &raws, n_paths, node, None)
                    })
                    .collect()
            }
        }
    }

    /// Builds the columns of `rows`, which are the decoded rows `members` (indices into
    /// `texts` and the row-major `raws`), into a frame; rows whose values do not fit a
    /// declared type are recorded as errors of `node` and left out. With `typed`, the path
    /// columns are these, already built (and `raws` is not read).
    #[allow(clippy::too_many_arguments)]
    fn build_frame(
        &mut self,
        kept: Vec<Row>,
        members: &[usize],
        texts: &[&str],
        raws: &[Option<&str>],
        n_paths: usize,
        node: &str,
        typed: Option<&[ArrayRef]>,
    ) -> Frame {
        let inputs = self.inputs;
        let n = kept.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.catalog.len());
        let mut bad_rows: Vec<usize> = Vec::new();
        let mut path_no = 0usize;
        let mut column_raws: Vec<Option<&str>> = Vec::with_capacity(n);
        for (idx, source) in self.catalog.columns() {
            let array: ArrayRef = match source {
                ColumnSource::Subject => Arc::new(
                    kept.iter()
                        .map(|r| Some(r.subject(inputs)))
                        .collect::<arrow::array::StringArray>(),
                ),
                ColumnSource::Stream => Arc::new(
                    kept.iter()
                        .map(|r| Some(inputs[r.input as usize].stream.as_str()))
                        .collect::<arrow::array::StringArray>(),
                ),
                ColumnSource::Seq => Arc::new(UInt64Array::from_iter_values(
                    kept.iter().map(|r| inputs[r.input as usize].seq),
                )),
                ColumnSource::Timestamp => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        kept.iter()
                            .map(|r| inputs[r.input as usize].timestamp_micros),
                    )
                    .with_data_type(timestamp_type()),
                ),
                ColumnSource::Payload => Arc::new(
                    members
                        .iter()
                        .map(|&i| Some(texts[i]))
                        .collect::<arrow::array::StringArray>(),
                ),
                ColumnSource::Header(name) => {
                    let mut b = StringBuilder::with_capacity(n, n * 8);
                    for r in &kept {
                        let headers = r.headers(inputs);
                        match headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
                            Some((_, v)) => b.append_value(v),
                            None => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                ColumnSource::Path(_) if typed.is_some() => {
                    let columns = typed.unwrap_or_default();
                    path_no += 1;
                    columns[path_no - 1].clone()
                }
                ColumnSource::Path(_) => {
                    column_raws.clear();
                    column_raws.extend(members.iter().map(|&i| raws[i * n_paths + path_no]));
                    path_no += 1;
                    let (array, errors) =
                        build_column(&column_raws, self.catalog.declared(idx), &source.name());
                    for (i, message) in errors {
                        let row = kept[i].clone();
                        self.fail(&row, node, FailureKind::Decode, message);
                        bad_rows.push(i);
                    }
                    array
                }
            };
            columns.push(array);
        }
        let frame = Frame {
            rows: kept,
            columns,
        };
        frame.without(&bad_rows)
    }

    /// Applies every row's pending edits and decodes the frame again (after a `map` changed
    /// something an expression downstream reads in a way the columns cannot follow).
    pub(crate) fn redecode(&mut self, frame: Frame, node: &str) -> Vec<Frame> {
        let mut rows = Vec::with_capacity(frame.rows.len());
        for row in frame.rows {
            match row.encode(self.inputs, &self.spans) {
                Ok(bytes) => rows.push(Row {
                    base: Some(bytes),
                    edits: Vec::new(),
                    edited_by: None,
                    ..row
                }),
                Err(e) => self.fail_with(&row, e),
            }
        }
        self.decode(rows, node)
    }
}
