//! The fleet's contract over NATS: the JetStream KV buckets through which the control plane
//! states what should run (deployments) and workers report what does run (heartbeats with
//! per-pipeline counters). Both sides use these types, so the record format lives here once,
//! in the crate both depend on (the control plane and the runtime each depend on the pipeline
//! format).

use serde::{Deserialize, Serialize};

/// KV bucket of deployment records, written by the control plane, watched by workers.
pub const DEPLOYMENTS_BUCKET: &str = "weir_deployments";
/// KV bucket of worker heartbeats, written by workers, read by the control plane.
pub const WORKERS_BUCKET: &str = "weir_workers";
/// How often a worker writes its heartbeat.
pub const HEARTBEAT_INTERVAL_MS: u64 = 2_000;
/// A worker whose last heartbeat is older than this is reported dead.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 10_000;

/// The KV key of a deployment: `<tenant>.<pipeline>` (both are DNS-label-like names, valid
/// KV key tokens).
pub fn deployment_key(tenant: &str, pipeline: &str) -> String {
    format!("{tenant}.{pipeline}")
}

/// The KV key of a worker's heartbeat.
pub fn worker_key(worker_id: &str) -> String {
    format!("worker.{worker_id}")
}

/// Whether a deployment should consume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DesiredState {
    /// Workers run the pipeline.
    Running,
    /// Workers hold the pipeline stopped; its consumer keeps its position (lag grows).
    Paused,
}

/// Per-tenant limits that workers enforce in the data plane.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPlaneQuota {
    /// Largest payload accepted, in bytes; bigger messages go to the DLQ naming the quota.
    pub max_message_bytes: Option<u64>,
    /// Messages per second the tenant's pipelines may ingest (token bucket; excess waits).
    pub max_ingest_rate: Option<u64>,
}

/// What the control plane wants running: one pipeline version of one tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Owning tenant (its slug).
    pub tenant: String,
    /// Pipeline name.
    pub pipeline: String,
    /// The pipeline version deployed.
    pub version: i64,
    /// Batch loops each worker runs on the pipeline's shared durable consumer.
    pub parallelism: u32,
    /// Running or paused.
    pub state: DesiredState,
    /// The pipeline resource of that version, as JSON (the `weir.dev/v1` document).
    pub spec: serde_json::Value,
    /// Limits of the tenant that workers enforce.
    #[serde(default)]
    pub quota: DataPlaneQuota,
    /// Unix milliseconds of the change.
    pub updated_at_ms: u64,
    /// Who made the change (user email or API key prefix).
    #[serde(default)]
    pub updated_by: String,
    /// Credentials (`.creds` text) of a user of the tenant's own NATS account (operator
    /// mode): workers run the pipeline on a connection made with them, so that it reaches
    /// only that tenant's subjects and streams. `None` on a plain server (shared account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
}

/// The counters a worker reports for one pipeline it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Messages received from the source: each counted once, at its first delivery.
    pub messages_in: u64,
    /// Deliveries fetched from the source: messages plus redeliveries (retries, restarts).
    #[serde(default)]
    pub deliveries: u64,
    /// Outputs published.
    pub messages_out: u64,
    /// Inputs filtered or dropped.
    pub filtered: u64,
    /// Inputs sent to the DLQ.
    pub dead_lettered: u64,
    /// Retries of transient failures.
    pub retried: u64,
    /// Per node (and `source`): what each saw, summed over the batches processed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub nodes: std::collections::BTreeMap<String, NodeCounters>,
    /// A stateful pipeline's state and checkpoints, on the worker that owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateReport>,
}

/// What a stateful pipeline (`window`, `dedup`) holds and how it is checkpointed, as the
/// worker that runs it reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReport {
    /// Whether this worker owns the pipeline's state now (others stand by).
    pub owner: bool,
    /// Windows (or sessions) open now, over every window node.
    pub open_windows: u64,
    /// Group keys (windows) and remembered keys (dedup) held now.
    pub keys_held: u64,
    /// Events sent to a `late` port so far.
    pub late_events: u64,
    /// Messages dropped as duplicates so far.
    pub duplicates_dropped: u64,
    /// Size of the last checkpoint, in bytes.
    pub state_bytes: u64,
    /// Checkpoints taken since this worker took the pipeline over.
    pub checkpoints: u64,
    /// When the last checkpoint was taken (Unix ms; 0 = none yet).
    pub last_checkpoint_ms: u64,
    /// How long the last checkpoint took (snapshot and store), in ms.
    pub last_checkpoint_took_ms: u64,
    /// The last source sequence the last checkpoint covers.
    pub position: u64,
    /// How the state started on this worker: restored from a checkpoint, fresh, or reset
    /// (and why).
    pub started_from: String,
    /// The lowest watermark of the window nodes (Unix ms), once they have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_ms: Option<i64>,
    /// The keyed partition this report is about (in `partitions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    /// A partitioned pipeline: each partition this worker owns (the figures above are their
    /// sums, the lowest watermark, the latest checkpoint).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<StateReport>,
}

/// What one node of a pipeline saw, summed over batches. Rows are messages inside the graph
/// (a `split` makes several of one input); a batch processed again (a retry) counts again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounters {
    /// Rows that reached the node.
    pub rows_in: u64,
    /// Rows it passed on, per output port (a route: its rules in order, then `default`).
    pub ports: Vec<u64>,
    /// Messages it published (sinks).
    pub outputs: u64,
    /// Inputs that failed at this node (their first error).
    pub errors: u64,
    /// Named counts the node keeps (a `quality` node: `<rule>.pass` and `<rule>.fail`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl NodeCounters {
    /// Adds `other` (ports added index by index; the longer list wins the length).
    pub fn add(&mut self, rows_in: u64, ports: &[u64], outputs: u64, errors: u64) {
        self.rows_in += rows_in;
        if self.ports.len() < ports.len() {
            self.ports.resize(ports.len(), 0);
        }
        for (a, b) in self.ports.iter_mut().zip(ports) {
            *a += b;
        }
        self.outputs += outputs;
        self.errors += errors;
    }

    /// Adds named counts.
    pub fn add_counters(&mut self, counters: &[(String, u64)]) {
        for (name, n) in counters {
            *self.counters.entry(name.clone()).or_default() += n;
        }
    }
}

/// One pipeline as seen by one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    /// Owning tenant.
    pub tenant: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Version this worker runs.
    pub version: i64,
    /// `running`, `paused`, `starting` or `failed`.
    pub state: String,
    /// Counters since the worker started the pipeline.
    pub counters: PipelineCounters,
    /// Consumer pending (lag) as last polled.
    pub lag: u64,
    /// Consumer ack-pending as last polled.
    pub ack_pending: u64,
    /// Last failure of the pipeline itself (fetch, transient, start) and its unix-millisecond
    /// time.
    pub last_error: Option<(String, u64)>,
    /// Last message that went to the DLQ (a per-message data error, handled as designed) and
    /// its unix-millisecond time.
    #[serde(default)]
    pub last_dead_letter: Option<(String, u64)>,
}

/// A worker's heartbeat: who it is and what it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerHeartbeat {
    /// Stable id of the worker process.
    pub worker_id: String,
    /// Host name.
    pub host: String,
    /// Unix milliseconds the worker started.
    pub started_at_ms: u64,
    /// Unix milliseconds of this heartbeat.
    pub sent_at_ms: u64,
    /// Pipelines it runs.
    pub pipelines: Vec<PipelineReport>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
