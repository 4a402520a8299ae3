//! The output stream is missing: inputs stay un-acked and are retried with backoff; when the
//! stream appears before `max_attempts` everything arrives, when it never does the inputs go
//! to the DLQ with the reason.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::stream;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::*;

const PIPELINES: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: late }
spec:
  source: { stream: ORDERS, subjects: ["orders.late"], consumer: { ack_wait: 5s } }
  nodes:
    - id: out
      publish: { subject: "late.out" }
  errors: { retry: { max_attempts: 6, backoff: { initial: 200ms, max: 400ms } } }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: never }
spec:
  source: { stream: ORDERS, subjects: ["orders.never"], consumer: { ack_wait: 5s } }
  nodes:
    - id: out
      publish: { subject: "never.out" }
  errors: { retry: { max_attempts: 3, backoff: { initial: 100ms, max: 200ms } } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_output_stream_is_retried_then_dead_lettered() -> Result<()> {
    let server = NatsServer::start()?;
    let worker = start_worker(&server, PIPELINES).await?;
    let (_client, js) = connect(&server).await?;
    for i in 0..5 {
        let payload = Bytes::from(format!(r#"{{"n":{i}}}"#));
        publish(&js, "orders.late", &[], payload.clone(), None).await?;
        publish(&js, "orders.never", &[], payload, None).await?;
    }

    // Nothing may be acked while the output stream is missing.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let orders = js.get_stream("ORDERS").await?;
    let info = orders.consumer_info("weir_default_late").await?;
    assert_eq!(
        info.ack_floor.stream_sequence, 0,
        "acked before the output was stored: {info:?}"
    );
    assert_eq!(count(&js, "DLQ").await, 0, "dead-lettered too early");

    js.create_stream(stream::Config {
        name: "LATE".into(),
        subjects: vec!["late.>".into()],
        ..Default::default()
    })
    .await?;
    wait_for_count(&js, "LATE", 5, Duration::from_secs(30)).await?;
    wait_for_count(&js, "DLQ", 5, Duration::from_secs(30)).await?;

    let late = read_all(&js, "LATE").await?;
    assert_eq!(late.len(), 5, "each input arrives once");
    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len(), 5);
    for letter in &dead {
        let h = &letter.headers;
        assert_eq!(letter.subject, "dlq.never");
        assert_eq!(h["Weir-Pipeline"], "never");
        assert_eq!(h["Weir-Error-Kind"], "transient");
        assert_eq!(h["Weir-Node"], "out");
        assert_eq!(h["Weir-Attempts"], "3");
        assert!(h["Weir-Error"].contains("never.out"), "{h:?}");
        assert!(h["Weir-Error"].contains("no stream"), "{h:?}");
    }
    // Each input is one message, delivered three times: `in` counts messages.
    let never = worker.totals["never"].counters();
    assert_eq!(
        (never.messages_in, never.deliveries, never.dead_lettered),
        (5, 15, 5),
        "{never:?}"
    );
    let metrics = worker.metrics.encode();
    assert!(
        metrics.contains("weir_messages_retried_total{pipeline=\"late\",node=\"nak\"}"),
        "{metrics}"
    );
    assert!(worker.stop().await);
    Ok(())
}
