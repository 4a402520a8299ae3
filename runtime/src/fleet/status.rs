//! What this worker runs, per deployment key, shared between the reconciler (which writes
//! it) and the heartbeat loop (which reports it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir_pipelines::fleet::{PipelineReport, now_ms};

use crate::counters::PipelineTotals;

/// The state of one deployment in this worker, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Being started.
    Starting,
    /// Batch loops run.
    Running,
    /// Held stopped on purpose.
    Paused,
    /// Could not be started; the error says why.
    Failed,
}

impl Phase {
    /// The word the heartbeat uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Failed => "failed",
        }
    }
}

/// One deployment as this worker holds it.
#[derive(Debug, Clone)]
pub struct PipelineStatus {
    /// Owning tenant.
    pub tenant: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Version held.
    pub version: i64,
    /// Where it stands.
    pub phase: Phase,
    /// Counters (kept across versions and pauses of the same deployment).
    pub totals: Arc<PipelineTotals>,
    /// Why it failed, with the unix-millisecond time, when it did.
    pub failure: Option<(String, u64)>,
}

impl PipelineStatus {
    /// The heartbeat's view of it.
    pub fn report(&self) -> PipelineReport {
        let last_error = match (&self.failure, self.totals.last_error()) {
            (Some(failure), _) => Some(failure.clone()),
            (None, last) => last,
        };
        PipelineReport {
            tenant: self.tenant.clone(),
            pipeline: self.pipeline.clone(),
            version: self.version,
            state: self.phase.as_str().to_string(),
            counters: self.totals.counters(),
            lag: self.totals.lag(),
            ack_pending: self.totals.ack_pending(),
            last_error,
            last_dead_letter: self.totals.last_dead_letter(),
        }
    }
}

/// The table of deployments held by this worker, keyed by deployment key.
#[derive(Debug, Clone, Default)]
pub struct StatusTable {
    inner: Arc<Mutex<BTreeMap<String, PipelineStatus>>>,
}

impl StatusTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PipelineStatus>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the status of `key`.
    pub fn set(&self, key: &str, status: PipelineStatus) {
        self.lock().insert(key.to_string(), status);
    }

    /// Changes the phase of `key` (no-op when absent); a failure carries its error.
    pub fn set_phase(&self, key: &str, phase: Phase, failure: Option<String>) {
        if let Some(status) = self.lock().get_mut(key) {
            status.phase = phase;
            status.failure = failure.map(|error| (error, now_ms()));
        }
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The status of `key`.
    pub fn get(&self, key: &str) -> Option<PipelineStatus> {
        self.lock().get(key).cloned()
    }

    /// Every deployment held, as heartbeat reports.
    pub fn reports(&self) -> Vec<PipelineReport> {
        self.lock().values().map(PipelineStatus::report).collect()
    }
}
