//! The worker process (`weir run`) is SIGKILLed five times at random moments while messages
//! flow and restarted each time. At the end every input is accounted for — outputs +
//! filtered + dead-lettered = inputs — and the output stream holds exactly the expected
//! messages, none duplicated. Then SIGTERM stops the last worker cleanly (exit 0).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::fleet_support::{Stored, read_all, with_orders_and_out};
use crate::process::RunProcess;
use anyhow::{Result, bail};
use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use weir_testkit::nats::NatsServer;

/// Inputs of the run, published while the worker is being killed.
const N: u64 = 100_000;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: crash }
spec:
  source: { stream: ORDERS, consumer: { ack_wait: 2s, batch_size: 200 } }
  nodes:
    - id: keep
      filter: "data.amount >= 20"
      next: tag
    - id: tag
      map: { set: { seen: "'yes'" } }
      next: out
    - id: out
      publish: { subject: "out.orders" }
  execution: { parallelism: 2 }
"#;

fn payload(i: u64) -> Vec<u8> {
    if i.is_multiple_of(97) {
        format!("{{\"id\":{i},\"amount\":").into_bytes() // invalid JSON → DLQ
    } else {
        format!("{{\"id\":{i},\"amount\":{}}}", i % 100).into_bytes()
    }
}

enum Expect {
    Out,
    Filtered,
    Dead,
}

fn expect(i: u64) -> Expect {
    if i.is_multiple_of(97) {
        Expect::Dead
    } else if i % 100 < 20 {
        Expect::Filtered
    } else {
        Expect::Out
    }
}

#[test]
fn sigkill_five_times_loses_and_duplicates_nothing() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(crash_run(PIPELINE, false))
}

/// The same with `delivery: exclusive`: one owner, one cumulative ack per batch. Each restarted
/// worker takes the lease over once the killed one's expires (2 s here), re-creates the
/// consumer after the last ack, and processes from there again. Its window keeps 20 batches
/// of 200 in flight, so a kill finds many finished batches waiting behind an unfinished one.
#[test]
fn sigkill_five_times_an_exclusive_pipeline_loses_and_duplicates_nothing() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let exclusive = PIPELINE.replace(
        "execution: { parallelism: 2 }",
        "execution: { delivery: exclusive, max_in_flight: 4000 }",
    );
    assert_ne!(exclusive, PIPELINE);
    runtime.block_on(crash_run(&exclusive, true))
}

async fn crash_run(pipeline: &str, exclusive: bool) -> Result<()> {
    let server = NatsServer::start()?;
    let dir = tempfile_dir()?;
    let file = dir.join("crash.yaml");
    std::fs::write(&file, with_orders_and_out(pipeline))?;
    let mut worker = RunProcess::new(file, server.url(), dir.join("worker.log"));
    worker.env.push(("WEIR_LEASE_TTL", "2s"));
    worker.spawn()?;
    let client = async_nats::connect(server.url()).await?;
    let js = jetstream::new(client);
    // The worker declares the streams; wait for them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while js.get_stream("OUT").await.is_err() {
        if Instant::now() > deadline {
            bail!(
                "worker did not create its streams; log: {}",
                std::fs::read_to_string(&worker.log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let publisher = {
        let js = js.clone();
        tokio::spawn(async move {
            let mut seqs = vec![0u64; N as usize];
            let mut in_flight = FuturesUnordered::new();
            for i in 0..N {
                while in_flight.len() >= 512 {
                    let (i, seq): (u64, u64) = in_flight.next().await.unwrap()?;
                    seqs[i as usize] = seq;
                }
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("in-{i}").as_str());
                let ack = js
                    .publish_with_headers("orders.created", headers, payload(i).into())
                    .await?;
                in_flight.push(async move { anyhow::Ok((i, ack.await?.sequence)) });
            }
            while let Some(r) = in_flight.next().await {
                let (i, seq) = r?;
                seqs[i as usize] = seq;
            }
            anyhow::Ok(seqs)
        })
    };

    for _ in 0..5 {
        let wait = rand::random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        worker.sigkill()?;
        worker.spawn()?;
    }
    let seqs = publisher.await??;

    // Wait until every input is settled: nothing pending, nothing un-acked.
    let orders = js.get_stream("ORDERS").await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = orders.consumer_info("weir_default_crash").await?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            if exclusive {
                // Restarted workers took the consumer over (and re-created it, so its delivery
                // count starts again at each takeover). One killed before the lease of the
                // one before expired never owned it.
                let log = std::fs::read_to_string(&worker.log)?;
                let owners = log
                    .matches("took the lease of the exclusive pipeline")
                    .count();
                assert!(owners >= 2, "{owners} takeovers by 6 workers; log: {log}");
                eprintln!("{owners} owners in turn for {N} inputs");
                assert_eq!(
                    info.config.ack_policy,
                    async_nats::jetstream::consumer::AckPolicy::All
                );
                break;
            }
            // The kills interrupted work in flight: some messages were delivered again.
            assert!(
                info.delivered.consumer_sequence > N,
                "no redelivery happened ({} deliveries for {N} inputs): the kills missed the flow",
                info.delivered.consumer_sequence
            );
            eprintln!(
                "{} deliveries for {N} inputs",
                info.delivered.consumer_sequence
            );
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "not settled after 120 s: {} pending, {} un-acked",
                info.num_pending,
                info.num_ack_pending
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // SIGTERM a worker that is up (not one still starting).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&worker.log)?
        .matches("worker running")
        .count()
        < 6
    {
        if Instant::now() > deadline {
            bail!(
                "the last worker did not start; log: {}",
                std::fs::read_to_string(&worker.log)?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = worker.sigterm(Duration::from_secs(12))?;
    assert!(
        status.success(),
        "weir run exit status after SIGTERM: {status}"
    );

    let mut expected_out = BTreeSet::new();
    let mut expected_dead = BTreeSet::new();
    let mut filtered = 0u64;
    for i in 0..N {
        let seq = seqs[i as usize];
        match expect(i) {
            Expect::Out => {
                expected_out.insert(format!("crash:ORDERS:{seq}:0"));
            }
            Expect::Dead => {
                expected_dead.insert(seq.to_string());
            }
            Expect::Filtered => filtered += 1,
        }
    }
    let out = read_all(&js, "OUT").await?;
    let dead = read_all(&js, "DLQ").await?;
    let out_ids: BTreeSet<String> = out
        .iter()
        .map(|s| s.headers["Nats-Msg-Id"].clone())
        .collect();
    assert_eq!(out_ids.len(), out.len(), "duplicate outputs in OUT");
    assert_eq!(
        out_ids, expected_out,
        "OUT holds exactly the expected outputs"
    );
    for Stored {
        headers, payload, ..
    } in &out
    {
        let value: serde_json::Value = serde_json::from_slice(payload)?;
        assert_eq!(value["seen"], "yes", "{headers:?}");
        let i = value["id"].as_u64().unwrap();
        assert_eq!(
            headers["Nats-Msg-Id"],
            format!("crash:ORDERS:{}:0", seqs[i as usize])
        );
    }
    let dead_seqs: BTreeSet<String> = dead
        .iter()
        .map(|s| s.headers["Weir-Source-Seq"].clone())
        .collect();
    assert_eq!(dead_seqs.len(), dead.len(), "duplicate dead letters");
    assert_eq!(dead_seqs, expected_dead, "DLQ holds exactly the bad inputs");
    assert_eq!(
        out.len() as u64 + filtered + dead.len() as u64,
        N,
        "inputs = outputs + filtered + dead-lettered"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "weir-crash-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
