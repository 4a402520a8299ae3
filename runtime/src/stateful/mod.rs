//! Running a stateful pipeline (`window`, `dedup`): one owner at a time, checkpointed state,
//! inputs acked only once a checkpoint covers them.
//!
//! - **Ownership.** Every worker that runs the pipeline competes for its lease (KV
//!   `weir_leases`, see `weir_connectors::checkpoints::Leases`); the holder runs one batch
//!   loop, the others stand by and take over when the lease expires (a dead worker) or is
//!   given back (a graceful stop).
//! - **Restore.** The new owner loads the last checkpoint (Object Store `weir_checkpoints`),
//!   restores the operators' state when the checkpoint belongs to the same stateful nodes
//!   (else it starts empty, and says so in its status), and re-creates the durable consumer
//!   to deliver from the stream sequence after the checkpoint's position, in order.
//! - **Checkpoints.** After `execution.checkpoint.interval` or `events` inputs, the state is
//!   snapshotted and stored with the position it reflects; only then are the inputs acked.
//!   Outputs are published as they are made; after a crash, the inputs after the checkpoint
//!   are processed again and their outputs, with the same ids, are deduplicated by the output
//!   stream (within its duplicate window).

mod batch;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use weir_connectors::checkpoints::{Checkpoint, CheckpointMeta, CheckpointStore, Lease, Leases};
use weir_connectors::{AckHandle, Delivery, PullSource, Settle};
use weir_pipelines::fleet::{StateReport, now_ms};

use crate::batch::PipelineRun;
use crate::ratelimit::IngestLimiter;
use batch::BatchEnd;

/// How long a lease lasts without renewal: a worker that dies loses its stateful pipelines
/// to a standby worker after at most this long. `WEIR_LEASE_TTL` (e.g. `3s`) sets it for
/// the lease bucket of an account when the first worker creates it.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// The lease time new lease buckets get: `WEIR_LEASE_TTL`, else [`LEASE_TTL`].
fn lease_ttl() -> Duration {
    std::env::var("WEIR_LEASE_TTL")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .filter(|d| *d >= Duration::from_secs(1))
        .unwrap_or(LEASE_TTL)
}
/// How long a fetch waits for a first message before the loop looks at its clocks.
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often consumer info is polled for the lag gauges.
const LAG_POLL: Duration = Duration::from_secs(3);
/// Pause before trying again after a failure (restore, consumer, engine).
const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Where a worker keeps the state of its stateful pipelines, and who it is to the leases.
#[derive(Clone)]
pub struct StateStore {
    checkpoints: CheckpointStore,
    leases: Leases,
    ttl: Duration,
    owner: String,
}

impl StateStore {
    /// Opens (creating when absent) the checkpoint and lease buckets of `js`'s account.
    pub async fn open(js: &jetstream::Context) -> Result<Self, String> {
        let checkpoints = CheckpointStore::open(js).await?;
        let leases = Leases::open(js, lease_ttl()).await?;
        let ttl = match leases.ttl().await {
            d if d.is_zero() => lease_ttl(),
            d => d,
        };
        Ok(StateStore {
            checkpoints,
            leases,
            ttl,
            owner: owner_id().to_string(),
        })
    }
}

/// This process's name on leases: host, process id and start time.
fn owner_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!("{host}:{}:{}", std::process::id(), now_ms())
    })
}

/// Why an owned run ended.
enum End {
    /// The worker stops the pipeline (the lease was given back).
    Stopped,
    /// The lease was lost, or something failed: the state is dropped and the lease sought
    /// again.
    Again(String),
}

