//! One batch, start to finish, in stages: admit (size and quota checks), process (the
//! engine), publish outputs (retrying a little), dead-letter what failed for good, and settle:
//! ack what is done — only once its outputs or its dead letter are stored — and nak with a
//! backoff delay what failed for now. Each stage gives a verdict per input
//! ([`Disposition`]); the wire formats stay in the connectors.

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use weir_connectors::{
    AckHandle, DeadLetterPublisher, Delivery, Failed, JetStreamSink, MsgIdPolicy, Outbound,
    PublishFailure, Settle,
};
use weir_engine::{Emitted, FailureKind, Fate, InputMessage, MessageError, OutputMessage};

use crate::disposition::Disposition;
use crate::telemetry::{Settled, Telemetry};
use crate::{BatchProcessor, PipelineConfig};

/// Publish retries inside one delivery before the input is naked.
const IN_PROCESS_RETRIES: u32 = 2;
/// Longest time spent retrying publishes inside one delivery (keeps shutdown bounded).
const IN_PROCESS_RETRY_BUDGET: Duration = Duration::from_secs(4);
/// Longest pause between attempts to store dead letters that the DLQ refused.
const DLQ_RETRY_MAX: Duration = Duration::from_secs(5);

/// What one running pipeline's batch loops share.
pub struct PipelineRun {
    /// The pipeline's settings.
    pub config: Arc<PipelineConfig>,
    /// The compiled pipeline.
    pub processor: Arc<dyn BatchProcessor>,
    /// Output sink.
    pub sink: JetStreamSink,
    /// How outputs get their deduplication ids.
    pub ids: MsgIdPolicy,
    /// Dead-letter publisher.
    pub dlq: DeadLetterPublisher,
    /// Metrics, heartbeat totals and traces.
    pub telemetry: Telemetry,
}

/// What happened to a batch, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchReport {
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

/// A batch between stages: inputs, their ack handles and verdicts (same index), which of
/// them go to the engine, and the outbound messages of the outputs.
pub(crate) struct Batch {
    pub(crate) inputs: Vec<InputMessage>,
    pub(crate) acks: Vec<AckHandle>,
    pub(crate) verdicts: Vec<Disposition>,
    to_engine: Vec<usize>,
    pub(crate) outbound: Vec<Outbound>,
    pub(crate) outbound_node: Vec<Arc<str>>,
}

/// Runs one fetched batch through the pipeline and settles every delivery in it.
pub async fn run_batch(run: &PipelineRun, deliveries: Vec<Delivery>) -> BatchReport {
    let started = Instant::now();
    run.telemetry.fetched(deliveries.len());
    let mut batch = admit(&run.config, deliveries);
    process(run, &mut batch);
    let (results, in_process_retries) = store_outbound(run, &batch, None).await;
    fold_publish_failures(&mut batch, &results);
    let max_attempts = u64::from(run.config.retry.max_attempts);
    for (verdict, ack) in batch.verdicts.iter_mut().zip(&batch.acks) {
        let current = std::mem::replace(verdict, Disposition::Filtered);
        *verdict = current.escalate(ack.attempts(), max_attempts);
    }
    for (i, reason) in dead_letter(run, &batch).await {
        batch.verdicts[i] = Disposition::failed(FailureKind::Transient, "dlq", reason);
    }
    settle(run, &batch, started, in_process_retries).await
}

/// Admit: refuse oversized payloads before they reach the engine.
pub(crate) fn admit(config: &PipelineConfig, deliveries: Vec<Delivery>) -> Batch {
    let mut batch = Batch {
        inputs: Vec::with_capacity(deliveries.len()),
        acks: Vec::with_capacity(deliveries.len()),
        verdicts: Vec::with_capacity(deliveries.len()),
        to_engine: Vec::with_capacity(deliveries.len()),
        outbound: Vec::new(),
        outbound_node: Vec::new(),
    };
    for (i, Delivery { input, ack, .. }) in deliveries.into_iter().enumerate() {
        let verdict = match oversized(config, &input) {
            Some(error) => Disposition::failure(error),
            None => {
                batch.to_engine.push(i);
                Disposition::Filtered
            }
        };
        batch.inputs.push(input);
        batch.acks.push(ack);
        batch.verdicts.push(verdict);
    }
    batch
}

