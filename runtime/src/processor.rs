//! What the runtime needs from the engine: a synchronous, CPU-only function from a batch of
//! inputs to one fate per input. `CompiledPipeline` implements it; so does any closure, which
//! keeps the runtime's own logic testable without compiling SQL.

use weir_engine::{BatchResult, InputMessage};

/// Turns a batch of inputs into one fate per input (`fates[i]` belongs to `batch[i]`).
pub trait BatchProcessor: Send + Sync + 'static {
    /// Processes one batch.
    fn process(&self, batch: &[InputMessage]) -> BatchResult;
}

impl<F> BatchProcessor for F
where
    F: Fn(&[InputMessage]) -> BatchResult + Send + Sync + 'static,
{
    fn process(&self, batch: &[InputMessage]) -> BatchResult {
        self(batch)
    }
}

impl BatchProcessor for weir_engine::CompiledPipeline {
    fn process(&self, batch: &[InputMessage]) -> BatchResult {
        weir_engine::CompiledPipeline::process(self, batch)
    }
}
