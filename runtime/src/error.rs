//! Errors of the runtime: all of them are about setting a pipeline up; once running, a
//! pipeline's loops handle failures themselves (retry, nak, dead-letter) and never stop.

use weir_connectors::ConnectorError;

/// Why a pipeline could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A setting of the pipeline's spec could not be used.
    #[error("pipeline {pipeline}: {reason}")]
    Config {
        /// Pipeline name.
        pipeline: String,
        /// What was wrong and where.
        reason: String,
    },
    /// Talking to JetStream failed while setting the pipeline up.
    // The connector's error is part of the message, not a `source`: printed as a chain, it
    // would appear twice on one line.
    #[error("pipeline {pipeline}: {error}")]
    Connector {
        /// Pipeline name.
        pipeline: String,
        /// The connector's error.
        error: ConnectorError,
    },
    /// The pipeline does not compile.
    #[error(transparent)]
    Compile(#[from] weir_engine::CompileError),
    /// The metrics endpoint could not be served.
    #[error("cannot serve metrics on {addr}: {reason}")]
    Metrics {
        /// The address asked for.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The fleet machinery (KV buckets, watches, heartbeats) failed.
    #[error("fleet: {reason}")]
    Fleet {
        /// What went wrong.
        reason: String,
    },
}
