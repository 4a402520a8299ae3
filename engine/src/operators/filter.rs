//! `filter`: keeps the messages for which a SQL predicate is true.

use super::{Operator, PlanContext, predicate_mask};
use crate::frame::{BatchContext, Frame};
use crate::sql::SqlExpr;
use std::sync::Arc;

/// A compiled `filter` node.
pub(crate) struct Filter {
    pub(crate) id: Arc<str>,
    pub(crate) predicate: SqlExpr,
}

impl Operator for Filter {
    /// Only its columns: messages it drops never get their text.
    fn reads_payload(&self) -> bool {
        false
    }

    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let mask = predicate_mask(&self.predicate, &frame, ctx, &self.id);
        let kept = frame.split(std::slice::from_ref(&mask));
        kept.into_iter().map(|f| (0, f)).collect()
    }
}

/// Builds a `filter` node from its predicate.
pub(crate) fn build(predicate: &str, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let predicate = cx.expr(predicate, "filter", "/filter".into())?;
    Some(Box::new(Filter {
        id: cx.id.clone(),
        predicate,
    }))
}
