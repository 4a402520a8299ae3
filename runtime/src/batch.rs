//! One batch, start to finish: convert the fetched messages, process them, publish outputs
//! with deterministic ids, dead-letter what failed for good, and only then ack — or nak with
//! a backoff delay what failed for now. Nothing is acked before its outputs are stored.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use weir_connectors::sink::headers_from_pairs;
use weir_connectors::{
    DeadLetter, DeadLetterPublisher, FailureClass, JetStreamSink, Outbound, PublishFailure,
};
use weir_engine::{Fate, InputMessage};

use crate::counters::PipelineTotals;
use crate::metrics::{ErrorLabels, Metrics};
use crate::{BatchProcessor, PipelineConfig};

/// Publish retries inside one delivery before the input is naked.
const IN_PROCESS_RETRIES: u32 = 2;
/// Longest time spent retrying publishes inside one delivery (keeps shutdown bounded).
const IN_PROCESS_RETRY_BUDGET: Duration = Duration::from_secs(4);

/// What one pipeline's batch loops share.
pub struct BatchContext {
    /// The pipeline's settings.
    pub config: Arc<PipelineConfig>,
    /// The compiled pipeline.
    pub processor: Arc<dyn BatchProcessor>,
    /// Output sink.
    pub sink: JetStreamSink,
    /// Dead-letter publisher.
    pub dlq: DeadLetterPublisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Plain totals of this pipeline (for heartbeats).
    pub totals: Arc<PipelineTotals>,
}

/// What happened to a batch, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Inputs in the batch.
    pub inputs: usize,
    /// Inputs acked after all their outputs were stored.
    pub published: usize,
    /// Inputs acked as filtered.
    pub filtered: usize,
    /// Inputs acked after their dead letter was stored.
    pub dead_lettered: usize,
    /// Inputs naked for a later retry.
    pub retried: usize,
}

enum Disposition {
    Publish(Vec<usize>),
    Filtered,
    DeadLetter {
        kind: String,
        node: String,
        error: String,
    },
    Retry {
        node: String,
        reason: String,
    },
}

struct Input {
    message: jetstream::Message,
    delivered: u64,
    disposition: Disposition,
}

/// Converts a JetStream message into the engine's input, with its delivery count.
pub fn to_input(message: &jetstream::Message) -> Option<(InputMessage, u64)> {
    let info = message.info().ok()?;
    let mut headers: Vec<(String, String)> = Vec::new();
    if let Some(map) = &message.headers {
        let mut names: Vec<_> = map.iter().collect();
        // HeaderMap does not keep arrival order; sort by name so that outputs are
        // deterministic across redeliveries.
        names.sort_by(|a, b| AsRef::<str>::as_ref(a.0).cmp(AsRef::<str>::as_ref(b.0)));
        for (name, values) in names {
            for value in values {
                headers.push((name.to_string(), value.as_str().to_string()));
            }
        }
    }
    let input = InputMessage {
        subject: message.subject.to_string(),
        headers,
        payload: message.payload.clone(),
        seq: info.stream_sequence,
        stream: info.stream.to_string(),
        timestamp_micros: (info.published.unix_timestamp_nanos() / 1_000) as i64,
    };
    Some((input, info.delivered.max(1) as u64))
}

