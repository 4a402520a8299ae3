//! `delivery: exclusive`: a stateless pipeline whose consumer has one reader at a time.
//!
//! Every worker that runs the pipeline competes for its lease (the one stateful pipelines
//! use, see [`crate::stateful`]); the holder re-creates the durable consumer after its ack
//! floor with `AckPolicy::All` and runs one loop on it, the others stand by and take over
//! when the lease expires (a dead worker) or is given back (a graceful stop).
//!
//! The loop keeps as many batches in flight as its PubAck window holds (`max_in_flight` ÷
//! `batch_size`, at least [`BATCHES_IN_FLIGHT`] as a shared loop keeps, at most
//! [`MAX_BATCHES_IN_FLIGHT`]: see [`batches_in_flight`]), but finishes them in fetch order:
//! once a batch's outputs and dead letters are stored and every batch before it is finished,
//! one cumulative ack — its highest stream sequence — settles all its inputs. Nothing is ever
//! naked (a nak behind a later cumulative ack would be lost): publishes are retried in place
//! until stored, an input the engine failed for now is run again in place (`errors.retry`: up
//! to `max_attempts` runs, with its backoff) and then dead-lettered. Each batch runs in a task
//! of its own, so the engine and the sink of one batch use one core while the loop fetches and
//! acks on another. When a batch cannot finish (the worker stops while its outputs are still
//! being retried), no later batch is acked: the next owner re-creates the consumer after the
//! last ack and processes from there again, and the outputs' ids deduplicate what was stored.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use weir_connectors::delivery::ack_through;
use weir_connectors::{AckHandle, Delivery, PullSource, SourceSettings};

use crate::batch::{
    PipelineRun, admit, fold_publish_failures, process, process_retries, store_dead_letters,
    store_outbound, tally,
};
use crate::disposition::Disposition;
use crate::ratelimit::IngestLimiter;
use crate::stateful::{
    End, HeldLease, IDLE_POLL, RETRY_PAUSE, StateStore, acquire, holding, lease_key,
};
use crate::telemetry::poll_lag;

/// Batches fetched but not finished yet, at least (as a shared loop keeps).
pub(crate) const BATCHES_IN_FLIGHT: usize = 4;
/// Batches fetched but not finished yet, at most, whatever the window.
pub(crate) const MAX_BATCHES_IN_FLIGHT: usize = 64;

/// How many batches the loop keeps in flight: enough to fill the PubAck window. Batches finish
/// in fetch order, so a slow one holds every later one back; with only a few in flight, the
/// loop and nats-server wait on each other and leave cores idle (docs/bench.md: 16 batches of
/// 500 in flight against 4 of 256).
pub(crate) fn batches_in_flight(max_in_flight: usize, batch_size: usize) -> usize {
    max_in_flight
        .div_ceil(batch_size.max(1))
        .clamp(BATCHES_IN_FLIGHT, MAX_BATCHES_IN_FLIGHT)
}

/// The loop of an exclusive pipeline on one worker: waits for the lease, runs while it holds
/// it, and waits again when it loses it.
pub(crate) async fn exclusive_loop(
    run: Arc<PipelineRun>,
    js: jetstream::Context,
    store: StateStore,
    stop: CancellationToken,
    limiter: Option<Arc<IngestLimiter>>,
) {
    let pipeline = run.config.name.clone();
    let key = lease_key(&run.config.source.durable);
    while !stop.is_cancelled() {
        let Some(lease) = acquire(&store, &key, &stop).await else {
            break;
        };
        tracing::info!(%pipeline, "took the lease of the exclusive pipeline");
        let end = holding(&store, lease, &stop, |held| {
            run_owned(&run, &js, held, limiter.as_deref())
        })
        .await;
        match end {
            End::Stopped => break,
            End::Again(reason) => {
                tracing::warn!(%pipeline, "exclusive pipeline starts over after its last ack: {reason}");
                run.telemetry.totals().record_error(reason);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                }
            }
        }
    }
}

/// What a finished batch leaves: the acks of its inputs, or why it could not finish.
type Finished = Result<Vec<AckHandle>, String>;

