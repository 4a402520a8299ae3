//! Operators: one per node kind. Each takes a frame (a batch of messages at its node) and
//! returns frames for its output ports; per-message errors go to the batch context, never
//! fail the batch.

mod drop;
mod filter;
mod map;
mod publish;
pub(crate) mod route;
mod split;

pub(crate) use drop::DropSink;
pub(crate) use filter::Filter;
pub(crate) use map::Map;
pub(crate) use publish::Publish;
pub(crate) use route::Route;
pub(crate) use split::Split;

use crate::frame::{BatchContext, Frame};
use crate::message::ErrorKind;
use crate::sql::SqlExpr;
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::DataType;

/// A node's compute over batches. Only [`Operator::process_batch`] is required; the hooks are
/// for stateful operators (windows, dedup) and default to doing nothing.
pub(crate) trait Operator: Send + Sync {
    /// Processes the messages that reached this node; returns `(port, frame)` pairs. Port 0 is
    /// `next`; a route's ports are its rules in order, then `default`.
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)>;

    /// Called once before the first batch.
    fn on_start(&self) {}

    /// Called when event time advances (windowed operators).
    #[allow(
        dead_code,
        reason = "hook for the stateful operators (window, dedup) to come"
    )]
    fn on_watermark(&self, _watermark_micros: i64) {}

    /// Called before a checkpoint is taken (stateful operators).
    #[allow(
        dead_code,
        reason = "hook for the stateful operators (window, dedup) to come"
    )]
    fn on_checkpoint(&self) {}

    /// Called once when the pipeline stops.
    fn on_close(&self) {}
}

/// Evaluates a predicate over a frame: true rows are kept, null counts as false, rows whose
/// evaluation failed are recorded as errors of `node` and count as false.
pub(crate) fn predicate_mask(
    expr: &SqlExpr,
    frame: &Frame,
    ctx: &mut BatchContext<'_>,
    node: &str,
) -> BooleanArray {
    let n = frame.rows.len();
    let batch = frame.batch(ctx.catalog);
    let evaluated = match expr.evaluate(ctx.state, &batch) {
        Ok(e) => e,
        Err(message) => {
            for row in &frame.rows {
                ctx.fail(row, node, ErrorKind::Expression, message.clone());
            }
            return BooleanArray::from(vec![false; n]);
        }
    };
    for (i, message) in &evaluated.errors {
        ctx.fail(
            &frame.rows[*i],
            node,
            ErrorKind::Expression,
            message.clone(),
        );
    }
    let values = match evaluated.values.data_type() {
        DataType::Boolean => evaluated.values.as_boolean().clone(),
        DataType::Null => BooleanArray::from(vec![false; n]),
        other => {
            let message = format!(
                "`{}` must be true or false, but it yields {other}",
                expr.text
            );
            for row in &frame.rows {
                ctx.fail(row, node, ErrorKind::Expression, message.clone());
            }
            return BooleanArray::from(vec![false; n]);
        }
    };
    if evaluated.errors.is_empty() && values.null_count() == 0 {
        return values;
    }
    let mut keep: Vec<bool> = (0..n)
        .map(|i| values.is_valid(i) && values.value(i))
        .collect();
    for (i, _) in &evaluated.errors {
        keep[*i] = false;
    }
    BooleanArray::from(keep)
}
