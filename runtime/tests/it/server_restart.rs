//! nats-server restarted mid-run: the worker reconnects by itself and resumes; every input
//! is accounted for and no output is duplicated.

use std::collections::BTreeSet;
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
metadata: { name: restart }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 2s, batch_size: 100 } }
  nodes:
    - id: big
      filter: "data.amount >= 50"
      next: out
    - id: out
      publish: { subject: "out.big" }
  execution: { parallelism: 2 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_survives_a_server_restart() -> Result<()> {
    const N: u32 = 4_000;
    let mut server = NatsServer::start()?;
    let worker = start_worker(&server, PIPELINE).await?;
    let (_client, js) = connect(&server).await?;
    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let payload = Bytes::from(format!(r#"{{"id":{i},"amount":{}}}"#, i % 100));
                let id = format!("in-{i}");
                publish(&js, "orders.created", &[], payload, Some(&id)).await?;
            }
            anyhow::Ok(())
        })
    };
    wait_for_count(&js, "OUT", 200, Duration::from_secs(30)).await?;
    let _server = tokio::task::spawn_blocking(move || -> Result<NatsServer> {
        server.restart()?;
        Ok(server)
    })
    .await??;
    publisher.await??;
    let expected = (0..N).filter(|i| i % 100 >= 50).count() as u64;
    wait_for_count(&js, "OUT", expected, Duration::from_secs(60)).await?;
    // Give redeliveries a chance to show up as duplicates, had deduplication failed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = read_all(&js, "OUT").await?;
    let ids: BTreeSet<String> = out
        .iter()
        .map(|m| m.headers["Nats-Msg-Id"].clone())
        .collect();
    assert_eq!(out.len() as u64, expected, "outputs = inputs - filtered");
    assert_eq!(ids.len(), out.len(), "no duplicate output");
    assert_eq!(count(&js, "DLQ").await, 0);
    assert!(worker.stop().await);
    Ok(())
}
