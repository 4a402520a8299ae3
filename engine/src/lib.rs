//! The Weir engine: pure compute, no network. A validated pipeline compiles once into an
//! operator DAG over Arrow `RecordBatch`es; a batch of messages goes in, and the result says,
//! for every input, its outputs, that it was filtered, or its error.
//!
//! Entry point: [`plan`] (or `weir_pipelines::plan`) and [`CompiledPipeline::from_plan`], or
//! [`CompiledPipeline::compile`] for both; then [`CompiledPipeline::process`] per batch.
//! [`testing`] runs a pipeline's `tests:` cases and `weir test` input files.
#![warn(missing_docs)]

mod binary;
pub mod check;
mod columns;
mod decode;
mod frame;
mod json_check;
mod json_types;
pub mod keys;
pub mod message;
mod operators;
mod payload;
mod pipeline;
mod scan;
mod schema_failures;
mod snapshot;
mod sql;
mod template;
pub mod testing;
pub mod wasm;

pub use check::check;
pub use message::*;
pub use pipeline::{CompileError, CompileProblem, CompiledPipeline, plan};
pub use scan::MAX_DEPTH;
