//! Pass and fail counts of data-quality rules over the last minute and hour. Workers report
//! cumulative per-rule counts (`<rule>.pass`, `<rule>.fail` of a `quality` node) in their
//! heartbeats; the control plane keeps a sample of them at most every [`SAMPLE_EVERY_MS`] for a
//! little over an hour per (worker, tenant, pipeline), and a window's count is the count now
//! minus the count at the window's start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use weir_pipelines::fleet::{PipelineReport, WorkerHeartbeat};

/// One sample at most this often per (worker, tenant, pipeline).
pub const SAMPLE_EVERY_MS: u64 = 5_000;
/// The longest window asked for; samples older than this (plus a margin) are dropped.
pub const LONGEST_WINDOW_MS: u64 = 3_600_000;

/// (node id, rule name) → (passed, failed).
pub type RuleCounts = BTreeMap<(String, String), (u64, u64)>;

type Key = (String, String, String);

/// The samples of one run of a pipeline on one worker (a version, since its counters began).
struct Run {
    version: i64,
    /// Whether its counters began (at zero) after this server started sampling it, so that
    /// counts before its first sample belong to it.
    began_in_view: bool,
    samples: VecDeque<(u64, RuleCounts)>,
}

/// The samples per (worker, tenant, pipeline).
#[derive(Default)]
pub struct QualityHistory {
    runs: Mutex<HashMap<Key, Run>>,
}

/// The per-rule counts of a report.
pub fn counts(report: &PipelineReport) -> RuleCounts {
    let mut out = RuleCounts::new();
    for (node, n) in &report.counters.nodes {
        for (name, v) in &n.counters {
            let (rule, pass) = match (name.strip_suffix(".pass"), name.strip_suffix(".fail")) {
                (Some(rule), _) => (rule, true),
                (_, Some(rule)) => (rule, false),
                _ => continue,
            };
            let e = out.entry((node.clone(), rule.to_string())).or_default();
            if pass {
                e.0 = *v;
            } else {
                e.1 = *v;
            }
        }
    }
    out
}

/// Whether any count of `now` is below `before` (the worker started the pipeline again).
fn went_back(before: &RuleCounts, now: &RuleCounts) -> bool {
    before
        .iter()
        .any(|(k, b)| now.get(k).is_some_and(|n| n.0 < b.0 || n.1 < b.1))
}