/// The batch loop of a stateful pipeline: waits for its lease, runs while it holds it,
/// and starts over (from the last checkpoint) when it loses it.
pub(crate) async fn stateful_loop(
    run: Arc<PipelineRun>,
    js: jetstream::Context,
    store: StateStore,
    stop: CancellationToken,
    limiter: Option<Arc<IngestLimiter>>,
) {
    let pipeline = run.config.name.clone();
    let key = lease_key(&run.config.source.durable);
    // The state before any input: what a new owner starts from without a checkpoint.
    let empty = match run.processor.snapshot() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%pipeline, "cannot snapshot the empty state: {e}");
            return;
        }
    };
    let mut report = StateReport {
        started_from: "standing by for the lease".into(),
        ..StateReport::default()
    };
    run.telemetry.state_reported(&report);
    while !stop.is_cancelled() {
        let Some(lease) = acquire(&store, &key, &stop).await else {
            break;
        };
        tracing::info!(%pipeline, owner = %store.owner, "took the lease of the stateful pipeline");
        let mut owned = Owned {
            run: &run,
            store: &store,
            key: key.clone(),
            held: Vec::new(),
            position: 0,
            events: 0,
            pending: 0,
            last_checkpoint: Instant::now(),
            dirty: false,
            report: StateReport {
                owner: true,
                ..StateReport::default()
            },
        };
        let held = Arc::new(HeldLease {
            store: store.clone(),
            lease: tokio::sync::Mutex::new(Some((lease, Instant::now()))),
            lost: AtomicBool::new(false),
            halt: stop.child_token(),
        });
        let done = CancellationToken::new();
        let keeper = tokio::spawn(keep_lease(held.clone(), done.clone()));
        let end = owned.run(&js, &held, limiter.as_deref()).await;
        done.cancel();
        let _ = keeper.await;
        held.release().await;
        report = StateReport {
            owner: false,
            ..owned.report
        };
        match end {
            End::Stopped => break,
            End::Again(reason) => {
                tracing::warn!(%pipeline, "stateful pipeline starts over from its checkpoint: {reason}");
                run.telemetry.totals().record_error(reason.clone());
                report.started_from = format!("standing by: {reason}");
                run.telemetry.state_reported(&report);
                if let Err(e) = run.processor.restore(&empty) {
                    tracing::error!(%pipeline, "cannot reset the state: {e}");
                    return;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                }
            }
        }
    }
    run.telemetry.state_reported(&report);
}

