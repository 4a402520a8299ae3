//! The engine's contract with the connectors and the runtime: messages in, per-message fates
//! out. It lives here, beside the failure kinds, so that the connectors (which turn wire
//! messages into these and back) need not depend on the engine.

use bytes::Bytes;
use std::sync::Arc;

/// One input message, as the source fetched it from JetStream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InputMessage {
    /// Subject the message was published to.
    pub subject: String,
    /// Headers in arrival order (a name may repeat).
    pub headers: Vec<(String, String)>,
    /// The payload's original bytes.
    pub payload: Bytes,
    /// Stream sequence.
    pub seq: u64,
    /// Stream name.
    pub stream: String,
    /// Publish time, microseconds since the Unix epoch.
    pub timestamp_micros: i64,
}

/// One message a sink produced for an input.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputMessage {
    /// Id of the sink node that produced it (shared by its outputs: no copy per output).
    pub node: Arc<str>,
    /// Rendered subject.
    pub subject: String,
    /// Headers: the input's headers plus the sink's rendered headers.
    pub headers: Vec<(String, String)>,
    /// The original bytes when no node changed the payload, else the re-encoded JSON.
    pub payload: Bytes,
}

pub use crate::failure::FailureKind;

/// A per-message error with where and why.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageError {
    /// Node id where it happened (`source` for decode errors).
    pub node: String,
    /// What kind of error.
    pub kind: FailureKind,
    /// A human message saying what was wrong.
    pub message: String,
}

/// What happened to one input message.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// It produced these outputs (at least one).
    Outputs(Vec<OutputMessage>),
    /// A filter removed it, or every path ended in `drop`.
    Filtered,
    /// It failed; no output of it may be published. If any branch of a fan-out fails, the
    /// whole message fails, so that a redrive never duplicates the branches that succeeded.
    Error(MessageError),
}

/// The result of one batch: one fate per input, in input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchResult {
    /// `fates[i]` belongs to input `i`.
    pub fates: Vec<Fate>,
    /// What each node saw in this batch (`source` first, then the nodes in spec order); empty
    /// from processors that do not count.
    pub nodes: Vec<NodeCount>,
    /// Messages that stateful nodes (windows) emitted while this batch advanced their time;
    /// they derive from no single input.
    pub emitted: Vec<Emitted>,
}

/// What one node saw in one batch. Rows are messages inside the graph (a `split` makes
/// several of one input; a fan-out sends one to several nodes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeCount {
    /// Node id (`source` for decoding).
    pub node: std::sync::Arc<str>,
    /// Rows that reached it.
    pub rows_in: u64,
    /// Rows it passed on, per output port (0 for a port without targets).
    pub ports: Vec<u64>,
    /// Messages it published (sinks).
    pub outputs: u64,
    /// Inputs that failed here (their first error).
    pub errors: u64,
    /// Named counts the node kept in this batch (a `quality` node: `<rule>.pass` and
    /// `<rule>.fail`).
    pub counters: Vec<(String, u64)>,
}

/// A message a stateful node emitted (a closed window's result for one group), with what
/// became of it downstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// Id of the node that emitted it.
    pub node: String,
    /// A deterministic identity: `<node>:<window start ms>:<window end ms>:<group key JSON>`,
    /// the same whenever the same window closes for the same group (a base for message ids).
    pub id: String,
    /// Its outputs downstream, filtered, or an error.
    pub fate: Fate,
}

/// What a stateful node holds and has done, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeStats {
    /// Windows (or sessions) open now.
    pub open_windows: u64,
    /// Group keys (windows) or remembered keys (dedup) held now.
    pub keys_held: u64,
    /// Events sent to the `late` port so far.
    pub late_events: u64,
    /// Messages dropped as duplicates so far.
    pub duplicates_dropped: u64,
    /// A window's watermark (ms since the epoch), once it has one.
    pub watermark_ms: Option<i64>,
}
