//! The end-to-end throughput harness behind `weir bench`: a real nats-server, N preloaded
//! order messages, a raw async-nats read → publish → ack baseline and the pipeline under
//! test, measured side by side in one run; plus a sweep of the tuning knobs.

pub mod harness;
pub mod knobs;
pub mod orders;
pub mod raw;

pub use harness::{BenchError, BenchOptions, BenchReport, KnobOverrides, Knobs, Measurement, run};
