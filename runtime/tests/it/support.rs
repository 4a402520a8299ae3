//! Shared set-up: a NATS server, a worker running a pipeline file, publishing inputs and
//! reading streams back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer};
use bytes::Bytes;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use weir_runtime::{Metrics, Worker};
use weir_testkit::nats::NatsServer;

/// The streams most fixtures read and write, as the first documents of a pipeline file:
/// `ORDERS` (`orders.>`) and `OUT` (`out.>`).
pub const ORDERS_AND_OUT: &str = r#"apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec: { subjects: ["out.>"] }
---
"#;

/// A message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub headers: BTreeMap<String, String>,
    pub payload: Bytes,
}

/// A running worker.
pub struct RunningWorker {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<bool>,
    pub metrics: Arc<Metrics>,
    /// The totals each pipeline reports (by pipeline key), as a heartbeat would.
    pub totals: BTreeMap<String, Arc<weir_runtime::counters::PipelineTotals>>,
}

impl RunningWorker {
    /// Whether the worker reports the consumer lag gauge of `pipeline`.
    pub fn reports_lag_of(&self, pipeline: &str) -> bool {
        let quoted = format!("\"{pipeline}\"");
        self.metrics
            .encode()
            .lines()
            .any(|l| l.starts_with("weir_consumer_pending{") && l.contains(&quoted))
    }

    /// Asserts that `pipeline` started over because deliveries of its consumer never
    /// arrived (its last error says so).
    pub fn assert_started_over_for_lost_deliveries(&self, pipeline: &str) {
        let (error, _) = self.totals[pipeline]
            .last_error()
            .expect("the owner says why it started over");
        assert!(error.contains("never arrived"), "{error}");
    }

    pub async fn stop(self) -> bool {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("worker stops within 15 s")
            .expect("worker task")
    }
}

pub async fn connect(server: &NatsServer) -> Result<(async_nats::Client, jetstream::Context)> {
    let client = weir_connectors::connect(&server.url(), "weir-runtime-test").await?;
    let js = jetstream::new(client.clone());
    Ok((client, js))
}

/// Starts a worker on its own connection with the resources of `yaml`.
pub async fn start_worker(server: &NatsServer, yaml: &str) -> Result<RunningWorker> {
    let resources = weir_pipelines::load_str(yaml, "test.yaml")
        .map_err(|d| anyhow::anyhow!("test pipeline invalid: {d}"))?;
    start_worker_with(server, &resources).await
}

/// Starts a worker on its own connection with `resources`.
pub async fn start_worker_with(
    server: &NatsServer,
    resources: &[weir_pipelines::Resource],
) -> Result<RunningWorker> {
    let (client, _) = connect(server).await?;
    let metrics = Arc::new(Metrics::new());
    let mut worker = Worker::new(client, metrics.clone());
    worker.run_resources(resources).await?;
    let totals = worker
        .pipelines()
        .into_iter()
        .filter_map(|key| worker.totals(&key).map(|t| (key, t)))
        .collect();
    let stop = worker.stop_token();
    let task = tokio::spawn(worker.run_until_stopped(Duration::from_secs(10)));
    Ok(RunningWorker {
        stop,
        task,
        metrics,
        totals,
    })
}

/// Publishes and waits for the PubAck, retrying (same `Nats-Msg-Id`) while the server is away.
pub async fn publish(
    js: &jetstream::Context,
    subject: &str,
    headers: &[(&str, &str)],
    payload: Bytes,
    msg_id: Option<&str>,
) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.insert(*n, *v);
        }
        if let Some(id) = msg_id {
            map.insert("Nats-Msg-Id", id);
        }
        let attempt = async {
            js.publish_with_headers(subject.to_string(), map, payload.clone())
                .await?
                .await
        };
        match attempt.await {
            Ok(ack) => return Ok(ack.sequence),
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => bail!("publishing to {subject} failed for 30 s: {err}"),
        }
    }
}

/// Number of messages in `stream` (0 when it does not exist).
pub async fn count(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Waits until `stream` holds at least `n` messages.
pub async fn wait_for_count(
    js: &jetstream::Context,
    stream: &str,
    n: u64,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let have = count(js, stream).await;
        if have >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("stream {stream} holds {have} messages after {timeout:?}, expected {n}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every message of `stream`, in stream order.
pub async fn read_all(js: &jetstream::Context, stream: &str) -> Result<Vec<Stored>> {
    let mut handle = js.get_stream(stream).await.context("stream to read")?;
    let total = handle.info().await?.state.messages as usize;
    let consumer: consumer::PullConsumer = handle
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::All,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::with_capacity(total);
    let mut idle = 0;
    while out.len() < total && idle < 5 {
        let mut batch = consumer
            .batch()
            .max_messages(1000)
            .expires(Duration::from_millis(500))
            .messages()
            .await?;
        let before = out.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut headers = BTreeMap::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    if let Some(v) = values.first() {
                        headers.insert(name.to_string(), v.as_str().to_string());
                    }
                }
            }
            out.push(Stored {
                subject: message.subject.to_string(),
                headers,
                payload: message.payload.clone(),
            });
        }
        if out.len() == before {
            idle += 1;
        }
    }
    Ok(out)
}

/// Another reader of the consumer `durable` of `ORDERS` (a worker whose lease lapsed
/// unnoticed, or someone reading it by hand): fetches until it got some deliveries (at most
/// 20 s), never acks them, and returns the `id` field of each.
pub fn another_reader(
    js: &jetstream::Context,
    durable: &str,
) -> tokio::task::JoinHandle<Result<Vec<Option<u64>>>> {
    let (js, durable) = (js.clone(), durable.to_string());
    tokio::spawn(async move {
        let consumer: consumer::PullConsumer = js
            .get_stream("ORDERS")
            .await?
            .get_consumer(&durable)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut took = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while took.is_empty() && Instant::now() < deadline {
            let mut batch = consumer
                .fetch()
                .max_messages(5)
                .expires(Duration::from_millis(100))
                .messages()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
                let order: serde_json::Value =
                    serde_json::from_slice(&message.payload).unwrap_or_default();
                took.push(order["id"].as_u64());
            }
        }
        Ok(took)
    })
}
