//! Many publishing loops on one JetStream context: the context caps PubAcks in flight over all
//! its users (async-nats: 5 000). A pipeline whose `parallelism × max_in_flight` exceeds that
//! cap (here 8 × 4 096) used to hang for good (each loop waited for a slot held by the others' un-polled PubAck
//! futures); now every message arrives.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use weir_testkit::nats::NatsServer;

use crate::support::*;

const MESSAGES: u64 = 60_000;

const PIPELINE: &str = r#"
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
metadata: { name: wide }
spec:
  source: { stream: IN, consumer: { batch_size: 4096, max_ack_pending: 100000 } }
  nodes:
    - id: out
      publish: { subject: "out.copy" }
  execution: { parallelism: 8, max_in_flight: 4096 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_loops_than_the_context_has_pub_ack_slots() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    // The streams exist before the inputs go in, so that every loop starts on full batches.
    let resources =
        weir_pipelines::load_str(PIPELINE, "test.yaml").map_err(|d| anyhow::anyhow!("{d}"))?;
    for r in &resources {
        if let weir_pipelines::Resource::Stream(s) = r {
            weir_connectors::ensure_stream(&js, s).await?;
        }
    }
    let mut acks = FuturesUnordered::new();
    for i in 0..MESSAGES {
        while acks.len() >= 2_000 {
            acks.next().await.transpose()?;
        }
        let ack = js
            .publish("in.orders", Bytes::from(format!(r#"{{"n":{i}}}"#)))
            .await?;
        acks.push(ack.into_future());
    }
    while let Some(ack) = acks.next().await {
        ack?;
    }
    let worker = start_worker_with(&server, &resources).await?;
    wait_for_count(&js, "OUT", MESSAGES, Duration::from_secs(60)).await?;
    assert!(worker.stop().await, "the worker stops cleanly");
    assert_eq!(count(&js, "OUT").await, MESSAGES);
    Ok(())
}
