//! The Weir worker runtime: runs compiled pipelines on JetStream. Each pipeline gets a
//! durable pull consumer and `parallelism` batch loops; a batch is processed, its outputs
//! published with deterministic ids, and each input acked only once everything derived from
//! it is stored (or it was filtered, or its dead letter is stored).
#![warn(missing_docs)]

pub mod batch;
pub mod config;
pub mod counters;
mod disposition;
pub mod error;
mod exclusive;
pub mod fleet;
pub mod metrics;
pub mod processor;
pub mod ratelimit;
mod stateful;
pub mod telemetry;
pub mod worker;

pub use config::{PipelineConfig, RetrySettings, TenantSizeQuota};
pub use error::RuntimeError;
pub use fleet::{FleetConfig, FleetWorker};
pub use metrics::Metrics;
pub use processor::BatchProcessor;
pub use worker::{StartOptions, Worker};
