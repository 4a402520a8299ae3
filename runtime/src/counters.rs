//! Plain per-pipeline totals, next to the Prometheus metrics: what a fleet worker reports in
//! its heartbeat (messages in/out/filtered/dead-lettered/retried, lag, ack-pending and the
//! last error). One `PipelineTotals` belongs to one started pipeline and survives its
//! upgrades when the caller hands it to the next version.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::collections::BTreeMap;

use weir_engine::NodeCount;
use weir_pipelines::fleet::{NodeCounters, PipelineCounters, StateReport, now_ms};

/// Counters of one pipeline in this process. Cheap to update from every batch loop.
#[derive(Debug, Default)]
pub struct PipelineTotals {
    messages_in: AtomicU64,
    deliveries: AtomicU64,
    messages_out: AtomicU64,
    filtered: AtomicU64,
    dead_lettered: AtomicU64,
    retried: AtomicU64,
    lag: AtomicU64,
    ack_pending: AtomicU64,
    last_error: Mutex<Option<(String, u64)>>,
    last_dead_letter: Mutex<Option<(String, u64)>>,
    nodes: Mutex<BTreeMap<String, NodeCounters>>,
    state: Mutex<Option<StateReport>>,
}

impl PipelineTotals {
    /// Adds a settled batch: `deliveries` fetched, of which `messages_in` first deliveries.
    pub fn record_batch(
        &self,
        (messages_in, deliveries): (u64, u64),
        messages_out: u64,
        filtered: u64,
        dead_lettered: u64,
        retried: u64,
    ) {
        self.messages_in.fetch_add(messages_in, Ordering::Relaxed);
        self.deliveries.fetch_add(deliveries, Ordering::Relaxed);
        self.messages_out.fetch_add(messages_out, Ordering::Relaxed);
        self.filtered.fetch_add(filtered, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(dead_lettered, Ordering::Relaxed);
        self.retried.fetch_add(retried, Ordering::Relaxed);
    }

    /// Adds one batch's per-node counts (one lock per batch).
    pub fn record_nodes(&self, counts: &[NodeCount]) {
        if counts.is_empty() {
            return;
        }
        let mut nodes = self.nodes.lock().unwrap_or_else(|p| p.into_inner());
        for c in counts {
            let n = nodes.entry(c.node.to_string()).or_default();
            n.add(c.rows_in, &c.ports, c.outputs, c.errors);
            n.add_counters(&c.counters);
        }
    }

    /// Stores what a stateful pipeline reports about its state.
    pub fn record_state(&self, report: StateReport) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// Stores the consumer's lag and ack-pending as last polled.
    pub fn record_consumer(&self, lag: u64, ack_pending: u64) {
        self.lag.store(lag, Ordering::Relaxed);
        self.ack_pending.store(ack_pending, Ordering::Relaxed);
    }

    /// Remembers `error` as the last error, stamped now.
    pub fn record_error(&self, error: impl Into<String>) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((error.into(), now_ms()));
    }

    /// Remembers the last dead letter (a data error of one message), stamped now.
    pub fn record_dead_letter(&self, what: impl Into<String>) {
        let mut last = self
            .last_dead_letter
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *last = Some((what.into(), now_ms()));
    }

    /// The last dead letter and its unix-millisecond time.
    pub fn last_dead_letter(&self) -> Option<(String, u64)> {
        self.last_dead_letter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The counters as the fleet contract reports them.
    pub fn counters(&self) -> PipelineCounters {
        PipelineCounters {
            messages_in: self.messages_in.load(Ordering::Relaxed),
            deliveries: self.deliveries.load(Ordering::Relaxed),
            messages_out: self.messages_out.load(Ordering::Relaxed),
            filtered: self.filtered.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            nodes: self.nodes.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            state: self.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    /// Consumer lag (messages not yet delivered) as last polled.
    pub fn lag(&self) -> u64 {
        self.lag.load(Ordering::Relaxed)
    }

    /// Consumer ack-pending as last polled.
    pub fn ack_pending(&self) -> u64 {
        self.ack_pending.load(Ordering::Relaxed)
    }

    /// The last error and its unix-millisecond time.
    pub fn last_error(&self) -> Option<(String, u64)> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_add_up_and_errors_are_kept() {
        let totals = PipelineTotals::default();
        totals.record_batch((10, 10), 7, 2, 1, 0);
        totals.record_batch((3, 5), 5, 0, 0, 3);
        totals.record_consumer(42, 3);
        assert_eq!(
            totals.counters(),
            PipelineCounters {
                messages_in: 13,
                deliveries: 15,
                messages_out: 12,
                filtered: 2,
                dead_lettered: 1,
                retried: 3,
                nodes: BTreeMap::new(),
                state: None,
            }
        );
        assert_eq!((totals.lag(), totals.ack_pending()), (42, 3));
        let count = |node: &str, rows_in, ports: Vec<u64>, outputs, errors| NodeCount {
            node: node.into(),
            rows_in,
            ports,
            outputs,
            errors,
            counters: Vec::new(),
        };
        totals.record_nodes(&[
            count("source", 10, vec![9], 0, 1),
            count("big", 9, vec![4], 0, 0),
        ]);
        totals.record_nodes(&[
            count("source", 5, vec![5], 0, 0),
            count("out", 4, vec![0], 4, 0),
        ]);
        let nodes = totals.counters().nodes;
        assert_eq!(nodes["source"].rows_in, 15);
        assert_eq!(nodes["source"].ports, vec![14]);
        assert_eq!(nodes["source"].errors, 1);
        assert_eq!(nodes["big"].ports, vec![4]);
        assert_eq!(nodes["out"].outputs, 4);
        assert!(totals.last_error().is_none());
        totals.record_error("boom");
        assert_eq!(totals.last_error().map(|e| e.0), Some("boom".to_string()));
        totals.record_dead_letter("seq 4 (decode)");
        assert_eq!(totals.last_error().map(|e| e.0), Some("boom".to_string()));
        assert_eq!(
            totals.last_dead_letter().map(|e| e.0),
            Some("seq 4 (decode)".to_string())
        );
    }
}
