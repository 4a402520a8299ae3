//! JSON outputs written as Avro: the JSON value is converted field by field into an Avro datum
//! of the writer schema (the inverse of the source's mapping: enums by symbol, unions by the
//! first branch the value fits, bytes and fixed as base64, timestamps and dates as RFC 3339
//! text or numbers), then encoded with `apache-avro`. A value that does not fit names its path.

use super::encode::At;
use apache_avro::Schema;
use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use serde_json::Value;
use std::collections::HashMap;
use weir_pipelines::spec::EmbeddedSchema;

/// One Avro writer schema, its named types (for `Ref`s), and the datum writer over it (built
/// once: its named types resolved when the pipeline compiles).
pub(crate) struct AvroWriter {
    names: HashMap<Name, Schema>,
    writer: Encoder,
}

#[ouroboros::self_referencing]
struct Encoder {
    schema: Schema,
    #[borrows(schema)]
    #[not_covariant]
    datum: GenericDatumWriter<'this>,
}

impl AvroWriter {
    /// Parses the registry schema (with the named types of its references).
    pub(crate) fn new(embedded: &EmbeddedSchema) -> Result<AvroWriter, String> {
        let schema = super::avro::self_contained(embedded)
            .map_err(|e| format!("not a valid Avro schema: {e}"))?;
        let mut names = HashMap::new();
        collect_names(&schema, &mut names);
        let writer = EncoderTryBuilder {
            schema,
            datum_builder: |s: &Schema| GenericDatumWriter::builder(s).build(),
        }
        .try_build()
        .map_err(|e| format!("not a usable Avro schema: {e}"))?;
        Ok(AvroWriter { names, writer })
    }

    /// The Avro binary of `value`, or which field does not fit and why.
    pub(crate) fn encode(&self, value: &Value) -> Result<Vec<u8>, String> {
        let datum = self.convert(self.writer.borrow_schema(), value, &At::Root)?;
        self.writer
            .with_datum(|w| w.write_value_to_vec(datum))
            .map_err(|e| format!("/: {e}"))
    }

