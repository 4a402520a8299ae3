//! Every metric the worker exports, with its name and labels, in one place; and the tiny
//! HTTP endpoint that serves them in the Prometheus text format.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `weir_messages_in_total` | counter | `pipeline` |
//! | `weir_messages_out_total` | counter | `pipeline`, `node` (the publish node) |
//! | `weir_messages_filtered_total` | counter | `pipeline` |
//! | `weir_messages_dead_lettered_total` | counter | `pipeline`, `node`, `kind` |
//! | `weir_messages_retried_total` | counter | `pipeline`, `node` (`nak` or the publish node) |
//! | `weir_batch_duration_seconds` | histogram | `pipeline` (fetch done → last ack sent) |
//! | `weir_process_duration_seconds` | histogram | `pipeline` (engine time per batch) |
//! | `weir_consumer_pending` | gauge | `pipeline` (messages not yet delivered: lag) |
//! | `weir_consumer_ack_pending` | gauge | `pipeline` (delivered, not yet acked) |
//! | `weir_state_owner` | gauge | `pipeline` (1 while this worker owns a stateful pipeline) |
//! | `weir_state_open_windows` | gauge | `pipeline` |
//! | `weir_state_keys` | gauge | `pipeline` (group keys and dedup keys held) |
//! | `weir_state_late_events` | gauge | `pipeline` (events sent to `late` ports so far) |
//! | `weir_state_checkpoint_bytes` | gauge | `pipeline` (size of the last checkpoint) |
//! | `weir_state_checkpoint_duration_seconds` | histogram | `pipeline` (snapshot and store) |
//! | `weir_quality_checks_total` | counter | `pipeline`, `node`, `rule`, `outcome` (`pass`, `fail`) |

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::RuntimeError;

/// Label set `{pipeline}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PipelineLabels {
    /// Pipeline name.
    pub pipeline: String,
}

/// Label set `{pipeline, node}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NodeLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Node id.
    pub node: String,
}

/// Label set `{pipeline, node, rule, outcome}` of a `quality` node's checks.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Node id.
    pub node: String,
    /// Rule name.
    pub rule: String,
    /// `pass` or `fail`.
    pub outcome: String,
}

/// Label set `{pipeline, node, kind}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Pipeline name.
    pub pipeline: String,
    /// Node id.
    pub node: String,
    /// Error kind, as in `Weir-Error-Kind`.
    pub kind: String,
}

