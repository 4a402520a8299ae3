//! A Protobuf message's JSON text straight from its binary: the same bytes as decoding it
//! with prost-reflect and writing [`super::super::protobuf`]'s JSON value (fields by `.proto`
//! name in the order prost-reflect's `fields()` gives them, by number; defaults for fields
//! without presence, the oneof member set last, lists, maps sorted by key, timestamps as
//! RFC 3339), without building either.
//!
//! Why by hand: the `DynamicMessage` and `serde_json::Value` of an order-sized message cost
//! about 7 µs, ten times the rest of a message's way through the engine; no library writes
//! JSON from Protobuf binary. A message is read in two passes: its fields' occurrences are
//! found, then written in field order, each value checked as it is written. What this writer does not take (a
//! singular message field sent twice, which prost-reflect merges; nesting past
//! [`MAX_DEPTH`]) or cannot read goes to prost-reflect, which gives the text or the error.

use super::super::avro_json::Recording;
use super::super::json_text::write_str;
use super::Plan;
use super::{
    Cursor, Direct, FieldType, I32, I64, LEN, MAX_DEPTH, Scalar, Ty, Types, VARINT, skip_unknown,
    write_scalar,
};
use crate::decode::FieldSpan;

/// One occurrence of a known field in a message body: its wire type and where its value
/// starts (after the key).
#[derive(Clone, Copy)]
struct Occurrence {
    field: u32,
    wire: u8,
    start: u32,
    /// Its place among the message's occurrences.
    seq: u32,
}

impl Direct {
    /// Appends the JSON text of top-level message `message` read from `body` to `out`;
    /// `None` (nothing appended) when this writer does not take it. When the message has a
    /// plan, `rec` gets where the pipeline's paths and the top-level fields went (offsets
    /// from the text's start) and the result is `Some(true)`: the text needs no scan.
    pub(crate) fn write_json(
        &self,
        message: usize,
        body: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
    ) -> Option<bool> {
        let ty = (*self.tops.get(message)?)?;
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            self.write_top(ty, message, body, out, rec, scratch)
        })
    }

    fn write_top(
        &self,
        ty: u32,
        message: usize,
        body: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
        scratch: &mut Vec<Occurrence>,
    ) -> Option<bool> {
        let start = out.len();
        let Recording { slots, spans } = rec;
        let spans_start = spans.as_ref().map_or(0, |s| s.len());
        let mut recorder = self.plans.get(message)?.as_ref().map(|plan| Recorder {
            plan,
            start,
            slots,
            spans,
        });
        let recorded = recorder.is_some();
        let done = self
            .types
            .write_message(ty, body, out, 1, scratch, &mut recorder, Some(0));
        if done.is_none() {
            out.truncate(start);
            if let Some(r) = recorder {
                r.slots.fill(None);
                if let Some(spans) = r.spans {
                    spans.truncate(spans_start);
                }
            }
            return None;
        }
        Some(recorded)
    }
}

