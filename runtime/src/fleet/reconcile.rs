//! Desired state → running state, one deployment key at a time. The reconciler owns the
//! `Worker`; every change of a `weir_deployments` key comes through `apply` or `remove`, in
//! the order the watch delivers them:
//!
//! - a `running` record starts the pipeline (compiled from its spec, on the shared durable
//!   `weir_<tenant>_<pipeline>`, with the deployment's parallelism and quotas);
//! - a `paused` record stops it gracefully — the consumer keeps its position;
//! - a changed record (new version, parallelism, quota) stops the running version gracefully
//!   (its batches in flight finish and are acked) and only then starts the new one on the
//!   same durable consumer, so no input is lost or processed by both versions;
//! - a deleted or purged key stops it.
//!
//! A record that carries credentials (operator mode) runs on a connection made with them,
//! inside the tenant's own NATS account; one connection (one `Worker`) per set of credentials,
//! closed when its last pipeline stops. Each deploy carries fresh credentials (the control
//! plane revokes the previous ones), so a redeploy moves the pipeline to a new connection.
//!
//! A record or spec that cannot be used is reported `failed` (with the error) in the
//! heartbeat; a start that failed on JetStream (e.g. the source stream does not exist yet)
//! is retried by `retry_failed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weir_pipelines::fleet::{Deployment, DesiredState};

use crate::counters::PipelineTotals;
use crate::fleet::deploy::{parse_record, prepare};
use crate::fleet::quota::TenantLimiters;
use crate::fleet::status::{Phase, PipelineStatus, StatusTable};
use crate::{RuntimeError, StartOptions, Worker};

/// What the reconciler last applied for a key.
struct Applied {
    deployment: Deployment,
    /// A start failed on JetStream; worth trying again.
    retry: bool,
}

/// Applies deployment records to a `Worker`.
pub struct Reconciler {
    worker: Worker,
    /// Workers on tenant-account connections, by credentials.
    tenant_workers: BTreeMap<String, Worker>,
    nats_url: Option<String>,
    grace: Duration,
    status: StatusTable,
    limiters: TenantLimiters,
    applied: BTreeMap<String, Applied>,
    totals: BTreeMap<String, Arc<PipelineTotals>>,
}

impl Reconciler {
    /// A reconciler running pipelines on `worker`, stopping them within `grace`.
    pub fn new(
        worker: Worker,
        grace: Duration,
        status: StatusTable,
        limiters: TenantLimiters,
    ) -> Self {
        Reconciler {
            worker,
            tenant_workers: BTreeMap::new(),
            nats_url: None,
            grace,
            status,
            limiters,
            applied: BTreeMap::new(),
            totals: BTreeMap::new(),
        }
    }

    /// The worker.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The NATS URL that tenant-account connections are made to.
    pub fn set_nats_url(&mut self, url: Option<String>) {
        self.nats_url = url;
    }

    /// The worker that runs `deployment`: the shared one, or one on a connection inside the
    /// tenant's account (made on first use) when the record carries credentials.
    async fn worker_for(&mut self, deployment: &Deployment) -> Result<&mut Worker, (String, bool)> {
        let Some(creds) = &deployment.credentials else {
            return Ok(&mut self.worker);
        };
        if !self.tenant_workers.contains_key(creds) {
            let url = self.nats_url.clone().ok_or_else(|| {
                (
                    "the deployment carries tenant credentials but this worker has no NATS URL to use them with".to_string(),
                    false,
                )
            })?;
            let client = weir_connectors::connect_as(
                &url,
                &format!("weir worker for {}", deployment.tenant),
                Some(creds),
            )
            .await
            .map_err(|e| (e.to_string(), true))?;
            let worker = Worker::new(client, self.worker.metrics().clone());
            self.tenant_workers.insert(creds.clone(), worker);
        }
        Ok(self.tenant_workers.get_mut(creds).expect("inserted above"))
    }

    /// The worker running `key`, if any.
    fn running_worker(&mut self, key: &str) -> Option<&mut Worker> {
        if self.worker.is_running(key) {
            return Some(&mut self.worker);
        }
        self.tenant_workers.values_mut().find(|w| w.is_running(key))
    }

    /// A key was put with `value`.
    pub async fn apply(&mut self, key: &str, value: &[u8]) {
        match parse_record(key, value) {
            Ok(deployment) => self.apply_deployment(key, deployment).await,
            Err(error) => {
                tracing::error!(key, %error, "unusable deployment record");
                self.stop(key).await;
                self.applied.remove(key);
                let (tenant, pipeline) = key.split_once('.').unwrap_or(("", key));
                let totals = self.totals_of(key);
                self.status.set(
                    key,
                    PipelineStatus {
                        tenant: tenant.to_string(),
                        pipeline: pipeline.to_string(),
                        version: 0,
                        phase: Phase::Failed,
                        totals,
                        failure: Some((error, weir_pipelines::fleet::now_ms())),
                    },
                );
            }
        }
    }

