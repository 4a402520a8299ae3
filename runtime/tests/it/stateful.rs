//! Stateful pipelines across worker restarts and upgrades: a window spanning a compatible
//! upgrade is complete and emitted once; a changed window starts empty (and says so); dedup
//! keys survive a restart. The state travels only through the checkpoints in NATS.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use bytes::Bytes;
use weir_pipelines::fleet::StateReport;
use weir_testkit::nats::NatsServer;

use crate::support::{
    ORDERS_AND_OUT, RunningWorker, connect, count, publish, read_all, start_worker,
};

/// Event time of the first order: a whole minute (30 000 000 minutes after the epoch).
const T0: u64 = 1_800_000_000_000;

fn windowed(size: &str, header: &str) -> String {
    format!(
        r#"{ORDERS_AND_OUT}apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: metrics }}
spec:
  source: {{ stream: ORDERS }}
  nodes:
    - id: w
      window:
        kind: tumbling
        size: {size}
        time: data.ts
        group_by: [data.r]
        aggregates: {{ n: "count(*)" }}
        late: out
      next: out
    - id: out
      publish: {{ subject: "out.m.{{data.r}}", headers: {{ X-Version: "{header}" }} }}
  execution: {{ checkpoint: {{ interval: 100ms }} }}
"#
    )
}

async fn order(js: &async_nats::jetstream::Context, i: u64, at_ms: u64) -> Result<u64> {
    let body = format!("{{\"id\":{i},\"r\":\"eu\",\"ts\":{at_ms}}}");
    publish(
        js,
        "orders.created",
        &[],
        Bytes::from(body),
        Some(&format!("o-{i}")),
    )
    .await
}