thread_local! {
    /// The occurrences of the messages being written, kept between payloads so that a
    /// payload allocates none.
    static SCRATCH: std::cell::RefCell<Vec<Occurrence>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Where a plan's paths and the top-level fields are recorded as a message is written.
struct Recorder<'p, 'r> {
    plan: &'p Plan,
    /// Where the text starts in the output.
    start: usize,
    slots: &'r mut [Option<[u32; 2]>],
    spans: Option<&'r mut Vec<FieldSpan>>,
}

impl Types {
    /// Writes message type `m` read from `body` at nesting `depth`; `scratch` holds the
    /// occurrences of the messages being written (each message's above its parent's).
    #[allow(clippy::too_many_arguments)]
    fn write_message(
        &self,
        m: u32,
        body: &[u8],
        out: &mut Vec<u8>,
        depth: u32,
        scratch: &mut Vec<Occurrence>,
        rec: &mut Option<Recorder<'_, '_>>,
        node: Option<u32>,
    ) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let message = &self.messages[m as usize];
        if message.timestamp {
            return self.write_timestamp(m, body, out, depth);
        }
        // Pass 1: where each known field occurs (checked as it is written, in pass 2).
        let base = scratch.len();
        let mut sorted = true;
        let mut c = Cursor { b: body, i: 0 };
        while !c.done() {
            let (number, wire) = c.key()?;
            let Some(i) = message.field(number) else {
                skip_unknown(&mut c, number, wire, depth)?;
                continue;
            };
            let start = u32::try_from(c.i).ok()?;
            match wire {
                VARINT => c.varint().map(drop)?,
                I64 => c.take(8).map(drop)?,
                I32 => c.take(4).map(drop)?,
                LEN => c.sized().map(drop)?,
                // A known field is never a group.
                _ => return None,
            }
            let field = i as u32;
            sorted &= scratch.len() == base || scratch[scratch.len() - 1].field <= field;
            scratch.push(Occurrence {
                field,
                wire,
                start,
                seq: u32::try_from(scratch.len() - base).ok()?,
            });
        }
        let end = scratch.len();
        if !sorted {
            // Stable: each field's occurrences stay in payload order.
            scratch[base..end].sort_by_key(|o| o.field);
        }
        // Pass 2: the fields in order, each from its run of occurrences.
        out.push(b'{');
        let mut first = true;
        let mut next = base;
        for (i, field) in message.fields.iter().enumerate() {
            let i = i as u32;
            let run = next..scratch[next..end]
                .iter()
                .position(|o| o.field != i)
                .map_or(end, |n| next + n);
            next = run.end;
            if let Some(oneof) = field.oneof {
                // Only the member set last is kept; the others still have to decode.
                let winner = scratch[base..end]
                    .iter()
                    .filter(|o| message.fields[o.field as usize].oneof == Some(oneof))
                    .max_by_key(|o| o.seq);
                if winner.map(|o| o.field) != Some(i) {
                    self.check_run(field, body, &scratch[run], depth)?;
                    continue;
                }
            }
            if run.is_empty() && field.presence {
                continue;
            }
            out.extend_from_slice(&field.key.as_bytes()[usize::from(first)..]);
            first = false;
            let v0 = out.len();
            // What the pipeline reads here, when this message is on its paths.
            let at = match (rec.as_ref(), node) {
                (Some(r), Some(n)) => {
                    let bound = &r.plan.nodes[n as usize];
                    let a = bound.at[i as usize].checked_sub(1);
                    a.map(|a| &bound.ats[usize::from(a)])
                }
                _ => None,
            };
            let child = at.and_then(|a| a.child);
            if let Some((key, value)) = field.map {
                self.write_map(key, value, body, run, out, depth, scratch)?;
            } else if field.list {
                out.push(b'[');
                let mut first = true;
                for k in run {
                    let o = scratch[k];
                    let mut c = Cursor {
                        b: body,
                        i: o.start as usize,
                    };
                    match field.ty {
                        Ty::Message(sub) => {
                            comma(out, &mut first);
                            self.write_message(
                                sub,
                                sized_body(o, body)?,
                                out,
                                depth + 2,
                                scratch,
                                &mut None,
                                None,
                            )?;
                        }
                        ty if o.wire == LEN && !matches!(ty, Ty::String | Ty::Bytes) => {
                            // Packed.
                            let mut packed = Cursor {
                                b: c.sized()?,
                                i: 0,
                            };
                            while !packed.done() {
                                comma(out, &mut first);
                                write_scalar(self.scalar(ty, ty.wire(), &mut packed)?, out)?;
                            }
                        }
                        ty => {
                            comma(out, &mut first);
                            self.write_value(ty, o, body, out)?;
                        }
                    }
                }
                out.push(b']');
            } else {
                // The last occurrence is written; the ones before it still have to decode.
                let (last, before) = match run.len() {
                    0 => (None, run),
                    _ => (Some(scratch[run.end - 1]), run.start..run.end - 1),
                };
                match (field.ty, last) {
                    // prost-reflect merges a message sent twice: left to it.
                    (Ty::Message(_), _) if !before.is_empty() => return None,
                    (Ty::Message(sub), Some(o)) => {
                        let sub_body = sized_body(o, body)?;
                        self.write_message(sub, sub_body, out, depth + 1, scratch, rec, child)?;
                    }
                    (ty, Some(o)) => {
                        self.check_run(field, body, &scratch[before], depth)?;
                        self.write_value(ty, o, body, out)?;
                    }
                    (Ty::Message(sub), None) => {
                        self.write_message(sub, &[], out, depth + 1, scratch, rec, child)?
                    }
                    (ty, None) => write_scalar(self.zero(ty), out)?,
                }
            }
            if let Some(r) = rec.as_mut() {
                let (v0, v1) = ((v0 - r.start) as u32, (out.len() - r.start) as u32);
                if let Some(slot) = at.and_then(|a| a.slot) {
                    *r.slots.get_mut(slot as usize)? = Some([v0, v1]);
                }
                if depth == 1
                    && let Some(spans) = r.spans.as_deref_mut()
                {
                    // The name lies before its closing quote and colon.
                    let name_len = (field.key.len() - 4) as u32;
                    let k0 = v0 - name_len - 2;
                    spans.push([k0, k0 + name_len, v0, v1]);
                }
            }
        }
        out.push(b'}');
        scratch.truncate(base);
        Some(())
    }

    /// Writes one scalar occurrence `o` (a string checked as it is copied).
    #[inline]
    fn write_value(&self, ty: Ty, o: Occurrence, body: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let mut c = Cursor {
            b: body,
            i: o.start as usize,
        };
        match ty {
            Ty::String if o.wire == LEN => write_str(c.sized()?, out),
            _ => write_scalar(self.scalar(ty, o.wire, &mut c)?, out),
        }
    }

    /// Checks occurrences of `field` that are not written.
    fn check_run(
        &self,
        field: &FieldType,
        body: &[u8],
        run: &[Occurrence],
        depth: u32,
    ) -> Option<()> {
        for o in run {
            let mut c = Cursor {
                b: body,
                i: o.start as usize,
            };
            self.check_field(field, o.wire, &mut c, depth)?;
        }
        Some(())
    }

    /// Writes a map field from its entries, the occurrences `scratch[run]`, as a JSON object
    /// sorted by key, the last entry of a key kept.
    #[allow(clippy::too_many_arguments)]
    fn write_map(
        &self,
        key_ty: Ty,
        value_ty: Ty,
        body: &[u8],
        run: std::ops::Range<usize>,
        out: &mut Vec<u8>,
        depth: u32,
        scratch: &mut Vec<Occurrence>,
    ) -> Option<()> {
        let mut entries: Vec<Entry<'_>> = Vec::new();
        for o in &scratch[run] {
            let mut entry = Cursor {
                b: sized_body(*o, body)?,
                i: 0,
            };
            let mut key = self.zero(key_ty);
            let mut value = None;
            while !entry.done() {
                let (number, wire) = entry.key()?;
                match number {
                    1 => key = self.scalar(key_ty, wire, &mut entry)?,
                    2 => {
                        let at = entry.i;
                        self.check_value(value_ty, wire, &mut entry, depth + 1)?;
                        // A message value sent twice in one entry is merged: left to prost-reflect.
                        if matches!(value_ty, Ty::Message(_)) && value.is_some() {
                            return None;
                        }
                        value = Some((wire, &entry.b[at..entry.i]));
                    }
                    _ => skip_unknown(&mut entry, number, wire, depth + 1)?,
                }
            }
            let key = match key {
                Scalar::Text(s) => s.to_string(),
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(v) => v.to_string(),
                Scalar::Big(v) => v.to_string(),
                _ => return None,
            };
            entries.push((key, value));
        }
        // The last entry of each key, in key order.
        entries.reverse();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, first| later.0 == first.0);
        out.push(b'{');
        for (n, (key, value)) in entries.into_iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            write_str(key.as_bytes(), out)?;
            out.push(b':');
            match (value_ty, value) {
                (Ty::Message(sub), Some((_, bytes))) => {
                    let mut c = Cursor { b: bytes, i: 0 };
                    self.write_message(sub, c.sized()?, out, depth + 2, scratch, &mut None, None)?;
                }
                (Ty::Message(sub), None) => {
                    self.write_message(sub, &[], out, depth + 2, scratch, &mut None, None)?
                }
                (ty, Some((wire, bytes))) => {
                    let mut c = Cursor { b: bytes, i: 0 };
                    write_scalar(self.scalar(ty, wire, &mut c)?, out)?;
                }
                (ty, None) => write_scalar(self.zero(ty), out)?,
            }
        }
        out.push(b'}');
        Some(())
    }

    /// Writes a `google.protobuf.Timestamp` as RFC 3339 text (`null` out of range).
    fn write_timestamp(&self, m: u32, body: &[u8], out: &mut Vec<u8>, depth: u32) -> Option<()> {
        let message = &self.messages[m as usize];
        // Only the well-known shape (a look-alike from a hand-made descriptor is left to
        // prost-reflect).
        let ty = |number| message.field(number).map(|i| &message.fields[i]);
        let plain = |number, want| ty(number).is_some_and(|f| f.ty == want && !f.list);
        if !(plain(1, Ty::Int64) && plain(2, Ty::Int32)) {
            return None;
        }
        self.check_message(m, &mut Cursor { b: body, i: 0 }, depth)?;
        let (mut seconds, mut nanos) = (0i64, 0i32);
        let mut c = Cursor { b: body, i: 0 };
        while !c.done() {
            let (number, wire) = c.key()?;
            match (number, wire) {
                (1, VARINT) => seconds = c.varint()? as i64,
                (2, VARINT) => nanos = c.varint()? as i32,
                _ => match message.field(number) {
                    Some(i) => self.check_field(&message.fields[i], wire, &mut c, depth)?,
                    None => skip_unknown(&mut c, number, wire, depth)?,
                },
            }
        }
        let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
        match time::OffsetDateTime::from_unix_timestamp_nanos(total)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            }) {
            Some(text) => write_str(text.as_bytes(), out)?,
            None => out.extend_from_slice(b"null"),
        }
        Some(())
    }
}

/// A map entry: its key as text and its value's wire type and bytes (`None`: the default).
type Entry<'b> = (String, Option<(u8, &'b [u8])>);

/// The bytes of occurrence `o` of a message or map field: `None` unless it was sent as
/// `LEN` (another wire type's bytes could still read as a length and a body, which
/// prost-reflect refuses).
fn sized_body(o: Occurrence, body: &[u8]) -> Option<&[u8]> {
    if o.wire != LEN {
        return None;
    }
    Cursor {
        b: body,
        i: o.start as usize,
    }
    .sized()
}

/// A comma before every item but the first.
fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}
