//! `drop`: a sink that discards messages on purpose (they count as filtered).

use super::Operator;
use crate::frame::{BatchContext, Frame};

/// A compiled `drop` node.
pub(crate) struct DropSink;

impl Operator for DropSink {
    /// Nothing: messages it discards never get their text.
    fn reads_payload(&self) -> bool {
        false
    }

    fn process_batch(&self, _frame: Frame, _ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        Vec::new()
    }
}
