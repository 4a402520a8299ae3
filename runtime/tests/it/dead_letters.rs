//! A corpus of bad inputs: each lands in the DLQ with its original bytes and an error header
//! naming the cause; good messages in between are unaffected and the worker keeps running.

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
metadata: { name: corpus }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 5s } }
  nodes:
    - id: cents
      map: { set: { cents: "CAST(data.amount AS BIGINT) * 100" } }
      next: out
    - id: out
      publish: { subject: "out.{data.region}", headers: { X-Stage: priced } }
  execution: { max_message_size: 64KB }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_go_to_the_dlq_with_their_bytes_and_cause() -> Result<()> {
    let server = NatsServer::start()?;
    let worker = start_worker(&server, PIPELINE).await?;
    let (_client, js) = connect(&server).await?;

    let good = |n: u32| Bytes::from(format!(r#"{{"amount":"{n}","region":"eu"}}"#));
    let deep = Bytes::from(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
    let huge = Bytes::from(format!(
        r#"{{"amount":"1","region":"eu","pad":"{}"}}"#,
        "x".repeat(100_000)
    ));
    // (payload, expected error kind, substring expected in Weir-Error, lowercase)
    let bad: Vec<(&str, Bytes, &str)> = vec![
        (
            "invalid json",
            Bytes::from_static(br#"{"amount": 12, "region": "#),
            "decode",
        ),
        (
            "invalid utf-8",
            Bytes::from_static(b"{\"amount\":\"1\",\"region\":\"\xff\xfe\"}"),
            "decode",
        ),
        (
            "wrong type",
            Bytes::from_static(br#"{"amount":"twelve","region":"eu"}"#),
            "expression",
        ),
        ("empty payload", Bytes::new(), "decode"),
        ("nested 10000 deep", deep, "decode"),
        ("over the size limit", huge, "size"),
    ];
    let mut expected_dead = Vec::new();
    let mut n = 0;
    publish(
        &js,
        "orders.created",
        &[("X-Trace", "good-0")],
        good(n),
        None,
    )
    .await?;
    for (name, payload, kind) in &bad {
        n += 1;
        let seq = publish(
            &js,
            "orders.created",
            &[("X-Trace", name)],
            payload.clone(),
            None,
        )
        .await?;
        expected_dead.push((seq, *name, payload.clone(), *kind));
        publish(&js, "orders.created", &[("X-Trace", "good")], good(n), None).await?;
    }

    wait_for_count(&js, "OUT", 1 + bad.len() as u64, Duration::from_secs(30)).await?;
    wait_for_count(&js, "DLQ", bad.len() as u64, Duration::from_secs(30)).await?;

    let out = read_all(&js, "OUT").await?;
    assert_eq!(out.len(), 1 + bad.len(), "every good message arrives once");
    for message in &out {
        assert_eq!(message.subject, "out.eu");
        assert_eq!(
            message.headers.get("X-Stage").map(String::as_str),
            Some("priced")
        );
        let data: serde_json::Value = serde_json::from_slice(&message.payload)?;
        let amount: i64 = data["amount"].as_str().unwrap().parse()?;
        assert_eq!(data["cents"].as_i64(), Some(amount * 100), "{data}");
        assert!(
            message
                .headers
                .get("Nats-Msg-Id")
                .unwrap()
                .starts_with("corpus:ORDERS:")
        );
    }

    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len(), bad.len(), "one dead letter per bad input");
    for (seq, name, payload, kind) in expected_dead {
        let letter = dead
            .iter()
            .find(|d| d.headers.get("Weir-Source-Seq") == Some(&seq.to_string()))
            .unwrap_or_else(|| panic!("no dead letter for {name} (seq {seq})"));
        assert_eq!(letter.subject, "dlq.corpus");
        assert_eq!(letter.payload, payload, "{name}: original bytes kept");
        let h = &letter.headers;
        assert_eq!(h["Weir-Error-Kind"], kind, "{name}: {h:?}");
        assert!(!h["Weir-Error"].is_empty(), "{name}");
        assert_eq!(h["Weir-Pipeline"], "corpus");
        assert_eq!(h["Weir-Source-Stream"], "ORDERS");
        assert_eq!(h["Weir-Source-Subject"], "orders.created");
        assert_eq!(h["Weir-Attempts"], "1");
        assert!(h["Weir-Failed-At"].starts_with("20"), "{name}: {h:?}");
        assert_eq!(h["X-Trace"], name, "{name}: original headers kept");
        if kind == "size" {
            assert_eq!(h["Weir-Node"], "source");
            assert!(h["Weir-Error"].contains("max_message_size"), "{h:?}");
        }
    }

    // Still running: one more good message goes through.
    publish(&js, "orders.created", &[], good(99), None).await?;
    wait_for_count(&js, "OUT", 2 + bad.len() as u64, Duration::from_secs(30)).await?;
    let metrics = worker.metrics.encode();
    assert!(
        metrics.contains(
            "weir_messages_dead_lettered_total{pipeline=\"corpus\",node=\"source\",kind=\"size\"} 1"
        ),
        "{metrics}"
    );
    assert!(worker.stop().await, "worker stopped cleanly");
    Ok(())
}
