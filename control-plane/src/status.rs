//! Pipeline status from worker heartbeats: `GET /pipelines/{name}/status` aggregates what every
//! worker reports for a pipeline (running and dead workers, counters, rates, lag, last error,
//! health), `GET /workers` lists the fleet as a tenant may see it, and `GET /status/stream`
//! pushes a tenant's pipeline statuses as server-sent events whenever heartbeats change.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::time::Duration;
use weir_pipelines::fleet::now_ms;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_pipelines::fleet::{
    HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, PipelineCounters, PipelineReport, WorkerHeartbeat,
};

use crate::caller::Caller;
use crate::db::rfc3339;
use crate::deployments::{self, DeploymentInfo};
use crate::error::ApiResult;
use crate::nats::{Nats, failed};
use crate::pipelines::find;
pub use crate::rates::{RateTracker, Rates};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

/// A last error younger than this makes a running pipeline `degraded`.
pub const RECENT_ERROR_MS: u64 = 60_000;
/// A worker that died less than this long ago makes its pipelines `degraded`; older dead
/// workers are listed but no longer weigh on health.
pub const RECENT_DEATH_MS: u64 = 5 * 60_000;

/// Counters of a pipeline.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Messages received from the source, each counted once (at its first delivery).
    pub messages_in: u64,
    /// Deliveries fetched: messages plus redeliveries (retries, restarts).
    pub deliveries: u64,
    /// Outputs published.
    pub messages_out: u64,
    /// Inputs filtered or dropped.
    pub filtered: u64,
    /// Inputs sent to the DLQ.
    pub dead_lettered: u64,
    /// Retries of transient failures.
    pub retried: u64,
}

impl From<&PipelineCounters> for Counters {
    fn from(c: &PipelineCounters) -> Self {
        Counters {
            messages_in: c.messages_in,
            deliveries: c.deliveries,
            messages_out: c.messages_out,
            filtered: c.filtered,
            dead_lettered: c.dead_lettered,
            retried: c.retried,
        }
    }
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.messages_in += o.messages_in;
        self.deliveries += o.deliveries;
        self.messages_out += o.messages_out;
        self.filtered += o.filtered;
        self.dead_lettered += o.dead_lettered;
        self.retried += o.retried;
    }
}

/// What one node of a pipeline saw, summed over the live workers since each started it. Rows
/// are messages inside the graph (a `split` makes several of one input); a batch processed
/// again (a retry) counts again.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default, PartialEq)]
pub struct NodeStats {
    /// Rows that reached the node.
    pub rows_in: u64,
    /// Rows it passed on, per output port (a route: its rules in order, then `default`).
    pub ports: Vec<u64>,
    /// Messages it published (sinks).
    pub outputs: u64,
    /// Inputs that failed at this node (their first error; they went to the DLQ or were
    /// retried).
    pub errors: u64,
    /// Named counts the node keeps: a `quality` node's `<rule>.pass` and `<rule>.fail`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counters: std::collections::BTreeMap<String, u64>,
}

impl NodeStats {
    fn add(&mut self, o: &weir_pipelines::fleet::NodeCounters) {
        self.rows_in += o.rows_in;
        if self.ports.len() < o.ports.len() {
            self.ports.resize(o.ports.len(), 0);
        }
        for (a, b) in self.ports.iter_mut().zip(&o.ports) {
            *a += b;
        }
        self.outputs += o.outputs;
        self.errors += o.errors;
        for (name, n) in &o.counters {
            *self.counters.entry(name.clone()).or_default() += n;
        }
    }
}

/// A stateful pipeline's state (`window`, `dedup` nodes) and checkpoints, as a worker reports
/// it (see docs/pipeline-format.md, "State and checkpoints").
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default, PartialEq)]
pub struct OperatorState {
    /// Whether this worker owns the state now (one owner at a time; others stand by).
    pub owner: bool,
    /// Windows (or sessions) open now.
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
    /// When the last checkpoint was taken (RFC 3339).
    pub last_checkpoint: Option<String>,
    /// How long the last checkpoint took, in ms.
    pub last_checkpoint_took_ms: u64,
    /// The last source sequence the last checkpoint covers.
    pub position: u64,
    /// How the state started on this worker: restored from a checkpoint, empty, or standing
    /// by (and why).
    pub started_from: String,
    /// The lowest watermark of the window nodes (RFC 3339): windows ending before it have
    /// closed.
    pub watermark: Option<String>,
    /// A partitioned pipeline (`execution.partitions`): each partition with its owner; the
    /// figures above are their sums.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionState>,
}

