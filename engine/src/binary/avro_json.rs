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

use apache_avro::Schema;
use base64::Engine as _;

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
    /// Each field as its JSON key text (`"name":`) and node.
    Record(Vec<(String, Node)>),
}

impl Node {
    /// The node of `schema`, when every type in it is in the subset.
    pub(crate) fn compile(schema: &Schema) -> Option<Node> {
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
            Schema::Array(a) => Node::Array(Box::new(Node::compile(&a.items)?)),
            Schema::Union(u) => Node::Union(
                u.variants()
                    .iter()
                    .map(Node::compile)
                    .collect::<Option<_>>()?,
            ),
            Schema::Record(r) => Node::Record(
                r.fields
                    .iter()
                    .map(|f| {
                        let key = serde_json::to_string(&f.name).ok()? + ":";
                        Some((key, Node::compile(&f.schema)?))
                    })
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        })
    }

    /// Writes the JSON text of the datum `body` to `out`; `None` when the body does not read
    /// as this schema exactly (every byte used).
    pub(crate) fn transcode(&self, body: &[u8], out: &mut Vec<u8>) -> Option<()> {
        let mut cursor = Cursor { b: body, i: 0 };
        self.write(&mut cursor, out)?;
        (cursor.i == body.len()).then_some(())
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
            Node::Double => {
                let v = f64::from_le_bytes(c.take(8)?.try_into().ok()?);
                serde_json::to_writer(&mut *out, &v).ok()?;
            }
            Node::Bytes => {
                let bytes = c.sized()?;
                out.push(b'"');
                let start = out.len();
                out.resize(start + base64::encoded_len(bytes.len(), true)?, 0);
                base64::engine::general_purpose::STANDARD
                    .encode_slice(bytes, &mut out[start..])
                    .ok()?;
                out.push(b'"');
            }
            Node::String => {
                let bytes = c.sized()?;
                // Printable ASCII without quotes or backslashes is its own JSON text (and
                // valid UTF-8); anything else is checked and escaped as serde_json does.
                if bytes
                    .iter()
                    .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
                {
                    out.push(b'"');
                    out.extend_from_slice(bytes);
                    out.push(b'"');
                } else {
                    let text = std::str::from_utf8(bytes).ok()?;
                    serde_json::to_writer(&mut *out, text).ok()?;
                }
            }
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
                for (i, (key, node)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(key.as_bytes());
                    node.write(c, out)?;
                }
                out.push(b'}');
            }
            Node::Array(items) => {
                out.push(b'[');
                let mut first = true;
                loop {
                    let count = c.long()?;
                    if count == 0 {
                        break;
                    }
                    if count < 0 {
                        // A block with its size in bytes, which a reader may skip by.
                        c.long()?;
                    }
                    for _ in 0..count.unsigned_abs() {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        items.write(c, out)?;
                    }
                }
                out.push(b']');
            }
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
            let mut out = Vec::new();
            prop_assert!(node.transcode(&body[..body.len() - 1], &mut out).is_none());
            let mut padded = body.clone();
            padded.push(0);
            prop_assert!(node.transcode(&padded, &mut out).is_none());
        });
    }
}
