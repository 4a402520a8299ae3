//! What a bench is tuned with (the knobs a sweep varies and the pipeline file can set) and
//! why a bench can fail; shared by the harness and the raw baselines.

use std::time::Duration;

/// Why a bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Talking to NATS failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The pipeline file is unusable for a bench.
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// No nats-server could be started.
    #[error("cannot start nats-server: {0}")]
    Server(String),
    /// A stage did not finish in time.
    #[error("{0}")]
    Stalled(String),
    /// Writing a file the bench was asked for failed.
    #[error("writing {0}")]
    Io(String),
}

pub(crate) fn nats<E: std::fmt::Display>(err: E) -> BenchError {
    BenchError::Nats(err.to_string())
}

/// The tuning knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Knobs {
    /// Messages per fetched batch.
    pub batch_size: usize,
    /// Longest wait for a batch to fill.
    pub max_wait: Duration,
    /// In-flight PubAcks per loop.
    pub window: usize,
    /// Concurrent batch loops.
    pub parallelism: usize,
}

/// Knobs given on the command line: each replaces the pipeline file's own value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct KnobOverrides {
    /// Messages per fetched batch.
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill.
    pub max_wait: Option<Duration>,
    /// In-flight PubAcks per loop.
    pub window: Option<usize>,
    /// Concurrent batch loops.
    pub parallelism: Option<usize>,
}

impl KnobOverrides {
    /// `base` with the given knobs in place of its own.
    pub fn over(self, base: Knobs) -> Knobs {
        Knobs {
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            max_wait: self.max_wait.unwrap_or(base.max_wait),
            window: self.window.unwrap_or(base.window),
            parallelism: self.parallelism.unwrap_or(base.parallelism),
        }
    }
}

impl Knobs {
    /// The knobs a pipeline runs with: its file's values, Weir's defaults for the rest.
    pub fn of(config: &weir_runtime::PipelineConfig) -> Knobs {
        Knobs {
            batch_size: config.source.batch_size,
            max_wait: config.source.max_wait,
            window: config.max_in_flight,
            parallelism: config.parallelism,
        }
    }

    /// The knobs as the pipeline file writes them.
    pub fn snippet(&self) -> String {
        format!(
            "spec:\n  source:\n    consumer: {{ batch_size: {}, max_wait: {} }}\n  execution: {{ parallelism: {}, max_in_flight: {} }}\n",
            self.batch_size,
            humantime_ms(self.max_wait),
            self.parallelism,
            self.window
        )
    }
}

/// A duration as the pipeline format writes it (`5ms`).
fn humantime_ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}