/// The state of one keyed partition, as its owner reports it.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default, PartialEq)]
pub struct PartitionState {
    /// The partition (0-based).
    pub partition: u32,
    /// The worker that owns it.
    pub worker_id: String,
    /// Windows (or sessions) open now.
    pub open_windows: u64,
    /// Group keys and remembered keys held now.
    pub keys_held: u64,
    /// Events sent to a `late` port so far.
    pub late_events: u64,
    /// Size of its last checkpoint, in bytes.
    pub state_bytes: u64,
    /// When its last checkpoint was taken (RFC 3339).
    pub last_checkpoint: Option<String>,
    /// How long its last checkpoint took, in ms.
    pub last_checkpoint_took_ms: u64,
    /// The last sequence of the partition stream its last checkpoint covers.
    pub position: u64,
    /// How its state started on this owner.
    pub started_from: String,
    /// Its lowest watermark (RFC 3339).
    pub watermark: Option<String>,
}

impl OperatorState {
    /// `s` as worker `worker_id` reports it.
    fn reported(s: &weir_pipelines::fleet::StateReport, worker_id: &str) -> Self {
        let mut state = OperatorState::from(s);
        state.partitions = s
            .partitions
            .iter()
            .map(|p| PartitionState {
                partition: p.partition.unwrap_or_default(),
                worker_id: worker_id.to_string(),
                open_windows: p.open_windows,
                keys_held: p.keys_held,
                late_events: p.late_events,
                state_bytes: p.state_bytes,
                last_checkpoint: (p.last_checkpoint_ms > 0)
                    .then(|| rfc3339(p.last_checkpoint_ms as i64)),
                last_checkpoint_took_ms: p.last_checkpoint_took_ms,
                position: p.position,
                started_from: p.started_from.clone(),
                watermark: p.watermark_ms.map(rfc3339),
            })
            .collect();
        state
    }

    /// Adds another owner's partitions (a partitioned pipeline has one owner per partition).
    fn merge(&mut self, other: OperatorState) {
        self.open_windows += other.open_windows;
        self.keys_held += other.keys_held;
        self.late_events += other.late_events;
        self.duplicates_dropped += other.duplicates_dropped;
        self.state_bytes += other.state_bytes;
        self.checkpoints += other.checkpoints;
        self.last_checkpoint_took_ms = self
            .last_checkpoint_took_ms
            .max(other.last_checkpoint_took_ms);
        // RFC 3339 texts in UTC of the same form order as their times do.
        self.last_checkpoint = self.last_checkpoint.take().max(other.last_checkpoint);
        self.watermark = match (self.watermark.take(), other.watermark) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.partitions.extend(other.partitions);
        self.partitions.sort_by_key(|p| p.partition);
        let owners: std::collections::BTreeSet<&str> = self
            .partitions
            .iter()
            .map(|p| p.worker_id.as_str())
            .collect();
        self.started_from = format!(
            "{} partitions owned by {} worker(s)",
            self.partitions.len(),
            owners.len()
        );
    }
}

impl From<&weir_pipelines::fleet::StateReport> for OperatorState {
    fn from(s: &weir_pipelines::fleet::StateReport) -> Self {
        OperatorState {
            owner: s.owner,
            open_windows: s.open_windows,
            keys_held: s.keys_held,
            late_events: s.late_events,
            duplicates_dropped: s.duplicates_dropped,
            state_bytes: s.state_bytes,
            checkpoints: s.checkpoints,
            last_checkpoint: (s.last_checkpoint_ms > 0)
                .then(|| rfc3339(s.last_checkpoint_ms as i64)),
            last_checkpoint_took_ms: s.last_checkpoint_took_ms,
            position: s.position,
            started_from: s.started_from.clone(),
            watermark: s.watermark_ms.map(rfc3339),
            partitions: Vec::new(),
        }
    }
}

