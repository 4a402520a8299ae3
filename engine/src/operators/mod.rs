//! Operators: one per node kind. Each builds itself from its planned spec ([`build`]) and
//! then takes a frame (a batch of messages at its node) and returns frames for its output
//! ports; per-message errors go to the batch context, never fail the batch.

mod dedup;
mod drop;
mod filter;
mod map;
mod publish;
mod quality;
mod route;
mod split;
mod validate;
mod wasm;
mod window;
mod window_agg;

use crate::columns::Catalog;
use crate::frame::{BatchContext, Frame};
pub(crate) use crate::frame::{Origin, SideOutput};
use crate::message::FailureKind;
use crate::sql::SqlExpr;
use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::DataType;
use datafusion::execution::SessionState;
use std::sync::Arc;
use weir_pipelines::plan::NodeOp;

/// What an operator's `build` works with: the session expressions are planned in, the catalog
/// of columns the pipeline reads, and the problems found so far at this node.
pub(crate) struct PlanContext<'a> {
    pub(crate) state: &'a SessionState,
    pub(crate) catalog: &'a mut Catalog,
    /// The node's id.
    pub(crate) id: Arc<str>,
    /// The node's JSON pointer (`/spec/nodes/3`).
    pub(crate) at: &'a str,
    /// The pipeline's tenant (empty when the file names none): whose modules `wasm` may use.
    pub(crate) tenant: &'a str,
    /// Compiling only to check the file (`weir validate`, the API): a `wasm` module this
    /// process does not hold is not a problem here (the API checks modules against its store).
    pub(crate) checking: bool,
    /// (pointer below the node, message).
    pub(crate) problems: Vec<(String, String)>,
}

impl PlanContext<'_> {
    /// Records that the catalog's next reads come from `field` of this node.
    pub(crate) fn reading(&mut self, field: &str) {
        self.catalog.reading = format!("{}{field}", self.at);
    }

    /// Records a problem at `field` of this node.
    pub(crate) fn problem(&mut self, field: impl Into<String>, message: String) {
        self.problems.push((field.into(), message));
    }

    /// Compiles a SQL expression read from `field` and plans it against the compile-time
    /// schema, so that unknown functions and columns are reported now, not on the first batch.
    pub(crate) fn expr(&mut self, text: &str, what: &str, field: String) -> Option<SqlExpr> {
        self.reading(&field);
        let compiled = SqlExpr::compile(text, self.state, self.catalog).and_then(|e| {
            let schema = self.catalog.schema(&self.catalog.compile_time_types());
            e.physical(self.state, &schema)?;
            Ok(e)
        });
        match compiled {
            Ok(e) => Some(e),
            Err(e) => {
                self.problem(field, format!("{what}: {e}"));
                None
            }
        }
    }
}

/// Builds the operator of a planned node; `None` when its problems are in `cx`.
pub(crate) fn build(op: &NodeOp, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    match op {
        NodeOp::Filter { predicate } => filter::build(predicate, cx),
        NodeOp::Map(spec) => map::build(spec, cx),
        NodeOp::Route { rules } => route::build(rules, cx),
        NodeOp::Publish(spec) => publish::build(spec, cx),
        NodeOp::Split(spec) => split::build(spec, cx),
        NodeOp::Drop(_) => Some(Box::new(drop::DropSink)),
        NodeOp::Window(spec) => window::build(spec, cx),
        NodeOp::Dedup { key, within } => dedup::build(key, *within, cx),
        NodeOp::Validate(spec) => validate::build(spec, cx),
        NodeOp::Wasm(plan) => wasm::build(plan, cx),
        NodeOp::Quality(spec) => quality::build(spec, cx),
    }
}

/// A map key or header name as one JSON pointer segment.
pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// A node's compute over batches. Only [`Operator::process_batch`] is required; the hooks are
/// for stateful operators (windows, dedup) and default to doing nothing.
pub(crate) trait Operator: Send + Sync {
    /// Processes the messages that reached this node; returns `(port, frame)` pairs. Port 0 is
    /// `next`; a route's ports are its rules in order, then `default`.
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)>;

    /// Whether it reads the messages' payloads (their JSON text), not only the columns:
    /// messages decoded without their text get it before such a node runs.
    fn reads_payload(&self) -> bool {
        true
    }

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

    /// Moves a stateful operator's clock to `now_micros` (wall clock), or to the end of time
    /// (`None`: close everything); returns what that emits.
    fn on_time(&self, _now_micros: Option<i64>) -> Vec<SideOutput> {
        Vec::new()
    }

    /// Whether the operator keeps state across batches.
    fn is_stateful(&self) -> bool {
        false
    }

    /// The operator's state as bytes, for a checkpoint; `None` when it keeps none.
    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }

    /// Replaces the operator's state with a [`Operator::snapshot`] of it.
    fn restore(
        &self,
        _bytes: &[u8],
        _state: &SessionState,
        _catalog: &Catalog,
    ) -> Result<(), String> {
        Ok(())
    }

    /// What a stateful operator holds now.
    fn stats(&self) -> Option<crate::message::NodeStats> {
        None
    }

    /// Named counters the node keeps (a `wasm` node's `weir.counter`).
    fn counters(&self) -> std::collections::BTreeMap<String, i64> {
        std::collections::BTreeMap::new()
    }
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
                ctx.fail(row, node, FailureKind::Expression, message.clone());
            }
            return BooleanArray::from(vec![false; n]);
        }
    };
    for (i, message) in &evaluated.errors {
        ctx.fail(
            &frame.rows[*i],
            node,
            FailureKind::Expression,
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
                ctx.fail(row, node, FailureKind::Expression, message.clone());
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
