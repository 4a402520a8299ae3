//! A state this worker owns, between checkpoints: restore, the batch loop, checkpoints that
//! ack what they cover, and the last checkpoint of a graceful stop.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream;
use weir_connectors::checkpoints::{Checkpoint, CheckpointMeta};
use weir_connectors::delivery::ack_through;
use weir_connectors::{AckHandle, Delivery, PullSource, SourceSettings};
use weir_pipelines::fleet::{StateReport, now_ms};

use super::batch::{self, BatchEnd};
use super::{End, HeldLease, IDLE_POLL, Slot, StateStore};
use crate::ratelimit::IngestLimiter;
use crate::telemetry::{Telemetry, poll_lag};
use tokio_util::task::AbortOnDropHandle;
use weir_connectors::partitions::PartitionLayout;

/// A pipeline this worker owns, between checkpoints.
pub(super) struct Owned<'a> {
    slot: &'a Slot,
    store: &'a StateStore,
    /// Acks of the inputs processed since the last checkpoint.
    held: Vec<AckHandle>,
    /// The last source sequence processed.
    position: u64,
    /// Inputs processed since the pipeline first started.
    events: u64,
    /// Inputs processed since the last checkpoint.
    pending: u64,
    last_checkpoint: Instant,
    /// Whether the state changed since the last checkpoint.
    dirty: bool,
    /// The checkpoint being stored in the background.
    storing: Option<Storing>,
    pub(super) report: StateReport,
}

/// A checkpoint being stored: what was stored, or why not with the acks it held back.
type Storing = tokio::task::JoinHandle<Result<Stored, (String, Vec<AckHandle>)>>;

/// A stored checkpoint.
struct Stored {
    bytes: usize,
    taken_at_ms: u64,
    position: u64,
    /// When its snapshot began.
    started: Instant,
}

/// Stores `checkpoint` under a freshly renewed lease, then acks the inputs it covers and
/// trims a partition's copies it covers.
async fn store_checkpoint(
    held: Arc<HeldLease>,
    store: StateStore,
    key: String,
    checkpoint: Checkpoint,
    acks: Vec<AckHandle>,
    (js, partition): (jetstream::Context, Option<(u32, PartitionLayout)>),
    (telemetry, started): (Telemetry, Instant),
) -> Result<Stored, (String, Vec<AckHandle>)> {
    let Some(lease) = held.renewed().await else {
        return Err((
            "the lease is not held (lost, or not renewed this time)".into(),
            acks,
        ));
    };
    let bytes = match store.checkpoints.save(&key, &checkpoint).await {
        Ok(bytes) => bytes,
        Err(e) => return Err((e, acks)),
    };
    drop(lease);
    // One ack for every input the checkpoint covers (the consumer acks cumulatively).
    if let Err(e) = ack_through(&acks).await {
        telemetry.ack_failed(&e);
    }
    let position = checkpoint.meta.position;
    // A partition's copies that the checkpoint covers are never read again.
    if let Some((p, layout)) = &partition
        && let Err(e) = layout.trim(&js, *p, position).await
    {
        tracing::debug!(key, "{e}");
    }
    Ok(Stored {
        bytes,
        taken_at_ms: checkpoint.meta.taken_at_ms,
        position,
        started,
    })
}

/// Splits `deliveries`, in the order they came, into those the state has not taken in yet
/// and those it has: each stream sequence at or before `position`, or at or before one that
/// came earlier in the same batch. The owner is its consumer's one reader, so first
/// deliveries come in stream order; a sequence again (a redelivery after `ack_wait`, or the
/// consumer's state rolled back by a nats-server restart, which may bring it back within
/// one batch) was counted already and must not reach the state twice.
fn first_deliveries<T>(
    position: u64,
    deliveries: Vec<T>,
    sequence: impl Fn(&T) -> u64,
) -> (Vec<T>, Vec<T>) {
    let mut last = position;
    let (mut fresh, mut seen) = (Vec::with_capacity(deliveries.len()), Vec::new());
    for d in deliveries {
        let s = sequence(&d);
        if s <= last {
            seen.push(d);
        } else {
            last = s;
            fresh.push(d);
        }
    }
    (fresh, seen)
}