/// The last error a worker reported.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct LastError {
    /// What went wrong.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
    /// Which worker reported it.
    pub worker_id: String,
    #[serde(skip)]
    at_ms: u64,
}

/// One worker's view of one pipeline.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct WorkerPipeline {
    /// Worker id.
    pub worker_id: String,
    /// Its host.
    pub host: String,
    /// False when its last heartbeat is older than the heartbeat timeout.
    pub alive: bool,
    /// Time of its last heartbeat (RFC 3339).
    pub last_seen: String,
    /// Version it runs.
    pub version: i64,
    /// `running`, `paused`, `starting` or `failed`, as the worker reports it.
    pub state: String,
    /// Counters since the worker started the pipeline.
    pub counters: Counters,
    /// Rates between its last two heartbeats seen by this server (absent until two were seen).
    pub rates: Option<Rates>,
    /// Consumer pending as the worker last polled it.
    pub lag: u64,
    /// Consumer ack-pending as the worker last polled it.
    pub ack_pending: u64,
    /// Its last error.
    pub last_error: Option<LastError>,
    /// A stateful pipeline's state on this worker.
    pub operator_state: Option<OperatorState>,
}

/// The status of a pipeline across the fleet.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct PipelineStatus {
    /// Pipeline name.
    pub pipeline: String,
    /// `healthy`, `degraded`, `down`, `paused` or `not_deployed`.
    pub health: String,
    /// Why the health is not `healthy` (empty when it is).
    pub reasons: Vec<String>,
    /// The deployment, when deployed.
    pub deployment: Option<DeploymentInfo>,
    /// Live workers that report the pipeline `running`.
    pub running_workers: usize,
    /// Workers that reported the pipeline but stopped sending heartbeats.
    pub dead_workers: usize,
    /// Counters summed over live workers.
    pub totals: Counters,
    /// Rates summed over live workers with a known rate.
    pub rates: Option<Rates>,
    /// Consumer lag from the freshest live report (one consumer is shared by all workers).
    pub lag: Option<u64>,
    /// Consumer ack-pending from the freshest live report.
    pub ack_pending: Option<u64>,
    /// The most recent failure any worker reported (fetch, transient, start): a recent one
    /// makes a running pipeline `degraded`.
    pub last_error: Option<LastError>,
    /// The most recent message sent to the DLQ (a data error of that message alone, handled
    /// as designed: it does not make the pipeline `degraded`).
    pub last_dead_letter: Option<LastError>,
    /// Each worker's report, live ones first.
    pub workers: Vec<WorkerPipeline>,
    /// Per node id (and `source`, the decoding step): counts summed over live workers.
    pub nodes: std::collections::BTreeMap<String, NodeStats>,
    /// A stateful pipeline's state, from the live worker that owns it.
    pub operator_state: Option<OperatorState>,
}

/// A worker as a tenant sees it: only the tenant's pipelines (platform admins see all).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct WorkerInfo {
    /// Worker id.
    pub worker_id: String,
    /// Host.
    pub host: String,
    /// False when its last heartbeat is older than the heartbeat timeout.
    pub alive: bool,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Its last heartbeat (RFC 3339).
    pub last_seen: String,
    /// The pipelines it runs that the caller may see.
    pub pipelines: Vec<WorkerPipelineBrief>,
}

/// One pipeline a worker runs.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct WorkerPipelineBrief {
    /// Tenant.
    pub tenant: String,
    /// Pipeline.
    pub pipeline: String,
    /// Version.
    pub version: i64,
    /// State the worker reports.
    pub state: String,
    /// Counters.
    pub counters: Counters,
    /// Consumer lag.
    pub lag: u64,
}

/// Every worker heartbeat in the bucket (unreadable ones are logged and skipped).
pub async fn heartbeats(nats: &Nats) -> ApiResult<Vec<WorkerHeartbeat>> {
    let mut keys = nats
        .workers()
        .keys()
        .await
        .map_err(|e| failed("list worker heartbeats", e))?;
    let mut names = Vec::new();
    while let Some(key) = keys.next().await {
        names.push(key.map_err(|e| failed("list worker heartbeats", e))?);
    }
    let mut out = Vec::new();
    for key in names {
        let Some(bytes) = nats
            .workers()
            .get(&key)
            .await
            .map_err(|e| failed(&format!("read heartbeat `{key}`"), e))?
        else {
            continue;
        };
        match serde_json::from_slice::<WorkerHeartbeat>(&bytes) {
            Ok(hb) => out.push(hb),
            Err(err) => tracing::warn!(key = %key, error = %err, "unreadable worker heartbeat"),
        }
    }
    out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
    Ok(out)
}