    fn convert(&self, schema: &Schema, v: &Value, at: &At<'_>) -> Result<Avro, String> {
        let mismatch = |want: &str| Err(format!("{}: expected {want}, found {}", at, show(v)));
        Ok(match (schema, v) {
            (Schema::Ref { name }, _) => {
                let named = self
                    .names
                    .get(name)
                    .ok_or_else(|| format!("{}: unknown Avro type `{name}`", at))?;
                return self.convert(named, v, at);
            }
            (Schema::Null, Value::Null) => Avro::Null,
            (Schema::Boolean, Value::Bool(b)) => Avro::Boolean(*b),
            (Schema::Int, Value::Number(_)) => Avro::Int(int(v, at)?),
            (Schema::Long, Value::Number(_)) => Avro::Long(long(v, at)?),
            (Schema::Float, Value::Number(n)) => Avro::Float(n.as_f64().unwrap_or(0.0) as f32),
            (Schema::Double, Value::Number(n)) => Avro::Double(n.as_f64().unwrap_or(0.0)),
            (Schema::String, Value::String(s)) => Avro::String(s.clone()),
            (Schema::Bytes, Value::String(s)) => Avro::Bytes(base64(s, at)?),
            (Schema::Fixed(f), Value::String(s)) => {
                let b = base64(s, at)?;
                if b.len() != f.size {
                    return mismatch(&format!("{} bytes (base64)", f.size));
                }
                Avro::Fixed(f.size, b)
            }
            (Schema::Enum(e), Value::String(s)) => match e.symbols.iter().position(|x| x == s) {
                Some(i) => Avro::Enum(i as u32, s.clone()),
                None => return mismatch(&format!("one of {:?}", e.symbols)),
            },
            (Schema::Array(a), Value::Array(items)) => Avro::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| self.convert(&a.items, x, &At::Index(at, i)))
                    .collect::<Result<_, _>>()?,
            ),
            (Schema::Map(m), Value::Object(o)) => Avro::Map(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.convert(&m.types, x, &At::Key(at, k))?)))
                    .collect::<Result<_, String>>()?,
            ),
            (Schema::Record(r), Value::Object(_)) => self.record(r, v, at)?,
            (Schema::Union(u), _) => self.union(u, v, at)?,
            (Schema::Date, Value::String(s)) => {
                let d =
                    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                        .map_err(|_| {
                            format!("{}: expected a date (YYYY-MM-DD), found {}", at, show(v))
                        })?;
                Avro::Date(
                    d.to_julian_day() - time::OffsetDateTime::UNIX_EPOCH.date().to_julian_day(),
                )
            }
            (Schema::Date, Value::Number(_)) => Avro::Date(int(v, at)?),
            (Schema::TimeMillis, Value::Number(_)) => Avro::TimeMillis(int(v, at)?),
            (Schema::TimeMicros, Value::Number(_)) => Avro::TimeMicros(long(v, at)?),
            (
                Schema::TimestampMillis
                | Schema::TimestampMicros
                | Schema::TimestampNanos
                | Schema::LocalTimestampMillis
                | Schema::LocalTimestampMicros
                | Schema::LocalTimestampNanos,
                Value::String(_) | Value::Number(_),
            ) => timestamp(schema, v, at)?,
            (Schema::Decimal(d), Value::String(_) | Value::Number(_)) => {
                decimal(v, d.precision, d.scale, at)?
            }
            (Schema::BigDecimal, Value::String(_) | Value::Number(_)) => {
                Avro::BigDecimal(decimal_text(v, at)?)
            }
            (Schema::Duration(_), Value::Object(o)) => duration(o, at)?,
            (Schema::Uuid(apache_avro::schema::UuidSchema::String), Value::String(s)) => {
                Avro::String(s.clone())
            }
            _ => return mismatch(kind(schema)),
        })
    }

    /// A record: every field of the schema from the object (or its default), and no other key.
    fn record(&self, r: &RecordSchema, v: &Value, at: &At<'_>) -> Result<Avro, String> {
        let Value::Object(o) = v else {
            unreachable!("called with an object")
        };
        if let Some(extra) = o.keys().find(|k| !r.lookup.contains_key(*k)) {
            return Err(format!(
                "{}: not a field of Avro record `{}` (remove it before publishing)",
                At::Key(at, extra),
                r.name
            ));
        }
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let path = At::Key(at, &f.name);
            let value = match (o.get(&f.name), &f.default) {
                (Some(x), _) => self.convert(&f.schema, x, &path)?,
                (None, Some(d)) => self.convert(&f.schema, d, &path)?,
                (None, None) => {
                    if matches!(&f.schema, Schema::Union(u) if u.variants().contains(&Schema::Null))
                    {
                        self.convert(&f.schema, &Value::Null, &path)?
                    } else {
                        return Err(format!("{path}: missing; the Avro field has no default"));
                    }
                }
            };
            fields.push((f.name.clone(), value));
        }
        Ok(Avro::Record(fields))
    }

    /// A union: the first branch the value fits (null for a JSON null). When none fits, the
    /// reason of a branch that failed below this path (the value had its shape) is the one
    /// given.
    fn union(&self, u: &UnionSchema, v: &Value, at: &At<'_>) -> Result<Avro, String> {
        let mut deeper = None;
        for (i, branch) in u.variants().iter().enumerate() {
            match self.convert(branch, v, at) {
                Ok(x) => return Ok(Avro::Union(i as u32, Box::new(x))),
                Err(e) if deeper.is_none() && e.split(": ").next() != Some(&at.to_string()) => {
                    deeper = Some(e)
                }
                Err(_) => {}
            }
        }
        let branches: Vec<&str> = u.variants().iter().map(kind).collect();
        Err(deeper.unwrap_or_else(|| {
            format!(
                "{}: expected one of [{}], found {}",
                at,
                branches.join(", "),
                show(v)
            )
        }))
    }
}

/// Every named type of `schema`, by name.
pub(super) fn collect_names(schema: &Schema, names: &mut HashMap<Name, Schema>) {
    match schema {
        Schema::Record(r) => {
            names.insert(r.name.clone(), schema.clone());
            for f in &r.fields {
                collect_names(&f.schema, names);
            }
        }
        Schema::Enum(e) => {
            names.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) => {
            names.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => collect_names(&a.items, names),
        Schema::Map(m) => collect_names(&m.types, names),
        Schema::Union(u) => u.variants().iter().for_each(|s| collect_names(s, names)),
        _ => {}
    }
}

/// A value as shown in a reason: short.
fn show(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        Value::String(s) if s.chars().count() > 40 => {
            format!("\"{}…\"", s.chars().take(40).collect::<String>())
        }
        other => other.to_string(),
    }
}

