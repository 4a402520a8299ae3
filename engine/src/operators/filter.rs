//! `filter`: keeps the messages for which a SQL predicate is true.

use super::{Operator, predicate_mask};
use crate::frame::{BatchContext, Frame};
use crate::sql::SqlExpr;
use std::sync::Arc;

/// A compiled `filter` node.
pub(crate) struct Filter {
    pub(crate) id: Arc<str>,
    pub(crate) predicate: SqlExpr,
}

impl Operator for Filter {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let mask = predicate_mask(&self.predicate, &frame, ctx, &self.id);
        let kept = frame.split(std::slice::from_ref(&mask));
        kept.into_iter().map(|f| (0, f)).collect()
    }
}
