//! The partitions of a stateful pipeline on one worker: every worker that runs the pipeline
//! joins its group (a member key in the lease bucket) and aims at an equal share of the
//! partitions, `ceil(partitions / members)`. Below its share it takes partitions whose lease
//! is free; above it (a worker joined) it gives partitions back gracefully: a last checkpoint,
//! the acks it covers, then the lease, so the next owner restores exactly that state. A worker
//! that dies loses its member key and its leases when they expire, and the others take its
//! partitions over from their checkpoints. Each owned partition runs its own instance of the
//! pipeline, on its own consumer of the partition stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use weir_connectors::checkpoints::Lease;
use weir_connectors::partitions::PartitionLayout;
use weir_pipelines::fleet::StateReport;

use super::{End, RETRY_PAUSE, Slot, StateBoard, StateStore, lease_key, own};
use crate::batch::PipelineRun;
use crate::config::PipelineConfig;

/// A partition this worker runs.
struct Running {
    stop: CancellationToken,
    /// Being given back (a last checkpoint, then the lease).
    releasing: bool,
}

/// Runs this worker's share of `layout`'s partitions until `stop`. `base` is the pipeline's
/// run: its processor is the template of each partition's instance, its telemetry reports.
pub(crate) async fn partitioned_loop(
    base: Arc<PipelineRun>,
    layout: PartitionLayout,
    js: jetstream::Context,
    store: StateStore,
    stop: CancellationToken,
) {
    let pipeline = base.config.name.clone();
    let n = layout.partitions;
    let board = Arc::new(StateBoard::new(base.telemetry.clone(), n));
    board.report(Some(0), &StateReport::default());
    let member = lease_key(&store.owner);
    // Workers start their search at different partitions, so that they rarely race.
    let first = layout.partition_of([member.as_bytes()]);
    let poll = (store.ttl / 4).max(Duration::from_millis(250));
    let mut running: HashMap<u32, Running> = HashMap::new();
    let mut tasks: JoinSet<(u32, End)> = JoinSet::new();
    let mut retry_after: HashMap<u32, Instant> = HashMap::new();
    while !stop.is_cancelled() {
        while let Some(joined) = tasks.try_join_next() {
            let Ok((p, end)) = joined else { continue };
            running.remove(&p);
            if let End::Again(reason) = end {
                tracing::warn!(%pipeline, partition = p, "partition starts over from its checkpoint: {reason}");
                base.telemetry
                    .totals()
                    .record_error(format!("partition {p}: {reason}"));
                retry_after.insert(p, Instant::now() + RETRY_PAUSE);
            }
        }
        let share = match store.leases.join(&layout.durable, &member).await {
            Ok(members) => n.div_ceil(members as u32),
            Err(e) => {
                tracing::warn!(%pipeline, "{e}");
                running.len() as u32
            }
        };
        let active: Vec<u32> = running
            .iter()
            .filter(|(_, r)| !r.releasing)
            .map(|(p, _)| *p)
            .collect();
        if active.len() as u32 > share {
            give_back(&mut running, active, share, &pipeline);
        } else if (running.len() as u32) < share {
            for p in (0..n).map(|i| (first + i) % n) {
                if running.len() as u32 >= share {
                    break;
                }
                if running.contains_key(&p)
                    || retry_after.get(&p).is_some_and(|t| *t > Instant::now())
                {
                    continue;
                }
                let lease = match store.leases.acquire(&layout.key(p), &store.owner).await {
                    Ok(Some(lease)) => lease,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(%pipeline, partition = p, "taking the lease failed: {e}");
                        continue;
                    }
                };
                tracing::info!(%pipeline, partition = p, owner = %store.owner, "took a partition");
                let token = stop.child_token();
                running.insert(
                    p,
                    Running {
                        stop: token.clone(),
                        releasing: false,
                    },
                );
                tasks.spawn(run_partition(
                    base.clone(),
                    board.clone(),
                    layout.clone(),
                    p,
                    lease,
                    js.clone(),
                    store.clone(),
                    token,
                ));
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    for r in running.values() {
        r.stop.cancel();
    }
    while tasks.join_next().await.is_some() {}
    if let Err(e) = store.leases.leave(&layout.durable, &member).await {
        tracing::debug!(%pipeline, "{e}");
    }
}

/// Starts giving back the highest of `active` partitions beyond `share`.
fn give_back(
    running: &mut HashMap<u32, Running>,
    mut active: Vec<u32>,
    share: u32,
    pipeline: &str,
) {
    active.sort_unstable();
    for p in active.split_off(share as usize) {
        if let Some(r) = running.get_mut(&p) {
            tracing::info!(%pipeline, partition = p, "giving a partition back (rebalancing)");
            r.releasing = true;
            r.stop.cancel();
        }
    }
}

/// Owns partition `p` under `lease` until `stop` or until the lease is lost, on a fresh
/// instance of the pipeline.
#[allow(clippy::too_many_arguments)]
async fn run_partition(
    base: Arc<PipelineRun>,
    board: Arc<StateBoard>,
    layout: PartitionLayout,
    p: u32,
    lease: Lease,
    js: jetstream::Context,
    store: StateStore,
    stop: CancellationToken,
) -> (u32, End) {
    let processor = match base.processor.fresh() {
        Ok(processor) => processor,
        Err(e) => {
            if let Err(e) = store.leases.release(&lease).await {
                tracing::warn!(partition = p, "giving the lease back failed: {e}");
            }
            return (p, End::Again(format!("cannot compile the partition: {e}")));
        }
    };
    let config = PipelineConfig {
        source: base.config.source.partition(&layout, p),
        ..(*base.config).clone()
    };
    let slot = Slot {
        run: Arc::new(PipelineRun {
            config: Arc::new(config),
            processor,
            sink: base.sink.clone(),
            ids: base.ids.clone(),
            dlq: base.dlq.clone(),
            telemetry: base.telemetry.clone(),
        }),
        key: layout.key(p),
        partition: Some((p, layout)),
        board: board.clone(),
    };
    let (end, _) = own(&slot, &store, lease, &js, &stop, None).await;
    board.report(Some(p), &StateReport::default());
    (p, end)
}