impl<'a> Owned<'a> {
    /// Owning `slot`, before its checkpoint is restored.
    pub(super) fn new(slot: &'a Slot, store: &'a StateStore) -> Self {
        Owned {
            slot,
            store,
            held: Vec::new(),
            position: 0,
            events: 0,
            pending: 0,
            last_checkpoint: Instant::now(),
            dirty: false,
            storing: None,
            report: StateReport {
                owner: true,
                ..StateReport::default()
            },
        }
    }

    /// Restores, then processes batches until halted; a graceful stop takes a last
    /// checkpoint and acks what it covers.
    pub(super) async fn run(
        &mut self,
        js: &jetstream::Context,
        held: &Arc<HeldLease>,
        limiter: Option<&IngestLimiter>,
    ) -> End {
        let halt = &held.halt;
        let position = match self.restore().await {
            Ok(p) => p,
            Err(e) => return End::Again(e),
        };
        // The owner is the consumer's one reader, finishes deliveries in stream order and
        // never naks: a checkpoint's inputs are acked with one cumulative ack.
        let settings = SourceSettings {
            cumulative_acks: true,
            ..self.slot.run.config.source.clone()
        };
        let mut source = match PullSource::open_from(js, settings, position).await {
            Ok(s) => s,
            Err(e) => return End::Again(e.to_string()),
        };
        self.publish_report();
        let poll = IDLE_POLL.min(self.slot.run.config.state.interval);
        // The lag gauges, by a task of their own. A partition's consumer is internal: the
        // pipeline's lag is its routing stage's.
        let _lag = self.slot.partition.is_none().then(|| {
            AbortOnDropHandle::new(tokio::spawn(poll_lag(
                source.consumer(),
                self.slot.run.telemetry.clone(),
                halt.child_token(),
            )))
        });
        loop {
            if halt.is_cancelled() {
                return self.halted(js, held, &mut source).await;
            }
            if self.storing.as_ref().is_some_and(|s| s.is_finished())
                && let Err(e) = self.finish_storing().await
            {
                tracing::warn!(pipeline = %self.slot.run.config.name, "checkpoint not stored (its inputs wait for the next one): {e}");
                self.slot.run.telemetry.totals().record_error(e);
            }
            if self.checkpoint_due()
                && let Err(e) = self.checkpoint(js, held).await
            {
                tracing::warn!(pipeline = %self.slot.run.config.name, "checkpoint failed (inputs stay un-acked): {e}");
                self.slot.run.telemetry.totals().record_error(e);
            }
            if let Some(limiter) = limiter {
                tokio::select! {
                    _ = halt.cancelled() => continue,
                    _ = limiter.ready() => {}
                }
            }
            let fetched = tokio::select! {
                _ = halt.cancelled() => continue,
                fetched = source.next_batch(poll) => fetched,
            };
            let deliveries = match fetched {
                Ok(d) => d,
                // The consumer may have been re-created by a new owner (this worker's lease
                // lapsed unnoticed): never attach to it again. Start over from the lease.
                Err(e) => return End::Again(format!("fetch failed: {e}")),
            };
            if let Some(limiter) = limiter {
                limiter.take(deliveries.len());
            }
            let deliveries = self.skip_seen(deliveries);
            let now_micros = i64::try_from(now_ms())
                .unwrap_or(i64::MAX)
                .saturating_mul(1000);
            let emitted = self.slot.run.processor.advance(now_micros);
            if deliveries.is_empty() && emitted.is_empty() {
                continue;
            }
            let last = deliveries.iter().map(|d| d.position).max();
            let count = deliveries.len() as u64;
            match batch::run(&self.slot.run, deliveries, emitted, halt).await {
                BatchEnd::Done(acks) => {
                    self.held.extend(acks);
                    self.position = self.position.max(last.unwrap_or(0));
                    self.events += count;
                    self.pending += count;
                    self.dirty = true;
                    self.publish_report();
                }
                // The state holds inputs whose outputs are not all stored: no checkpoint
                // may cover it. The next owner replays from the last checkpoint.
                BatchEnd::Stopped => return End::Again("stopped while storing outputs".into()),
                BatchEnd::EngineFailed(reason) => return End::Again(reason),
            }
        }
    }

