//! Message rates of the fleet: the last two heartbeat samples per (worker, tenant, pipeline)
//! this server has seen, and the rates between them. Below the state that holds the tracker
//! and the status handlers that show the rates.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_pipelines::fleet::{PipelineCounters, PipelineReport};

/// Rates per second between a worker's last two heartbeats.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// Messages in per second.
    pub messages_in: f64,
    /// Outputs per second.
    pub messages_out: f64,
    /// Dead letters per second.
    pub dead_lettered: f64,
}

impl Rates {
    pub(crate) fn add(&mut self, o: &Rates) {
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.dead_lettered += o.dead_lettered;
    }
}

type RateKey = (String, String, String);

#[derive(Clone)]
struct Sample {
    at_ms: u64,
    counters: PipelineCounters,
}

/// The last two heartbeat samples per (worker, tenant, pipeline) this server has seen: rates
/// are their difference over their time apart.
#[derive(Default)]
pub struct RateTracker {
    samples: Mutex<HashMap<RateKey, (Option<Sample>, Sample)>>,
}

impl RateTracker {
    /// Records a report and returns the worker's rates, when two samples are known.
    pub(crate) fn observe(
        &self,
        worker: &str,
        sent_at_ms: u64,
        report: &PipelineReport,
    ) -> Option<Rates> {
        let key = (
            worker.to_string(),
            report.tenant.clone(),
            report.pipeline.clone(),
        );
        let sample = Sample {
            at_ms: sent_at_ms,
            counters: report.counters.clone(),
        };
        let mut map = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(key).or_insert_with(|| (None, sample.clone()));
        if sample.at_ms > entry.1.at_ms {
            let last = std::mem::replace(&mut entry.1, sample);
            entry.0 = Some(last);
        }
        let (prev, last) = (entry.0.as_ref()?, &entry.1);
        let dt = (last.at_ms - prev.at_ms) as f64 / 1000.0;
        let (a, b) = (&prev.counters, &last.counters);
        if dt <= 0.0 || b.messages_in < a.messages_in {
            // A counter went back: the worker restarted the pipeline.
            return None;
        }
        let per_sec = |x: u64, y: u64| y.saturating_sub(x) as f64 / dt;
        Some(Rates {
            messages_in: per_sec(a.messages_in, b.messages_in),
            messages_out: per_sec(a.messages_out, b.messages_out),
            dead_lettered: per_sec(a.dead_lettered, b.dead_lettered),
        })
    }
}
