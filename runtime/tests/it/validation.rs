//! The `validate` node on a real nats-server: invalid orders reach the DLQ with their original
//! bytes, kind `validation` and the failing JSON pointer and rule; valid orders in the same
//! batches are published; the worker keeps running.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::*;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec: { subjects: ["out.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: checked }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: check
      validate:
        json_schema:
          type: object
          required: [id, amount, customer]
          properties:
            id: { type: string }
            amount: { type: number, exclusiveMinimum: 0 }
            customer: { type: object, required: [email] }
      next: out
    - id: out
      publish: { subject: "out.orders" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_orders_reach_the_dlq_with_the_failing_path() -> Result<()> {
    let server = NatsServer::start()?;
    let worker = start_worker(&server, PIPELINE).await?;
    let (_client, js) = connect(&server).await?;

    let valid =
        |i: u32| format!(r#"{{"id":"o-{i}","amount":{i}.5,"customer":{{"email":"c{i}@x"}}}}"#);
    // (payload, the pointer and rule the reason must name)
    let invalid = [
        (
            r#"{"id":"o-a","amount":0,"customer":{"email":"a@x"}}"#,
            "/amount: exclusiveMinimum",
        ),
        (
            r#"{"id":7,"amount":3,"customer":{"email":"a@x"}}"#,
            "/id: type",
        ),
        (
            r#"{"id":"o-c","amount":3,"customer":{}}"#,
            "/customer: required",
        ),
        (r#"{"id":"o-d","amount":3}"#, "/: required"),
    ];
    let mut expected = Vec::new();
    for (i, (payload, reason)) in invalid.iter().enumerate() {
        publish(
            &js,
            "orders.created",
            &[],
            Bytes::from(valid(i as u32 + 1)),
            None,
        )
        .await?;
        let seq = publish(&js, "orders.created", &[], Bytes::from(*payload), None).await?;
        expected.push((seq, *payload, *reason));
    }
    wait_for_count(&js, "OUT", invalid.len() as u64, Duration::from_secs(30)).await?;
    wait_for_count(&js, "DLQ", invalid.len() as u64, Duration::from_secs(30)).await?;

    let out = read_all(&js, "OUT").await?;
    assert_eq!(out.len(), invalid.len());
    for m in &out {
        assert!(!m.headers.contains_key("Weir-Invalid"));
    }
    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len(), expected.len());
    for (seq, payload, reason) in &expected {
        let m = dead
            .iter()
            .find(|m| m.headers.get("Weir-Source-Seq") == Some(&seq.to_string()))
            .unwrap_or_else(|| panic!("no dead letter for sequence {seq}: {dead:?}"));
        assert_eq!(m.payload, Bytes::from(*payload), "original bytes");
        assert_eq!(
            m.headers.get("Weir-Error-Kind").map(String::as_str),
            Some("validation")
        );
        assert_eq!(
            m.headers.get("Weir-Node").map(String::as_str),
            Some("check")
        );
        let error = m.headers.get("Weir-Error").cloned().unwrap_or_default();
        assert!(error.contains(reason), "{reason} not in {error}");
    }
    assert!(worker.stop().await, "the worker stops cleanly");
    Ok(())
}
