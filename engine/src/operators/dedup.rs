//! `dedup`: drops a message whose key another message already had within a span of stream
//! time. Keys are remembered with the stream sequence that first had them, so a redelivered
//! message (a retry) is not its own duplicate; keys older than the span are forgotten.

use super::window_agg::array_json;
use super::{Operator, PlanContext};
use crate::frame::{BatchContext, Frame};
use crate::message::{FailureKind, NodeStats};
use crate::sql::SqlExpr;
use arrow::array::{Array, BooleanArray};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// A compiled `dedup` node.
pub(crate) struct Dedup {
    id: Arc<str>,
    key: SqlExpr,
    within_ms: i64,
    state: Mutex<Seen>,
}

/// Keys seen within the span: key → (stream, sequence, time ms), and keys in arrival order
/// for forgetting.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Seen {
    keys: HashMap<String, (String, u64, i64)>,
    order: VecDeque<(i64, String)>,
    latest: i64,
    dropped: u64,
}

impl Seen {
    /// Forgets keys older than the span before `latest`.
    fn forget(&mut self, within: i64) {
        while let Some((t, _)) = self.order.front() {
            if *t > self.latest - within {
                break;
            }
            if let Some((t, key)) = self.order.pop_front()
                && self.keys.get(&key).is_some_and(|(_, _, seen)| *seen == t)
            {
                self.keys.remove(&key);
            }
        }
    }
}

impl Operator for Dedup {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let n = frame.rows.len();
        let values = match self.key.evaluate(ctx.state, &frame.batch(ctx.catalog)) {
            Ok(v) => v,
            Err(e) => {
                for row in &frame.rows {
                    ctx.fail(row, &self.id, FailureKind::Expression, e.clone());
                }
                return Vec::new();
            }
        };
        let mut keep = vec![true; n];
        for (i, message) in &values.errors {
            keep[*i] = false;
            ctx.fail(
                &frame.rows[*i],
                &self.id,
                FailureKind::Expression,
                message.clone(),
            );
        }
        let mut seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (i, row) in frame.rows.iter().enumerate() {
            if !keep[i] || values.values.is_null(i) {
                continue;
            }
            let input = &ctx.inputs[row.input as usize];
            let t = input.timestamp_micros.div_euclid(1000);
            let key = array_json(&values.values, i).to_string();
            match seen.keys.get(&key) {
                Some((stream, seq, at))
                    if (*stream != input.stream || *seq != input.seq)
                        && (t - at).abs() < self.within_ms =>
                {
                    keep[i] = false;
                    seen.dropped += 1;
                }
                _ => {
                    seen.keys
                        .insert(key.clone(), (input.stream.clone(), input.seq, t));
                    seen.order.push_back((t, key));
                    seen.latest = seen.latest.max(t);
                }
            }
        }
        seen.forget(self.within_ms);
        drop(seen);
        frame
            .split(&[BooleanArray::from(keep)])
            .into_iter()
            .map(|f| (0, f))
            .collect()
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        crate::snapshot::encode(&*seen).map(Some)
    }

    fn restore(
        &self,
        bytes: &[u8],
        _state: &datafusion::execution::SessionState,
        _catalog: &crate::columns::Catalog,
    ) -> Result<(), String> {
        let seen: Seen = crate::snapshot::decode(bytes)?;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(())
    }

    fn stats(&self) -> Option<NodeStats> {
        let seen = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Some(NodeStats {
            keys_held: seen.keys.len() as u64,
            duplicates_dropped: seen.dropped,
            ..NodeStats::default()
        })
    }
}

/// Builds a `dedup` node.
pub(crate) fn build(
    key: &str,
    within: Duration,
    cx: &mut PlanContext<'_>,
) -> Option<Box<dyn Operator>> {
    let key = cx.expr(key, "dedup key", "/dedup/key".into())?;
    Some(Box::new(Dedup {
        id: cx.id.clone(),
        key,
        within_ms: within.as_millis().min(i64::MAX as u128) as i64,
        state: Mutex::new(Seen::default()),
    }))
}
