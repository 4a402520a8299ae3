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
//! - **Keyed partitions** (`execution.partitions`): a routing stage copies each input to its
//!   partition's subject of a partition stream, and every partition is such a state of its
//!   own, with its own lease, checkpoint and consumer, spread over the workers (see
//!   [`partitioned`]).

mod batch;
mod board;
mod owned;
pub(crate) mod partitioned;
pub(crate) mod router;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio_util::sync::CancellationToken;
use weir_connectors::checkpoints::{CheckpointStore, Lease, Leases};
use weir_connectors::partitions::PartitionLayout;
use weir_pipelines::fleet::{StateReport, now_ms};

use crate::batch::PipelineRun;
use crate::ratelimit::IngestLimiter;
pub(crate) use board::StateBoard;
use owned::Owned;

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
pub(crate) const IDLE_POLL: Duration = Duration::from_millis(250);
/// Pause before trying again after a failure (restore, consumer, engine).
pub(crate) const RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Where a worker keeps the state of its stateful pipelines, and who it is to the leases.
#[derive(Clone)]
pub struct StateStore {
    checkpoints: CheckpointStore,
    leases: Leases,
    ttl: Duration,
    owner: String,
}

impl StateStore {
    /// Opens (creating when absent) the checkpoint and lease buckets of `js`'s account, for
    /// the worker known on leases as `owner` (see [`owner_id`]).
    pub async fn open(js: &jetstream::Context, owner: &str) -> Result<Self, String> {
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
            owner: owner.to_string(),
        })
    }
}

/// A new worker's name on leases, `host:pid:start-wN`: host, process id, the process's start
/// time and the worker's number in the process. Two workers of one process (tests, or a
/// worker replaced in place) are two owners: one never takes over what the other holds
/// before it expires.
pub(crate) fn owner_id() -> String {
    static PROCESS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static WORKERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into());
        format!("{host}:{}:{}", std::process::id(), now_ms())
    });
    format!("{process}-w{}", WORKERS.fetch_add(1, Ordering::Relaxed))
}

/// Why an owned run ended.
pub(crate) enum End {
    /// The worker stops the pipeline (the lease was given back).
    Stopped,
    /// The lease was lost, or something failed: the state is dropped and the lease sought
    /// again.
    Again(String),
}

/// One unit of state and where it lives: the whole state of an unpartitioned pipeline, or
/// one keyed partition.
pub(crate) struct Slot {
    /// Its processor and source (a partition's own instance and consumer).
    pub(crate) run: Arc<PipelineRun>,
    /// Its lease and checkpoint name.
    pub(crate) key: String,
    /// The partition, and where the partitions live (to trim what checkpoints cover).
    pub(crate) partition: Option<(u32, PartitionLayout)>,
    /// Where its state is reported.
    pub(crate) board: Arc<StateBoard>,
}

