//! `delivery: exclusive` on a real nats-server: every input settled exactly, one cumulative ack
//! per batch, one owner among several workers with a takeover when it stops, and a consumer that
//! changes its ack policy when a pipeline switches between exclusive and shared, and deliveries
//! another reader took are never settled unseen.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use async_nats::jetstream::{self, consumer::AckPolicy};
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::{
    ORDERS_AND_OUT, another_reader, connect, count, publish, read_all, start_worker,
};

const DURABLE: &str = "weir_default_alone";

fn pipeline(execution: &str) -> String {
    format!(
        r#"{ORDERS_AND_OUT}apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: alone }}
spec:
  source: {{ stream: ORDERS, consumer: {{ batch_size: 25 }} }}
  nodes:
    - id: keep
      filter: "data.amount >= 20"
      next: out
    - id: out
      publish: {{ subject: "out.o" }}
  execution: {execution}
"#
    )
}

/// Order `i`: every 97th does not parse (DLQ), those with `i % 100 < 20` are filtered.
fn payload(i: u64) -> Bytes {
    if i % 97 == 96 {
        Bytes::from(format!("{{\"id\":{i},\"amount\":"))
    } else {
        Bytes::from(format!("{{\"id\":{i},\"amount\":{}}}", i % 100))
    }
}

async fn publish_orders(js: &jetstream::Context, from: u64, to: u64) -> Result<()> {
    for i in from..to {
        publish(
            js,
            "orders.created",
            &[],
            payload(i),
            Some(&format!("o-{i}")),
        )
        .await?;
    }
    Ok(())
}

fn expected_ids(from: u64, to: u64) -> Vec<u64> {
    (from..to)
        .filter(|i| i % 97 != 96 && i % 100 >= 20)
        .collect()
}

/// Waits until the consumer has acked through `last` with nothing left un-acked; returns its
/// ack policy.
async fn settled_through(js: &jetstream::Context, last: u64) -> Result<AckPolicy> {
    let stream = js.get_stream("ORDERS").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(info) = stream.consumer_info(DURABLE).await {
            if info.ack_floor.stream_sequence >= last
                && info.num_ack_pending == 0
                && info.num_pending == 0
            {
                return Ok(info.config.ack_policy);
            }
            if Instant::now() > deadline {
                bail!(
                    "not settled through {last}: ack floor {}, {} un-acked, {} pending",
                    info.ack_floor.stream_sequence,
                    info.num_ack_pending,
                    info.num_pending
                );
            }
        } else if Instant::now() > deadline {
            bail!("no consumer {DURABLE}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `id`s of the outputs in `OUT`, in stream order.
async fn output_ids(js: &jetstream::Context) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for stored in read_all(js, "OUT").await? {
        let value: serde_json::Value = serde_json::from_slice(&stored.payload)?;
        ids.push(value["id"].as_u64().expect("an id"));
    }
    Ok(ids)
}

#[tokio::test]
async fn every_input_is_settled_and_each_batch_by_one_cumulative_ack() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    // A backlog first, so that the loop keeps several batches of 25 in flight.
    let yaml = pipeline("{ delivery: exclusive }");
    let worker = start_worker(&server, &yaml).await?;
    publish_orders(&js, 0, 1000).await?;
    let policy = settled_through(&js, 1000).await?;
    assert_eq!(policy, AckPolicy::All);
    let mut ids = output_ids(&js).await?;
    ids.sort_unstable();
    assert_eq!(ids, expected_ids(0, 1000), "each output once");
    let dead = read_all(&js, "DLQ").await?;
    let mut dead_seqs: Vec<u64> = dead
        .iter()
        .map(|d| d.headers["Weir-Source-Seq"].parse().expect("a sequence"))
        .collect();
    dead_seqs.sort_unstable();
    assert_eq!(dead_seqs, (1..=10).map(|k| 97 * k).collect::<Vec<u64>>());
    let counters = worker.totals["alone"].counters();
    assert_eq!(
        (
            counters.messages_in,
            counters.messages_out,
            counters.dead_lettered
        ),
        (1000, expected_ids(0, 1000).len() as u64, 10),
        "{counters:?}"
    );
    // The owner reports the consumer's lag (polled by a task of its own).
    assert!(worker.reports_lag_of("alone"));
    assert!(worker.stop().await);
    Ok(())
}

#[tokio::test]
async fn one_of_two_workers_owns_an_exclusive_pipeline_and_the_other_takes_over() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let yaml = pipeline("{ delivery: exclusive }");
    let a = start_worker(&server, &yaml).await?;
    let b = start_worker(&server, &yaml).await?;
    publish_orders(&js, 0, 300).await?;
    settled_through(&js, 300).await?;
    let (in_a, in_b) = (
        a.totals["alone"].counters().messages_in,
        b.totals["alone"].counters().messages_in,
    );
    assert!(
        (in_a, in_b) == (300, 0) || (in_a, in_b) == (0, 300),
        "one owner takes every input: {in_a} and {in_b}"
    );
    let (owner, standby) = if in_a == 300 { (a, b) } else { (b, a) };

    // The owner stops gracefully and gives the lease back; the standby takes over after the
    // last ack.
    assert!(owner.stop().await);
    publish_orders(&js, 300, 600).await?;
    settled_through(&js, 600).await?;
    assert_eq!(standby.totals["alone"].counters().messages_in, 300);
    // Batches in flight may be stored out of input order (one publish can overtake another).
    let mut ids = output_ids(&js).await?;
    ids.sort_unstable();
    assert_eq!(ids, expected_ids(0, 600), "each output once");
    assert!(standby.stop().await);
    Ok(())
}

