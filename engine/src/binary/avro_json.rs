//! A direct Avro-binary-to-JSON-text transcoder for the common case: a payload written with
//! the pipeline's own (reader) schema, of primitive, string, bytes, enum, array, union and
//! record types. It writes the same JSON text as decoding with `apache-avro` and serializing
//! [`super::avro`]'s JSON equivalent, without building either value tree.
//!
//! Why by hand: `apache-avro` decodes into its own `Value` tree (a `String` per field name
//! and value), which the engine then converted into a `serde_json::Value` and serialized —
//! about 2.8 µs for an order-sized record, five times the budget. No library transcodes Avro
//! binary to JSON text. This is only a fast path: a schema with any other type (maps, fixed,
//! logical types, named references) gets none, and a payload it cannot read (corrupt, not
//! UTF-8, a value out of range) falls back to `apache-avro`, which gives the verdict and
//! the error message. `tests::agrees_with_apache_avro` checks that both write the same
//! bytes.

use super::json_text::{write_base64, write_f64, write_str};
use super::typed_columns::{Leaf, Typed};
use crate::decode::{FieldSpan, PathTrie};
use apache_avro::Schema;

/// A compiled schema node.
#[derive(Debug)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// Each symbol as JSON text.
    Enum(Vec<String>),
    Array(Box<Node>),
    Union(Vec<Node>),
    /// Each field as its JSON key text (`"name":`), its name and its node.
    Record(Vec<Field>),
}

/// One field of a record node.
#[derive(Debug)]
pub(crate) struct Field {
    /// The key as JSON text after the comma that separates it from the field before
    /// (`,"name":`); the first field of a record writes it without the comma.
    key: String,
    /// The name's length (Avro names are `[A-Za-z_][A-Za-z0-9_]*`: never escaped in JSON).
    name_len: u32,
    node: Node,
    /// The pipeline's paths through this field, when it reads any (a node compiled for a
    /// pipeline's paths: [`Node::compile_for`]).
    at: Option<At>,
}

/// What the pipeline reads at a field: resolved when the schema compiles, so that a payload
/// never looks its fields up by name.
#[derive(Debug)]
struct At {
    /// The slot of the path that ends here.
    slot: Option<usize>,
    /// Whether longer paths go on into this field (its node is compiled for them).
    descend: bool,
}

/// Where one transcoded payload put what the JSON decoder would otherwise scan for: the value
/// of each path the pipeline reads and the top-level field spans, as byte offsets from the
/// payload's start. Nothing is recorded for a payload the transcoder refuses.
pub(crate) struct Recording<'r> {
    /// The raw JSON value of each path slot, as `[start, end)`; left `None` when missing.
    pub(crate) slots: &'r mut [Option<[u32; 2]>],
    /// The top-level field spans, appended (when the pipeline wants them).
    pub(crate) spans: Option<&'r mut Vec<FieldSpan>>,
}

impl Node {
    /// The node of `schema`, when every type in it is in the subset.
    #[cfg(test)]
    pub(crate) fn compile(schema: &Schema) -> Option<Node> {
        Node::compile_at(schema, None)
    }

    /// The node of a record `schema` for a pipeline that reads the paths of `trie`: where each
    /// path's value lies is recorded as the payload is transcoded
    /// ([`Node::transcode_recording`]).
    pub(crate) fn compile_for(schema: &Schema, trie: &PathTrie) -> Option<Node> {
        Node::compile_at(schema, Some(trie))
    }

