//! A windowed pipeline on two worker processes (`weir run` twice on the same file): one owns
//! the pipeline's state (its lease), the other stands by. While orders flow, either the owner
//! is SIGKILLed five times (and restarted as the new standby; each time the standby takes the
//! lease over, restores the last checkpoint and replays from its position), or the
//! nats-server itself is SIGKILLed and restarted twice. At the end the output stream holds
//! exactly the windows a plain reference computes from the inputs — none missing, none
//! twice — and the DLQ exactly the bad inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::fleet_support::{read_all, with_orders_and_out};
use crate::process::RunProcess;
use anyhow::{Context as _, Result, bail};
use async_nats::jetstream;
use weir_testkit::nats::NatsServer;

/// Orders of the run; ten milliseconds of event time apart, so a hundred per window.
const N: u64 = 20_000;
/// Event time of the first order (a whole second).
const BASE_MS: u64 = 1_800_000_000_000;
/// Group keys.
const KEYS: u64 = 4;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: wincrash }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 5s, batch_size: 200 } }
  nodes:
    - id: per-second
      window:
        kind: tumbling
        size: 1s
        time: data.ts
        allowed_lateness: 2s
        group_by: [data.k]
        aggregates: { n: "count(*)", total: "sum(data.v)" }
        late: out
      next: out
    - id: out
      publish: { subject: "out.windows.{data.k}" }
  execution: { checkpoint: { interval: 300ms } }
"#;

fn payload(i: u64) -> Vec<u8> {
    order_payload(i, KEYS, BASE_MS + i * 10)
}

/// Order `i` at event time `ts` (ms) with key `k<i % keys>` and value `i % 7`; every 997th is
/// invalid JSON (for the DLQ).
pub(crate) fn order_payload(i: u64, keys: u64, ts: u64) -> Vec<u8> {
    if i.is_multiple_of(997) {
        format!("{{\"ts\":{ts},\"k\":").into_bytes()
    } else {
        format!("{{\"ts\":{ts},\"k\":\"k{}\",\"v\":{}}}", i % keys, i % 7).into_bytes()
    }
}

/// The reference: (window start in RFC 3339, key) → (count, sum), over the good orders
/// `0..n` with keys `keys`, at event times `ts(i)` in one-second windows, each order counted
/// as many times as the input stream holds it (`copies`, see [`stored_copies`]).
pub(crate) fn reference_windows(
    n: u64,
    keys: u64,
    ts: impl Fn(u64) -> u64,
    copies: &Copies,
) -> BTreeMap<(String, String), (u64, u64)> {
    let mut windows = BTreeMap::new();
    for i in (0..n).filter(|i| !i.is_multiple_of(997)) {
        let times = copies.of(i);
        if times == 0 {
            continue;
        }
        let start = std::time::UNIX_EPOCH + Duration::from_secs(ts(i) / 1000);
        let start = humantime::format_rfc3339_seconds(start).to_string();
        let w = windows
            .entry((start, format!("k{}", i % keys)))
            .or_insert((0, 0));
        w.0 += times;
        w.1 += times * (i % 7);
    }
    windows
}

/// The orders `0..n` that the input stream does not hold exactly once (order → copies). The
/// publisher sends each with a `Nats-Msg-Id` and retries until stored, so this is empty unless
/// the nats-server's crash made it store an order twice (its dedupe state lost) or lose one it
/// had acknowledged (not yet written out): Weir's exactness is owed to what was stored.
#[derive(Debug, Default)]
pub(crate) struct Copies(BTreeMap<u64, u64>);

impl Copies {
    fn of(&self, i: u64) -> u64 {
        self.0.get(&i).copied().unwrap_or(1)
    }

    /// Copies of the bad orders among `0..n` (each is one dead letter).
    pub(crate) fn bad(&self, n: u64) -> usize {
        (0..n)
            .filter(|i| i.is_multiple_of(997))
            .map(|i| self.of(i) as usize)
            .sum()
    }
}