/// Runs the pipeline while `held` is: re-creates the consumer after its ack floor, processes
/// batches, and acks each once it and all before it are finished.
async fn run_owned(
    run: &Arc<PipelineRun>,
    js: &jetstream::Context,
    held: Arc<HeldLease>,
    limiter: Option<&IngestLimiter>,
) -> End {
    let halt = &held.halt;
    let in_flight = batches_in_flight(run.config.max_in_flight, run.config.source.batch_size);
    let settings = SourceSettings {
        cumulative_acks: true,
        ..run.config.source.clone()
    };
    let mut source = match PullSource::open_from(js, settings, None).await {
        Ok(s) => s,
        Err(e) => return End::Again(e.to_string()),
    };
    // The lag gauges are polled by a task of their own, as for a shared pipeline.
    let _lag = AbortOnDropHandle::new(tokio::spawn(poll_lag(
        source.consumer(),
        run.telemetry.clone(),
        halt.child_token(),
    )));
    let mut settling: FuturesOrdered<_> = FuturesOrdered::new();
    let mut failed = None;
    while !halt.is_cancelled() && failed.is_none() {
        if settling.len() >= in_flight {
            if let Some(finished) = settling.next().await {
                failed = acked(run, &held, finished).await.err();
            }
            continue;
        }
        if let Some(limiter) = limiter {
            tokio::select! {
                _ = halt.cancelled() => break,
                _ = limiter.ready() => {}
                Some(finished) = settling.next(), if !settling.is_empty() => {
                    failed = acked(run, &held, finished).await.err();
                    continue;
                }
            }
        }
        // Finish batches while the fetch runs (it waits at most `IDLE_POLL` for a first
        // message, then `max_wait` to fill).
        let fetched = {
            let mut fetch = std::pin::pin!(source.next_batch(IDLE_POLL));
            loop {
                tokio::select! {
                    fetched = &mut fetch => break fetched,
                    Some(finished) = settling.next(), if !settling.is_empty() && failed.is_none() => {
                        failed = acked(run, &held, finished).await.err();
                    }
                }
            }
        };
        match fetched {
            Ok(batch) if batch.is_empty() => {}
            Ok(batch) => {
                if let Some(limiter) = limiter {
                    limiter.take(batch.len());
                }
                let (run, halt) = (run.clone(), halt.clone());
                // A task of its own per batch: the engine and the sink of one batch run on
                // one core while this loop fetches, acks and starts the next on another.
                // Dropped (the loop failed or stopped), it is aborted, as an inline future
                // would be dropped.
                let task = AbortOnDropHandle::new(tokio::spawn(async move {
                    run_batch(&run, batch, &halt).await
                }));
                settling.push_back(async move {
                    task.await
                        .unwrap_or_else(|e| Err(format!("the batch's task failed: {e}")))
                });
            }
            // The consumer may have been re-created by a new owner (this worker's lease
            // lapsed unnoticed): never read it again without the lease.
            Err(e) => failed = Some(format!("fetch failed: {e}")),
        }
    }
    // Finish what is in flight (its outputs are being stored); after a failure nothing
    // later may be acked, so the rest is dropped and comes again to the next owner.
    while failed.is_none()
        && let Some(finished) = settling.next().await
    {
        failed = acked(run, &held, finished).await.err();
    }
    match failed {
        _ if held.is_lost() => End::Again("the lease was lost".into()),
        Some(reason) => End::Again(reason),
        None => End::Stopped,
    }
}

/// Acks a finished batch (and with it every delivery before it) while the lease is current;
/// an error when the batch did not finish or the lease is not current (nothing is acked).
async fn acked(run: &PipelineRun, held: &HeldLease, finished: Finished) -> Result<(), String> {
    let acks = finished?;
    if !held.is_current() {
        return Err("the lease is not current: leaving the batch to the next owner".into());
    }
    if let Err(e) = ack_through(&acks).await {
        // The next ack covers it; failing that, the server redelivers after `ack_wait`.
        run.telemetry.ack_failed(&e);
    }
    Ok(())
}

/// Processes one batch and stores its outputs and dead letters, retrying in place; returns
/// the acks of its inputs, or why it stopped first (`halt`).
async fn run_batch(
    run: &PipelineRun,
    deliveries: Vec<Delivery>,
    halt: &CancellationToken,
) -> Finished {
    let started = Instant::now();
    run.telemetry.fetched(deliveries.len());
    let mut batch = admit(&run.config, deliveries);
    process(run, &mut batch);
    let max_attempts = run.config.retry.max_attempts.max(1);
    let mut attempt = 1u32;
    let mut retries = 0u64;
    while attempt < max_attempts
        && batch
            .verdicts
            .iter()
            .any(|v| matches!(v, Disposition::Retry(_)))
    {
        let delay = run.config.retry.backoff(attempt - 1);
        tokio::select! {
            _ = halt.cancelled() => return Err("stopped while retrying inputs".into()),
            _ = tokio::time::sleep(delay) => {}
        }
        retries += process_retries(run, &mut batch) as u64;
        attempt += 1;
    }
    for verdict in &mut batch.verdicts {
        let current = std::mem::replace(verdict, Disposition::Filtered);
        *verdict = current.escalate(u64::from(attempt), u64::from(max_attempts));
    }
    let (stored, publish_retries) = store_outbound(run, &batch, Some(halt)).await;
    if stored.iter().flatten().any(|f| f.kind.is_retryable()) {
        return Err("stopped while storing outputs".into());
    }
    fold_publish_failures(&mut batch, &stored);
    if !store_dead_letters(run, &batch, halt).await {
        return Err("stopped while storing dead letters".into());
    }
    tally(run, &batch, started, retries + publish_retries, &[]);
    Ok(batch.acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_sets_how_many_batches_are_in_flight() {
        // The defaults (window 1024, batches of 256) keep what a shared loop keeps.
        assert_eq!(batches_in_flight(1024, 256), BATCHES_IN_FLIGHT);
        assert_eq!(batches_in_flight(8192, 500), 17);
        assert_eq!(batches_in_flight(16, 256), BATCHES_IN_FLIGHT);
        assert_eq!(batches_in_flight(1_000_000, 1), MAX_BATCHES_IN_FLIGHT);
        assert_eq!(batches_in_flight(1024, 0), MAX_BATCHES_IN_FLIGHT);
    }
}