    /// The node of `schema`, reached where `trie` is in the pipeline's paths (if anywhere).
    fn compile_at(schema: &Schema, trie: Option<&PathTrie>) -> Option<Node> {
        Some(match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Enum(e) => Node::Enum(
                e.symbols
                    .iter()
                    .map(|s| serde_json::to_string(s).ok())
                    .collect::<Option<_>>()?,
            ),
            // Paths do not go into arrays.
            Schema::Array(a) => Node::Array(Box::new(Node::compile_at(&a.items, None)?)),
            // A path goes through a union into whichever branch the payload holds.
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(|v| Node::compile_at(v, trie))
                    .collect::<Option<_>>()?,
            ),
            Schema::Record(r) => Node::Record(
                r.fields
                    .iter()
                    .map(|f| {
                        let key = format!(",{}:", serde_json::to_string(&f.name).ok()?);
                        // A name JSON escapes (not a valid Avro name) gets no fast path.
                        (key.len() == f.name.len() + 4).then_some(())?;
                        let child = trie.and_then(|t| t.child(&f.name));
                        Some(Field {
                            key,
                            name_len: u32::try_from(f.name.len()).ok()?,
                            node: Node::compile_at(&f.schema, child.filter(|c| c.has_children()))?,
                            at: child.map(|c| At {
                                slot: c.slot(),
                                descend: c.has_children(),
                            }),
                        })
                    })
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    /// How deep the JSON of this node nests (records and arrays count one level each).
    pub(crate) fn depth(&self) -> usize {
        match self {
            Node::Array(items) => 1 + items.depth(),
            Node::Record(fields) => 1 + fields.iter().map(|f| f.node.depth()).max().unwrap_or(0),
            Node::Union(branches) => branches.iter().map(Node::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Writes the JSON text of the datum `body` to `out`; `None` when the body does not read
    /// as this schema exactly (every byte used).
    #[cfg(test)]
    pub(crate) fn transcode(&self, body: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let mut cursor = Cursor { b: body, i: 0 };
        self.write(&mut cursor, out)?;
        (cursor.i == body.len()).then_some(())
    }

    /// Like [`Node::transcode`] for a record, appending the JSON text to `out` and recording
    /// into `rec` where the values of the paths it was compiled for ([`Node::compile_for`])
    /// and the top-level fields went, so that the payload needs no JSON scan: the binary is
    /// decoded straight into the values the engine's columns are built from. `None` (and
    /// nothing appended or recorded) when this node is not a record or the body does not read
    /// as it.
    pub(crate) fn transcode_recording(
        &self,
        body: &[u8],
        out: &mut Vec<u8>,
        rec: Recording<'_>,
    ) -> Option<()> {
        let Node::Record(fields) = self else {
            return None;
        };
        let start = out.len();
        let spans_start = rec.spans.as_ref().map_or(0, |s| s.len());
        let Recording { slots, mut spans } = rec;
        let mut cursor = Cursor { b: body, i: 0 };
        let mut at = Paths {
            out,
            start,
            slots,
            skim: false,
        };
        let done = at
            .record(fields, &mut cursor, spans.as_deref_mut())
            .filter(|()| cursor.i == body.len());
        if done.is_none() {
            at.out.truncate(start);
            at.slots.fill(None);
            if let Some(spans) = spans {
                spans.truncate(spans_start);
            }
        }
        done
    }

    /// Reads a record datum `body` as [`Node::transcode_recording`] does, checking every
    /// value the same way, but writes only the values of the paths it was compiled for:
    /// appended to `values`, where `slots` says where each went (offsets into `values` as a
    /// whole). The payload's own JSON text is written later, for the messages that need it
    /// (a message a filter drops never does). `None` (and nothing appended or recorded) when
    /// this node is not a record or the body does not read as it.
    pub(crate) fn skim_recording(
        &self,
        body: &[u8],
        values: &mut Vec<u8>,
        slots: &mut [Option<[u32; 2]>],
    ) -> Option<()> {
        let Node::Record(fields) = self else {
            return None;
        };
        let start = values.len();
        let mut cursor = Cursor { b: body, i: 0 };
        let mut at = Paths {
            out: values,
            start: 0,
            slots,
            skim: true,
        };
        let done = at
            .record(fields, &mut cursor, None)
            .filter(|()| cursor.i == body.len());
        if done.is_none() {
            at.out.truncate(start);
            at.slots.fill(None);
        }
        done
    }

    /// Reads past one datum of this node, checking it as [`Node::write`] does (so that a
    /// payload skimmed without error is one whose text can be written).
    fn skip(&self, c: &mut Cursor<'_>) -> Option<()> {
        match self {
            Node::Null => {}
            Node::Boolean => {
                if c.byte()? > 1 {
                    return None;
                }
            }
            Node::Int => {
                i32::try_from(c.long()?).ok()?;
            }
            Node::Long => {
                c.long()?;
            }
            Node::Float => {
                c.take(4)?;
            }
            Node::Double => {
                c.take(8)?;
            }
            Node::Bytes => {
                c.sized()?;
            }
            Node::String => {
                // Only UTF-8 matters here (escaping is the writer's business): ASCII, the
                // common case, is checked a word at a time.
                let bytes = c.sized()?;
                if !bytes.is_ascii() {
                    std::str::from_utf8(bytes).ok()?;
                }
            }
            Node::Enum(symbols) => {
                symbols.get(usize::try_from(c.long()?).ok()?)?;
            }
            Node::Union(branches) => {
                let branch = branches.get(usize::try_from(c.long()?).ok()?)?;
                branch.skip(c)?;
            }
            Node::Record(fields) => {
                for f in fields {
                    f.node.skip(c)?;
                }
            }
            Node::Array(items) => c.items(|c, _| items.skip(c))?,
        }
        Some(())
    }

    fn write(&self, c: &mut Cursor<'_>, out: &mut Vec<u8>) -> Option<()> {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Boolean => match c.byte()? {
                0 => out.extend_from_slice(b"false"),
                1 => out.extend_from_slice(b"true"),
                _ => return None,
            },
            Node::Int => {
                let v = i32::try_from(c.long()?).ok()?;
                serde_json::to_writer(&mut *out, &v).ok()?;
            }
            Node::Long => serde_json::to_writer(&mut *out, &c.long()?).ok()?,
            Node::Float => {
                let v = f32::from_le_bytes(c.take(4)?.try_into().ok()?);
                serde_json::to_writer(&mut *out, &f64::from(v)).ok()?;
            }
            Node::Double => write_f64(f64::from_le_bytes(c.take(8)?.try_into().ok()?), out),
            Node::Bytes => write_base64(c.sized()?, out)?,
            Node::String => write_str(c.sized()?, out)?,
            Node::Enum(symbols) => {
                let symbol = symbols.get(usize::try_from(c.long()?).ok()?)?;
                out.extend_from_slice(symbol.as_bytes());
            }
            Node::Union(branches) => {
                let branch = branches.get(usize::try_from(c.long()?).ok()?)?;
                branch.write(c, out)?;
            }
            Node::Record(fields) => {
                out.push(b'{');
                for (i, f) in fields.iter().enumerate() {
                    out.extend_from_slice(&f.key.as_bytes()[usize::from(i == 0)..]);
                    f.node.write(c, out)?;
                }
                out.push(b'}');
            }
            Node::Array(items) => {
                out.push(b'[');
                c.items(|c, first| {
                    if !first {
                        out.push(b',');
                    }
                    items.write(c, out)
                })?;
                out.push(b']');
            }
        }
        Some(())
    }
}

impl Node {
    /// The type of each of the `n_slots` path slots this record node was compiled for, when
    /// every one is primitive (else `None`: some path ends at a record, an array or bytes,
    /// or at values of different types).
    pub(crate) fn slot_leaves(&self, n_slots: usize) -> Option<Vec<Leaf>> {
        let mut leaves = vec![Leaf::Null; n_slots];
        self.collect_leaves(&mut leaves)?;
        Some(leaves)
    }

    fn collect_leaves(&self, leaves: &mut [Leaf]) -> Option<()> {
        match self {
            Node::Union(branches) => {
                for b in branches {
                    b.collect_leaves(leaves)?;
                }
            }
            Node::Record(fields) => {
                for f in fields {
                    let Some(at) = &f.at else { continue };
                    if let Some(slot) = at.slot {
                        let leaf = leaves.get_mut(slot)?;
                        *leaf = leaf.merge(f.node.leaf()?)?;
                    }
                    if at.descend {
                        f.node.collect_leaves(leaves)?;
                    }
                }
            }
            _ => {}
        }
        Some(())
    }

    fn leaf(&self) -> Option<Leaf> {
        Some(match self {
            Node::Null => Leaf::Null,
            Node::Boolean => Leaf::Bool,
            Node::Int | Node::Long => Leaf::Int,
            Node::Float | Node::Double => Leaf::Float,
            Node::String | Node::Enum(_) => Leaf::Text,
            Node::Union(branches) => branches
                .iter()
                .try_fold(Leaf::Null, |l, b| l.merge(b.leaf()?))?,
            _ => return None,
        })
    }

    /// Reads a record datum `body` with the same checks as [`Node::transcode_recording`],
    /// putting the value of each path slot into `typed` as the JSON decoder would type it
    /// (a non-finite double is null, as in the JSON text), and writing nothing; `None` when
    /// the body does not read as this record or a path's value is not primitive.
    pub(crate) fn read_typed<'v>(&'v self, body: &'v [u8], typed: &mut [Typed<'v>]) -> Option<()> {
        let Node::Record(fields) = self else {
            return None;
        };
        typed.fill(Typed::Null);
        let mut c = Cursor { b: body, i: 0 };
        typed_record(fields, &mut c, typed)?;
        (c.i == body.len()).then_some(())
    }

    fn typed<'v>(&'v self, c: &mut Cursor<'v>) -> Option<Typed<'v>> {
        let finite = |v: f64| {
            if v.is_finite() {
                Typed::Float(v)
            } else {
                Typed::Null
            }
        };
        Some(match self {
            Node::Null => Typed::Null,
            Node::Boolean => match c.byte()? {
                0 => Typed::Bool(false),
                1 => Typed::Bool(true),
                _ => return None,
            },
            Node::Int => Typed::Int(i32::try_from(c.long()?).ok()?.into()),
            Node::Long => Typed::Int(c.long()?),
            Node::Float => finite(f64::from(f32::from_le_bytes(c.take(4)?.try_into().ok()?))),
            Node::Double => finite(f64::from_le_bytes(c.take(8)?.try_into().ok()?)),
            Node::String => Typed::Text(std::str::from_utf8(c.sized()?).ok()?),
            Node::Enum(symbols) => {
                let symbol = symbols.get(usize::try_from(c.long()?).ok()?)?;
                // The symbol's JSON text, without its quotes (Avro names need no escapes).
                Typed::Text(symbol.get(1..symbol.len() - 1)?)
            }
            Node::Union(branches) => branches.get(usize::try_from(c.long()?).ok()?)?.typed(c)?,
            _ => return None,
        })
    }
}

/// A record's fields for [`Node::read_typed`]: slots take their values, paths go deeper, the
/// rest is skipped.
fn typed_record<'v>(
    fields: &'v [Field],
    c: &mut Cursor<'v>,
    typed: &mut [Typed<'v>],
) -> Option<()> {
    for f in fields {
        match &f.at {
            None => f.node.skip(c)?,
            Some(At {
                slot: Some(slot), ..
            }) => *typed.get_mut(*slot)? = f.node.typed(c)?,
            Some(_) => typed_nested(&f.node, c, typed)?,
        }
    }
    Some(())
}

/// A value that longer paths go into: a record's fields are read, anything else skipped.
fn typed_nested<'v>(node: &'v Node, c: &mut Cursor<'v>, typed: &mut [Typed<'v>]) -> Option<()> {
    match node {
        Node::Union(branches) => {
            let branch = branches.get(usize::try_from(c.long()?).ok()?)?;
            typed_nested(branch, c, typed)
        }
        Node::Record(fields) => typed_record(fields, c, typed),
        other => other.skip(c),
    }
}