/// Runs one fetched batch through the pipeline and settles every message in it.
pub async fn run_batch(ctx: &BatchContext, messages: Vec<jetstream::Message>) -> BatchOutcome {
    let started = Instant::now();
    let config = &ctx.config;
    let pipeline = config.name.as_str();
    let mut outcome = BatchOutcome {
        inputs: messages.len(),
        ..Default::default()
    };
    // Redeliveries are deliveries, not new messages.
    let first_deliveries = messages
        .iter()
        .filter(|m| m.info().map_or(true, |i| i.delivered <= 1))
        .count() as u64;
    ctx.metrics
        .messages_in
        .get_or_create(&Metrics::pipeline(pipeline))
        .inc_by(messages.len() as u64);

    // 1. Convert; refuse oversized payloads before they reach the engine.
    let mut inputs: Vec<Input> = Vec::with_capacity(messages.len());
    let mut engine_index: Vec<usize> = Vec::with_capacity(messages.len());
    let mut originals: Vec<InputMessage> = Vec::with_capacity(messages.len());
    for message in messages {
        let Some((input, delivered)) = to_input(&message) else {
            tracing::error!(pipeline, subject = %message.subject, "message without JetStream metadata; cannot ack it, skipping");
            continue;
        };
        let over_quota = config
            .tenant_quota
            .as_ref()
            .filter(|quota| input.payload.len() > quota.max_message_bytes);
        let disposition = if let Some(quota) = over_quota {
            Disposition::DeadLetter {
                kind: "quota".into(),
                node: "source".into(),
                error: format!(
                    "payload of {} bytes exceeds tenant {}'s quota max_message_bytes of {} bytes",
                    input.payload.len(),
                    quota.tenant,
                    quota.max_message_bytes
                ),
            }
        } else if input.payload.len() > config.max_message_size {
            Disposition::DeadLetter {
                kind: "size".into(),
                node: "source".into(),
                error: format!(
                    "payload of {} bytes exceeds the pipeline's max_message_size of {} bytes",
                    input.payload.len(),
                    config.max_message_size
                ),
            }
        } else {
            engine_index.push(inputs.len());
            Disposition::Filtered
        };
        originals.push(input);
        inputs.push(Input {
            message,
            delivered,
            disposition,
        });
    }

    // 2. Process. A panic or a malformed result is an internal error: retried, never acked.
    let mut outbound: Vec<Outbound> = Vec::new();
    let mut outbound_node: Vec<String> = Vec::new();
    // Usually every input goes to the engine: pass them without copying.
    let engine_inputs: std::borrow::Cow<'_, [InputMessage]> =
        if engine_index.len() == originals.len() {
            std::borrow::Cow::Borrowed(&originals)
        } else {
            engine_index.iter().map(|&i| originals[i].clone()).collect()
        };
    if !engine_inputs.is_empty() {
        let process_started = Instant::now();
        let processor = ctx.processor.clone();
        let result =
            std::panic::catch_unwind(AssertUnwindSafe(|| processor.process(&engine_inputs)));
        ctx.metrics
            .process_duration
            .get_or_create(&Metrics::pipeline(pipeline))
            .observe(process_started.elapsed().as_secs_f64());
        let fates = match result {
            Ok(result) if result.fates.len() == engine_inputs.len() => Ok(result.fates),
            Ok(result) => Err(format!(
                "engine returned {} fates for {} inputs",
                result.fates.len(),
                engine_inputs.len()
            )),
            Err(panic) => Err(format!("engine panicked: {}", panic_message(&panic))),
        };
        match fates {
            Err(reason) => {
                tracing::error!(pipeline, %reason, "batch failed inside the engine");
                for &i in &engine_index {
                    inputs[i].disposition = Disposition::Retry {
                        node: "engine".into(),
                        reason: reason.clone(),
                    };
                }
            }
            Ok(fates) => {
                for (fate, &i) in fates.into_iter().zip(&engine_index) {
                    let source = &originals[i];
                    inputs[i].disposition = match fate {
                        Fate::Filtered => Disposition::Filtered,
                        Fate::Error(err) => Disposition::DeadLetter {
                            kind: err.kind.as_str().into(),
                            node: err.node,
                            error: err.message,
                        },
                        Fate::Outputs(outputs) => {
                            let mut indexes = Vec::with_capacity(outputs.len());
                            let mut failed = None;
                            for (k, out) in outputs.into_iter().enumerate() {
                                match headers_from_pairs(
                                    out.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                                ) {
                                    Ok(headers) => {
                                        indexes.push(outbound.len());
                                        outbound.push(Outbound {
                                            subject: out.subject,
                                            headers,
                                            payload: out.payload,
                                            msg_id: format!(
                                                "{pipeline}:{}:{}:{k}",
                                                source.stream, source.seq
                                            ),
                                        });
                                        outbound_node.push(out.node);
                                    }
                                    Err(failure) => {
                                        failed = Some((out.node, failure.reason));
                                        break;
                                    }
                                }
                            }
                            match failed {
                                Some((node, error)) => Disposition::DeadLetter {
                                    kind: "template".into(),
                                    node,
                                    error,
                                },
                                None => Disposition::Publish(indexes),
                            }
                        }
                    };
                }
            }
        }
    }

    // 3. Publish outputs; retry transient failures a little inside this delivery.
    let mut results: Vec<Option<Result<(), PublishFailure>>> = vec![None; outbound.len()];
    let mut todo: Vec<usize> = (0..outbound.len()).collect();
    let mut attempt = 0u32;
    let mut in_process_retries = 0u64;
    let retry_started = Instant::now();
    loop {
        // Only publish outputs of inputs that are still going to be published.
        let published = ctx
            .sink
            .publish_each(todo.iter().map(|&o| &outbound[o]))
            .await;
        let mut again = Vec::new();
        for (&o, result) in todo.iter().zip(published) {
            match result {
                Ok(_) => results[o] = Some(Ok(())),
                Err(failure) => {
                    if failure.class == FailureClass::Transient {
                        again.push(o);
                    }
                    results[o] = Some(Err(failure));
                }
            }
        }
        if again.is_empty() || attempt >= IN_PROCESS_RETRIES {
            break;
        }
        let delay = config.retry.backoff(attempt);
        if retry_started.elapsed() + delay > IN_PROCESS_RETRY_BUDGET {
            break;
        }
        in_process_retries += again.len() as u64;
        for &o in &again {
            ctx.metrics
                .messages_retried
                .get_or_create(&Metrics::node(pipeline, &outbound_node[o]))
                .inc();
        }
        tracing::debug!(pipeline, failed = again.len(), ?delay, "retrying publishes");
        tokio::time::sleep(delay).await;
        attempt += 1;
        todo = again;
    }
    for input in &mut inputs {
        let Disposition::Publish(indexes) = &input.disposition else {
            continue;
        };
        let mut data_failure = None;
        let mut transient = None;
        for &o in indexes {
            if let Some(Err(failure)) = &results[o] {
                match failure.class {
                    FailureClass::Data => {
                        data_failure
                            .get_or_insert((outbound_node[o].clone(), failure.reason.clone()));
                    }
                    FailureClass::Transient => {
                        transient.get_or_insert((outbound_node[o].clone(), failure.reason.clone()));
                    }
                }
            }
        }
        if let Some((node, error)) = data_failure {
            input.disposition = Disposition::DeadLetter {
                kind: "publish".into(),
                node,
                error,
            };
        } else if let Some((node, reason)) = transient {
            input.disposition = if input.delivered >= u64::from(config.retry.max_attempts) {
                Disposition::DeadLetter {
                    kind: "transient".into(),
                    node,
                    error: format!(
                        "{reason}; gave up after {} deliveries (errors.retry.max_attempts)",
                        input.delivered
                    ),
                }
            } else {
                Disposition::Retry { node, reason }
            };
        }
    }
    // Internal errors also go to the DLQ once attempts are exhausted.
    for input in &mut inputs {
        if let Disposition::Retry { node, reason } = &input.disposition
            && node == "engine"
            && input.delivered >= u64::from(config.retry.max_attempts)
        {
            input.disposition = Disposition::DeadLetter {
                kind: "internal".into(),
                node: node.clone(),
                error: reason.clone(),
            };
        }
    }

    // 4. Dead letters: stored first, acked after.
    let mut letters = Vec::new();
    let mut letter_of = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if let Disposition::DeadLetter { kind, node, error } = &input.disposition {
            let original = &originals[i];
            letters.push(DeadLetter {
                subject: original.subject.clone(),
                headers: original.headers.clone(),
                payload: original.payload.clone(),
                kind: kind.clone(),
                error: error.clone(),
                pipeline: pipeline.to_string(),
                node: node.clone(),
                source_stream: original.stream.clone(),
                source_seq: original.seq,
                attempts: input.delivered,
            });
            letter_of.push(i);
        }
    }
    let dlq_results = ctx.dlq.publish(&letters).await;
    for ((i, result), letter) in letter_of.into_iter().zip(dlq_results).zip(&letters) {
        match result {
            Ok(()) => {
                ctx.totals.record_dead_letter(format!(
                    "seq {} dead-lettered at node {} ({}): {}",
                    letter.source_seq, letter.node, letter.kind, letter.error
                ));
                tracing::debug!(pipeline, seq = letter.source_seq, kind = %letter.kind, error = %letter.error, "dead-lettered");
                ctx.metrics
                    .messages_dead_lettered
                    .get_or_create(&ErrorLabels {
                        pipeline: pipeline.to_string(),
                        node: letter.node.clone(),
                        kind: letter.kind.clone(),
                    })
                    .inc();
            }
            Err(failure) => {
                tracing::warn!(pipeline, seq = letter.source_seq, reason = %failure.reason, "dead letter not stored; will retry");
                inputs[i].disposition = Disposition::Retry {
                    node: "dlq".into(),
                    reason: failure.reason,
                };
            }
        }
    }

    // 5. Settle: ack what is done, nak with backoff what must be retried.
    let mut out_by_node: BTreeMap<&str, u64> = BTreeMap::new();
    for input in &inputs {
        let ack = match &input.disposition {
            Disposition::Publish(indexes) => {
                outcome.published += 1;
                for &o in indexes {
                    *out_by_node.entry(outbound_node[o].as_str()).or_default() += 1;
                }
                AckKind::Ack
            }
            Disposition::Filtered => {
                outcome.filtered += 1;
                AckKind::Ack
            }
            Disposition::DeadLetter { .. } => {
                outcome.dead_lettered += 1;
                AckKind::Ack
            }
            Disposition::Retry { node, reason } => {
                outcome.retried += 1;
                let delay = config
                    .retry
                    .backoff(input.delivered.saturating_sub(1).min(64) as u32);
                ctx.totals
                    .record_error(format!("transient failure at node {node}: {reason}"));
                tracing::info!(pipeline, node = %node, %reason, attempt = input.delivered, ?delay, "transient failure; nak with delay");
                ctx.metrics
                    .messages_retried
                    .get_or_create(&Metrics::node(pipeline, "nak"))
                    .inc();
                AckKind::Nak(Some(delay))
            }
        };
        if let Err(err) = input.message.ack_with(ack).await {
            // The server redelivers after ack_wait; outputs are deduplicated by id.
            tracing::warn!(pipeline, error = %err, "ack failed; the message will be redelivered");
        }
    }
    ctx.totals.record_batch(
        (first_deliveries, outcome.inputs as u64),
        out_by_node.values().sum(),
        outcome.filtered as u64,
        outcome.dead_lettered as u64,
        outcome.retried as u64 + in_process_retries,
    );
    for (node, count) in out_by_node {
        ctx.metrics
            .messages_out
            .get_or_create(&Metrics::node(pipeline, node))
            .inc_by(count);
    }
    ctx.metrics
        .messages_filtered
        .get_or_create(&Metrics::pipeline(pipeline))
        .inc_by(outcome.filtered as u64);
    ctx.metrics
        .batch_duration
        .get_or_create(&Metrics::pipeline(pipeline))
        .observe(started.elapsed().as_secs_f64());
    outcome
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}
