//! What happens to one pipeline's messages, recorded in one place: each outcome goes into the
//! Prometheus metrics, the heartbeat totals and the trace log together, so that the three
//! never disagree.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use weir_engine::{InputMessage, MessageError};

use crate::counters::PipelineTotals;
use crate::metrics::{ErrorLabels, Metrics, PipelineLabels};

/// One settled batch, as counted for metrics and heartbeats.
#[derive(Debug, Default)]
pub(crate) struct Settled<'a> {
    /// Deliveries in the batch.
    pub deliveries: u64,
    /// First deliveries (new messages) among them.
    pub first_deliveries: u64,
    /// Outputs stored, per publish node.
    pub out_by_node: BTreeMap<&'a str, u64>,
    /// Inputs acked as filtered.
    pub filtered: u64,
    /// Inputs acked after their dead letter was stored.
    pub dead_lettered: u64,
    /// Inputs naked, plus the outputs retried inside the batch.
    pub retried: u64,
    /// Fetch done → last ack sent.
    pub elapsed: Duration,
}

/// Records one pipeline's outcomes.
#[derive(Clone)]
pub struct Telemetry {
    pipeline: String,
    labels: PipelineLabels,
    metrics: Arc<Metrics>,
    totals: Arc<PipelineTotals>,
}

impl Telemetry {
    /// Telemetry of `pipeline` into `metrics` and `totals`.
    pub fn new(pipeline: &str, metrics: Arc<Metrics>, totals: Arc<PipelineTotals>) -> Self {
        Telemetry {
            pipeline: pipeline.to_string(),
            labels: Metrics::pipeline(pipeline),
            metrics,
            totals,
        }
    }

    /// The heartbeat totals.
    pub(crate) fn totals(&self) -> &Arc<PipelineTotals> {
        &self.totals
    }

    /// A batch of `count` deliveries was fetched.
    pub(crate) fn fetched(&self, count: usize) {
        self.metrics
            .messages_in
            .get_or_create(&self.labels)
            .inc_by(count as u64);
    }

    /// Fetching failed; the loop retries after `delay`.
    pub(crate) fn fetch_failed(
        &self,
        loop_id: usize,
        error: &dyn std::fmt::Display,
        delay: Duration,
    ) {
        let pipeline = &self.pipeline;
        tracing::warn!(%pipeline, loop_id, %error, ?delay, "fetch failed; retrying");
        self.totals.record_error(format!("fetch failed: {error}"));
    }

    /// The engine processed a batch in `elapsed`.
    pub(crate) fn processed(&self, elapsed: Duration) {
        self.metrics
            .process_duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The engine's per-node counts of a batch.
    pub(crate) fn nodes_counted(&self, counts: &[weir_engine::NodeCount]) {
        self.totals.record_nodes(counts);
        for c in counts {
            for (name, n) in &c.counters {
                // A quality node's counters are `<rule>.pass` and `<rule>.fail`.
                if let Some((rule, outcome)) = name.rsplit_once('.') {
                    let labels = crate::metrics::RuleLabels {
                        pipeline: self.pipeline.to_string(),
                        node: c.node.to_string(),
                        rule: rule.to_string(),
                        outcome: outcome.to_string(),
                    };
                    self.metrics
                        .quality_checks
                        .get_or_create(&labels)
                        .inc_by(*n);
                }
            }
        }
    }

    /// The engine failed as a whole on a batch.
    pub(crate) fn engine_failed(&self, reason: &str) {
        tracing::error!(pipeline = %self.pipeline, %reason, "batch failed inside the engine");
    }

    /// Outputs of these nodes are published again after `delay`, inside the delivery.
    pub(crate) fn publish_retried<'a>(
        &self,
        nodes: impl ExactSizeIterator<Item = &'a str>,
        delay: Duration,
    ) {
        let failed = nodes.len();
        for node in nodes {
            self.metrics
                .messages_retried
                .get_or_create(&Metrics::node(&self.pipeline, node))
                .inc();
        }
        tracing::debug!(pipeline = %self.pipeline, failed, ?delay, "retrying publishes");
    }