fn alive(hb: &WorkerHeartbeat, now_ms: u64) -> bool {
    now_ms.saturating_sub(hb.sent_at_ms) <= HEARTBEAT_TIMEOUT_MS
}

/// Aggregates the reports of `pipeline` of `tenant` in `heartbeats`.
pub fn aggregate(
    rates: &RateTracker,
    tenant: &str,
    pipeline: &str,
    deployment: Option<DeploymentInfo>,
    heartbeats: &[WorkerHeartbeat],
    now_ms: u64,
) -> PipelineStatus {
    let mut fold = Fold::default();
    for hb in heartbeats {
        for r in hb
            .pipelines
            .iter()
            .filter(|r| r.tenant == tenant && r.pipeline == pipeline)
        {
            fold.add(rates, hb, r, deployment.as_ref(), now_ms);
        }
    }
    fold.workers
        .sort_by(|a, b| b.alive.cmp(&a.alive).then(a.worker_id.cmp(&b.worker_id)));
    let (health, reasons) = fold.health(deployment.as_ref(), now_ms);
    PipelineStatus {
        pipeline: pipeline.to_string(),
        health: health.to_string(),
        reasons,
        deployment,
        running_workers: fold.running,
        dead_workers: fold.dead,
        totals: fold.totals,
        rates: fold.rate_sum,
        lag: fold.freshest.map(|f| f.1),
        ack_pending: fold.freshest.map(|f| f.2),
        last_error: fold.last_error,
        last_dead_letter: fold.last_dead_letter,
        workers: fold.workers,
        nodes: fold.nodes,
        operator_state: fold.owner_state,
    }
}

/// What the reports of one pipeline add up to so far.
#[derive(Default)]
struct Fold {
    workers: Vec<WorkerPipeline>,
    totals: Counters,
    nodes: BTreeMap<String, NodeStats>,
    rate_sum: Option<Rates>,
    /// (sent at, lag, ack pending) of the freshest live report.
    freshest: Option<(u64, u64, u64)>,
    last_error: Option<LastError>,
    last_dead_letter: Option<LastError>,
    running: usize,
    dead: usize,
    recent_dead: usize,
    not_running: Vec<String>,
    other_version: Vec<String>,
    /// The state reported by the live owner of a stateful pipeline.
    owner_state: Option<OperatorState>,
}

impl Fold {
    /// Adds worker `hb`'s report `r`.
    fn add(
        &mut self,
        rates: &RateTracker,
        hb: &WorkerHeartbeat,
        r: &PipelineReport,
        deployment: Option<&DeploymentInfo>,
        now_ms: u64,
    ) {
        let is_alive = alive(hb, now_ms);
        let worker_rates = rates.observe(&hb.worker_id, hb.sent_at_ms, r);
        let counters = Counters::from(&r.counters);
        let event = |(message, at): &(String, u64)| LastError {
            message: message.clone(),
            at: rfc3339(*at as i64),
            worker_id: hb.worker_id.clone(),
            at_ms: *at,
        };
        let error = r.last_error.as_ref().map(event);
        keep_newest(&mut self.last_error, error.clone());
        keep_newest(
            &mut self.last_dead_letter,
            r.last_dead_letter.as_ref().map(event),
        );
        if is_alive {
            self.add_live(hb, r, &counters, worker_rates.as_ref(), deployment);
        } else {
            self.dead += 1;
            if now_ms.saturating_sub(hb.sent_at_ms) <= RECENT_DEATH_MS {
                self.recent_dead += 1;
            }
        }
        self.workers.push(WorkerPipeline {
            worker_id: hb.worker_id.clone(),
            host: hb.host.clone(),
            alive: is_alive,
            last_seen: rfc3339(hb.sent_at_ms as i64),
            version: r.version,
            state: r.state.clone(),
            counters,
            rates: worker_rates,
            lag: r.lag,
            ack_pending: r.ack_pending,
            last_error: error,
            operator_state: r
                .counters
                .state
                .as_ref()
                .map(|s| OperatorState::reported(s, &hb.worker_id)),
        });
    }