/// Why a payload is too large for the tenant's quota or the pipeline, if it is.
fn oversized(config: &PipelineConfig, input: &InputMessage) -> Option<MessageError> {
    let size = input.payload.len();
    let error = |kind, message| {
        Some(MessageError {
            node: "source".into(),
            kind,
            message,
        })
    };
    if let Some(quota) = config
        .tenant_quota
        .as_ref()
        .filter(|quota| size > quota.max_message_bytes)
    {
        return error(
            FailureKind::Quota,
            format!(
                "payload of {size} bytes exceeds tenant {}'s quota max_message_bytes of {} bytes",
                quota.tenant, quota.max_message_bytes
            ),
        );
    }
    if size > config.max_message_size {
        return error(
            FailureKind::Size,
            format!(
                "payload of {size} bytes exceeds the pipeline's max_message_size of {} bytes",
                config.max_message_size
            ),
        );
    }
    None
}

/// Process: run the admitted inputs through the engine. A panic or a malformed result is an
/// internal error: retried, never acked. Returns what stateful nodes emitted.
pub(crate) fn process(run: &PipelineRun, batch: &mut Batch) -> Vec<Emitted> {
    if batch.to_engine.is_empty() {
        return Vec::new();
    }
    // Usually every input goes to the engine: pass them without copying.
    let engine_inputs: Cow<'_, [InputMessage]> = if batch.to_engine.len() == batch.inputs.len() {
        Cow::Borrowed(&batch.inputs)
    } else {
        batch
            .to_engine
            .iter()
            .map(|&i| batch.inputs[i].clone())
            .collect()
    };
    match run_engine(run, &engine_inputs) {
        Err(reason) => {
            run.telemetry.engine_failed(&reason);
            for &i in &batch.to_engine {
                batch.verdicts[i] =
                    Disposition::failed(FailureKind::Internal, "engine", reason.clone());
            }
            Vec::new()
        }
        Ok((fates, emitted)) => {
            for (fate, &i) in fates.into_iter().zip(&batch.to_engine) {
                batch.verdicts[i] = match fate {
                    Fate::Filtered => Disposition::Filtered,
                    Fate::Error(error) => Disposition::failure(error),
                    Fate::Outputs(outputs) => add_outputs(
                        &run.ids,
                        &batch.inputs[i],
                        outputs,
                        (&mut batch.outbound, &mut batch.outbound_node),
                    ),
                };
            }
            emitted
        }
    }
}

/// Runs the inputs whose verdict is `Retry` through the engine again (a pipeline that
/// retries in place instead of handing inputs back); returns how many went. Only for a
/// stateless pipeline: a stateful node would take them in twice.
pub(crate) fn process_retries(run: &PipelineRun, batch: &mut Batch) -> usize {
    batch.to_engine = batch
        .verdicts
        .iter()
        .enumerate()
        .filter(|(_, v)| matches!(v, Disposition::Retry(_)))
        .map(|(i, _)| i)
        .collect();
    process(run, batch);
    batch.to_engine.len()
}

/// The engine's fates for `inputs` and what stateful nodes emitted, timed; an error when it
/// panics or answers malformed.
fn run_engine(
    run: &PipelineRun,
    inputs: &[InputMessage],
) -> Result<(Vec<Fate>, Vec<Emitted>), String> {
    let started = Instant::now();
    let processor = run.processor.clone();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| processor.process(inputs)));
    run.telemetry.processed(started.elapsed());
    match result {
        Ok(result) if result.fates.len() == inputs.len() => {
            run.telemetry.nodes_counted(&result.nodes);
            Ok((result.fates, result.emitted))
        }
        Ok(result) => Err(format!(
            "engine returned {} fates for {} inputs",
            result.fates.len(),
            inputs.len()
        )),
        Err(panic) => Err(format!("engine panicked: {}", panic_message(&panic))),
    }
}

/// Turns one input's outputs into outbound messages (the sink's wire format and ids). When
/// one cannot be sent (a header NATS cannot carry), none of the input's outputs are.
fn add_outputs(
    ids: &MsgIdPolicy,
    input: &InputMessage,
    outputs: Vec<OutputMessage>,
    (outbound, outbound_node): (&mut Vec<Outbound>, &mut Vec<Arc<str>>),
) -> Disposition {
    let first = outbound.len();
    for (k, output) in outputs.into_iter().enumerate() {
        let node = Arc::clone(&output.node);
        match Outbound::from_output(ids, input, k, output) {
            Ok(message) => {
                outbound.push(message);
                outbound_node.push(node);
            }
            Err(failure) => {
                outbound.truncate(first);
                outbound_node.truncate(first);
                return Disposition::failed(failure.kind, &node, failure.reason);
            }
        }
    }
    Disposition::Publish((first..outbound.len()).collect())
}

