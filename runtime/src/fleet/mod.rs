//! The fleet worker: runs whatever the control plane deploys. It watches the
//! `weir_deployments` KV bucket (current values first, then every change), reconciles each
//! deployment key into started / paused / upgraded / stopped pipelines, and reports itself
//! and its pipelines' counters to `weir_workers` every heartbeat. Desired state goes over
//! NATS only (DESIGN §4): no database, no polling of the control plane.
//!
//! - `buckets`: opening / creating the two KV buckets;
//! - `deploy`: a `Deployment` record → settings + compiled pipeline;
//! - `reconcile`: applying records to the runtime's `Worker`;
//! - `status`: what the worker holds, shared with the heartbeat;
//! - `heartbeat`: the heartbeat loop and the sharing of tenants' ingest quotas;
//! - `quota`: the per-tenant ingest limiters.

pub mod buckets;
pub mod deploy;
pub mod heartbeat;
pub mod modules;
pub mod quota;
pub mod reconcile;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::fleet::heartbeat::Heartbeat;
use crate::fleet::quota::TenantLimiters;
use crate::fleet::reconcile::Reconciler;
use crate::fleet::status::StatusTable;
use crate::{Metrics, RuntimeError, Worker};

/// How often starts that failed on JetStream (e.g. a missing source stream) are retried.
const RETRY_FAILED_EVERY: Duration = Duration::from_secs(5);
/// Pause before re-opening a watch that ended or failed.
const REWATCH_DELAY: Duration = Duration::from_millis(500);

/// Settings of a fleet worker.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Stable id of this worker (a KV key token: letters, digits, `-`, `_`).
    pub worker_id: String,
    /// Host name reported in heartbeats.
    pub host: String,
    /// Longest wait for a pipeline's batches in flight when stopping it.
    pub grace: Duration,
    /// The NATS URL, for the per-tenant connections of deployments that carry credentials
    /// (operator mode: each pipeline runs inside its tenant's own NATS account).
    pub nats_url: Option<String>,
}

impl FleetConfig {
    /// Settings with `worker_id` (checked), this host's name and a 10 s grace.
    pub fn new(worker_id: impl Into<String>) -> Result<Self, RuntimeError> {
        let worker_id = worker_id.into();
        check_worker_id(&worker_id)?;
        Ok(FleetConfig {
            worker_id,
            host: host_name(),
            grace: Duration::from_secs(10),
            nats_url: None,
        })
    }
}

/// Checks that `id` can be a KV key token.
pub fn check_worker_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::Fleet {
            reason: format!("invalid worker id {id:?}: use 1 to 128 letters, digits, '-' or '_'"),
        })
    }
}

/// A default worker id: `<host>-<pid>`, reduced to valid characters.
pub fn default_worker_id() -> String {
    let raw = format!("{}-{}", host_name(), std::process::id());
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect()
}

/// This machine's host name (`unknown` when it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// A worker of the fleet.
pub struct FleetWorker {
    client: async_nats::Client,
    config: FleetConfig,
    metrics: Arc<Metrics>,
    status: StatusTable,
}

impl FleetWorker {
    /// A fleet worker on `client`, exporting into `metrics`.
    pub fn new(client: async_nats::Client, config: FleetConfig, metrics: Arc<Metrics>) -> Self {
        FleetWorker {
            client,
            config,
            metrics,
            status: StatusTable::default(),
        }
    }

    /// What the worker holds now (the same table its heartbeats report).
    pub fn status(&self) -> StatusTable {
        self.status.clone()
    }

    /// Runs until `stop` is cancelled; then stops every pipeline gracefully (batches in
    /// flight finish and are acked, within the grace), and deletes its heartbeat. Fails only
    /// when the KV buckets cannot be opened or created.
    pub async fn run(self, stop: CancellationToken) -> Result<(), RuntimeError> {
        let FleetWorker {
            client,
            config,
            metrics,
            status,
        } = self;
        let js = async_nats::jetstream::new(client.clone());
        let (deployments, workers) = buckets::open_fleet_buckets(&js).await?;
        let limiters = TenantLimiters::default();
        let heartbeat = Heartbeat::new(
            workers,
            config.worker_id.clone(),
            config.host.clone(),
            status.clone(),
            limiters.clone(),
        );
        let beats_stop = CancellationToken::new();
        let beats = tokio::spawn(heartbeat.clone().run(beats_stop.clone()));
        tracing::info!(worker = %config.worker_id, host = %config.host, "fleet worker started");

        let worker = Worker::new(client, metrics);
        let mut reconciler = Reconciler::new(worker, config.grace, status, limiters);
        reconciler.set_nats_url(config.nats_url.clone());
        let mut retry = tokio::time::interval(RETRY_FAILED_EVERY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        'watching: while !stop.is_cancelled() {
            let mut watch = match deployments.watch_with_history(">").await {
                Ok(watch) => watch,
                Err(error) => {
                    tracing::warn!(%error, "cannot watch the deployments; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => break 'watching,
                        _ = tokio::time::sleep(REWATCH_DELAY) => continue 'watching,
                    }
                }
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break 'watching,
                    _ = retry.tick() => reconciler.retry_failed().await,
                    entry = watch.next() => match entry {
                        Some(Ok(entry)) => apply_entry(&mut reconciler, entry).await,
                        Some(Err(error)) => {
                            tracing::warn!(%error, "deployments watch failed; watching again");
                            break;
                        }
                        None => {
                            tracing::warn!("deployments watch ended; watching again");
                            break;
                        }
                    },
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break 'watching,
                _ = tokio::time::sleep(REWATCH_DELAY) => {}
            }
        }

        tracing::info!("stopping: no new fetches, finishing batches in flight");
        let drained = reconciler.shutdown().await;
        beats_stop.cancel();
        let _ = beats.await;
        if let Err(error) = heartbeat.remove().await {
            tracing::warn!(%error, "could not delete the heartbeat");
        }
        tracing::info!(drained, "fleet worker stopped");
        Ok(())
    }
}

async fn apply_entry(reconciler: &mut Reconciler, entry: kv::Entry) {
    match entry.operation {
        kv::Operation::Put => reconciler.apply(&entry.key, &entry.value).await,
        kv::Operation::Delete | kv::Operation::Purge => reconciler.remove(&entry.key).await,
    }
}