/// The lease key of a durable consumer name (KV keys take `[-/_=.a-zA-Z0-9]`).
fn lease_key(durable: &str) -> String {
    durable
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_=.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Waits until the lease is ours; `None` when stopped first.
async fn acquire(store: &StateStore, key: &str, stop: &CancellationToken) -> Option<Lease> {
    let poll = (store.ttl / 4).max(Duration::from_millis(250));
    loop {
        match store.leases.acquire(key, &store.owner).await {
            Ok(Some(lease)) => return Some(lease),
            Ok(None) => {}
            Err(e) => tracing::warn!(key, "taking the lease failed: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return None,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// A lease this worker holds, shared by its keeper and its checkpoints: a checkpoint renews
/// it and is stored while holding it, so no checkpoint is written after the lease is lost
/// (a new owner may have restored the previous one already).
struct HeldLease {
    store: StateStore,
    /// The lease and when it was last renewed; `None` once lost.
    lease: tokio::sync::Mutex<Option<(Lease, Instant)>>,
    lost: AtomicBool,
    /// Cancelled when the lease is lost (a child of the pipeline's stop token).
    halt: CancellationToken,
}

impl HeldLease {
    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Renews the lease and returns the guard that keeps it from changing; `None` when it
    /// is not held (lost now or before) or could not be renewed this time.
    async fn renewed(&self) -> Option<tokio::sync::MutexGuard<'_, Option<(Lease, Instant)>>> {
        let mut guard = self.lease.lock().await;
        let (lease, renewed) = guard.as_ref()?;
        match self.store.leases.renew(lease, &self.store.owner).await {
            Ok(Some(l)) => {
                *guard = Some((l, Instant::now()));
                return Some(guard);
            }
            Ok(None) => tracing::warn!(key = %lease.key, "the lease was taken by another worker"),
            Err(e) if renewed.elapsed() < self.store.ttl * 2 / 3 => {
                tracing::warn!(key = %lease.key, "renewing the lease failed: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!(key = %lease.key, "the lease could not be renewed in time: {e}")
            }
        }
        *guard = None;
        self.lost.store(true, Ordering::SeqCst);
        self.halt.cancel();
        None
    }

    /// Gives the lease back, when still held.
    async fn release(&self) {
        if let Some((lease, _)) = self.lease.lock().await.take()
            && let Err(e) = self.store.leases.release(&lease).await
        {
            tracing::warn!(key = %lease.key, "giving the lease back failed: {e}");
        }
    }
}

/// Renews the lease every third of its time until `done` or until it is lost.
async fn keep_lease(held: Arc<HeldLease>, done: CancellationToken) {
    let every = held.store.ttl / 3;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        drop(held.renewed().await);
        if held.is_lost() {
            return;
        }
    }
}

/// A pipeline this worker owns, between checkpoints.
struct Owned<'a> {
    run: &'a PipelineRun,
    store: &'a StateStore,
    key: String,
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
    report: StateReport,
}

impl Owned<'_> {
    /// Restores, then processes batches until halted; a graceful stop takes a last
    /// checkpoint and acks what it covers.
    async fn run(
        &mut self,
        js: &jetstream::Context,
        held: &HeldLease,
        limiter: Option<&IngestLimiter>,
    ) -> End {
        let halt = &held.halt;
        let position = match self.restore().await {
            Ok(p) => p,
            Err(e) => return End::Again(e),
        };
        let mut source =
            match PullSource::open_from(js, self.run.config.source.clone(), position).await {
                Ok(s) => s,
                Err(e) => return End::Again(e.to_string()),
            };
        self.publish_report();
        let poll = IDLE_POLL.min(self.run.config.state.interval);
        let mut lag_polled: Option<Instant> = None;
        loop {
            if halt.is_cancelled() {
                return self.halted(held, &mut source).await;
            }
            if self.checkpoint_due()
                && let Err(e) = self.checkpoint(held).await
            {
                tracing::warn!(pipeline = %self.run.config.name, "checkpoint failed (inputs stay un-acked): {e}");
                self.run.telemetry.totals().record_error(e);
            }
            if lag_polled.is_none_or(|t| t.elapsed() >= LAG_POLL) {
                lag_polled = Some(Instant::now());
                if let Ok(info) = source.consumer().get_info().await {
                    self.run
                        .telemetry
                        .consumer_polled(info.num_pending, info.num_ack_pending as u64);
                }
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
            let emitted = self.run.processor.advance(now_micros);
            if deliveries.is_empty() && emitted.is_empty() {
                continue;
            }
            let last = deliveries.iter().map(|d| d.input.seq).max();
            let count = deliveries.len() as u64;
            match batch::run(self.run, deliveries, emitted, halt).await {
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
        let config = &self.run.config;
        let Some(checkpoint) = self.store.checkpoints.load(&self.key).await? else {
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
        self.run
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
    /// after `ack_wait`); their acks wait for the next checkpoint.
    fn skip_seen(&mut self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let mut fresh = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            if d.input.seq <= self.position {
                self.held.push(d.ack);
            } else {
                fresh.push(d);
            }
        }
        fresh
    }

    fn checkpoint_due(&self) -> bool {
        let s = &self.run.config.state;
        (self.dirty || !self.held.is_empty())
            && (self.pending >= s.events || self.last_checkpoint.elapsed() >= s.interval)
    }

    /// Snapshots the state, stores it with its position, then acks the inputs it covers.
    /// Stores nothing once the lease is lost (a new owner may have restored already).
    async fn checkpoint(&mut self, held: &HeldLease) -> Result<(), String> {
        let started = Instant::now();
        let Some(lease) = held.renewed().await else {
            return Err("the lease is not held (lost, or not renewed this time)".into());
        };
        let state = self.run.processor.snapshot()?;
        let checkpoint = Checkpoint {
            meta: CheckpointMeta {
                pipeline: self.run.config.name.clone(),
                position: self.position,
                fingerprint: self.run.config.state.fingerprint.clone(),
                taken_at_ms: now_ms(),
                events: self.events,
            },
            state,
        };
        let bytes = self.store.checkpoints.save(&self.key, &checkpoint).await?;
        drop(lease);
        for ack in self.held.drain(..) {
            if let Err(e) = ack.settle(Settle::Ack).await {
                self.run.telemetry.ack_failed(&e);
            }
        }
        self.pending = 0;
        self.dirty = false;
        self.last_checkpoint = Instant::now();
        let r = &mut self.report;
        r.checkpoints += 1;
        r.state_bytes = bytes as u64;
        r.position = self.position;
        r.last_checkpoint_ms = checkpoint.meta.taken_at_ms;
        r.last_checkpoint_took_ms = started.elapsed().as_millis() as u64;
        self.run.telemetry.checkpoint_taken(started.elapsed());
        self.publish_report();
        tracing::debug!(pipeline = %self.run.config.name, position = self.position, bytes, "checkpoint stored");
        Ok(())
    }

    /// Halted: a graceful stop checkpoints and acks; a lost lease drops everything (the
    /// new owner replays from the last checkpoint).
    async fn halted(&mut self, held: &HeldLease, source: &mut PullSource) -> End {
        if held.is_lost() {
            return End::Again("the lease was lost".into());
        }
        if (self.dirty || !self.held.is_empty())
            && let Err(e) = self.checkpoint(held).await
        {
            tracing::warn!(pipeline = %self.run.config.name, "last checkpoint failed; the next owner replays from the one before: {e}");
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
        for (_, s) in self.run.processor.stats() {
            if let Some(w) = s.watermark_ms {
                r.watermark_ms = Some(r.watermark_ms.map_or(w, |m| m.min(w)));
            }
            r.open_windows += s.open_windows;
            r.keys_held += s.keys_held;
            r.late_events += s.late_events;
            r.duplicates_dropped += s.duplicates_dropped;
        }
        self.run.telemetry.state_reported(r);
    }
}