/// Waits until the pipeline's state report satisfies `ok`.
async fn wait_state(
    worker: &RunningWorker,
    key: &str,
    ok: impl Fn(&StateReport) -> bool,
) -> Result<StateReport> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = worker.totals[key].counters().state.unwrap_or_default();
        if ok(&state) {
            return Ok(state);
        }
        if Instant::now() > deadline {
            bail!("state never got there: {state:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_window_spans_a_compatible_upgrade_and_a_changed_window_starts_empty() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;

    // v1 takes three orders of the first minute, checkpoints them, and stops.
    let v1 = start_worker(&server, &windowed("1m", "v1")).await?;
    for i in 0..3 {
        order(&js, i, T0 + 1000 * (i + 1)).await?;
    }
    let state = wait_state(&v1, "metrics", |s| s.owner && s.position >= 3).await?;
    assert_eq!((state.open_windows, state.keys_held), (1, 1), "{state:?}");
    assert_eq!(state.watermark_ms, Some((T0 + 3000) as i64), "{state:?}");
    let metrics = v1.metrics.encode();
    for line in [
        "weir_state_owner{pipeline=\"metrics\"} 1",
        "weir_state_open_windows{pipeline=\"metrics\"} 1",
        "weir_state_checkpoint_duration_seconds_count{pipeline=\"metrics\"}",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(v1.stop().await, "v1 stops gracefully");
    assert_eq!(count(&js, "OUT").await, 0, "the minute is still open");

    // v2 changes only the publish node: it restores the window and completes it.
    let v2 = start_worker(&server, &windowed("1m", "v2")).await?;
    let state = wait_state(&v2, "metrics", |s| s.owner).await?;
    assert!(
        state
            .started_from
            .starts_with("restored the checkpoint at position 3"),
        "{state:?}"
    );
    order(&js, 3, T0 + 30_000).await?;
    order(&js, 4, T0 + 59_000).await?;
    order(&js, 5, T0 + 61_000).await?; // closes the first minute
    crate::support::wait_for_count(&js, "OUT", 1, Duration::from_secs(20)).await?;
    let out = read_all(&js, "OUT").await?;
    let first: serde_json::Value = serde_json::from_slice(&out[0].payload)?;
    assert_eq!(
        first["n"], 5,
        "every order of the minute, across the upgrade"
    );
    assert_eq!(out[0].headers["X-Version"], "v2");
    wait_state(&v2, "metrics", |s| s.position >= 6).await?;
    assert!(v2.stop().await);

    // v3 changes the window: the old state does not fit it, so it starts empty after the
    // checkpoint's position.
    let v3 = start_worker(&server, &windowed("2m", "v3")).await?;
    let state = wait_state(&v3, "metrics", |s| s.owner).await?;
    assert!(
        state
            .started_from
            .starts_with("empty: the checkpoint at position 6 belongs to other"),
        "{state:?}"
    );
    order(&js, 6, T0 + 130_000).await?;
    order(&js, 7, T0 + 250_000).await?; // closes [120 s, 240 s)
    crate::support::wait_for_count(&js, "OUT", 2, Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = read_all(&js, "OUT").await?;
    assert_eq!(out.len(), 2, "nothing else was emitted");
    let second: serde_json::Value = serde_json::from_slice(&out[1].payload)?;
    assert_eq!(second["n"], 1, "only v3's order: {second}");
    assert!(v3.stop().await);
    Ok(())
}

#[tokio::test]
async fn dedup_keys_survive_a_restart() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let yaml = format!(
        r#"{ORDERS_AND_OUT}apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: once }}
spec:
  source: {{ stream: ORDERS }}
  nodes:
    - {{ id: d, dedup: {{ key: data.id, within: 10m }}, next: out }}
    - {{ id: out, publish: {{ subject: "out.once" }} }}
  execution: {{ checkpoint: {{ interval: 100ms }} }}
"#
    );
    let first = start_worker(&server, &yaml).await?;
    order(&js, 1, T0).await?;
    order(&js, 2, T0).await?;
    wait_state(&first, "once", |s| s.position >= 2 && s.checkpoints > 0).await?;
    assert!(first.stop().await);

    let second = start_worker(&server, &yaml).await?;
    // The same ids again, as new messages: duplicates of what the first worker saw.
    for (n, id) in [(10, 1), (11, 2), (12, 3)] {
        let body = format!("{{\"id\":{id},\"r\":\"eu\",\"ts\":{T0}}}");
        publish(
            &js,
            "orders.created",
            &[],
            Bytes::from(body),
            Some(&format!("o-{n}")),
        )
        .await?;
    }
    let state = wait_state(&second, "once", |s| s.position >= 5).await?;
    assert_eq!(state.duplicates_dropped, 2, "{state:?}");
    assert_eq!(count(&js, "OUT").await, 3, "ids 1, 2 once each, then 3");

    // The owner's consumer acks cumulatively: once a checkpoint covers the five inputs,
    // nothing is pending and the ack floor is the last of them.
    let stream = js.get_stream("ORDERS").await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = stream.consumer_info("weir_default_once").await?;
        if info.num_ack_pending == 0 && info.ack_floor.stream_sequence == 5 {
            break info;
        }
        if Instant::now() > deadline {
            bail!(
                "the checkpoint's inputs were never acked: {} pending, ack floor {}",
                info.num_ack_pending,
                info.ack_floor.stream_sequence
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        info.config.ack_policy,
        async_nats::jetstream::consumer::AckPolicy::All
    );
    // The owner reports the consumer's lag (polled by a task of its own).
    assert!(second.reports_lag_of("once"));
    assert!(second.stop().await);
    Ok(())
}

/// Another reader takes deliveries of the owner's consumer and never acks them: the owner's
/// next checkpoint would ack them unseen, and the window would miss them. It sees the gap in
/// the consumer's delivery numbers instead, starts over from its last checkpoint, and the
/// window counts every order once.
#[tokio::test]
async fn a_window_counts_the_deliveries_another_reader_took() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let worker = start_worker(&server, &windowed("1m", "v1")).await?;
    wait_state(&worker, "metrics", |s| s.owner).await?;
    for i in 0..20 {
        order(&js, i, T0 + 100 * i).await?;
    }
    let other_reader = crate::support::another_reader(&js, "weir_default_metrics");
    for i in 20..300 {
        order(&js, i, T0 + 100 * i).await?;
    }
    let took = other_reader.await??;
    assert!(!took.is_empty(), "the other reader took no delivery");
    order(&js, 300, T0 + 61_000).await?; // closes the first minute
    crate::support::wait_for_count(&js, "OUT", 1, Duration::from_secs(30)).await?;
    let out = read_all(&js, "OUT").await?;
    let first: serde_json::Value = serde_json::from_slice(&out[0].payload)?;
    assert_eq!(
        first["n"], 300,
        "every order of the minute once, those the other reader took ({took:?}) included"
    );
    worker.assert_started_over_for_lost_deliveries("metrics");
    assert!(worker.stop().await);
    Ok(())
}

#[tokio::test]
async fn idle_partitions_close_their_windows_on_their_own() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let yaml = format!(
        r#"{ORDERS_AND_OUT}apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: split }}
spec:
  source: {{ stream: ORDERS }}
  nodes:
    - id: w
      window:
        kind: tumbling
        size: 2s
        time: data.ts
        idle_timeout: 1s
        group_by: [data.r]
        aggregates: {{ n: "count(*)" }}
        late: out
      next: out
    - id: out
      publish: {{ subject: "out.m.{{data.r}}" }}
  execution: {{ partitions: 4, checkpoint: {{ interval: 100ms }} }}
"#
    );
    let worker = start_worker(&server, &yaml).await?;
    let state = wait_state(&worker, "split", |s| s.partitions.len() == 4).await?;
    assert_eq!(state.started_from, "owns 4 of the 4 partitions: 0, 1, 2, 3");
    for (i, (r, at)) in [("eu", 100), ("us", 200), ("eu", 500)].iter().enumerate() {
        let body = format!("{{\"id\":{i},\"r\":\"{r}\",\"ts\":{}}}", T0 + at);
        publish(
            &js,
            "orders.created",
            &[],
            Bytes::from(body),
            Some(&format!("o-{i}")),
        )
        .await?;
    }
    let state = wait_state(&worker, "split", |s| s.keys_held == 2).await?;
    let holding: Vec<u32> = state
        .partitions
        .iter()
        .filter(|p| p.keys_held > 0)
        .filter_map(|p| p.partition)
        .collect();
    assert!(!holding.is_empty() && holding.len() <= 2, "{state:?}");
    // No event passes the windows' end: only the idle timeout of each partition closes them.
    crate::support::wait_for_count(&js, "OUT", 2, Duration::from_secs(20)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got: Vec<(String, u64)> = read_all(&js, "OUT")
        .await?
        .iter()
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            (
                v["r"].as_str().unwrap_or("?").to_string(),
                v["n"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![("eu".to_string(), 2), ("us".to_string(), 1)]);
    assert!(worker.stop().await);
    Ok(())
}
