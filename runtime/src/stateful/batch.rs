//! One batch of a stateful pipeline. The stages are the stateless batch's (admit, process,
//! publish, dead-letter), but nothing is acked here and nothing is handed back: the state has
//! taken the inputs in, so a failed publish is retried until it is stored, and the inputs'
//! acks are held until a checkpoint covers them. Window results get ids derived from the
//! window and group, so a result emitted again after a restore is deduplicated by its stream.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use weir_connectors::sink::headers_from_pairs;
use weir_connectors::{AckHandle, Delivery, Outbound};
use weir_engine::{Emitted, FailureKind, Fate};

use crate::batch::{
    Batch, PipelineRun, admit, fold_publish_failures, process, store_dead_letters, store_outbound,
    tally,
};
use crate::disposition::Disposition;

/// How a stateful batch ended.
pub(crate) enum BatchEnd {
    /// Outputs and dead letters stored: the acks to send once a checkpoint covers them.
    Done(Vec<AckHandle>),
    /// Stopped while outputs were still being retried: nothing may be acked.
    Stopped,
    /// The engine failed (a panic): its state may be half-updated; restore the checkpoint.
    EngineFailed(String),
}

/// Runs `deliveries` (possibly none) through the pipeline, stores their outputs, the window
/// results of this batch and of `emitted` (results a clock tick closed), and their dead
/// letters.
pub(crate) async fn run(
    run: &PipelineRun,
    deliveries: Vec<Delivery>,
    emitted: Vec<Emitted>,
    stop: &CancellationToken,
) -> BatchEnd {
    let started = Instant::now();
    if !deliveries.is_empty() {
        run.telemetry.fetched(deliveries.len());
    }
    let mut batch = admit(&run.config, deliveries);
    let mut results = process(run, &mut batch);
    for verdict in &mut batch.verdicts {
        match verdict {
            Disposition::Retry(e) if e.kind == FailureKind::Internal => {
                return BatchEnd::EngineFailed(e.message.clone());
            }
            // A redelivery would count the input into the state again: what the engine
            // could not do now goes to the DLQ at once.
            Disposition::Retry(e) => *verdict = Disposition::DeadLetter(e.clone()),
            _ => {}
        }
    }
    results.extend(emitted);
    let emitted = add_results(run, &mut batch, results);
    let (stored, retried) = store_outbound(run, &batch, Some(stop)).await;
    if stored
        .iter()
        .flatten()
        .any(|failure| failure.kind.is_retryable())
    {
        return BatchEnd::Stopped;
    }
    for (&o, failure) in emitted.iter().map(|o| (o, &stored[*o])) {
        if let Some(failure) = failure {
            let node = &batch.outbound_node[o];
            let what = format!(
                "window result of node `{node}` not stored: {}",
                failure.reason
            );
            tracing::error!(pipeline = %run.config.name, "{what}");
            run.telemetry.totals().record_error(what);
        }
    }
    fold_publish_failures(&mut batch, &stored);
    if !store_dead_letters(run, &batch, stop).await {
        return BatchEnd::Stopped;
    }
    tally(run, &batch, started, retried, &emitted);
    BatchEnd::Done(batch.acks)
}

/// Adds the outbound messages of window results; returns their indexes. A result that
/// failed downstream of its window (a bad subject template) belongs to no input, so it
/// cannot be dead-lettered: it is logged and kept as the pipeline's last error.
fn add_results(run: &PipelineRun, batch: &mut Batch, results: Vec<Emitted>) -> Vec<usize> {
    // A partition's results are its own: the same group key may be in two partitions when
    // `partition_by` is not the group key itself. A partition's consumer is named for it.
    let prefix = match run.config.source.partitioned {
        true => &run.config.source.durable,
        false => &run.config.name,
    };
    let mut added = Vec::new();
    for Emitted { node, id, fate } in results {
        match fate {
            Fate::Filtered => {}
            Fate::Error(error) => {
                let what = format!(
                    "window result {id} of node `{node}`: {} ({:?} at node `{}`)",
                    error.message, error.kind, error.node
                );
                tracing::error!(pipeline = %run.config.name, "{what}");
                run.telemetry.totals().record_error(what);
            }
            Fate::Outputs(outputs) => {
                for (k, output) in outputs.into_iter().enumerate() {
                    let headers = output.headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                    let headers = match headers_from_pairs(headers) {
                        Ok(h) => h,
                        Err(failure) => {
                            let what = format!("window result {id}: {}", failure.reason);
                            run.telemetry.totals().record_error(what);
                            continue;
                        }
                    };
                    added.push(batch.outbound.len());
                    batch.outbound.push(Outbound {
                        subject: output.subject,
                        headers,
                        payload: output.payload,
                        msg_id: format!("{prefix}:{id}:{k}"),
                    });
                    batch.outbound_node.push(output.node);
                }
            }
        }
    }
    added
}