    /// Loads the last checkpoint and restores it when it belongs to these stateful nodes;
    /// returns the position to resume after (`None`: the consumer's own).
    async fn restore(&mut self) -> Result<Option<u64>, String> {
        let config = &self.slot.run.config;
        let Some(checkpoint) = self.store.checkpoints.load(&self.slot.key).await? else {
            self.report.started_from = "empty: no checkpoint yet".into();
            return Ok(None);
        };
        let meta = &checkpoint.meta;
        self.position = meta.position;
        self.events = meta.events;
        self.report.position = meta.position;
        self.report.state_bytes = checkpoint.state.len() as u64;
        self.report.last_checkpoint_ms = meta.taken_at_ms;
        if meta.fingerprint != config.state.fingerprint {
            self.report.started_from = format!(
                "empty: the checkpoint at position {} belongs to other window/dedup definitions (a changed node starts with no state)",
                meta.position
            );
            tracing::warn!(pipeline = %config.name, "{}", self.report.started_from);
            return Ok(Some(meta.position));
        }
        self.slot
            .run
            .processor
            .restore(&checkpoint.state)
            .map_err(|e| format!("restoring the checkpoint failed: {e}"))?;
        self.report.started_from = format!(
            "restored the checkpoint at position {} ({} bytes)",
            meta.position,
            checkpoint.state.len()
        );
        tracing::info!(pipeline = %config.name, "{}", self.report.started_from);
        Ok(Some(meta.position))
    }

    /// Drops deliveries the state already took in (the server delivered them again, e.g.
    /// after `ack_wait`, or after a restart); their acks wait for the next checkpoint.
    fn skip_seen(&mut self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let (fresh, seen) = first_deliveries(self.position, deliveries, |d| d.position);
        self.held.extend(seen.into_iter().map(|d| d.ack));
        fresh
    }

    fn checkpoint_due(&self) -> bool {
        let s = &self.slot.run.config.state;
        // While the last one is being stored, the next waits for it only when `events` inputs
        // are pending (the data path then waits for the store: backpressure).
        let storing = self.storing.is_some();
        (self.dirty || !self.held.is_empty())
            && (self.pending >= s.events
                || (!storing && self.last_checkpoint.elapsed() >= s.interval))
    }

    /// Snapshots the state (the only part on the data path), then stores it with its position
    /// and acks the inputs it covers in the background, while batches go on. One checkpoint is
    /// stored at a time: this waits for the one before. Nothing is stored once the lease is
    /// lost (a new owner may have restored already).
    async fn checkpoint(
        &mut self,
        js: &jetstream::Context,
        held: &Arc<HeldLease>,
    ) -> Result<(), String> {
        self.finish_storing().await?;
        let started = Instant::now();
        let state = self.slot.run.processor.snapshot()?;
        let pause = started.elapsed();
        let checkpoint = Checkpoint {
            meta: CheckpointMeta {
                pipeline: self.slot.run.config.name.clone(),
                position: self.position,
                fingerprint: self.slot.run.config.state.fingerprint.clone(),
                taken_at_ms: now_ms(),
                events: self.events,
            },
            state,
        };
        let acks = std::mem::take(&mut self.held);
        self.pending = 0;
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        tracing::trace!(pipeline = %self.slot.run.config.name, ?pause, "state snapshotted");
        self.storing = Some(tokio::spawn(store_checkpoint(
            held.clone(),
            self.store.clone(),
            self.slot.key.clone(),
            checkpoint,
            acks,
            (js.clone(), self.slot.partition.clone()),
            (self.slot.run.telemetry.clone(), started),
        )));
        Ok(())
    }