impl QualityHistory {
    /// Records the quality counts of every pipeline in `hb` (a worker's heartbeat).
    pub fn record(&self, hb: &WorkerHeartbeat) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        for r in &hb.pipelines {
            let c = counts(r);
            if c.is_empty() {
                continue;
            }
            let key = (hb.worker_id.clone(), r.tenant.clone(), r.pipeline.clone());
            let run = runs.entry(key).or_insert_with(|| Run {
                version: r.version,
                began_in_view: false,
                samples: VecDeque::new(),
            });
            let restarted = run.version != r.version
                || run
                    .samples
                    .back()
                    .is_some_and(|(_, last)| went_back(last, &c));
            if restarted {
                *run = Run {
                    version: r.version,
                    began_in_view: true,
                    samples: VecDeque::new(),
                };
            }
            if run
                .samples
                .back()
                .is_some_and(|(at, _)| hb.sent_at_ms < at + SAMPLE_EVERY_MS)
            {
                continue;
            }
            run.samples.push_back((hb.sent_at_ms, c));
            let horizon = hb
                .sent_at_ms
                .saturating_sub(LONGEST_WINDOW_MS + 2 * SAMPLE_EVERY_MS);
            // Keep one sample at or before the horizon: the baseline of the longest window.
            while run.samples.len() > 1 && run.samples[1].0 <= horizon {
                run.samples.pop_front();
            }
        }
        // Runs not reported for longer than the longest window are forgotten.
        let stale = hb.sent_at_ms.saturating_sub(2 * LONGEST_WINDOW_MS);
        runs.retain(|_, run| run.samples.back().is_some_and(|(at, _)| *at >= stale));
    }

    /// The counts of worker `hb`'s report `r` within the `window_ms` before `now_ms`: its
    /// counts now minus those of the newest sample at or before the window's start. Without
    /// such a sample, a run that began within the window (the worker started after the
    /// window's start, or this server saw the run begin) counts from zero; otherwise from its
    /// oldest sample (this server has not seen the whole window).
    pub fn windowed(
        &self,
        hb: &WorkerHeartbeat,
        r: &PipelineReport,
        now_ms: u64,
        window_ms: u64,
    ) -> RuleCounts {
        let now = counts(r);
        let start = now_ms.saturating_sub(window_ms);
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let key = (hb.worker_id.clone(), r.tenant.clone(), r.pipeline.clone());
        let run = runs.get(&key).filter(|run| run.version == r.version);
        let baseline = run.and_then(|run| {
            let at_start = run.samples.iter().rev().find(|(at, _)| *at <= start);
            match at_start {
                Some((_, c)) => Some(c),
                None if run.began_in_view || hb.started_at_ms >= start => None,
                None => run.samples.front().map(|(_, c)| c),
            }
        });
        let Some(base) = baseline.filter(|b| !went_back(b, &now)) else {
            return now;
        };
        now.into_iter()
            .map(|(k, (p, f))| {
                let (bp, bf) = base.get(&k).copied().unwrap_or_default();
                (k, (p - bp, f - bf))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_pipelines::fleet::{NodeCounters, PipelineCounters};

    fn hb(at_ms: u64, started_at_ms: u64, version: i64, pass: u64, fail: u64) -> WorkerHeartbeat {
        let mut node = NodeCounters::default();
        node.counters.insert("amount.pass".into(), pass);
        node.counters.insert("amount.fail".into(), fail);
        let mut counters = PipelineCounters::default();
        counters.nodes.insert("dq".into(), node);
        let report: PipelineReport = serde_json::from_value(serde_json::json!({
            "tenant": "t", "pipeline": "p", "version": version, "state": "running",
            "counters": counters, "lag": 0, "ack_pending": 0,
        }))
        .unwrap();
        serde_json::from_value(serde_json::json!({
            "worker_id": "w1", "host": "h", "started_at_ms": started_at_ms,
            "sent_at_ms": at_ms, "pipelines": [report],
        }))
        .unwrap()
    }

    fn window(h: &QualityHistory, beat: &WorkerHeartbeat, ms: u64) -> (u64, u64) {
        h.windowed(beat, &beat.pipelines[0], beat.sent_at_ms, ms)[&("dq".into(), "amount".into())]
    }

    const MIN: u64 = 60_000;

    #[test]
    fn a_window_counts_from_the_sample_at_its_start() {
        let h = QualityHistory::default();
        let t0 = 10 * LONGEST_WINDOW_MS;
        // The worker started long before: what this server has not seen is not counted.
        h.record(&hb(t0, 0, 1, 10, 0));
        h.record(&hb(t0 + 30 * MIN, 0, 1, 50, 10));
        let now = hb(t0 + 61 * MIN, 0, 1, 80, 20);
        h.record(&now);
        assert_eq!(window(&h, &now, MIN), (30, 10));
        assert_eq!(window(&h, &now, 60 * MIN), (70, 20));
        // Samples closer together than SAMPLE_EVERY_MS are not kept; the newest at or
        // before the window's start is the baseline.
        h.record(&hb(t0 + 61 * MIN + 1_000, 0, 1, 81, 20));
        let later = hb(t0 + 62 * MIN + 500, 0, 1, 90, 25);
        assert_eq!(window(&h, &later, MIN), (10, 5));
    }

    #[test]
    fn a_run_that_began_within_the_window_counts_from_zero() {
        let h = QualityHistory::default();
        let t0 = 10 * LONGEST_WINDOW_MS;
        // The worker started 20 s ago: everything it counted is within the minute.
        let first = hb(t0, t0 - 20_000, 1, 7, 3);
        h.record(&first);
        assert_eq!(window(&h, &first, MIN), (7, 3));
        // A new version starts its counters again: counted from zero, not from the old run.
        let v2 = hb(t0 + 10 * MIN, t0 - 20_000, 2, 4, 1);
        h.record(&v2);
        assert_eq!(window(&h, &v2, 60 * MIN), (4, 1));
        // So does a run whose counts went back (the worker restarted the pipeline).
        let again = hb(t0 + 11 * MIN, t0 - 20_000, 2, 2, 0);
        h.record(&again);
        assert_eq!(window(&h, &again, MIN), (2, 0));
    }
}
