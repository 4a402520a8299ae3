//! JSON outputs written as Protobuf: the JSON object is converted field by field into a
//! `prost-reflect` message of the writer schema (the inverse of the source's mapping: `.proto`
//! or JSON field names, enums by name or number, bytes as base64, 64-bit integers as numbers
//! or digits, `google.protobuf.Timestamp` as RFC 3339 text), then encoded. A value that does
//! not fit names its path.

use super::encode::At;
use prost_reflect::prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MapKey, MessageDescriptor, Value as Pb,
};
use serde_json::Value;
use std::collections::HashMap;

/// The message type outputs are written as, and its Confluent message indexes.
pub(crate) struct ProtobufWriter {
    message: MessageDescriptor,
    /// The zigzag varint message indexes of the Confluent wire format (`[0]` for the first
    /// top-level message).
    pub(crate) indexes: Vec<u8>,
}

impl ProtobufWriter {
    /// The writer of message `name` of `file` (its first message when `None`).
    pub(crate) fn new(file: &FileDescriptor, name: Option<&str>) -> Result<ProtobufWriter, String> {
        let message = match name {
            Some(n) => file
                .parent_pool()
                .get_message_by_name(n.trim_start_matches('.'))
                .filter(|m| m.parent_file() == *file)
                .ok_or_else(|| {
                    let known: Vec<String> = all_messages(file)
                        .iter()
                        .map(|m| m.full_name().to_string())
                        .collect();
                    format!(
                        "the schema has no message `{n}` (it has {})",
                        known.join(", ")
                    )
                })?,
            None => file
                .messages()
                .next()
                .ok_or_else(|| "the schema declares no message".to_string())?,
        };
        let indexes = indexes(&message);
        Ok(ProtobufWriter { message, indexes })
    }

    /// The Protobuf encoding of `value`, or which field does not fit and why.
    pub(crate) fn encode(&self, value: &Value) -> Result<Vec<u8>, String> {
        Ok(message(&self.message, value, &At::Root)?.encode_to_vec())
    }
}

/// The messages of a file, nested ones included (map entries left out).
fn all_messages(file: &FileDescriptor) -> Vec<MessageDescriptor> {
    fn walk(m: MessageDescriptor, out: &mut Vec<MessageDescriptor>) {
        out.push(m.clone());
        for c in m.child_messages().filter(|c| !c.is_map_entry()) {
            walk(c, out);
        }
    }
    let mut out = Vec::new();
    for m in file.messages() {
        walk(m, &mut out);
    }
    out
}

/// The Confluent message indexes of `m`: its position in its file (top level), then in each
/// enclosing message, zigzag varints prefixed by their count; a lone 0 for the first message.
fn indexes(m: &MessageDescriptor) -> Vec<u8> {
    let mut path = Vec::new();
    let mut cur = m.clone();
    loop {
        match cur.parent_message() {
            Some(parent) => {
                let i = parent
                    .child_messages()
                    .filter(|c| !c.is_map_entry())
                    .position(|c| c == cur)
                    .unwrap_or(0);
                path.push(i as i64);
                cur = parent;
            }
            None => {
                let i = cur
                    .parent_file()
                    .messages()
                    .position(|c| c == cur)
                    .unwrap_or(0);
                path.push(i as i64);
                break;
            }
        }
    }
    path.reverse();
    if path == [0] {
        return vec![0];
    }
    let mut out = Vec::new();
    zigzag(path.len() as i64, &mut out);
    for i in path {
        zigzag(i, &mut out);
    }
    out
}

fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        other => {
            let t = other.to_string();
            if t.chars().count() > 40 {
                format!("{}…", t.chars().take(40).collect::<String>())
            } else {
                t
            }
        }
    }
}

/// A message from a JSON object (a null field is left unset).
fn message(desc: &MessageDescriptor, v: &Value, at: &At<'_>) -> Result<DynamicMessage, String> {
    let mut m = DynamicMessage::new(desc.clone());
    if desc.full_name() == "google.protobuf.Timestamp"
        && let Value::String(s) = v
    {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| format!("{}: expected an RFC 3339 timestamp, found {}", at, show(v)))?;
        m.set_field_by_name("seconds", Pb::I64(t.unix_timestamp()));
        m.set_field_by_name("nanos", Pb::I32(t.nanosecond() as i32));
        return Ok(m);
    }
    let Value::Object(o) = v else {
        return Err(format!(
            "{}: expected an object (message `{}`), found {}",
            at,
            desc.full_name(),
            show(v)
        ));
    };
    for (k, x) in o {
        let path = At::Key(at, k);
        let field = desc
            .get_field_by_name(k)
            .or_else(|| desc.get_field_by_json_name(k))
            .ok_or_else(|| {
                format!(
                    "{path}: not a field of message `{}` (remove it before publishing)",
                    desc.full_name()
                )
            })?;
        if x.is_null() {
            continue;
        }
        let value = field_value(&field, x, &path)?;
        m.try_set_field(&field, value)
            .map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(m)
}