#[tokio::test]
async fn switching_between_exclusive_and_shared_re_creates_the_consumer() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let exclusive = start_worker(&server, &pipeline("{ delivery: exclusive }")).await?;
    publish_orders(&js, 0, 100).await?;
    assert_eq!(settled_through(&js, 100).await?, AckPolicy::All);
    assert!(exclusive.stop().await);

    // A cumulative ack must never settle what another shared loop holds: the shared version
    // re-creates the consumer with an ack per input, after the last ack.
    let shared = start_worker(&server, &pipeline("{ parallelism: 2 }")).await?;
    publish_orders(&js, 100, 200).await?;
    assert_eq!(settled_through(&js, 200).await?, AckPolicy::Explicit);
    assert!(shared.stop().await);

    let again = start_worker(&server, &pipeline("{ delivery: exclusive }")).await?;
    publish_orders(&js, 200, 300).await?;
    assert_eq!(settled_through(&js, 300).await?, AckPolicy::All);
    assert!(again.stop().await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(count(&js, "OUT").await, expected_ids(0, 300).len() as u64);
    let mut ids = output_ids(&js).await?;
    ids.sort_unstable();
    assert_eq!(ids, expected_ids(0, 300), "each output once");
    Ok(())
}

/// Another reader takes deliveries of the owner's consumer (a worker whose lease lapsed
/// unnoticed, or someone reading it by hand) and never acks them. The owner's next cumulative
/// ack would settle them unseen; it sees the gap in the consumer's delivery numbers instead,
/// starts over after its last ack, and every input gets its output, once.
#[tokio::test]
async fn deliveries_another_reader_took_are_not_settled_unseen() -> Result<()> {
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    let worker = start_worker(&server, &pipeline("{ delivery: exclusive }")).await?;
    publish_orders(&js, 0, 150).await?;
    settled_through(&js, 150).await?;

    let other_reader = another_reader(&js, DURABLE);
    publish_orders(&js, 150, 650).await?;
    let took = other_reader.await??;
    let expected = expected_ids(0, 750);
    assert!(
        took.iter().flatten().any(|id| expected.contains(id)),
        "the other reader took no delivery that has an output: {took:?}"
    );
    publish_orders(&js, 650, 750).await?;
    settled_through(&js, 750).await?;
    let mut ids = output_ids(&js).await?;
    ids.sort_unstable();
    assert_eq!(
        ids, expected,
        "each output once, those of the deliveries the other reader took ({took:?}) included"
    );
    worker.assert_started_over_for_lost_deliveries("alone");
    assert!(worker.stop().await);
    Ok(())
}
