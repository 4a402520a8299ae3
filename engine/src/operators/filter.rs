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
        vec![(0, frame.filter(&mask))]
    }
}