/// Counts the stored copies of each order `in-{i}`, `i < n`, in the `ORDERS` stream.
pub(crate) async fn stored_copies(js: &jetstream::Context, n: u64) -> Result<Copies> {
    let mut count: BTreeMap<u64, u64> = BTreeMap::new();
    let state = js.get_stream("ORDERS").await?.info().await?.state.clone();
    let span = (state.last_sequence + 1).saturating_sub(state.first_sequence);
    if state.messages != span {
        // Sequences the server skipped: after a crash it may lose the tail it had stored (and
        // delivered) and go on after it, so the publisher's retries land on new sequences.
        eprintln!(
            "note: the input stream holds {} messages in sequences {}..={} ({} deleted)",
            state.messages,
            state.first_sequence,
            state.last_sequence,
            state.deleted_count.unwrap_or(0)
        );
    }
    for stored in read_all(js, "ORDERS").await? {
        let id = stored.headers.get("Nats-Msg-Id").map(String::as_str);
        if let Some(i) = id
            .and_then(|id| id.strip_prefix("in-"))
            .and_then(|i| i.parse::<u64>().ok())
            .filter(|i| *i < n)
        {
            *count.entry(i).or_default() += 1;
        }
    }
    let odd = (0..n)
        .map(|i| (i, count.get(&i).copied().unwrap_or(0)))
        .filter(|(_, c)| *c != 1)
        .collect::<BTreeMap<_, _>>();
    if !odd.is_empty() {
        eprintln!(
            "note: after the disruptions the input stream holds these orders other than once (order → copies): {odd:?}"
        );
    }
    Ok(Copies(odd))
}

/// The output stream holds exactly the `expected` windows, each once, and the DLQ each of
/// the `bad` orders once.
pub(crate) async fn assert_exact_windows(
    js: &jetstream::Context,
    expected: &BTreeMap<(String, String), (u64, u64)>,
    bad: usize,
    logs: impl Fn() -> String,
) -> Result<()> {
    let out = read_all(js, "OUT").await?;
    let mut seen = BTreeMap::new();
    for stored in &out {
        let v: serde_json::Value = serde_json::from_slice(&stored.payload)?;
        let Some(start) = v["window_start"].as_str().map(str::to_string) else {
            bail!(
                "not a window result: {:?} {v}; logs:\n{}",
                stored.headers,
                logs()
            );
        };
        let key = v["k"].as_str().context("k")?.to_string();
        let figures = (
            v["n"].as_u64().context("n")?,
            v["total"].as_u64().context("total")?,
        );
        assert!(
            seen.insert((start.clone(), key.clone()), figures).is_none(),
            "window {start} of {key} published twice"
        );
    }
    // Only the windows that differ, with the workers' logs (the maps are hundreds long).
    let differ: Vec<_> = expected
        .keys()
        .chain(seen.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|w| seen.get(*w) != expected.get(*w))
        .map(|w| (w, seen.get(w), expected.get(w)))
        .collect();
    if !differ.is_empty() {
        bail!(
            "{} of {} windows differ from the reference (window, out, reference): {differ:?}; logs:\n{}",
            differ.len(),
            expected.len(),
            logs()
        );
    }
    let letters = read_all(js, "DLQ").await?;
    let dead: BTreeSet<String> = letters
        .iter()
        .map(|s| s.headers["Weir-Source-Seq"].clone())
        .collect();
    assert_eq!(
        (dead.len(), letters.len()),
        (bad, bad),
        "the DLQ holds each bad order once"
    );
    Ok(())
}

/// Two `weir run` workers of `file` (logs `worker-a.log`, `worker-b.log` in `dir`), started,
/// with 3-second leases.
pub(crate) fn two_workers(
    file: &std::path::Path,
    url: &str,
    dir: &std::path::Path,
) -> Result<Vec<RunProcess>> {
    let mut workers: Vec<RunProcess> = ["a", "b"]
        .iter()
        .map(|name| {
            let mut w = RunProcess::new(
                file.to_path_buf(),
                url.to_string(),
                dir.join(format!("worker-{name}.log")),
            );
            w.env.push(("WEIR_LEASE_TTL", "3s"));
            w
        })
        .collect();
    for w in &mut workers {
        w.spawn()?;
    }
    Ok(workers)
}

/// The logs of `workers`, one after the other.
pub(crate) fn all_logs(workers: &[RunProcess]) -> String {
    workers
        .iter()
        .map(RunProcess::log_text)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The process id in the lease of the pipeline (`host:pid:start-wN`), once one is held.
async fn owner_pid(js: &jetstream::Context) -> Option<u32> {
    let kv = js.get_key_value("weir_leases").await.ok()?;
    let value = kv.get("weir_default_wincrash").await.ok()??;
    let text = String::from_utf8(value.to_vec()).ok()?;
    text.rsplit(':').nth(1)?.parse().ok()
}

/// What goes wrong during the run.
#[derive(Clone, Copy, PartialEq)]
enum Disruption {
    /// The worker that owns the pipeline is SIGKILLed five times.
    KillOwner,
    /// The nats-server is SIGKILLed and restarted twice.
    RestartServer,
}

#[test]
fn the_owner_killed_five_times_loses_and_duplicates_no_window() -> Result<()> {
    block_on(crash_run(Disruption::KillOwner))
}

#[test]
fn a_nats_server_crash_loses_and_duplicates_no_window() -> Result<()> {
    block_on(crash_run(Disruption::RestartServer))
}

pub(crate) fn block_on(run: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run)
}

