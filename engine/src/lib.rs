//! The Weir engine: pure compute, no network. A validated pipeline compiles once into an
//! operator DAG over Arrow `RecordBatch`es; a batch of messages goes in, and the result says,
//! for every input, its outputs, that it was filtered, or its error.
#![warn(missing_docs)]

pub mod message;

pub use message::*;
