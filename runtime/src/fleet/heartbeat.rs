//! The worker's heartbeat: every `HEARTBEAT_INTERVAL_MS` a `WorkerHeartbeat` with every
//! deployment it holds (state, counters, lag, last error) is put under `worker.<id>` in
//! `weir_workers`; then the other workers' heartbeats are read to share tenants' ingest
//! quotas (see `quota`). A graceful stop deletes the key, so the control plane sees the
//! worker leave at once rather than after `HEARTBEAT_TIMEOUT_MS`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use weir_pipelines::fleet::{
    HEARTBEAT_INTERVAL_MS, HEARTBEAT_TIMEOUT_MS, WorkerHeartbeat, now_ms, worker_key,
};

use crate::fleet::quota::TenantLimiters;
use crate::fleet::status::StatusTable;

/// Writes this worker's heartbeats.
#[derive(Clone)]
pub struct Heartbeat {
    kv: kv::Store,
    worker_id: String,
    host: String,
    started_at_ms: u64,
    status: StatusTable,
    limiters: TenantLimiters,
}

impl Heartbeat {
    /// Heartbeats of `worker_id` into the workers bucket `kv`.
    pub fn new(
        kv: kv::Store,
        worker_id: String,
        host: String,
        status: StatusTable,
        limiters: TenantLimiters,
    ) -> Self {
        Heartbeat {
            kv,
            worker_id,
            host,
            started_at_ms: now_ms(),
            status,
            limiters,
        }
    }

    /// The heartbeat as of now.
    pub fn report(&self) -> WorkerHeartbeat {
        WorkerHeartbeat {
            worker_id: self.worker_id.clone(),
            host: self.host.clone(),
            started_at_ms: self.started_at_ms,
            sent_at_ms: now_ms(),
            pipelines: self.status.reports(),
        }
    }

    /// Puts one heartbeat.
    pub async fn beat(&self) -> Result<(), String> {
        let body = serde_json::to_vec(&self.report()).map_err(|e| e.to_string())?;
        self.kv
            .put(worker_key(&self.worker_id), body.into())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Reads the other workers' heartbeats and divides each quota'd tenant's ingest limit
    /// by the live workers running it (this one included).
    pub async fn share_quotas(&self) -> Result<(), String> {
        let tenants = self.limiters.tenants();
        if tenants.is_empty() {
            return Ok(());
        }
        let own = worker_key(&self.worker_id);
        let mut keys = self.kv.keys().await.map_err(|e| e.to_string())?;
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        let now = now_ms();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| e.to_string())?;
            if key == own || !key.starts_with("worker.") {
                continue;
            }
            let Ok(Some(value)) = self.kv.get(key.as_str()).await else {
                continue;
            };
            let Ok(beat) = serde_json::from_slice::<WorkerHeartbeat>(&value) else {
                continue;
            };
            if now.saturating_sub(beat.sent_at_ms) > HEARTBEAT_TIMEOUT_MS {
                continue;
            }
            let running: BTreeSet<&str> = beat
                .pipelines
                .iter()
                .filter(|p| p.state == "running")
                .map(|p| p.tenant.as_str())
                .collect();
            for tenant in running {
                *others.entry(tenant.to_string()).or_default() += 1;
            }
        }
        for tenant in tenants {
            let workers = 1 + others.get(&tenant).copied().unwrap_or(0);
            self.limiters.set_workers(&tenant, workers);
        }
        Ok(())
    }

    /// Beats until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let interval = Duration::from_millis(HEARTBEAT_INTERVAL_MS);
        loop {
            if let Err(error) = self.beat().await {
                tracing::warn!(%error, "heartbeat not stored");
            }
            if let Err(error) = self.share_quotas().await {
                tracing::warn!(%error, "reading the other workers' heartbeats failed");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Deletes this worker's heartbeat (graceful stop).
    pub async fn remove(&self) -> Result<(), String> {
        self.kv
            .delete(worker_key(&self.worker_id))
            .await
            .map_err(|e| e.to_string())
    }
}
