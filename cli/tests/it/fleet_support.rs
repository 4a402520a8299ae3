//! Shared set-up of the fleet tests: a nats-server, `weir worker` processes, deployment
//! records put straight into the `weir_deployments` bucket (as the control plane would),
//! inputs published with ids, outputs and heartbeats read back.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::sigterm_and_wait;
use anyhow::{Context as _, Result, bail};
use async_nats::jetstream::{self, consumer, kv};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use weir_pipelines::fleet::{
    DEPLOYMENTS_BUCKET, DataPlaneQuota, Deployment, DesiredState, WORKERS_BUCKET, WorkerHeartbeat,
    deployment_key, now_ms, worker_key,
};
use weir_testkit::nats::NatsServer;

/// The streams most pipeline fixtures read and write: `ORDERS` (`orders.>`) and `OUT`
/// (`out.>`).
pub const ORDERS_AND_OUT: &str = r#"apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec: { subjects: ["out.>"] }
"#;

/// A pipeline file: [`ORDERS_AND_OUT`], then the documents of `pipeline`.
pub fn with_orders_and_out(pipeline: &str) -> String {
    format!("{ORDERS_AND_OUT}---\n{}", pipeline.trim_start())
}

/// The tenant of every test deployment.
pub const TENANT: &str = "acme";

/// A pipeline spec: ORDERS → (optional header) → out.orders, ack_wait 2 s.
pub fn spec(name: &str, header: Option<(&str, &str)>) -> serde_json::Value {
    let headers = match header {
        Some((n, v)) => format!(", headers: {{ {n}: {v} }}"),
        None => String::new(),
    };
    let yaml = format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: {name} }}
spec:
  source: {{ stream: ORDERS, consumer: {{ ack_wait: 2s, batch_size: 100 }} }}
  nodes:
    - id: out
      publish: {{ subject: "out.orders"{headers} }}
"#
    );
    serde_yaml::from_str(&yaml).expect("test spec is YAML")
}

/// The `weir` binary under test: `$WEIR_BIN` when set (a private copy, e.g. when several
/// worktrees share one target directory and may overwrite `target/debug/weir`), else the one
/// cargo built for this test.
pub fn weir_binary() -> std::path::PathBuf {
    std::env::var_os("WEIR_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_weir").into())
}

/// A `weir worker` child process.
pub struct WorkerProcess {
    pub id: String,
    pub log: std::path::PathBuf,
    child: Option<Child>,
}

impl WorkerProcess {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn sigkill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    pub fn sigterm(&mut self, within: Duration) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("no worker running")?;
        match sigterm_and_wait(&mut child, within)? {
            Some(status) => Ok(status),
            None => bail!(
                "weir worker {} did not exit within {within:?} of SIGTERM",
                self.id
            ),
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.sigkill();
    }
}

/// A nats-server with the fleet buckets and the ORDERS / OUT streams.
pub struct Fleet {
    pub server: NatsServer,
    pub js: jetstream::Context,
    pub deployments: kv::Store,
    pub workers: kv::Store,
    pub dir: std::path::PathBuf,
}

