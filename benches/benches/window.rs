//! Windowed aggregation in memory (issue 17; TARGETS.md: ≥ 1 M events/s/core): tumbling
//! 1-minute windows over the message time, 10 000 keys, count + sum + avg + max of the amount
//! of 223-byte orders, 1024-message batches, one thread. Event time advances 100 µs per
//! message, so windows keep closing and emitting (10 000 results per minute of event time).
//!
//! Also the checkpoint of 100 000 keys: snapshot and restore time, and its size.
//!
//! Run: `cargo bench -p weir-benches --bench window -- --warm-up-time 1 --measurement-time 5`

/// The allocator the `weir` binary uses, so that the figures are the worker's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use weir_engine::{CompiledPipeline, InputMessage};
use weir_pipelines::Resource;

const BATCH: usize = 1024;
/// Batches prepared up front; the ring is replayed with its times shifted.
const RING: usize = 64;
const STEP_MICROS: i64 = 100;

const WINDOWED: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-window }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: per-minute
      window:
        kind: tumbling
        size: 1m
        time: timestamp
        group_by: { key: "seq % 10000" }
        aggregates:
          orders: count(*)
          total: sum(data.amount)
          mean: avg(data.amount)
          top: max(data.amount)
        late: late
      next: out
    - { id: out, publish: { subject: "metrics.{data.key}" } }
    - { id: late, drop: {} }
"#;

fn batches() -> Vec<Vec<InputMessage>> {
    (0..RING)
        .map(|b| {
            (0..BATCH)
                .map(|j| {
                    let i = (b * BATCH + j) as u64;
                    InputMessage {
                        subject: "orders.created.eu".into(),
                        headers: Vec::new(),
                        payload: weir_benches::orders::order(i),
                        seq: i + 1,
                        stream: "ORDERS".into(),
                        timestamp_micros: 1_795_000_000_000_000 + i as i64 * STEP_MICROS,
                    }
                })
                .collect()
        })
        .collect()
}

fn bench_window(c: &mut Criterion) {
    let Resource::Pipeline(p) = serde_yaml::from_str(WINDOWED).expect("parses") else {
        panic!("not a pipeline")
    };
    let pipeline = CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut ring = batches();
    let lap = (RING * BATCH) as i64 * STEP_MICROS;
    let mut group = c.benchmark_group("window");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut next = 0usize;
    group.bench_function("tumbling_1m_10k_keys_count_sum_avg_max", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let k = next % RING;
                if k == 0 && next > 0 {
                    for m in ring.iter_mut().flatten() {
                        m.timestamp_micros += lap;
                    }
                }
                next += 1;
                let start = Instant::now();
                let result = pipeline.process(&ring[k]);
                spent += start.elapsed();
                black_box(result);
            }
            spent
        })
    });
    group.finish();
}

/// Checkpoint of 100 000 keys (issue 17): one open minute holding 100 000 groups with their
/// count/sum/avg/max accumulators; how long `snapshot()` (what the worker stores) and
/// `restore()` take, and how many bytes the snapshot is (printed once).
fn bench_checkpoint(c: &mut Criterion) {
    const KEYS: usize = 100_000;
    let text = WINDOWED.replace("seq % 10000", "seq % 100000");
    let Resource::Pipeline(p) = serde_yaml::from_str(&text).expect("parses") else {
        panic!("not a pipeline")
    };
    let pipeline = CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"));
    // 100 000 orders within the first second of one minute: every key once, none closes.
    for chunk in (0..KEYS as u64).collect::<Vec<_>>().chunks(BATCH) {
        let batch: Vec<InputMessage> = chunk
            .iter()
            .map(|&i| InputMessage {
                subject: "orders.created.eu".into(),
                headers: Vec::new(),
                payload: weir_benches::orders::order(i),
                seq: i,
                stream: "ORDERS".into(),
                timestamp_micros: 1_795_000_020_000_000 + i as i64,
            })
            .collect();
        black_box(pipeline.process(&batch));
    }
    let keys: u64 = pipeline.stats().iter().map(|(_, s)| s.keys_held).sum();
    assert_eq!(keys, KEYS as u64, "every key held");
    let snapshot = pipeline.snapshot().expect("snapshot");
    println!(
        "checkpoint of {KEYS} keys: {} bytes ({:.1} bytes/key)",
        snapshot.len(),
        snapshot.len() as f64 / KEYS as f64
    );
    let mut group = c.benchmark_group("checkpoint");
    group.sample_size(10);
    group.bench_function("snapshot_100k_keys", |b| {
        b.iter(|| black_box(pipeline.snapshot().expect("snapshot")))
    });
    group.bench_function("restore_100k_keys", |b| {
        b.iter(|| pipeline.restore(black_box(&snapshot)).expect("restore"))
    });
    group.finish();
}

criterion_group!(benches, bench_window, bench_checkpoint);
criterion_main!(benches);
