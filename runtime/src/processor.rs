//! What the runtime needs from the engine: a synchronous, CPU-only function from a batch of
//! inputs to one fate per input. `CompiledPipeline` implements it; so does any closure, which
//! keeps the runtime's own logic testable without compiling SQL. Stateful processors
//! (windows, dedup) also hand out and take back their state, and move their clock on.

use weir_engine::{BatchResult, Emitted, InputMessage, NodeStats};

/// Turns a batch of inputs into one fate per input (`fates[i]` belongs to `batch[i]`).
pub trait BatchProcessor: Send + Sync + 'static {
    /// Processes one batch.
    fn process(&self, batch: &[InputMessage]) -> BatchResult;

    /// Whether the processor keeps state across batches (it then runs checkpointed, on one
    /// batch loop of one worker at a time).
    fn is_stateful(&self) -> bool {
        false
    }

    /// The state, as bytes for a checkpoint.
    fn snapshot(&self) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }

    /// Replaces the state with a [`BatchProcessor::snapshot`] of it.
    fn restore(&self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }

    /// Moves the clock on to `now_micros` (idle timeouts); what that emitted.
    fn advance(&self, _now_micros: i64) -> Vec<Emitted> {
        Vec::new()
    }

    /// What each stateful node holds now.
    fn stats(&self) -> Vec<(String, NodeStats)> {
        Vec::new()
    }

    /// Another instance with its own, empty state (one per keyed partition); `Err` when the
    /// processor cannot make one.
    fn fresh(&self) -> Result<std::sync::Arc<dyn BatchProcessor>, String> {
        Err("this processor cannot run keyed partitions".into())
    }

    /// The partition key expressions compiled against the processor's source.
    fn key_extractor(&self, _exprs: &[String]) -> Result<weir_engine::keys::KeyExtractor, String> {
        Err("this processor cannot run keyed partitions".into())
    }
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

    fn is_stateful(&self) -> bool {
        weir_engine::CompiledPipeline::is_stateful(self)
    }

    fn snapshot(&self) -> Result<Vec<u8>, String> {
        weir_engine::CompiledPipeline::snapshot(self)
    }

    fn restore(&self, state: &[u8]) -> Result<(), String> {
        weir_engine::CompiledPipeline::restore(self, state)
    }

    fn advance(&self, now_micros: i64) -> Vec<Emitted> {
        weir_engine::CompiledPipeline::advance(self, now_micros)
    }

    fn stats(&self) -> Vec<(String, NodeStats)> {
        weir_engine::CompiledPipeline::stats(self)
    }

    fn fresh(&self) -> Result<std::sync::Arc<dyn BatchProcessor>, String> {
        self.recompile()
            .map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn BatchProcessor>)
            .map_err(|e| e.to_string())
    }

    fn key_extractor(&self, exprs: &[String]) -> Result<weir_engine::keys::KeyExtractor, String> {
        weir_engine::keys::KeyExtractor::compile(self.resource(), exprs).map_err(|e| e.to_string())
    }
}