/// The output of one payload being transcoded with recording: offsets are from `start`.
struct Paths<'o, 'r> {
    out: &'o mut Vec<u8>,
    start: usize,
    slots: &'r mut [Option<[u32; 2]>],
    /// Only the paths' values are written (a record's own text is not).
    skim: bool,
}

impl Paths<'_, '_> {
    fn offset(&self) -> u32 {
        (self.out.len() - self.start) as u32
    }

    /// A record's fields, descending into the ones the pipeline reads.
    fn record(
        &mut self,
        fields: &[Field],
        c: &mut Cursor<'_>,
        mut spans: Option<&mut Vec<FieldSpan>>,
    ) -> Option<()> {
        if self.skim {
            for f in fields {
                match &f.at {
                    Some(at) => self.value(&f.node, c, at)?,
                    None => f.node.skip(c)?,
                }
            }
            return Some(());
        }
        self.out.push(b'{');
        for (i, f) in fields.iter().enumerate() {
            self.out
                .extend_from_slice(&f.key.as_bytes()[usize::from(i == 0)..]);
            let v0 = self.offset();
            match &f.at {
                Some(at) => self.value(&f.node, c, at)?,
                None => f.node.write(c, self.out)?,
            }
            if let Some(spans) = spans.as_deref_mut() {
                // The name lies before its closing quote and colon.
                let k0 = v0 - f.name_len - 2;
                spans.push([k0, k0 + f.name_len, v0, self.offset()]);
            }
        }
        self.out.push(b'}');
        Some(())
    }