    /// Applies one deployment (also used to retry a failed start).
    async fn apply_deployment(&mut self, key: &str, deployment: Deployment) {
        if let Some(applied) = self.applied.get(key)
            && !applied.retry
            && same_target(&applied.deployment, &deployment)
        {
            return;
        }
        // Whatever runs now stops first (gracefully), so that two versions never share
        // the consumer.
        self.stop(key).await;
        let totals = self.totals_of(key);
        let mut status = PipelineStatus {
            tenant: deployment.tenant.clone(),
            pipeline: deployment.pipeline.clone(),
            version: deployment.version,
            phase: Phase::Paused,
            totals: totals.clone(),
            failure: None,
        };
        let mut retry = false;
        if deployment.state == DesiredState::Running {
            status.phase = Phase::Starting;
            self.status.set(key, status.clone());
            match self.start(key, &deployment, totals).await {
                Ok(()) => {
                    status.phase = Phase::Running;
                    tracing::info!(
                        key,
                        version = deployment.version,
                        parallelism = deployment.parallelism,
                        "deployment running"
                    );
                }
                Err((error, retryable)) => {
                    tracing::error!(key, version = deployment.version, %error, retryable, "deployment failed to start");
                    status.phase = Phase::Failed;
                    status.failure = Some((error, weir_pipelines::fleet::now_ms()));
                    retry = retryable;
                }
            }
        } else {
            tracing::info!(key, version = deployment.version, "deployment paused");
        }
        self.status.set(key, status);
        self.applied
            .insert(key.to_string(), Applied { deployment, retry });
    }

    async fn start(
        &mut self,
        key: &str,
        deployment: &Deployment,
        totals: Arc<PipelineTotals>,
    ) -> Result<(), (String, bool)> {
        crate::fleet::modules::load(self.worker.client(), deployment)
            .await
            .map_err(|e| (e, true))?;
        let prepared = prepare(deployment).map_err(|e| (e, false))?;
        let ingest_limiter = deployment
            .quota
            .max_ingest_rate
            .map(|rate| self.limiters.limiter(&deployment.tenant, rate));
        let options = StartOptions {
            key: Some(key.to_string()),
            ingest_limiter,
            totals: Some(totals),
        };
        self.worker_for(deployment)
            .await?
            .start_pipeline_with(prepared.config, prepared.compiled, options)
            .await
            .map_err(|err| {
                let retryable = matches!(err, RuntimeError::Connector { .. });
                (err.to_string(), retryable)
            })
    }

    /// The key was deleted or purged: stop and forget it.
    pub async fn remove(&mut self, key: &str) {
        self.stop(key).await;
        self.applied.remove(key);
        self.totals.remove(key);
        self.status.remove(key);
        tracing::info!(key, "deployment removed");
    }

    /// Tries again the starts that failed on JetStream.
    pub async fn retry_failed(&mut self) {
        let keys: Vec<String> = self
            .applied
            .iter()
            .filter(|(_, a)| a.retry)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(applied) = self.applied.get(&key) {
                let deployment = applied.deployment.clone();
                self.apply_deployment(&key, deployment).await;
            }
        }
    }

    /// Stops every pipeline gracefully; returns whether all ended in time.
    pub async fn shutdown(mut self) -> bool {
        let grace = self.grace;
        let mut drained = self.worker.stop_all(grace).await;
        for worker in self.tenant_workers.values_mut() {
            drained &= worker.stop_all(grace).await;
        }
        drained
    }

    async fn stop(&mut self, key: &str) {
        let grace = self.grace;
        if let Some(worker) = self.running_worker(key) {
            let drained = worker.stop_pipeline(key, grace).await;
            if !drained {
                tracing::warn!(
                    key,
                    "pipeline did not stop in time; its unacked messages are redelivered after ack_wait"
                );
            }
        }
        // A tenant connection left without pipelines is closed: its credentials belong to a
        // replaced deployment and are revoked (a redeploy carries fresh ones).
        self.tenant_workers.retain(|_, w| !w.pipelines().is_empty());
    }

    fn totals_of(&mut self, key: &str) -> Arc<PipelineTotals> {
        self.totals.entry(key.to_string()).or_default().clone()
    }
}

/// Whether two records ask for the same thing (only who/when changed).
fn same_target(a: &Deployment, b: &Deployment) -> bool {
    a.version == b.version
        && a.parallelism == b.parallelism
        && a.state == b.state
        && a.quota == b.quota
        && a.spec == b.spec
        && a.credentials == b.credentials
}