/// Publishes order `i` until the server stores it (the same id again after a failure).
async fn publish_order(js: &jetstream::Context, i: u64) -> Result<()> {
    let body = if i == N {
        // Past every window: closes them all.
        format!(
            "{{\"ts\":{},\"k\":\"k0\",\"v\":0}}",
            BASE_MS + N * 10 + 10_000
        )
        .into_bytes()
    } else {
        payload(i)
    };
    store_order(js, &format!("in-{i}"), body).await
}

/// Publishes `body` on `orders.created` with id `id` until the server stores it (the same
/// id again after a failure, for at most 60 s).
pub(crate) async fn store_order(js: &jetstream::Context, id: &str, body: Vec<u8>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let stored = async {
            js.publish_with_headers("orders.created", headers, body.clone().into())
                .await?
                .await
        };
        match tokio::time::timeout(Duration::from_secs(2), stored).await {
            Ok(Ok(_)) => return Ok(()),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => bail!("order {id} not stored for 60 s: {other:?}"),
        }
    }
}

async fn crash_run(disruption: Disruption) -> Result<()> {
    let mut server = NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("wincrash.yaml");
    std::fs::write(&file, with_orders_and_out(PIPELINE))?;
    let mut workers = two_workers(&file, &server.url(), dir.path())?;
    let js = jetstream::new(
        async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(server.url())
            .await?,
    );
    let logs = |workers: &[RunProcess]| all_logs(workers);
    let deadline = Instant::now() + Duration::from_secs(30);
    while owner_pid(&js).await.is_none() {
        if Instant::now() > deadline {
            bail!("no worker took the lease; logs:\n{}", logs(&workers));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            // Chunks of 64, each stored whole before the next: a retried order lands at most
            // 63 orders (630 ms of event time) away from its place, inside the lateness.
            let orders: Vec<u64> = (0..N).collect();
            for (c, chunk) in orders.chunks(64).enumerate() {
                futures::future::try_join_all(chunk.iter().map(|&i| publish_order(&js, i))).await?;
                if c % 8 == 0 {
                    // Spread the orders over the disruptions (about 12 s).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
            // The order past every window, once all the others are stored.
            publish_order(&js, N).await
        })
    };

    if disruption == Disruption::RestartServer {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(rand::random_range(1500..3000))).await;
            server.crash_restart()?;
        }
    }
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while disruption == Disruption::KillOwner && kills < 5 {
        if Instant::now() > deadline {
            bail!("only {kills} kills in 60 s; logs:\n{}", logs(&workers));
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(300..900))).await;
        // Kill the owner (the standby takes over once its lease expires).
        let Some(pid) = owner_pid(&js).await else {
            continue;
        };
        let Some(owner) = workers.iter_mut().find(|w| w.pid() == Some(pid)) else {
            continue;
        };
        owner.sigkill()?;
        owner.spawn()?;
        kills += 1;
    }
    publisher.await??;

    let copies = stored_copies(&js, N).await?;
    let expected = reference_windows(N, KEYS, |i| BASE_MS + i * 10, &copies);
    let orders = js.get_stream("ORDERS").await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let settled = match orders.consumer_info("weir_default_wincrash").await {
            Ok(info) => info.num_pending == 0 && info.num_ack_pending == 0,
            Err(_) => false,
        };
        let out = js.get_stream("OUT").await?.info().await?.state.messages;
        if settled && out >= expected.len() as u64 {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "not settled after 120 s ({out} of {} windows out); logs:\n{}",
                expected.len(),
                logs(&workers)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restored = logs(&workers)
        .matches("restored the checkpoint at position")
        .count();
    assert!(
        disruption != Disruption::KillOwner || restored >= 2,
        "the kills should have made standbys restore checkpoints (restored {restored} times; a kill before the first checkpoint restores nothing); logs:\n{}",
        logs(&workers)
    );

    assert_exact_windows(&js, &expected, copies.bad(N), || logs(&workers)).await?;

    for w in &mut workers {
        let status = w.sigterm(Duration::from_secs(15))?;
        assert!(status.success(), "weir run after SIGTERM: {status:?}");
    }
    Ok(())
}