impl Fleet {
    pub async fn start() -> Result<Fleet> {
        let server = NatsServer::start()?;
        let client = async_nats::connect(server.url()).await?;
        let js = jetstream::new(client);
        for (name, subject) in [("ORDERS", "orders.>"), ("OUT", "out.>")] {
            js.get_or_create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                ..Default::default()
            })
            .await?;
        }
        let deployments = js
            .create_key_value(kv::Config {
                bucket: DEPLOYMENTS_BUCKET.into(),
                history: 10,
                ..Default::default()
            })
            .await?;
        let workers = js
            .create_key_value(kv::Config {
                bucket: WORKERS_BUCKET.into(),
                history: 10,
                ..Default::default()
            })
            .await?;
        let dir = std::env::temp_dir().join(format!(
            "weir-fleet-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Fleet {
            server,
            js,
            deployments,
            workers,
            dir,
        })
    }

    pub fn spawn_worker(&self, id: &str) -> Result<WorkerProcess> {
        let log_path = self.dir.join(format!("{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = Command::new(weir_binary())
            .args(["worker", "--nats", &self.server.url(), "--id", id])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting weir worker")?;
        Ok(WorkerProcess {
            id: id.to_string(),
            log: log_path,
            child: Some(child),
        })
    }

    /// Puts a deployment record, as the control plane does.
    pub async fn deploy(
        &self,
        pipeline: &str,
        version: i64,
        state: DesiredState,
        spec: serde_json::Value,
        quota: DataPlaneQuota,
    ) -> Result<()> {
        let record = Deployment {
            tenant: TENANT.into(),
            pipeline: pipeline.into(),
            version,
            parallelism: 2,
            state,
            spec,
            quota,
            updated_at_ms: now_ms(),
            updated_by: "test".into(),
            credentials: None,
        };
        self.deployments
            .put(
                deployment_key(TENANT, pipeline),
                serde_json::to_vec(&record)?.into(),
            )
            .await?;
        Ok(())
    }

    /// The heartbeat of `worker`, when present.
    pub async fn heartbeat(&self, worker: &str) -> Result<Option<WorkerHeartbeat>> {
        Ok(match self.workers.get(worker_key(worker)).await? {
            Some(value) => Some(serde_json::from_slice(&value)?),
            None => None,
        })
    }

    /// Deploys version 1 of the test pipeline `pipeline` ([`spec`], no quota) and waits until
    /// every one of `workers` reports it running.
    pub async fn deploy_running(&self, pipeline: &str, workers: &[&WorkerProcess]) -> Result<()> {
        self.deploy(
            pipeline,
            1,
            DesiredState::Running,
            spec(pipeline, None),
            DataPlaneQuota::default(),
        )
        .await?;
        self.wait_heartbeats(workers, Duration::from_secs(20), "running", |beats| {
            beats.iter().all(|beat| {
                beat.pipelines
                    .iter()
                    .any(|p| p.pipeline == pipeline && p.state == "running" && p.version == 1)
            })
        })
        .await?;
        Ok(())
    }

    /// Waits until `check` holds for the heartbeats of `workers`.
    pub async fn wait_heartbeats(
        &self,
        workers: &[&WorkerProcess],
        timeout: Duration,
        what: &str,
        check: impl Fn(&[WorkerHeartbeat]) -> bool,
    ) -> Result<Vec<WorkerHeartbeat>> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut beats = Vec::new();
            for w in workers {
                if let Some(beat) = self.heartbeat(&w.id).await? {
                    beats.push(beat);
                }
            }
            if beats.len() == workers.len() && check(&beats) {
                return Ok(beats);
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = workers.iter().map(|w| w.log_text()).collect();
                bail!(
                    "heartbeats never showed {what}: {beats:#?}\nlogs:\n{}",
                    logs.join("\n----\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Publishes inputs `range` (payload `{"id":i,...}` padded to `size`, id `in-<i>`) at
    /// most `rate` per second (0 = as fast as possible). Returns the stream sequence of each.
    pub async fn publish(
        &self,
        range: std::ops::Range<u64>,
        rate: u64,
        size: usize,
    ) -> Result<BTreeMap<u64, u64>> {
        let started = Instant::now();
        let first = range.start;
        let mut seqs = BTreeMap::new();
        let mut in_flight = FuturesUnordered::new();
        for i in range {
            if rate > 0 {
                let due = started + Duration::from_secs_f64((i - first) as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
            }
            while in_flight.len() >= 256 {
                let (i, seq): (u64, u64) = in_flight.next().await.expect("in flight")?;
                seqs.insert(i, seq);
            }
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", format!("in-{i}").as_str());
            let mut body = format!("{{\"id\":{i},\"pad\":\"");
            while body.len() + 2 < size {
                body.push('x');
            }
            body.push_str("\"}");
            let ack = self
                .js
                .publish_with_headers("orders.created", headers, body.into())
                .await?;
            in_flight.push(async move { anyhow::Ok((i, ack.await?.sequence)) });
        }
        while let Some(r) = in_flight.next().await {
            let (i, seq) = r?;
            seqs.insert(i, seq);
        }
        Ok(seqs)
    }

    /// The consumer of the test tenant's `pipeline`.
    pub async fn consumer_info(&self, pipeline: &str) -> Result<consumer::Info> {
        let stream = self.js.get_stream("ORDERS").await?;
        Ok(stream
            .consumer_info(format!("weir_{TENANT}_{pipeline}"))
            .await?)
    }

    /// Waits until the pipeline's consumer has nothing pending and nothing un-acked.
    pub async fn wait_settled(&self, pipeline: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(info) = self.consumer_info(pipeline).await
                && info.num_pending == 0
                && info.num_ack_pending == 0
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let info = self.consumer_info(pipeline).await;
                bail!("pipeline {pipeline} not settled after {timeout:?}: {info:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A stored message: headers, payload, and its store time (unix ns).
pub struct Stored {
    pub headers: BTreeMap<String, String>,
    pub payload: Vec<u8>,
    pub stored_at_ns: i128,
}

impl Stored {
    pub fn id(&self) -> u64 {
        let value: serde_json::Value = serde_json::from_slice(&self.payload).expect("JSON output");
        value["id"].as_u64().expect("id")
    }
}

/// Every message of `stream`, in stream order.
pub async fn read_all(js: &jetstream::Context, stream: &str) -> Result<Vec<Stored>> {
    let mut handle = js.get_stream(stream).await?;
    let total = handle.info().await?.state.messages as usize;
    let reader: consumer::PullConsumer = handle
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await?;
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let mut batch = reader.fetch().max_messages(1000).messages().await?;
        let before = out.len();
        while let Some(message) = batch.next().await {
            let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
            let info = message.info().map_err(|e| anyhow::anyhow!("{e}"))?;
            let stored_at_ns = info.published.unix_timestamp_nanos();
            let mut headers = BTreeMap::new();
            if let Some(map) = &message.headers {
                for (name, values) in map.iter() {
                    headers.insert(name.to_string(), values[0].as_str().to_string());
                }
            }
            out.push(Stored {
                headers,
                payload: message.payload.to_vec(),
                stored_at_ns,
            });
        }
        if out.len() == before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(out)
}

/// Checks that `out` holds exactly one output per input of `seqs`, each with the
/// deterministic id of its input.
pub fn assert_exactly_once(pipeline: &str, seqs: &BTreeMap<u64, u64>, out: &[Stored]) {
    let mut seen = BTreeMap::new();
    for stored in out {
        let id = stored.id();
        let msg_id = &stored.headers["Nats-Msg-Id"];
        assert_eq!(
            msg_id,
            &format!("{pipeline}:ORDERS:{}:0", seqs[&id]),
            "output of input {id} has the id of its input"
        );
        assert!(seen.insert(id, ()).is_none(), "input {id} has two outputs");
    }
    let missing: Vec<_> = seqs
        .keys()
        .filter(|i| !seen.contains_key(i))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "inputs without output (first ten): {missing:?}"
    );
    assert_eq!(out.len(), seqs.len());
}

/// Runs `test` on a 2-thread runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(test: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(test)
}