fn field_value(field: &FieldDescriptor, v: &Value, at: &At<'_>) -> Result<Pb, String> {
    let kind = field.kind();
    if field.is_map() {
        let Value::Object(o) = v else {
            return Err(format!(
                "{at}: expected an object (a map), found {}",
                show(v)
            ));
        };
        let entry = kind
            .as_message()
            .cloned()
            .ok_or("a map without an entry type")?;
        let key_kind = entry.map_entry_key_field().kind();
        let value_kind = entry.map_entry_value_field().kind();
        let mut map = HashMap::new();
        for (k, x) in o {
            let path = At::Key(at, k);
            map.insert(
                map_key(&key_kind, k, &path)?,
                single(&value_kind, x, &path)?,
            );
        }
        return Ok(Pb::Map(map));
    }
    if field.is_list() {
        let Value::Array(items) = v else {
            return Err(format!("{at}: expected an array, found {}", show(v)));
        };
        return Ok(Pb::List(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| single(&kind, x, &At::Index(at, i)))
                .collect::<Result<_, _>>()?,
        ));
    }
    single(&kind, v, at)
}

fn single(kind: &Kind, v: &Value, at: &At<'_>) -> Result<Pb, String> {
    use base64::Engine as _;
    let mismatch = |want: &str| format!("{}: expected {want}, found {}", at, show(v));
    let int = || -> Result<i128, String> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from))
                .ok_or_else(|| mismatch("a whole number")),
            Value::String(s) => s.parse::<i128>().map_err(|_| mismatch("a whole number")),
            _ => Err(mismatch("a whole number")),
        }
    };
    let fits = |want: &str| format!("{}: {} does not fit {want}", at, show(v));
    Ok(match kind {
        Kind::Double => Pb::F64(v.as_f64().ok_or_else(|| mismatch("a number"))?),
        Kind::Float => Pb::F32(v.as_f64().ok_or_else(|| mismatch("a number"))? as f32),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Pb::I32(i32::try_from(int()?).map_err(|_| fits("an int32"))?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Pb::I64(i64::try_from(int()?).map_err(|_| fits("an int64"))?)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Pb::U32(u32::try_from(int()?).map_err(|_| fits("a uint32"))?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Pb::U64(u64::try_from(int()?).map_err(|_| fits("a uint64"))?)
        }
        Kind::Bool => Pb::Bool(v.as_bool().ok_or_else(|| mismatch("true or false"))?),
        Kind::String => Pb::String(v.as_str().ok_or_else(|| mismatch("a string"))?.to_string()),
        Kind::Bytes => {
            let s = v.as_str().ok_or_else(|| mismatch("bytes (base64)"))?;
            let b = base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| format!("{}: expected base64 bytes: {e}", at))?;
            Pb::Bytes(b.into())
        }
        Kind::Message(m) => Pb::Message(message(m, v, at)?),
        Kind::Enum(e) => match v {
            Value::String(s) => {
                Pb::EnumNumber(e.get_value_by_name(s).map(|x| x.number()).ok_or_else(|| {
                    let names: Vec<String> = e.values().map(|x| x.name().to_string()).collect();
                    mismatch(&format!("one of {names:?}"))
                })?)
            }
            Value::Number(_) => Pb::EnumNumber(i32::try_from(int()?).map_err(|_| fits("an enum"))?),
            _ => return Err(mismatch("an enum name")),
        },
    })
}

fn map_key(kind: &Kind, k: &str, at: &At<'_>) -> Result<MapKey, String> {
    let bad = || format!("{at}: the map key `{k}` is not a {kind:?}");
    Ok(match kind {
        Kind::String => MapKey::String(k.to_string()),
        Kind::Bool => MapKey::Bool(k.parse().map_err(|_| bad())?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(k.parse().map_err(|_| bad())?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(k.parse().map_err(|_| bad())?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(k.parse().map_err(|_| bad())?),
        _ => MapKey::U64(k.parse().map_err(|_| bad())?),
    })
}