    /// A value at a path: its slot records it; a record descends into the nested paths.
    fn value(&mut self, node: &Node, c: &mut Cursor<'_>, at: &At) -> Option<()> {
        let v0 = self.offset();
        match node {
            Node::Union(branches) => {
                let branch = branches.get(usize::try_from(c.long()?).ok()?)?;
                return self.value(branch, c, at);
            }
            Node::Record(fields) if at.descend => {
                // A record that is a path's value too is written whole, skimmed or not.
                let skim = self.skim;
                self.skim &= at.slot.is_none();
                let read = self.record(fields, c, None);
                self.skim = skim;
                read?
            }
            // Paths that go on into a value with no fields (an array, a string) find nothing.
            _ if self.skim && at.slot.is_none() => return node.skip(c),
            _ => node.write(c, self.out)?,
        }
        if let Some(slot) = at.slot {
            self.slots[slot] = Some([v0, self.offset()]);
        }
        Some(())
    }
}

/// A read position in a datum.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.b.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    /// A zig-zag varint long (at most ten bytes).
    fn long(&mut self) -> Option<i64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return None;
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        None
    }

    /// An array's items, block by block: `item(cursor, first)` reads each.
    fn items(&mut self, mut item: impl FnMut(&mut Self, bool) -> Option<()>) -> Option<()> {
        let mut first = true;
        loop {
            let count = self.long()?;
            if count == 0 {
                return Some(());
            }
            if count < 0 {
                // A block with its size in bytes, which a reader may skip by.
                self.long()?;
            }
            for _ in 0..count.unsigned_abs() {
                item(self, first)?;
                first = false;
            }
        }
    }

    /// Length-prefixed bytes.
    fn sized(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.long()?).ok()?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as Avro;
    use proptest::prelude::*;

    const SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
      {"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"big","type":"long"},
      {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"ok","type":"boolean"},
      {"name":"raw","type":"bytes"},{"name":"none","type":"null"},
      {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B_2"]}},
      {"name":"note","type":["null","string"]},
      {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item",
        "fields":[{"name":"sku","type":"string"},{"name":"qty","type":"int"}]}}}]}"#;

    fn slow(schema: &Schema, body: &[u8]) -> Vec<u8> {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema)
            .build()
            .unwrap();
        let value = reader.read_value(&mut &body[..]).unwrap();
        serde_json::to_vec(&super::super::avro::to_json(
            value,
            Some(schema),
            &Default::default(),
        ))
        .unwrap()
    }

    #[test]
    fn unsupported_types_get_no_fast_path() {
        for s in [
            r#"{"type":"map","values":"int"}"#,
            r#"{"type":"fixed","name":"F","size":2}"#,
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
        ] {
            assert!(
                Node::compile(&Schema::parse_str(s).unwrap()).is_none(),
                "{s}"
            );
        }
    }

    /// Random records: the fast path writes exactly what apache-avro's value, as JSON,
    /// serializes to; a truncated or padded body is refused.
    #[test]
    fn agrees_with_apache_avro() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let node = Node::compile(&schema).unwrap();
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap();
        let item = (".{0,6}", any::<i32>()).prop_map(|(sku, qty)| {
            Avro::Record(vec![
                ("sku".into(), Avro::String(sku)),
                ("qty".into(), Avro::Int(qty)),
            ])
        });
        let record = (
            (
                ".{0,12}",
                any::<i32>(),
                any::<i64>(),
                any::<f32>(),
                any::<f64>(),
            ),
            (
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..6),
                0u32..2,
            ),
            (
                prop::option::of(".{0,5}"),
                prop::collection::vec(item, 0..4),
            ),
        );
        proptest!(|(((id, n, big, f, d), (ok, raw, kind), (note, items)) in record)| {
            let value = Avro::Record(vec![
                ("id".into(), Avro::String(id)),
                ("n".into(), Avro::Int(n)),
                ("big".into(), Avro::Long(big)),
                ("f".into(), Avro::Float(f)),
                ("d".into(), Avro::Double(d)),
                ("ok".into(), Avro::Boolean(ok)),
                ("raw".into(), Avro::Bytes(raw)),
                ("none".into(), Avro::Null),
                ("kind".into(), Avro::Enum(kind, ["A", "B_2"][kind as usize].into())),
                ("note".into(), match note {
                    Some(s) => Avro::Union(1, Box::new(Avro::String(s))),
                    None => Avro::Union(0, Box::new(Avro::Null)),
                }),
                ("items".into(), Avro::Array(items)),
            ]);
            let body = writer.write_value_to_vec(value).unwrap();
            let mut fast = Vec::new();
            prop_assert!(node.transcode(&body, &mut fast).is_some());
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow(&schema, &body)).unwrap());
            // Skimming checks exactly what writing does: a byte changed anywhere is refused by
            // both or by neither.
            for at in 0..body.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut bent = body.clone();
                    bent[at] ^= flip;
                    let (mut out, mut values) = (Vec::new(), Vec::new());
                    prop_assert_eq!(
                        node.transcode(&bent, &mut out).is_some(),
                        node.skim_recording(&bent, &mut values, &mut []).is_some(),
                        "byte {} ^ {:#x}", at, flip
                    );
                }
            }
            let mut out = Vec::new();
            prop_assert!(node.transcode(&body[..body.len() - 1], &mut out).is_none());
            let mut padded = body.clone();
            padded.push(0);
            prop_assert!(node.transcode(&padded, &mut out).is_none());
        });
    }

    const NESTED: &str = r#"{"type":"record","name":"Order","fields":[
      {"name":"id","type":"string"},{"name":"amount","type":"double"},
      {"name":"customer","type":{"type":"record","name":"Customer","fields":[
        {"name":"id","type":"string"},{"name":"tier","type":["null","string"]}]}},
      {"name":"ship","type":["null",{"type":"record","name":"Address","fields":[
        {"name":"city","type":"string"}]}]},
      {"name":"tags","type":{"type":"array","items":"string"}}]}"#;

    /// Random records: what the recording transcoder says of each path and top-level field is
    /// what the JSON decoder finds scanning the text it wrote.
    #[test]
    fn recording_agrees_with_the_json_decoder() {
        let schema = Schema::parse_str(NESTED).unwrap();
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap();
        let paths: Vec<Vec<String>> = [
            &["id"][..],
            &["customer", "id"],
            &["customer", "tier"],
            &["customer"],
            &["ship", "city"],
            &["tags"],
            &["tags", "x"],
            &["missing"],
            &["amount"],
        ]
        .iter()
        .map(|p| p.iter().map(|s| s.to_string()).collect())
        .collect();
        let trie = PathTrie::build(paths.iter().map(Vec::as_slice));
        let node = Node::compile_for(&schema, &trie).unwrap();
        let record = (
            ".{0,8}",
            any::<f64>(),
            ".{0,5}",
            prop::option::of(".{0,4}"),
            prop::option::of(".{0,6}"),
            prop::collection::vec(".{0,3}", 0..3),
        );
        proptest!(|((id, amount, cid, tier, city, tags) in record)| {
            let value = Avro::Record(vec![
                ("id".into(), Avro::String(id)),
                ("amount".into(), Avro::Double(amount)),
                ("customer".into(), Avro::Record(vec![
                    ("id".into(), Avro::String(cid)),
                    ("tier".into(), match tier {
                        Some(t) => Avro::Union(1, Box::new(Avro::String(t))),
                        None => Avro::Union(0, Box::new(Avro::Null)),
                    }),
                ])),
                ("ship".into(), match city {
                    Some(c) => Avro::Union(1, Box::new(Avro::Record(vec![("city".into(), Avro::String(c))]))),
                    None => Avro::Union(0, Box::new(Avro::Null)),
                }),
                ("tags".into(), Avro::Array(tags.into_iter().map(Avro::String).collect())),
            ]);
            let body = writer.write_value_to_vec(value).unwrap();
            // Something before it in the buffer: offsets are from the payload's start.
            let mut out = b"previous".to_vec();
            let mut slots = vec![None; paths.len()];
            let mut spans = vec![[9; 4]];
            let rec = Recording { slots: &mut slots, spans: Some(&mut spans) };
            prop_assert!(node.transcode_recording(&body, &mut out, rec).is_some());
            let text = std::str::from_utf8(&out[8..]).unwrap();
            let mut expected = vec![None; paths.len()];
            let mut expected_spans = vec![[9; 4]];
            let x = crate::decode::extract(text, &trie, &mut expected, Some(&mut expected_spans)).unwrap();
            prop_assert!(x.is_object);
            let got: Vec<Option<&str>> = slots.iter().map(|s| s.map(|[a, b]| &text[a as usize..b as usize])).collect();
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(spans, expected_spans);
            // Skimmed: the same values, written alone after what the buffer held.
            let mut values = b"before".to_vec();
            let mut skimmed = vec![None; paths.len()];
            prop_assert!(node.skim_recording(&body, &mut values, &mut skimmed).is_some());
            let values = String::from_utf8(values).unwrap();
            let got: Vec<Option<&str>> = skimmed.iter().map(|s| s.map(|[a, b]| &values[a as usize..b as usize])).collect();
            prop_assert_eq!(got, expected);
            let mut values = b"before".to_vec();
            prop_assert!(node.skim_recording(&body[..body.len() - 1], &mut values, &mut skimmed).is_none());
            prop_assert_eq!(values, b"before".to_vec());
            prop_assert!(skimmed.iter().all(Option::is_none));
            // A truncated body: nothing appended, nothing recorded.
            let mut out = b"previous".to_vec();
            let mut spans = Vec::new();
            let rec = Recording { slots: &mut slots, spans: Some(&mut spans) };
            prop_assert!(node.transcode_recording(&body[..body.len() - 1], &mut out, rec).is_none());
            prop_assert_eq!(out, b"previous".to_vec());
            prop_assert!(spans.is_empty() && slots.iter().all(Option::is_none));
        });
    }
}