    /// Waits for the checkpoint being stored, if any, and takes its outcome in. One that was
    /// not stored leaves its inputs to the next checkpoint.
    async fn finish_storing(&mut self) -> Result<(), String> {
        let Some(storing) = self.storing.take() else {
            return Ok(());
        };
        match storing.await {
            Ok(Ok(stored)) => {
                let took = stored.started.elapsed();
                let r = &mut self.report;
                r.checkpoints += 1;
                r.state_bytes = stored.bytes as u64;
                r.position = stored.position;
                r.last_checkpoint_ms = stored.taken_at_ms;
                r.last_checkpoint_took_ms = took.as_millis() as u64;
                self.slot.run.telemetry.checkpoint_taken(took);
                self.publish_report();
                tracing::debug!(pipeline = %self.slot.run.config.name, position = stored.position, bytes = stored.bytes, "checkpoint stored");
                Ok(())
            }
            Ok(Err((reason, mut acks))) => {
                acks.append(&mut self.held);
                self.held = acks;
                self.dirty = true;
                Err(reason)
            }
            // Its acks are gone: the server redelivers those inputs, which are then held for
            // the next checkpoint as already seen.
            Err(e) => {
                self.dirty = true;
                Err(format!("storing the checkpoint failed: {e}"))
            }
        }
    }

    /// Halted: a graceful stop checkpoints and acks; a lost lease drops everything (the
    /// new owner replays from the last checkpoint).
    async fn halted(
        &mut self,
        js: &jetstream::Context,
        held: &Arc<HeldLease>,
        source: &mut PullSource,
    ) -> End {
        if held.is_lost() {
            return End::Again("the lease was lost".into());
        }
        let last = async {
            self.finish_storing().await.ok();
            if self.dirty || !self.held.is_empty() {
                self.checkpoint(js, held).await?;
            }
            self.finish_storing().await
        };
        if let Err(e) = last.await {
            tracing::warn!(pipeline = %self.slot.run.config.name, "last checkpoint failed; the next owner replays from the one before: {e}");
        }
        source.release_buffered().await;
        End::Stopped
    }

    /// Puts the state's figures into the heartbeat totals.
    fn publish_report(&mut self) {
        let r = &mut self.report;
        (
            r.open_windows,
            r.keys_held,
            r.late_events,
            r.duplicates_dropped,
        ) = (0, 0, 0, 0);
        r.watermark_ms = None;
        for (_, s) in self.slot.run.processor.stats() {
            if let Some(w) = s.watermark_ms {
                r.watermark_ms = Some(r.watermark_ms.map_or(w, |m| m.min(w)));
            }
            r.open_windows += s.open_windows;
            r.keys_held += s.keys_held;
            r.late_events += s.late_events;
            r.duplicates_dropped += s.duplicates_dropped;
        }
        self.slot
            .board
            .report(self.slot.partition.as_ref().map(|(p, _)| *p), r);
    }
}

#[cfg(test)]
mod tests {
    use super::first_deliveries;

    #[test]
    fn a_stream_sequence_reaches_the_state_once_even_twice_in_one_batch() {
        // Redeliveries of what the last checkpoint's position covers.
        assert_eq!(
            first_deliveries(10, vec![9, 10, 11, 12], |s| *s),
            (vec![11, 12], vec![9, 10])
        );
        // nats-server restarted and rolled the consumer back to 12: 13 and 14 come again in
        // the same batch, after sequences before them.
        assert_eq!(
            first_deliveries(10, vec![11, 12, 13, 14, 12, 13, 14, 15], |s| *s),
            (vec![11, 12, 13, 14, 15], vec![12, 13, 14])
        );
        assert_eq!(
            first_deliveries(10, Vec::<u64>::new(), |s| *s),
            (vec![], vec![])
        );
    }
}
