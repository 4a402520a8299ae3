//! Avro payloads at the source: each payload is decoded with `apache-avro` (its schema
//! resolution rules between the writer's and the reader's schema) and handed on as JSON, so
//! that `data.customer.id` reads the same as for a JSON payload. Payloads in the Confluent
//! wire format (magic byte 0, then the writer schema's 4-byte big-endian id) name their
//! writer schema; bare payloads are written with the newest schema. The schemas are the
//! source subject's versions embedded in the spec (`source.schemas`).

use std::collections::HashMap;

use apache_avro::Schema;
use weir_pipelines::spec::EmbeddedSchema;

/// The Confluent wire format's magic byte.
const MAGIC: u8 = 0;

/// Reads one subject's Avro payloads.
pub(crate) struct AvroSource {
    subject: String,
    /// The newest version: the schema every payload is read as.
    reader: Schema,
    /// Every version by global id.
    writers: HashMap<u32, Schema>,
}

impl AvroSource {
    /// The reader of `subject` with its embedded `schemas`; an error names the bad one.
    pub(crate) fn new(subject: &str, schemas: &[EmbeddedSchema]) -> Result<Self, String> {
        let newest = schemas.iter().max_by_key(|s| s.version).ok_or_else(|| {
            format!(
                "format `avro` needs the schemas of subject `{subject}`: deploy through the control plane (it writes them into `source.schemas`), or give `source.schemas` inline"
            )
        })?;
        let parse = |s: &EmbeddedSchema| {
            Schema::parse_str(&s.schema).map_err(|e| {
                format!(
                    "schema id {} (version {}) of `{subject}` is not Avro: {e}",
                    s.id, s.version
                )
            })
        };
        let mut writers = HashMap::with_capacity(schemas.len());
        for s in schemas {
            writers.insert(s.id, parse(s)?);
        }
        Ok(AvroSource {
            subject: subject.to_string(),
            reader: parse(newest)?,
            writers,
        })
    }

    /// The payload as JSON bytes, or why it cannot be read.
    pub(crate) fn to_json(&self, payload: &[u8]) -> Result<Vec<u8>, String> {
        let value = match self.framed(payload) {
            Some((id, body)) => match self.writers.get(&id) {
                Some(writer) => self.read(writer, body).map_err(|e| {
                    format!("not Avro of schema id {id} (subject `{}`): {e}", self.subject)
                })?,
                // A bare payload may start with a zero byte too: it is one if the newest
                // schema reads it whole.
                None => self.read(&self.reader, payload).map_err(|_| {
                    format!(
                        "unknown schema id {id}: subject `{}` has ids {} (a newer version registered after the deploy needs a new deploy)",
                        self.subject,
                        self.known_ids()
                    )
                })?,
            },
            None => self
                .read(&self.reader, payload)
                .map_err(|e| format!("not Avro of subject `{}`: {e}", self.subject))?,
        };
        let json = serde_json::Value::try_from(value)
            .map_err(|e| format!("Avro value has no JSON form: {e}"))?;
        serde_json::to_vec(&json).map_err(|e| e.to_string())
    }

    /// `(schema id, body)` of a Confluent wire-format payload.
    fn framed<'a>(&self, payload: &'a [u8]) -> Option<(u32, &'a [u8])> {
        match payload {
            [MAGIC, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
            _ => None,
        }
    }

    /// Reads `body` written with `writer` as the newest schema; every byte must be used.
    fn read(&self, writer: &Schema, body: &[u8]) -> Result<apache_avro::types::Value, String> {
        let mut cursor = std::io::Cursor::new(body);
        let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
            .reader_schema(&self.reader)
            .build()
            .and_then(|r| r.read_value(&mut cursor))
            .map_err(|e| e.to_string())?;
        let left = body.len() as u64 - cursor.position();
        if left > 0 {
            return Err(format!("{left} bytes left after the record"));
        }
        Ok(value)
    }

    fn known_ids(&self) -> String {
        let mut ids: Vec<u32> = self.writers.keys().copied().collect();
        ids.sort_unstable();
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

    const V1: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"string"},
        {"name":"amount","type":"double"},
        {"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}}]}"#;
    const V2: &str = r#"{"type":"record","name":"Order","fields":[
        {"name":"id","type":"string"},
        {"name":"amount","type":"double"},
        {"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}},
        {"name":"region","type":"string","default":"unknown"}]}"#;

    fn source() -> AvroSource {
        let s = |id, version, schema: &str| EmbeddedSchema {
            id,
            version,
            schema: schema.to_string(),
        };
        AvroSource::new("orders-value", &[s(7, 1, V1), s(9, 2, V2)]).expect("schemas parse")
    }

    fn v1_body() -> Vec<u8> {
        let schema = Schema::parse_str(V1).unwrap();
        let Schema::Record(r) = &schema else { panic!() };
        let customer_schema = &r.fields[2].schema;
        let mut customer = Record::new(customer_schema).unwrap();
        customer.put("id", "c-1");
        let mut order = Record::new(&schema).unwrap();
        order.put("id", "o-1");
        order.put("amount", 12.5);
        order.put("customer", customer);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(order)
            .unwrap()
    }

    #[test]
    fn wire_format_payloads_resolve_to_the_newest_schema() {
        let mut payload = vec![0, 0, 0, 0, 7];
        payload.extend(v1_body());
        let json: serde_json::Value =
            serde_json::from_slice(&source().to_json(&payload).expect("decodes")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "o-1", "amount": 12.5, "customer": {"id": "c-1"}, "region": "unknown"})
        );
    }

    #[test]
    fn unknown_ids_corrupt_and_cut_payloads_are_refused_with_a_reason() {
        let mut unknown = vec![0, 0, 0, 0, 8];
        unknown.extend(v1_body());
        let e = source().to_json(&unknown).unwrap_err();
        assert!(
            e.contains("unknown schema id 8") && e.contains("7, 9"),
            "{e}"
        );
        let mut cut = vec![0, 0, 0, 0, 7];
        cut.extend(&v1_body()[..4]);
        let e = source().to_json(&cut).unwrap_err();
        assert!(e.contains("schema id 7"), "{e}");
        let mut long = vec![0, 0, 0, 0, 7];
        long.extend(v1_body());
        long.push(1);
        assert!(
            source()
                .to_json(&long)
                .unwrap_err()
                .contains("1 bytes left")
        );
        assert!(AvroSource::new("s", &[]).is_err());
    }
}
