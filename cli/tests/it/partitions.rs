//! A windowed pipeline with 8 keyed partitions on two worker processes (`weir run` twice on
//! the same file). The workers share the partitions; while orders flow, one is SIGKILLed and
//! the other takes all eight over from their checkpoints; then the killed one comes back and
//! the partitions rebalance (given back gracefully). At the end the output stream holds
//! exactly the windows a plain reference computes — none missing, none twice — and the DLQ
//! exactly the bad orders.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::fleet_support::with_orders_and_out;
use crate::process::RunProcess;
use crate::window_crash::{
    all_logs, assert_exact_windows, block_on, order_payload, reference_windows, store_order,
    stored_copies, two_workers,
};
use anyhow::{Context as _, Result, bail};
use async_nats::jetstream;
use weir_testkit::nats::NatsServer;

/// Orders of the run; a millisecond of event time apart (a thousand per window), so that
/// the inputs a killed worker's routing stage had in flight, delivered again after
/// `ack_wait`, are still within the allowed lateness.
const N: u64 = 12_000;
const BASE_MS: u64 = 1_800_000_000_000;
/// Group keys (spread over the partitions).
const KEYS: u64 = 16;
const PARTITIONS: u32 = 8;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: parts }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 5s, batch_size: 200 } }
  nodes:
    - id: per-second
      window:
        kind: tumbling
        size: 1s
        time: data.ts
        allowed_lateness: 30s
        group_by: [data.k]
        aggregates: { n: "count(*)", total: "sum(data.v)" }
        late: out
      next: out
    - id: out
      publish: { subject: "out.windows.{data.k}" }
  execution: { partitions: 8, parallelism: 2, checkpoint: { interval: 300ms } }
"#;

fn payload(i: u64) -> Vec<u8> {
    order_payload(i, KEYS, BASE_MS + i)
}

/// The process id holding each partition's lease (`host:pid:start-wN`), where one is held.
async fn owners(js: &jetstream::Context) -> BTreeMap<u32, u32> {
    let mut owners = BTreeMap::new();
    let Ok(kv) = js.get_key_value("weir_leases").await else {
        return owners;
    };
    for p in 0..PARTITIONS {
        let Ok(Some(value)) = kv.get(format!("weir_default_parts_p{p}")).await else {
            continue;
        };
        let text = String::from_utf8_lossy(&value).to_string();
        if let Some(pid) = text.rsplit(':').nth(1).and_then(|s| s.parse().ok()) {
            owners.insert(p, pid);
        }
    }
    owners
}

/// Waits until `holds` is true of the partition owners; their map at that time.
async fn until_owners(
    js: &jetstream::Context,
    what: &str,
    logs: impl Fn() -> String,
    holds: impl Fn(&BTreeMap<u32, u32>) -> bool,
) -> Result<BTreeMap<u32, u32>> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = owners(js).await;
        if holds(&now) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            bail!("{what}: not in 40 s (owners {now:?}); logs:\n{}", logs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pids(owners: &BTreeMap<u32, u32>) -> BTreeSet<u32> {
    owners.values().copied().collect()
}

#[test]
fn two_workers_share_eight_partitions_through_a_kill_and_a_rebalance() -> Result<()> {
    block_on(partitioned_run())
}

async fn partitioned_run() -> Result<()> {
    let server = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("parts.yaml");
    std::fs::write(&file, with_orders_and_out(PIPELINE))?;
    let mut workers = two_workers(&file, &server.url(), dir.path())?;
    let js = jetstream::new(async_nats::connect(server.url()).await?);
    let logs = |workers: &[RunProcess]| all_logs(workers);
    let all_held = |o: &BTreeMap<u32, u32>| o.len() == PARTITIONS as usize;
    let shared = |o: &BTreeMap<u32, u32>| {
        all_held(o)
            && pids(o).len() == 2
            && pids(o)
                .iter()
                .all(|pid| o.values().filter(|v| *v == pid).count() == 4)
    };
    until_owners(
        &js,
        "the two workers share the partitions 4 and 4",
        || logs(&workers),
        shared,
    )
    .await?;

    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            let orders: Vec<u64> = (0..N).collect();
            for (c, chunk) in orders.chunks(64).enumerate() {
                futures::future::try_join_all(chunk.iter().map(|&i| {
                    let js = &js;
                    async move { store_order(js, &format!("in-{i}"), payload(i)).await }
                }))
                .await?;
                if c % 8 == 0 {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            anyhow::Ok(())
        })
    };

    // Kill one worker mid-run: the other takes all eight partitions over.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    workers[0].sigkill()?;
    let survivor = workers[1].pid().context("worker b runs")?;
    until_owners(
        &js,
        "the survivor owns all eight",
        || logs(&workers),
        |o| all_held(o) && pids(o) == BTreeSet::from([survivor]),
    )
    .await?;
    // The killed worker comes back: the partitions rebalance.
    workers[0].spawn()?;
    until_owners(
        &js,
        "the partitions rebalance 4 and 4",
        || logs(&workers),
        shared,
    )
    .await?;
    publisher.await??;

    // The end of the input: once every order is routed (the routing stage has no order of
    // its own among concurrent batches), an order past every window for each key closes
    // every partition's windows.
    let orders = js.get_stream("ORDERS").await?;
    let routed = || async {
        match orders.consumer_info("weir_default_parts").await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
            Err(_) => false,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !routed().await {
        if Instant::now() > deadline {
            bail!("orders not routed in 60 s; logs:\n{}", logs(&workers));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for k in 0..KEYS {
        let ts = BASE_MS + N + 60_000;
        let body = format!("{{\"ts\":{ts},\"k\":\"k{k}\",\"v\":0}}").into_bytes();
        store_order(&js, &format!("close-{k}"), body).await?;
    }

    let copies = stored_copies(&js, N).await?;
    let expected = reference_windows(N, KEYS, |i| BASE_MS + i, &copies);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let settled = routed().await;
        let out = js.get_stream("OUT").await?.info().await?.state.messages;
        if settled && out >= expected.len() as u64 {
            break;
        }
        if Instant::now() > deadline {
            let source = orders.consumer_info("weir_default_parts").await.ok();
            let partition_stream = js
                .get_stream("WEIR_PART_weir_default_parts")
                .await?
                .info()
                .await?
                .state
                .clone();
            bail!(
                "not settled after 120 s ({out} of {} windows out; source consumer {:?}; partition stream {partition_stream:?}); logs:\n{}",
                expected.len(),
                source.map(|i| (
                    i.num_pending,
                    i.num_ack_pending,
                    i.delivered.stream_sequence
                )),
                logs(&workers)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = logs(&workers);
    assert!(
        text.contains("restored the checkpoint at position")
            && text.contains("giving a partition back"),
        "the survivor should restore the killed worker's partitions from checkpoints, and the rebalance give partitions back; logs:\n{text}"
    );

    assert_exact_windows(&js, &expected, copies.bad(N), || logs(&workers)).await?;
    for w in &mut workers {
        let status = w.sigterm(Duration::from_secs(15))?;
        assert!(status.success(), "weir run after SIGTERM: {status:?}");
    }
    Ok(())
}