/// What a schema wants, in words.
fn kind(schema: &Schema) -> &'static str {
    match schema {
        Schema::Null => "null",
        Schema::Boolean => "a boolean",
        Schema::Int => "an int",
        Schema::Long => "a long",
        Schema::Float => "a float",
        Schema::Double => "a double",
        Schema::Bytes => "bytes (base64)",
        Schema::String => "a string",
        Schema::Array(_) => "an array",
        Schema::Map(_) => "a map (object)",
        Schema::Union(_) => "a union",
        Schema::Record(_) => "a record (object)",
        Schema::Enum(_) => "an enum symbol",
        Schema::Fixed(_) => "fixed bytes (base64)",
        Schema::Decimal(_) | Schema::BigDecimal => "a decimal (text like \"12.30\", or a number)",
        Schema::Duration(_) => "a duration ({months, days, millis})",
        Schema::Date => "a date",
        Schema::TimeMillis | Schema::TimeMicros => "a time of day (a number)",
        Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => "a timestamp (RFC 3339 or a number)",
        Schema::Uuid(_) => "a UUID string",
        Schema::Ref { .. } => "a named type",
    }
}

/// A decimal value from decimal text or a JSON number (as written: `12.3`, `1e2`).
fn decimal_text(v: &Value, at: &At<'_>) -> Result<apache_avro::BigDecimal, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    text.trim().parse().map_err(|_| {
        format!(
            "{}: expected a decimal (text like \"12.30\", or a number), found {}",
            at,
            show(v)
        )
    })
}

/// An Avro `decimal`: the value at the schema's scale (refused when that would drop digits)
/// within its precision, as the unscaled two's-complement integer.
fn decimal(v: &Value, precision: usize, scale: usize, at: &At<'_>) -> Result<Avro, String> {
    let d = decimal_text(v, at)?;
    let scale_i = i64::try_from(scale).unwrap_or(i64::MAX);
    let scaled = d.with_scale(scale_i);
    if scaled != d {
        return Err(format!(
            "{}: {} has more than the {scale} decimal places of the Avro decimal",
            at,
            show(v)
        ));
    }
    if scaled.digits() > precision as u64 {
        return Err(format!(
            "{}: {} has more than the {precision} digits of the Avro decimal",
            at,
            show(v)
        ));
    }
    let (unscaled, _) = scaled.into_bigint_and_exponent();
    Ok(Avro::Decimal(apache_avro::Decimal::from(
        unscaled.to_signed_bytes_be(),
    )))
}

/// An Avro `duration` from `{months, days, millis}` (each a whole number that fits 32 bits
/// unsigned; a missing one is 0).
fn duration(o: &serde_json::Map<String, Value>, at: &At<'_>) -> Result<Avro, String> {
    if let Some(extra) = o
        .keys()
        .find(|k| !["months", "days", "millis"].contains(&k.as_str()))
    {
        return Err(format!(
            "{}: not a part of an Avro duration (months, days, millis)",
            At::Key(at, extra)
        ));
    }
    let part = |name: &str| -> Result<u32, String> {
        match o.get(name) {
            None => Ok(0),
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    format!(
                        "{}: expected a whole number from 0 to {}, found {}",
                        At::Key(at, name),
                        u32::MAX,
                        show(x)
                    )
                }),
        }
    };
    Ok(Avro::Duration(apache_avro::Duration::new(
        apache_avro::Months::new(part("months")?),
        apache_avro::Days::new(part("days")?),
        apache_avro::Millis::new(part("millis")?),
    )))
}

fn long(v: &Value, at: &At<'_>) -> Result<i64, String> {
    v.as_i64()
        .ok_or_else(|| format!("{}: expected a whole number, found {}", at, show(v)))
}

fn int(v: &Value, at: &At<'_>) -> Result<i32, String> {
    i32::try_from(long(v, at)?).map_err(|_| format!("{}: {} does not fit an Avro int", at, show(v)))
}

fn base64(s: &str, at: &At<'_>) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| format!("{}: expected base64 bytes: {e}", at))
}

/// A timestamp from RFC 3339 text or a number already in the schema's unit.
fn timestamp(schema: &Schema, v: &Value, at: &At<'_>) -> Result<Avro, String> {
    let per_nanos: i128 = match schema {
        Schema::TimestampMillis | Schema::LocalTimestampMillis => 1_000_000,
        Schema::TimestampMicros | Schema::LocalTimestampMicros => 1_000,
        _ => 1,
    };
    let n = match v {
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|_| {
                    format!("{}: expected an RFC 3339 timestamp, found {}", at, show(v))
                })?;
            i64::try_from(t.unix_timestamp_nanos() / per_nanos)
                .map_err(|_| format!("{}: timestamp out of range", at))?
        }
        _ => long(v, at)?,
    };
    Ok(match schema {
        Schema::TimestampMillis => Avro::TimestampMillis(n),
        Schema::TimestampMicros => Avro::TimestampMicros(n),
        Schema::TimestampNanos => Avro::TimestampNanos(n),
        Schema::LocalTimestampMillis => Avro::LocalTimestampMillis(n),
        Schema::LocalTimestampMicros => Avro::LocalTimestampMicros(n),
        _ => Avro::LocalTimestampNanos(n),
    })
}