fn batch_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The worker's metrics. Cheap to clone handles live inside; share it with `Arc`.
pub struct Metrics {
    registry: Registry,
    /// `weir_messages_in_total`
    pub messages_in: Family<PipelineLabels, Counter>,
    /// `weir_messages_out_total`
    pub messages_out: Family<NodeLabels, Counter>,
    /// `weir_messages_filtered_total`
    pub messages_filtered: Family<PipelineLabels, Counter>,
    /// `weir_messages_dead_lettered_total`
    pub messages_dead_lettered: Family<ErrorLabels, Counter>,
    /// `weir_messages_retried_total`
    pub messages_retried: Family<NodeLabels, Counter>,
    /// `weir_batch_duration_seconds`
    pub batch_duration: Family<PipelineLabels, Histogram, fn() -> Histogram>,
    /// `weir_process_duration_seconds`
    pub process_duration: Family<PipelineLabels, Histogram, fn() -> Histogram>,
    /// `weir_consumer_pending`
    pub consumer_pending: Family<PipelineLabels, Gauge>,
    /// `weir_consumer_ack_pending`
    pub consumer_ack_pending: Family<PipelineLabels, Gauge>,
    /// `weir_state_owner`, `weir_state_open_windows`, `weir_state_keys`,
    /// `weir_state_late_events`, `weir_state_checkpoint_bytes`, in that order.
    pub state: [Family<PipelineLabels, Gauge>; 5],
    /// `weir_state_checkpoint_duration_seconds`
    pub checkpoint_duration: Family<PipelineLabels, Histogram, fn() -> Histogram>,
    /// `weir_quality_checks_total`
    pub quality_checks: Family<RuleLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let messages_in = Family::<PipelineLabels, Counter>::default();
        let messages_out = Family::<NodeLabels, Counter>::default();
        let messages_filtered = Family::<PipelineLabels, Counter>::default();
        let messages_dead_lettered = Family::<ErrorLabels, Counter>::default();
        let messages_retried = Family::<NodeLabels, Counter>::default();
        let batch_duration =
            Family::<PipelineLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                batch_histogram,
            );
        let process_duration =
            Family::<PipelineLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                batch_histogram,
            );
        let consumer_pending = Family::<PipelineLabels, Gauge>::default();
        let consumer_ack_pending = Family::<PipelineLabels, Gauge>::default();
        let quality_checks = Family::<RuleLabels, Counter>::default();
        registry.register(
            "weir_quality_checks",
            "Checks of the rules of quality nodes, per rule and outcome",
            quality_checks.clone(),
        );
        registry.register(
            "weir_messages_in",
            "Input messages fetched from the source",
            messages_in.clone(),
        );
        registry.register(
            "weir_messages_out",
            "Output messages stored (PubAck received), per publish node",
            messages_out.clone(),
        );
        registry.register(
            "weir_messages_filtered",
            "Inputs filtered or dropped on purpose",
            messages_filtered.clone(),
        );
        registry.register(
            "weir_messages_dead_lettered",
            "Inputs stored in the dead-letter queue, per failing node and error kind",
            messages_dead_lettered.clone(),
        );
        registry.register(
            "weir_messages_retried",
            "Retries of transient failures: in-process publish retries (node) and naks (node=nak)",
            messages_retried.clone(),
        );
        registry.register(
            "weir_batch_duration_seconds",
            "Time from a fetched batch to its last ack",
            batch_duration.clone(),
        );
        registry.register(
            "weir_process_duration_seconds",
            "Engine time per batch",
            process_duration.clone(),
        );
        registry.register(
            "weir_consumer_pending",
            "Messages of the source not yet delivered to the consumer (lag)",
            consumer_pending.clone(),
        );
        registry.register(
            "weir_consumer_ack_pending",
            "Messages delivered and not yet acknowledged",
            consumer_ack_pending.clone(),
        );
        let state: [Family<PipelineLabels, Gauge>; 5] = Default::default();
        for (family, (name, help)) in state.iter().zip([
            (
                "weir_state_owner",
                "1 while this worker owns the stateful pipeline (others stand by)",
            ),
            ("weir_state_open_windows", "Windows and sessions open now"),
            (
                "weir_state_keys",
                "Group keys (windows) and dedup keys held now",
            ),
            ("weir_state_late_events", "Events sent to late ports so far"),
            ("weir_state_checkpoint_bytes", "Size of the last checkpoint"),
        ]) {
            registry.register(name, help, family.clone());
        }
        let checkpoint_duration =
            Family::<PipelineLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                batch_histogram,
            );
        registry.register(
            "weir_state_checkpoint_duration_seconds",
            "Time to snapshot the state and store the checkpoint",
            checkpoint_duration.clone(),
        );
        Metrics {
            registry,
            state,
            checkpoint_duration,
            messages_in,
            messages_out,
            messages_filtered,
            messages_dead_lettered,
            messages_retried,
            batch_duration,
            process_duration,
            consumer_pending,
            consumer_ack_pending,
            quality_checks,
        }
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Labels `{pipeline}`.
    pub fn pipeline(name: &str) -> PipelineLabels {
        PipelineLabels {
            pipeline: name.to_string(),
        }
    }

    /// Labels `{pipeline, node}`.
    pub fn node(pipeline: &str, node: &str) -> NodeLabels {
        NodeLabels {
            pipeline: pipeline.to_string(),
            node: node.to_string(),
        }
    }
}

/// Serves `GET /metrics` on `addr` until `stop` is cancelled. Returns the bound address (so
/// that `127.0.0.1:0` can be used) and the server task.
pub async fn serve(
    addr: &str,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), RuntimeError> {
    let fail = |reason: String| RuntimeError::Metrics {
        addr: addr.to_string(),
        reason,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let local = listener.local_addr().map_err(|e| fail(e.to_string()))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(err) = result {
            tracing::error!(error = %err, "metrics server failed");
        }
    });
    Ok((local, task))
}