    /// Adds a live worker's counters, rates, lag and state.
    fn add_live(
        &mut self,
        hb: &WorkerHeartbeat,
        r: &PipelineReport,
        counters: &Counters,
        worker_rates: Option<&Rates>,
        deployment: Option<&DeploymentInfo>,
    ) {
        self.totals.add(counters);
        if let Some(state) = r.counters.state.as_ref().filter(|s| s.owner) {
            let state = OperatorState::reported(state, &hb.worker_id);
            match &mut self.owner_state {
                Some(owner) if !state.partitions.is_empty() => owner.merge(state),
                _ => self.owner_state = Some(state),
            }
        }
        for (id, n) in &r.counters.nodes {
            self.nodes.entry(id.clone()).or_default().add(n);
        }
        if let Some(wr) = worker_rates {
            self.rate_sum.get_or_insert_with(Rates::default).add(wr);
        }
        if self.freshest.is_none_or(|(at, _, _)| at < hb.sent_at_ms) {
            self.freshest = Some((hb.sent_at_ms, r.lag, r.ack_pending));
        }
        if r.state == "running" {
            self.running += 1;
        } else {
            self.not_running
                .push(format!("worker {} reports `{}`", hb.worker_id, r.state));
        }
        if let Some(d) = deployment
            && d.version != r.version
        {
            self.other_version.push(format!(
                "worker {} runs version {} instead of {}",
                hb.worker_id, r.version, d.version
            ));
        }
    }

    /// The pipeline's health and the reasons it is not healthy.
    fn health(
        &mut self,
        deployment: Option<&DeploymentInfo>,
        now_ms: u64,
    ) -> (&'static str, Vec<String>) {
        let mut reasons = Vec::new();
        let health = match deployment {
            None => "not_deployed",
            Some(d) if d.state == "paused" => "paused",
            Some(_) if self.running == 0 => {
                reasons.push("no live worker runs the pipeline".to_string());
                "down"
            }
            Some(_) => {
                reasons.append(&mut self.not_running);
                reasons.append(&mut self.other_version);
                if self.recent_dead > 0 {
                    reasons.push(format!(
                        "{} worker(s) running it stopped sending heartbeats",
                        self.recent_dead
                    ));
                }
                if let Some(e) = &self.last_error
                    && now_ms.saturating_sub(e.at_ms) <= RECENT_ERROR_MS
                {
                    reasons.push(format!("recent error: {}", e.message));
                }
                if reasons.is_empty() {
                    "healthy"
                } else {
                    "degraded"
                }
            }
        };
        (health, reasons)
    }
}

/// Keeps in `slot` the newer of it and `candidate`.
fn keep_newest(slot: &mut Option<LastError>, candidate: Option<LastError>) {
    if let Some(c) = candidate
        && slot.as_ref().is_none_or(|l| l.at_ms < c.at_ms)
    {
        *slot = Some(c);
    }
}

/// The status of one pipeline of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/status", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = PipelineStatus), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn pipeline_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<PipelineStatus>> {
    caller.require(ApiResource::Deployments, Action::Read)?;
    let nats = state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let deployment = deployments::load(&state, &p.id).await?;
    let hbs = heartbeats(nats).await?;
    let version = deployment.as_ref().map(|d| d.version);
    let mut status = aggregate(
        state.rates(),
        &caller.tenant_name,
        &name,
        deployment,
        &hbs,
        now_ms(),
    );
    // The lag as NATS has it now, not as a worker last polled it: a paused pipeline has no
    // worker polling, and its backlog still grows.
    if let Some(version) = version
        && let Some((pending, ack_pending)) =
            consumer_backlog(&state, &caller, &p.id, &name, version).await
    {
        status.lag = Some(pending);
        status.ack_pending = Some(ack_pending);
    }
    Ok(Json(status))
}