/// The batch loop of an unpartitioned stateful pipeline: waits for its lease, runs while it
/// holds it, and starts over (from the last checkpoint) when it loses it.
pub(crate) async fn stateful_loop(
    run: Arc<PipelineRun>,
    js: jetstream::Context,
    store: StateStore,
    stop: CancellationToken,
    limiter: Option<Arc<IngestLimiter>>,
) {
    let pipeline = run.config.name.clone();
    // The state before any input: what a new owner starts from without a checkpoint.
    let empty = match run.processor.snapshot() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%pipeline, "cannot snapshot the empty state: {e}");
            return;
        }
    };
    let slot = Slot {
        key: lease_key(&run.config.source.durable),
        board: Arc::new(StateBoard::new(run.telemetry.clone(), 1)),
        partition: None,
        run,
    };
    let mut report = StateReport {
        started_from: "standing by for the lease".into(),
        ..StateReport::default()
    };
    slot.board.report(None, &report);
    while !stop.is_cancelled() {
        let Some(lease) = acquire(&store, &slot.key, &stop).await else {
            break;
        };
        tracing::info!(%pipeline, owner = %store.owner, "took the lease of the stateful pipeline");
        let (end, last) = own(&slot, &store, lease, &js, &stop, limiter.as_deref()).await;
        report = StateReport {
            owner: false,
            ..last
        };
        match end {
            End::Stopped => break,
            End::Again(reason) => {
                tracing::warn!(%pipeline, "stateful pipeline starts over from its checkpoint: {reason}");
                slot.run.telemetry.totals().record_error(reason.clone());
                report.started_from = format!("standing by: {reason}");
                slot.board.report(None, &report);
                if let Err(e) = slot.run.processor.restore(&empty) {
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
    slot.board.report(None, &report);
}

/// Runs `slot` under `lease` until halted (`stop`, or the lease lost): keeps the lease,
/// restores, processes and checkpoints, and gives the lease back at the end. Returns how it
/// ended and the last report.
pub(crate) async fn own(
    slot: &Slot,
    store: &StateStore,
    lease: Lease,
    js: &jetstream::Context,
    stop: &CancellationToken,
    limiter: Option<&IngestLimiter>,
) -> (End, StateReport) {
    holding(store, lease, stop, |held| async move {
        let mut owned = Owned::new(slot, store);
        let end = owned.run(js, &held, limiter).await;
        (end, owned.report)
    })
    .await
}

/// Runs `work` while holding `lease`: renews it in the background (`held.halt` is cancelled
/// when it is lost, or when `stop` is), and gives it back once `work` is done.
pub(crate) async fn holding<F, Fut, T>(
    store: &StateStore,
    lease: Lease,
    stop: &CancellationToken,
    work: F,
) -> T
where
    F: FnOnce(Arc<HeldLease>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let held = Arc::new(HeldLease {
        store: store.clone(),
        lease: tokio::sync::Mutex::new(Some(lease)),
        renewed_at: std::sync::Mutex::new(Some(Instant::now())),
        lost: AtomicBool::new(false),
        halt: stop.child_token(),
    });
    let done = CancellationToken::new();
    let keeper = tokio::spawn(keep_lease(held.clone(), done.clone()));
    let result = work(held.clone()).await;
    done.cancel();
    let _ = keeper.await;
    held.release().await;
    result
}

/// The lease key of a durable consumer name (KV keys take `[-/_=.a-zA-Z0-9]`).
pub(crate) fn lease_key(durable: &str) -> String {
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
pub(crate) async fn acquire(
    store: &StateStore,
    key: &str,
    stop: &CancellationToken,
) -> Option<Lease> {
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
pub(crate) struct HeldLease {
    store: StateStore,
    /// The lease; `None` once lost. A renewal holds it for its round trip to the KV store.
    lease: tokio::sync::Mutex<Option<Lease>>,
    /// When the lease was last renewed (`None` once lost), readable while a renewal holds
    /// `lease`: the loop that asks [`HeldLease::is_current`] before each ack must not wait
    /// for the KV store.
    renewed_at: std::sync::Mutex<Option<Instant>>,
    lost: AtomicBool,
    /// Cancelled when the lease is lost (a child of the pipeline's stop token).
    pub(crate) halt: CancellationToken,
}

impl HeldLease {
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Whether the lease is held and was renewed within the last half of its time: no other
    /// worker can have taken it over yet, nor for a while. A renewal under way does not
    /// change that (the lease stays ours until its last renewal's time runs out), so this
    /// does not wait for it.
    pub(crate) fn is_current(&self) -> bool {
        self.renewed_within(self.store.ttl / 2)
    }

    /// Whether the lease is held and was renewed less than `age` ago.
    fn renewed_within(&self, age: Duration) -> bool {
        self.renewed_at
            .lock()
            .expect("renewed_at lock")
            .is_some_and(|renewed| renewed.elapsed() < age)
    }

    fn set_renewed(&self, at: Option<Instant>) {
        *self.renewed_at.lock().expect("renewed_at lock") = at;
    }

    /// Renews the lease and returns the guard that keeps it from changing; `None` when it
    /// is not held (lost now or before) or could not be renewed this time.
    async fn renewed(&self) -> Option<tokio::sync::MutexGuard<'_, Option<Lease>>> {
        let mut guard = self.lease.lock().await;
        let lease = guard.as_ref()?;
        match self.store.leases.renew(lease, &self.store.owner).await {
            Ok(Some(l)) => {
                *guard = Some(l);
                self.set_renewed(Some(Instant::now()));
                return Some(guard);
            }
            Ok(None) => tracing::warn!(key = %lease.key, "the lease was taken by another worker"),
            Err(e) if self.renewed_within(self.store.ttl * 2 / 3) => {
                tracing::warn!(key = %lease.key, "renewing the lease failed: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!(key = %lease.key, "the lease could not be renewed in time: {e}")
            }
        }
        *guard = None;
        self.set_renewed(None);
        self.lost.store(true, Ordering::SeqCst);
        self.halt.cancel();
        None
    }

    /// Gives the lease back, when still held.
    async fn release(&self) {
        self.set_renewed(None);
        if let Some(lease) = self.lease.lock().await.take()
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_testkit::nats::NatsServer;

    /// The exclusive loop asks before every ack whether the lease is current: the answer must
    /// not wait for a renewal's round trip to the KV store (which holds the lease's lock).
    #[tokio::test]
    async fn the_lease_is_current_while_a_renewal_holds_it() {
        let server = NatsServer::start().expect("nats-server");
        let client = async_nats::connect(server.url()).await.expect("connect");
        let js = jetstream::new(client);
        let store = StateStore::open(&js, &owner_id())
            .await
            .expect("state store");
        let lease = store
            .leases
            .acquire("lease-test", &store.owner)
            .await
            .expect("acquire")
            .expect("free");
        let stop = CancellationToken::new();
        holding(&store, lease, &stop, |held| async move {
            assert!(held.is_current());
            // A renewal under way holds the lock for its round trip: the lease is current
            // meanwhile (and the check does not take that lock).
            let renewing = held.lease.lock().await;
            assert!(held.is_current(), "not current during a renewal");
            drop(renewing);
            // Renewed, it is current; lost, it is not.
            drop(held.renewed().await);
            assert!(held.is_current());
            held.set_renewed(None);
            assert!(!held.is_current());
        })
        .await;
    }
}
