//! One pipeline of a worker is stopped gracefully while another keeps running: the stopped
//! one settles what it took (nothing left un-acked) and its consumer keeps its position, the
//! other goes on processing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use weir_runtime::{Metrics, Worker};
use weir_testkit::nats::NatsServer;

use crate::support::*;

const PIPELINES: &str = r#"
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
metadata: { name: first }
spec:
  source: { stream: ORDERS, subjects: ["orders.a"] }
  nodes:
    - id: out
      publish: { subject: "out.a" }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: second }
spec:
  source: { stream: ORDERS, subjects: ["orders.b"] }
  nodes:
    - id: out
      publish: { subject: "out.b" }
  execution: { parallelism: 2 }
"#;

async fn wait_for_subject(
    js: &async_nats::jetstream::Context,
    subject: &str,
    n: usize,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let have = read_all(js, "OUT")
            .await?
            .iter()
            .filter(|m| m.subject == subject)
            .count();
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{subject}: {have} outputs, expected {n}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pipeline_stops_while_the_other_runs() -> Result<()> {
    let server = NatsServer::start()?;
    let resources =
        weir_pipelines::load_str(PIPELINES, "test.yaml").map_err(|d| anyhow::anyhow!("{d}"))?;
    let (client, js) = connect(&server).await?;
    let mut worker = Worker::new(client, Arc::new(Metrics::new()));
    let started = worker.run_resources(&resources).await?;
    assert_eq!(started, ["first", "second"]);
    for i in 0..200 {
        let subject = if i % 2 == 0 { "orders.a" } else { "orders.b" };
        publish(
            &js,
            subject,
            &[],
            Bytes::from(format!("{{\"i\":{i}}}")),
            None,
        )
        .await?;
    }
    wait_for_subject(&js, "out.a", 100).await?;
    wait_for_subject(&js, "out.b", 100).await?;

    assert!(
        worker.stop_pipeline("first", Duration::from_secs(10)).await,
        "stopped in time"
    );
    assert!(
        !worker.stop_pipeline("first", Duration::from_secs(1)).await,
        "nothing left to stop"
    );
    assert_eq!(worker.pipelines(), ["second"]);
    let orders = js.get_stream("ORDERS").await?;
    let info = orders.consumer_info("weir_default_first").await?;
    assert_eq!(
        info.num_ack_pending, 0,
        "the stopped pipeline left nothing un-acked"
    );

    for i in 0..50 {
        publish(
            &js,
            "orders.a",
            &[],
            Bytes::from(format!("{{\"late\":{i}}}")),
            None,
        )
        .await?;
        publish(
            &js,
            "orders.b",
            &[],
            Bytes::from(format!("{{\"late\":{i}}}")),
            None,
        )
        .await?;
    }
    wait_for_subject(&js, "out.b", 150).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let info = orders.consumer_info("weir_default_first").await?;
    assert_eq!(
        info.num_pending, 50,
        "the stopped pipeline's consumer kept its position"
    );
    assert_eq!(
        read_all(&js, "OUT")
            .await?
            .iter()
            .filter(|m| m.subject == "out.a")
            .count(),
        100
    );

    let stop = worker.stop_token();
    let task = tokio::spawn(worker.run_until_stopped(Duration::from_secs(10)));
    stop.cancel();
    assert!(task.await?, "the rest stopped gracefully");
    Ok(())
}