/// The deployed version's durable consumer's pending and ack-pending counts, asked of NATS in
/// the tenant's account; `None` when it cannot be read (no consumer yet, NATS trouble).
async fn consumer_backlog(
    state: &AppState,
    caller: &Caller,
    pipeline_id: &str,
    name: &str,
    version: i64,
) -> Option<(u64, u64)> {
    let (json, _) = crate::pipelines::version_text(state, pipeline_id, version, name)
        .await
        .ok()?;
    let weir_pipelines::Resource::Pipeline(mut pipeline) = serde_json::from_str(&json).ok()? else {
        return None;
    };
    pipeline.metadata.tenant = Some(caller.tenant_name.clone());
    // Deployed pipelines always run on the default durable (see the runtime's fleet deploy).
    let durable = weir_connectors::SourceSettings::default_durable(&pipeline);
    let nats = state.tenant_nats(caller).await.ok()?;
    let stream = nats
        .js()
        .get_stream(&pipeline.spec.source.stream)
        .await
        .ok()?;
    let info = stream.consumer_info(&durable).await.ok()?;
    Some((info.num_pending, info.num_ack_pending as u64))
}

/// The workers of the fleet, with the pipelines of the caller's tenant they run (workers that
/// run none of them are left out). Platform admins see every worker and pipeline.
#[utoipa::path(get, path = "/api/v1/workers", tag = "deployments",
    responses((status = 200, body = Vec<WorkerInfo>), (status = 503, body = crate::error::Problem)))]
