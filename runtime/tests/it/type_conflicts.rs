//! The new user's scenario on a real nats-server: a backlog of 500 readings, one of them with
//! `"temp_c": "21.5"` (a string among numbers), read in big batches: 499 outputs, 1 dead letter.

use std::time::Duration;

use anyhow::Result;
use async_nats::jetstream::stream;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::*;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: READINGS }
spec: { subjects: ["readings.raw.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: CLEAN }
spec: { subjects: ["readings.clean.>", "alerts.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: iot }
spec:
  source:
    stream: READINGS
    subjects: ["readings.raw.>"]
    consumer: { batch_size: 500, max_wait: 200ms }
  nodes:
    - id: valid
      filter: "data.temp_c IS NOT NULL"
      next: fahrenheit
    - id: fahrenheit
      map: { set: { temp_f: "data.temp_c * 1.8 + 32" } }
      next: hot
    - id: hot
      route:
        - when: "data.temp_c > 40"
          next: alert
      default: clean
    - id: alert
      publish: { subject: "alerts.{data.site}" }
    - id: clean
      publish: { subject: "readings.clean.{data.site}" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_string_among_500_numbers_dead_letters_only_itself() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    // The backlog is there before the worker starts, so it reads it in big batches.
    js.create_stream(stream::Config {
        name: "READINGS".into(),
        subjects: vec!["readings.raw.>".into()],
        ..Default::default()
    })
    .await?;
    let mut string_seq = 0;
    for i in 0..500u32 {
        let temp = if i == 250 {
            r#""21.5""#.to_string()
        } else {
            format!("{}.5", 10 + i % 40)
        };
        let payload = Bytes::from(format!(r#"{{"site":"plant-{}","temp_c":{temp}}}"#, i % 3));
        let seq = publish(
            &js,
            &format!("readings.raw.plant-{}", i % 3),
            &[],
            payload,
            None,
        )
        .await?;
        if i == 250 {
            string_seq = seq;
        }
    }
    let worker = start_worker(&server, PIPELINE).await?;
    wait_for_count(&js, "CLEAN", 499, Duration::from_secs(30)).await?;
    wait_for_count(&js, "DLQ", 1, Duration::from_secs(30)).await?;
    // Nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&js, "CLEAN").await, 499);
    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(
        dead[0].headers["Weir-Source-Seq"],
        string_seq.to_string(),
        "the dead letter is the string reading"
    );
    assert_eq!(
        &dead[0].payload[..],
        br#"{"site":"plant-1","temp_c":"21.5"}"#
    );
    assert_eq!(dead[0].headers["Weir-Node"], "fahrenheit");
    let out = read_all(&js, "CLEAN").await?;
    let alerts = out
        .iter()
        .filter(|m| m.subject.starts_with("alerts."))
        .count();
    // temp_c = 10.5 + i % 40: above 40 for i % 40 >= 30, 10 of every 40.
    let expected_alerts = (0..500u32).filter(|i| *i != 250 && i % 40 >= 30).count();
    assert_eq!(alerts, expected_alerts);
    assert!(worker.stop().await, "worker stopped cleanly");
    Ok(())
}
