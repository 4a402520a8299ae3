//! A DLQ subject that a stream of the user's already captures: dead letters go to that
//! stream; a pipeline naming a DLQ stream that conflicts does not start, and never keeps the
//! worker's other pipelines from running.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::*;

const FILE: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: IN }
spec: { subjects: ["in.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec: { subjects: ["out.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: trialrun }
spec:
  source: { stream: IN, subjects: ["in.a"] }
  nodes:
    - id: cents
      map: { set: { cents: "CAST(data.amount AS BIGINT) * 100" } }
      next: out
    - id: out
      publish: { subject: "out.a" }
  errors: { dlq: { subject: dlq.trialrun } }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: conflicting }
spec:
  source: { stream: IN, subjects: ["in.b"] }
  nodes:
    - id: out
      publish: { subject: "out.b" }
  errors: { dlq: { subject: dlq.conflicting, stream: ELSEWHERE } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_to_the_stream_that_captures_their_subject() -> Result<()> {
    let server = NatsServer::start()?;
    let (client, js) = connect(&server).await?;
    // The user's own stream on `dlq.>`, made before (a file declaring it as well would be
    // refused at validation for the conflicting pipeline).
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "MY_FAILURES".into(),
        subjects: vec!["dlq.>".into()],
        ..Default::default()
    })
    .await?;
    let resources = weir_pipelines::load_str(FILE, "test.yaml")
        .map_err(|d| anyhow::anyhow!("test file invalid: {d}"))?;
    let metrics = std::sync::Arc::new(weir_runtime::Metrics::new());
    let mut worker = weir_runtime::Worker::new(client, metrics);
    let started = worker.run_resources(&resources).await?;
    assert_eq!(
        started,
        vec!["trialrun".to_string()],
        "the conflicting one is left out"
    );
    let stop = worker.stop_token();
    let task = tokio::spawn(worker.run_until_stopped(Duration::from_secs(10)));

    publish(
        &js,
        "in.a",
        &[],
        Bytes::from_static(br#"{"amount":"2"}"#),
        None,
    )
    .await?;
    publish(
        &js,
        "in.a",
        &[],
        Bytes::from_static(br#"{"amount":"two"}"#),
        None,
    )
    .await?;
    wait_for_count(&js, "OUT", 1, Duration::from_secs(20)).await?;
    wait_for_count(&js, "MY_FAILURES", 1, Duration::from_secs(20)).await?;
    let dead = read_all(&js, "MY_FAILURES").await?;
    assert_eq!(dead[0].subject, "dlq.trialrun");
    assert_eq!(&dead[0].payload[..], br#"{"amount":"two"}"#);
    assert_eq!(count(&js, "DLQ").await, 0, "no default DLQ stream needed");
    assert!(
        js.get_stream("ELSEWHERE").await.is_err(),
        "no stream made for the conflict"
    );

    stop.cancel();
    assert!(task.await?, "worker stopped cleanly");
    Ok(())
}
