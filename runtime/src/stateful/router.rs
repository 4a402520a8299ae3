//! The routing stage of a partitioned stateful pipeline: a stateless processor that gives
//! each input one output, its copy on the subject of its partition (see
//! `weir_connectors::partitions`). It runs on the pipeline's own consumer with the worker's
//! ordinary batch loops, so copies are published and inputs acked (or dead-lettered, when
//! their key cannot be computed) as any stateless pipeline's are.

use std::sync::Arc;

use weir_connectors::partitions::{PartitionLayout, wrap};
use weir_engine::keys::KeyExtractor;
use weir_engine::{BatchResult, Fate, InputMessage, OutputMessage};

use crate::processor::BatchProcessor;

/// Node id that the copies come from, in counters and dead letters.
pub(crate) const ROUTE_NODE: &str = "partition";

/// Routes each input to its partition.
pub(crate) struct Router {
    pub(crate) keys: KeyExtractor,
    pub(crate) layout: PartitionLayout,
}

impl BatchProcessor for Router {
    fn process(&self, batch: &[InputMessage]) -> BatchResult {
        // One id for the batch, shared by its copies.
        let node: Arc<str> = Arc::from(ROUTE_NODE);
        let fates = self
            .keys
            .keys(batch)
            .into_iter()
            .zip(batch)
            .map(|(key, input)| match key {
                Ok(parts) => {
                    let p = self.layout.partition_of(parts.iter().map(|s| s.as_bytes()));
                    Fate::Outputs(vec![OutputMessage {
                        node: Arc::clone(&node),
                        subject: self.layout.subject(p),
                        headers: wrap(input),
                        payload: input.payload.clone(),
                    }])
                }
                Err(e) => Fate::Error(e),
            })
            .collect();
        BatchResult {
            fates,
            ..BatchResult::default()
        }
    }
}