    /// The dead letter of `input` is stored.
    pub(crate) fn dead_lettered(&self, input: &InputMessage, error: &MessageError) {
        let kind = error.kind.as_str();
        self.totals.record_dead_letter(format!(
            "seq {} dead-lettered at node {} ({kind}): {}",
            input.seq, error.node, error.message
        ));
        tracing::debug!(pipeline = %self.pipeline, seq = input.seq, %kind, error = %error.message, "dead-lettered");
        self.metrics
            .messages_dead_lettered
            .get_or_create(&ErrorLabels {
                pipeline: self.pipeline.clone(),
                node: error.node.clone(),
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The dead letter of `input` could not be stored; the input is retried.
    pub(crate) fn dead_letter_not_stored(&self, input: &InputMessage, reason: &str) {
        tracing::warn!(pipeline = %self.pipeline, seq = input.seq, %reason, "dead letter not stored; will retry");
    }

    /// An input failed for now and is naked, to come back after `delay`.
    pub(crate) fn naked(&self, error: &MessageError, attempt: u64, delay: Duration) {
        let (node, reason) = (&error.node, &error.message);
        self.totals
            .record_error(format!("transient failure at node {node}: {reason}"));
        tracing::info!(pipeline = %self.pipeline, node = %node, %reason, attempt, ?delay, "transient failure; nak with delay");
        self.metrics
            .messages_retried
            .get_or_create(&Metrics::node(&self.pipeline, "nak"))
            .inc();
    }

    /// An ack or nak did not reach the server.
    pub(crate) fn ack_failed(&self, error: &str) {
        // The server redelivers after ack_wait; outputs are deduplicated by id.
        tracing::warn!(pipeline = %self.pipeline, %error, "ack failed; the message will be redelivered");
    }

    /// A batch is settled.
    pub(crate) fn settled(&self, batch: &Settled<'_>) {
        self.totals.record_batch(
            (batch.first_deliveries, batch.deliveries),
            batch.out_by_node.values().sum(),
            batch.filtered,
            batch.dead_lettered,
            batch.retried,
        );
        for (node, count) in &batch.out_by_node {
            self.metrics
                .messages_out
                .get_or_create(&Metrics::node(&self.pipeline, node))
                .inc_by(*count);
        }
        self.metrics
            .messages_filtered
            .get_or_create(&self.labels)
            .inc_by(batch.filtered);
        self.metrics
            .batch_duration
            .get_or_create(&self.labels)
            .observe(batch.elapsed.as_secs_f64());
    }

    /// What a stateful pipeline holds, into the heartbeat totals and the state gauges.
    pub(crate) fn state_reported(&self, report: &weir_pipelines::fleet::StateReport) {
        self.totals.record_state(report.clone());
        let values = [
            u64::from(report.owner),
            report.open_windows,
            report.keys_held,
            report.late_events,
            report.state_bytes,
        ];
        for (family, value) in self.metrics.state.iter().zip(values) {
            family
                .get_or_create(&self.labels)
                .set(i64::try_from(value).unwrap_or(i64::MAX));
        }
    }

    /// A checkpoint was taken in `elapsed`.
    pub(crate) fn checkpoint_taken(&self, elapsed: Duration) {
        self.metrics
            .checkpoint_duration
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The consumer's lag and ack-pending as last polled.
    pub(crate) fn consumer_polled(&self, pending: u64, ack_pending: u64) {
        self.totals.record_consumer(pending, ack_pending);
        self.metrics
            .consumer_pending
            .get_or_create(&self.labels)
            .set(pending as i64);
        self.metrics
            .consumer_ack_pending
            .get_or_create(&self.labels)
            .set(ack_pending as i64);
    }
}

/// How often consumer info is polled for the lag gauges.
const LAG_POLL: Duration = Duration::from_secs(3);

/// Polls `consumer`'s info every [`LAG_POLL`] for the lag gauges of `telemetry`, until `stop`.
/// A task of its own: a JetStream API reply is slow under load, and a batch loop that awaited
/// it would hold back its fetches and acks.
pub(crate) async fn poll_lag(
    consumer: async_nats::jetstream::consumer::PullConsumer,
    telemetry: Telemetry,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        match consumer.get_info().await {
            Ok(info) => telemetry.consumer_polled(info.num_pending, info.num_ack_pending as u64),
            Err(err) => {
                tracing::debug!(pipeline = %telemetry.pipeline, error = %err, "consumer info failed")
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(LAG_POLL) => {}
        }
    }
}
