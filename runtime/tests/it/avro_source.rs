//! `format: avro` on a real nats-server: wire-format payloads of two schema versions and a bare
//! payload come out as the JSON of the newest version; a corrupt payload and one naming an
//! unknown schema id go to the DLQ with their original bytes and the reason.

use std::time::Duration;

use anyhow::Result;
use apache_avro::Schema;
use apache_avro::types::Value;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::{connect, publish, read_all, start_worker, wait_for_count};

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"currency","type":"string","default":"EUR"}]}"#;

fn pipeline() -> String {
    let quote = |s: &str| serde_json::to_string(s).expect("JSON string");
    format!(
        r#"apiVersion: weir.dev/v1
kind: Stream
metadata: {{ name: ORDERS }}
spec: {{ subjects: ["orders.>"] }}
---
apiVersion: weir.dev/v1
kind: Stream
metadata: {{ name: OUT }}
spec: {{ subjects: ["out.>"] }}
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: avro-orders }}
spec:
  source:
    stream: ORDERS
    format: avro
    schema: orders-value
    schemas:
      - {{ id: 11, version: 1, schema: {} }}
      - {{ id: 12, version: 2, schema: {} }}
  nodes:
    - id: big
      filter: "data.amount > 1"
      next: out
    - id: out
      publish: {{ subject: "out.{{data.currency}}" }}
"#,
        quote(V1),
        quote(V2)
    )
}

fn body(schema: &str, fields: Vec<(&str, Value)>) -> Vec<u8> {
    let schema = Schema::parse_str(schema).expect("schema");
    let record = Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .expect("writer")
        .write_value_to_vec(record)
        .expect("encodes")
}

fn framed(id: u32, body: Vec<u8>) -> Bytes {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend(body);
    Bytes::from(out)
}

#[tokio::test]
async fn avro_payloads_come_out_as_json_and_bad_ones_are_dead_lettered() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let worker = start_worker(&server, &pipeline()).await?;
    let v1 = framed(
        11,
        body(
            V1,
            vec![
                ("id", Value::String("a".into())),
                ("amount", Value::Double(5.0)),
            ],
        ),
    );
    let v2_fields = || {
        vec![
            ("id", Value::String("b".into())),
            ("amount", Value::Double(9.5)),
            ("currency", Value::String("USD".into())),
        ]
    };
    let v2 = framed(12, body(V2, v2_fields()));
    let mut bare_fields = v2_fields();
    bare_fields[0].1 = Value::String("c".into());
    let bare = Bytes::from(body(V2, bare_fields));
    let unknown = framed(13, body(V2, v2_fields()));
    let corrupt = Bytes::from(v2[..9].to_vec());
    for (i, payload) in [&v1, &v2, &bare, &unknown, &corrupt]
        .into_iter()
        .enumerate()
    {
        publish(
            &js,
            "orders.created",
            &[],
            payload.clone(),
            Some(&format!("a-{i}")),
        )
        .await?;
    }
    wait_for_count(&js, "OUT", 3, Duration::from_secs(20)).await?;
    wait_for_count(&js, "DLQ", 2, Duration::from_secs(20)).await?;
    let out = read_all(&js, "OUT").await?;
    let got: Vec<(String, serde_json::Value)> = out
        .iter()
        .map(|m| {
            (
                m.subject.clone(),
                serde_json::from_slice(&m.payload).expect("JSON out"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "out.EUR".to_string(),
                serde_json::json!({"id": "a", "amount": 5.0, "currency": "EUR"})
            ),
            (
                "out.USD".to_string(),
                serde_json::json!({"id": "b", "amount": 9.5, "currency": "USD"})
            ),
            (
                "out.USD".to_string(),
                serde_json::json!({"id": "c", "amount": 9.5, "currency": "USD"})
            ),
        ]
    );
    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].payload, unknown, "original bytes");
    assert!(
        dead[0].headers["Weir-Error"].contains("unknown schema id 13"),
        "{:?}",
        dead[0].headers
    );
    assert_eq!(dead[1].payload, corrupt, "original bytes");
    assert_eq!(dead[1].headers["Weir-Error-Kind"], "decode");
    assert!(
        dead[1].headers["Weir-Error"].contains("not Avro of schema id 12"),
        "{:?}",
        dead[1].headers
    );
    assert!(worker.stop().await);
    Ok(())
}