pub async fn workers(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<WorkerInfo>>> {
    caller.require(ApiResource::Deployments, Action::Read)?;
    let nats = state.nats()?;
    let now = now_ms();
    let list = heartbeats(nats)
        .await?
        .into_iter()
        .filter_map(|hb| {
            let pipelines: Vec<_> = hb
                .pipelines
                .iter()
                .filter(|r| caller.platform_admin || r.tenant == caller.tenant_name)
                .map(|r| WorkerPipelineBrief {
                    tenant: r.tenant.clone(),
                    pipeline: r.pipeline.clone(),
                    version: r.version,
                    state: r.state.clone(),
                    counters: Counters::from(&r.counters),
                    lag: r.lag,
                })
                .collect();
            if pipelines.is_empty() && !caller.platform_admin {
                return None;
            }
            Some(WorkerInfo {
                alive: alive(&hb, now),
                worker_id: hb.worker_id,
                host: hb.host,
                started_at: rfc3339(hb.started_at_ms as i64),
                last_seen: rfc3339(hb.sent_at_ms as i64),
                pipelines,
            })
        })
        .collect();
    Ok(Json(list))
}

/// Statuses of every pipeline of the tenant that is deployed or reported by a worker, plus
/// `extra` names (pipelines that were in an earlier snapshot).
async fn tenant_statuses(
    state: &AppState,
    caller: &Caller,
    extra: impl IntoIterator<Item = String>,
) -> ApiResult<Vec<PipelineStatus>> {
    let nats = state.nats()?;
    let hbs = heartbeats(nats).await?;
    let mut deployed: BTreeMap<String, DeploymentInfo> =
        deployments::of_tenant(state, &caller.tenant_id)
            .await?
            .into_iter()
            .map(|d| (d.pipeline.clone(), d))
            .collect();
    let mut names: BTreeSet<String> = deployed.keys().cloned().collect();
    for hb in &hbs {
        for r in &hb.pipelines {
            if r.tenant == caller.tenant_name {
                names.insert(r.pipeline.clone());
            }
        }
    }
    names.extend(extra);
    let now = now_ms();
    let mut statuses: Vec<PipelineStatus> = names
        .into_iter()
        .map(|name| {
            let d = deployed.remove(&name);
            aggregate(state.rates(), &caller.tenant_name, &name, d, &hbs, now)
        })
        .collect();
    // A paused pipeline has no worker polling its consumer: its backlog is asked of NATS, as
    // `GET …/status` does (only for paused ones, to keep each refresh cheap).
    for s in &mut statuses {
        let Some(d) = s.deployment.as_ref().filter(|d| d.state == "paused") else {
            continue;
        };
        let version = d.version;
        let Ok(p) = find(state, &caller.tenant_id, &s.pipeline).await else {
            continue;
        };
        if let Some((pending, ack_pending)) =
            consumer_backlog(state, caller, &p.id, &s.pipeline, version).await
        {
            s.lag = Some(pending);
            s.ack_pending = Some(ack_pending);
        }
    }
    Ok(statuses)
}

/// How often the status stream re-checks the credential it was opened with.
const CREDENTIAL_RECHECK: Duration = Duration::from_secs(1);

/// Live statuses of the caller's pipelines as server-sent events: one `status` event per
/// pipeline on connect, then one for each pipeline whose status changed, whenever a heartbeat
/// or one of the tenant's deployments changes (and at least every heartbeat interval, so that
/// workers that die show up). Data is a `PipelineStatus` JSON object.
#[utoipa::path(get, path = "/api/v1/status/stream", tag = "deployments",
    responses((status = 200, description = "`text/event-stream` of `status` events, each a PipelineStatus",
               content_type = "text/event-stream", body = String),
              (status = 503, body = crate::error::Problem)))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    caller.require(ApiResource::Deployments, Action::Read)?;
    let nats = state.nats()?.clone();
    let mut beats = nats
        .workers()
        .watch_all()
        .await
        .map_err(|e| failed("watch worker heartbeats", e))?;
    let mut deploys = nats
        .deployments()
        .watch(format!("{}.>", caller.tenant_name))
        .await
        .map_err(|e| failed("watch deployments", e))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut sent: HashMap<String, String> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_INTERVAL_MS));
        let mut checked = std::time::Instant::now();
        loop {
            // A revoked key or session, or a lost permission, ends the stream within seconds.
            if checked.elapsed() >= CREDENTIAL_RECHECK {
                if !crate::auth::still_allowed(
                    &state,
                    &caller,
                    ApiResource::Deployments,
                    Action::Read,
                )
                .await
                {
                    let event = Event::default()
                        .event("error")
                        .data("your credential was revoked or no longer grants deployments:read; the stream ends");
                    let _ = tx.send(event).await;
                    return;
                }
                checked = std::time::Instant::now();
            }
            match tenant_statuses(&state, &caller, sent.keys().cloned().collect::<Vec<_>>()).await {
                Ok(list) => {
                    for s in list {
                        let Ok(json) = serde_json::to_string(&s) else {
                            continue;
                        };
                        if sent.get(&s.pipeline) == Some(&json) {
                            continue;
                        }
                        let event = Event::default().event("status").data(json.clone());
                        if tx.send(event).await.is_err() {
                            return;
                        }
                        sent.insert(s.pipeline, json);
                    }
                }
                Err(err) => {
                    let event = Event::default().event("error").data(err.to_string());
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                b = beats.next() => if b.is_none() { return },
                d = deploys.next() => if d.is_none() { return },
                _ = tick.tick() => {}
            }
        }
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipelines::fleet::StateReport;

    /// A worker's report owning `parts`, each with 10 keys and watermark 1000 × (p + 1).
    fn owning(parts: &[u32]) -> StateReport {
        let partitions: Vec<StateReport> = parts
            .iter()
            .map(|&p| StateReport {
                owner: true,
                partition: Some(p),
                keys_held: 10,
                watermark_ms: Some(1000 * (i64::from(p) + 1)),
                ..StateReport::default()
            })
            .collect();
        StateReport {
            owner: true,
            keys_held: 10 * parts.len() as u64,
            watermark_ms: partitions.iter().filter_map(|p| p.watermark_ms).min(),
            partitions,
            ..StateReport::default()
        }
    }

    #[test]
    fn the_owners_of_partitions_add_up_to_the_pipeline_state() {
        let mut state = OperatorState::reported(&owning(&[1, 3]), "w1");
        state.merge(OperatorState::reported(&owning(&[0, 2]), "w2"));
        assert_eq!(state.keys_held, 40);
        assert_eq!(state.watermark, Some(rfc3339(1000)));
        assert_eq!(
            state
                .partitions
                .iter()
                .map(|p| (p.partition, p.worker_id.as_str()))
                .collect::<Vec<_>>(),
            vec![(0, "w2"), (1, "w1"), (2, "w2"), (3, "w1")]
        );
        assert_eq!(state.started_from, "4 partitions owned by 2 worker(s)");
    }
}