/// Publish: store the outbound messages. Transient failures are retried a little inside this
/// delivery; with `until`, they are retried until stored or until the token is cancelled (a
/// stateful pipeline cannot hand an input back: its state already took it in). Returns each
/// message's failure and how many retries were made.
pub(crate) async fn store_outbound(
    run: &PipelineRun,
    batch: &Batch,
    until: Option<&CancellationToken>,
) -> (Vec<Option<PublishFailure>>, u64) {
    let mut results: Vec<Option<PublishFailure>> = vec![None; batch.outbound.len()];
    let mut todo: Vec<usize> = (0..batch.outbound.len()).collect();
    let mut attempt = 0u32;
    let mut retried = 0u64;
    let started = Instant::now();
    loop {
        let published = run
            .sink
            .publish_each(todo.iter().map(|&o| &batch.outbound[o]))
            .await;
        let mut again = Vec::new();
        for (&o, result) in todo.iter().zip(published) {
            results[o] = result.err();
            if results[o].as_ref().is_some_and(|f| f.kind.is_retryable()) {
                again.push(o);
            }
        }
        if again.is_empty() {
            break;
        }
        let delay = run.config.retry.backoff(attempt.min(16));
        match until {
            None if attempt >= IN_PROCESS_RETRIES
                || started.elapsed() + delay > IN_PROCESS_RETRY_BUDGET =>
            {
                break;
            }
            Some(stop) if stop.is_cancelled() => break,
            _ => {}
        }
        retried += again.len() as u64;
        let nodes = again.iter().map(|&o| &*batch.outbound_node[o]);
        run.telemetry.publish_retried(nodes, delay);
        match until {
            Some(stop) => {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            None => tokio::time::sleep(delay).await,
        }
        attempt += 1;
        todo = again;
    }
    (results, retried)
}

/// Folds each output's publish failure into its input's verdict.
pub(crate) fn fold_publish_failures(batch: &mut Batch, results: &[Option<PublishFailure>]) {
    for verdict in &mut batch.verdicts {
        let Disposition::Publish(indexes) = &*verdict else {
            continue;
        };
        let failures: Vec<Disposition> = indexes
            .iter()
            .filter_map(|&o| {
                let failure = results[o].as_ref()?;
                let node = &batch.outbound_node[o];
                Some(Disposition::failed(
                    failure.kind,
                    node,
                    failure.reason.clone(),
                ))
            })
            .collect();
        for failure in failures {
            let current = std::mem::replace(verdict, Disposition::Filtered);
            *verdict = current.merge(failure);
        }
    }
}

/// Dead-letter: store the dead letters of what failed for good. Returns the inputs whose
/// dead letter was not stored, with the reason.
pub(crate) async fn dead_letter(run: &PipelineRun, batch: &Batch) -> Vec<(usize, String)> {
    let mut letters = Vec::new();
    let mut letter_of = Vec::new();
    for (i, verdict) in batch.verdicts.iter().enumerate() {
        if let Disposition::DeadLetter(error) = verdict {
            letters.push(Failed {
                input: &batch.inputs[i],
                error,
                attempts: batch.acks[i].attempts(),
            });
            letter_of.push(i);
        }
    }
    let results = run.dlq.publish(&letters).await;
    let mut not_stored = Vec::new();
    for ((i, result), letter) in letter_of.into_iter().zip(results).zip(&letters) {
        match result {
            Ok(()) => run.telemetry.dead_lettered(letter.input, letter.error),
            Err(failure) => {
                run.telemetry
                    .dead_letter_not_stored(letter.input, &failure.reason);
                not_stored.push((i, failure.reason));
            }
        }
    }
    not_stored
}

/// Stores the batch's dead letters, retrying until the DLQ takes them (their ids make
/// repeats harmless); `false` when stopped first.
pub(crate) async fn store_dead_letters(
    run: &PipelineRun,
    batch: &Batch,
    stop: &CancellationToken,
) -> bool {
    let mut attempt = 0u32;
    loop {
        let not_stored = dead_letter(run, batch).await;
        if not_stored.is_empty() {
            return true;
        }
        let delay = run.config.retry.backoff(attempt.min(16)).min(DLQ_RETRY_MAX);
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        attempt += 1;
    }
}

/// Settle: ack what is done, nak with backoff what must be retried; record the batch.
async fn settle(
    run: &PipelineRun,
    batch: &Batch,
    started: Instant,
    in_process_retries: u64,
) -> BatchReport {
    let (report, settles) = tally(run, batch, started, in_process_retries, &[]);
    for (settle, ack) in settles.into_iter().zip(&batch.acks) {
        if let Err(error) = ack.settle(settle).await {
            run.telemetry.ack_failed(&error);
        }
    }
    report
}

/// Records the batch (counts, outputs by node, the batch's time) and says how each delivery
/// is settled. `emitted` are outbound messages that belong to no input (window results).
pub(crate) fn tally(
    run: &PipelineRun,
    batch: &Batch,
    started: Instant,
    in_process_retries: u64,
    emitted: &[usize],
) -> (BatchReport, Vec<Settle>) {
    let mut report = BatchReport {
        inputs: batch.inputs.len(),
        ..Default::default()
    };
    let mut settled = Settled {
        deliveries: batch.inputs.len() as u64,
        first_deliveries: batch.acks.iter().filter(|a| a.is_first()).count() as u64,
        ..Default::default()
    };
    for &o in emitted {
        *settled
            .out_by_node
            .entry(&*batch.outbound_node[o])
            .or_default() += 1;
    }
    let mut settles = Vec::with_capacity(batch.acks.len());
    for (verdict, ack) in batch.verdicts.iter().zip(&batch.acks) {
        settles.push(match verdict {
            Disposition::Publish(indexes) => {
                report.published += 1;
                for &o in indexes {
                    *settled
                        .out_by_node
                        .entry(&*batch.outbound_node[o])
                        .or_default() += 1;
                }
                Settle::Ack
            }
            Disposition::Filtered => {
                report.filtered += 1;
                Settle::Ack
            }
            Disposition::DeadLetter(_) => {
                report.dead_lettered += 1;
                Settle::Ack
            }
            Disposition::Retry(error) => {
                report.retried += 1;
                let attempt = ack.attempts();
                let delay = run
                    .config
                    .retry
                    .backoff(attempt.saturating_sub(1).min(64) as u32);
                run.telemetry.naked(error, attempt, delay);
                Settle::Retry(delay)
            }
        });
    }
    settled.filtered = report.filtered as u64;
    settled.dead_lettered = report.dead_lettered as u64;
    settled.retried = report.retried as u64 + in_process_retries;
    settled.elapsed = started.elapsed();
    run.telemetry.settled(&settled);
    (report, settles)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn output(node: &str, header: &str) -> OutputMessage {
        OutputMessage {
            node: node.into(),
            subject: format!("out.{node}"),
            headers: vec![(header.into(), "v".into())],
            payload: "{}".into(),
        }
    }

    #[test]
    fn outputs_get_ids_per_input_and_a_bad_header_withholds_all_of_them() {
        let ids = MsgIdPolicy::PerInput {
            pipeline: "p".into(),
        };
        let input = InputMessage {
            stream: "IN".into(),
            seq: 7,
            ..Default::default()
        };
        let (mut outbound, mut nodes) = (Vec::new(), Vec::new());
        let ok = add_outputs(
            &ids,
            &input,
            vec![output("a", "X-A"), output("b", "X-B")],
            (&mut outbound, &mut nodes),
        );
        assert_eq!(ok, Disposition::Publish(vec![0, 1]));
        let msg_ids: Vec<_> = outbound.iter().map(|o| o.msg_id.as_str()).collect();
        assert_eq!(msg_ids, ["p:IN:7:0", "p:IN:7:1"]);
        assert_eq!(nodes.iter().map(|n| &**n).collect::<Vec<_>>(), ["a", "b"]);

        let bad = add_outputs(
            &ids,
            &input,
            vec![output("c", "X-C"), output("d", "bad name")],
            (&mut outbound, &mut nodes),
        );
        let Disposition::DeadLetter(error) = bad else {
            panic!("not dead-lettered: {bad:?}")
        };
        assert_eq!(
            (error.kind, error.node.as_str()),
            (FailureKind::Template, "d")
        );
        assert!(error.message.contains("bad name"), "{}", error.message);
        assert_eq!(
            outbound.len(),
            2,
            "the first output of the failed input is withheld"
        );
        assert_eq!(nodes.len(), 2);
    }
}
