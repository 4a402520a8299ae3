//! What a worker reports about the state it holds for one stateful pipeline: the one state of
//! an unpartitioned pipeline as it is, or, for a partitioned one, each partition it owns and
//! their sums (the heartbeat's `StateReport` and the `weir_state_*` gauges).

use std::collections::BTreeMap;
use std::sync::Mutex;

use weir_pipelines::fleet::StateReport;

use crate::telemetry::Telemetry;

/// The reports of the partitions a worker owns now.
pub(crate) struct StateBoard {
    telemetry: Telemetry,
    partitions: u32,
    owned: Mutex<BTreeMap<u32, StateReport>>,
}

impl StateBoard {
    /// A board for a pipeline of `partitions` partitions, reporting through `telemetry`.
    pub(crate) fn new(telemetry: Telemetry, partitions: u32) -> Self {
        StateBoard {
            telemetry,
            partitions,
            owned: Mutex::new(BTreeMap::new()),
        }
    }

    /// Reports `report` about partition `partition` (`None`: the pipeline's one state).
    pub(crate) fn report(&self, partition: Option<u32>, report: &StateReport) {
        let Some(p) = partition else {
            self.telemetry.state_reported(report);
            return;
        };
        let summary = {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            if report.owner {
                let mut report = report.clone();
                report.partition = Some(p);
                owned.insert(p, report);
            } else {
                owned.remove(&p);
            }
            summarize(self.partitions, &owned)
        };
        self.telemetry.state_reported(&summary);
    }
}

/// The worker's report over the partitions it owns.
fn summarize(partitions: u32, owned: &BTreeMap<u32, StateReport>) -> StateReport {
    let mut sum = StateReport {
        owner: !owned.is_empty(),
        started_from: if owned.is_empty() {
            format!("standing by: owns none of the {partitions} partitions")
        } else {
            format!(
                "owns {} of the {partitions} partitions: {}",
                owned.len(),
                owned
                    .keys()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        ..StateReport::default()
    };
    for r in owned.values() {
        sum.open_windows += r.open_windows;
        sum.keys_held += r.keys_held;
        sum.late_events += r.late_events;
        sum.duplicates_dropped += r.duplicates_dropped;
        sum.state_bytes += r.state_bytes;
        sum.checkpoints += r.checkpoints;
        sum.last_checkpoint_ms = sum.last_checkpoint_ms.max(r.last_checkpoint_ms);
        sum.last_checkpoint_took_ms = sum.last_checkpoint_took_ms.max(r.last_checkpoint_took_ms);
        if let Some(w) = r.watermark_ms {
            sum.watermark_ms = Some(sum.watermark_ms.map_or(w, |m| m.min(w)));
        }
        sum.partitions.push(r.clone());
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_add_up_and_the_lowest_watermark_wins() {
        let part = |p: u32, keys: u64, watermark: i64| {
            (
                p,
                StateReport {
                    owner: true,
                    keys_held: keys,
                    watermark_ms: Some(watermark),
                    last_checkpoint_ms: 10 + u64::from(p),
                    partition: Some(p),
                    ..StateReport::default()
                },
            )
        };
        let owned: BTreeMap<u32, StateReport> = [part(1, 3, 500), part(6, 4, 200)].into();
        let sum = summarize(8, &owned);
        assert!(sum.owner);
        assert_eq!(sum.keys_held, 7);
        assert_eq!(sum.watermark_ms, Some(200));
        assert_eq!(sum.last_checkpoint_ms, 16);
        assert_eq!(sum.started_from, "owns 2 of the 8 partitions: 1, 6");
        assert_eq!(
            sum.partitions
                .iter()
                .map(|r| r.partition)
                .collect::<Vec<_>>(),
            vec![Some(1), Some(6)]
        );
        let none = summarize(8, &BTreeMap::new());
        assert!(!none.owner && none.partitions.is_empty());
    }
}
