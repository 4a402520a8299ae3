//! WebAssembly `wasm` nodes in memory (TARGETS.md: ≤ 50 ns/event overhead of a no-op module at
//! 1024-message batches; `pii-redact` ≥ 1 M events/s/core on 223-byte orders). The same
//! source → publish pipeline with and without a `wasm` node, side by side; the guests are
//! built from source by `wasm/build.sh`. Prints a JSON line with the figures at the end.
//!
//! Run: `cargo bench -p weir-benches --bench wasm -- --warm-up-time 1 --measurement-time 3`

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Instant;
use weir_engine::{CompiledPipeline, InputMessage};
use weir_pipelines::Resource;

const BATCH: usize = 1024;

fn orders(n: usize) -> Vec<InputMessage> {
    (0..n as u64)
        .map(|i| InputMessage {
            subject: "orders.created.eu".into(),
            headers: vec![("Nats-Msg-Id".into(), format!("m-{i}"))],
            payload: weir_benches::orders::order(i),
            seq: i + 1,
            stream: "ORDERS".into(),
            timestamp_micros: 1_795_000_000_000_000 + i as i64,
        })
        .collect()
}

fn guest(name: &str) -> bytes::Bytes {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm");
    let ok = std::process::Command::new(root.join("build.sh"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "wasm/build.sh failed");
    std::fs::read(root.join(format!("out/{name}.wasm")))
        .expect("guest built")
        .into()
}

fn pipeline(node: Option<&str>) -> CompiledPipeline {
    let nodes = match node {
        Some(n) => format!(
            "    - id: udf\n      wasm: {n}\n      next: out\n    - id: out\n      publish: {{ subject: \"orders.out\" }}\n"
        ),
        None => "    - id: out\n      publish: { subject: \"orders.out\" }\n".to_string(),
    };
    let yaml = format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: bench-wasm, tenant: bench }}\nspec:\n  source: {{ stream: ORDERS }}\n  nodes:\n{nodes}"
    );
    let Resource::Pipeline(p) = serde_yaml::from_str(&yaml).expect("bench pipeline parses") else {
        panic!("not a pipeline")
    };
    CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"))
}

/// Nanoseconds per event of `p` on `batch`, best of 5 runs of 200 batches.
fn ns_per_event(p: &CompiledPipeline, batch: &[InputMessage]) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..200 {
                black_box(p.process(black_box(batch)));
            }
            t.elapsed().as_nanos() as f64 / (200 * batch.len()) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn bench_wasm(c: &mut Criterion) {
    weir_engine::wasm::register_module("bench", "traps", 1, guest("weir-test-traps"));
    weir_engine::wasm::register_module("bench", "pii-redact", 1, guest("pii-redact"));
    let batch = orders(BATCH);
    let plain = pipeline(None);
    let noop = pipeline(Some("{ module: traps, function: noop }"));
    let pii = pipeline(Some("{ module: pii-redact, function: redact }"));

    let mut g = c.benchmark_group("wasm");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, p) in [
        ("passthrough", &plain),
        ("noop", &noop),
        ("pii_redact", &pii),
    ] {
        g.bench_function(format!("{name}/{BATCH}"), |b| {
            b.iter_batched_ref(
                || (),
                |()| black_box(p.process(black_box(&batch))),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let (base, with_noop, with_pii) = (
        ns_per_event(&plain, &batch),
        ns_per_event(&noop, &batch),
        ns_per_event(&pii, &batch),
    );
    println!("| pipeline | ns/event | events/s |");
    println!("|---|---|---|");
    for (name, ns) in [
        ("passthrough", base),
        ("+ wasm noop", with_noop),
        ("+ wasm pii-redact", with_pii),
    ] {
        println!("| {name} | {ns:.1} | {:.0} |", 1e9 / ns);
    }
    println!(
        "{{\"bench\":\"wasm\",\"batch\":{BATCH},\"passthrough_ns\":{base:.1},\"noop_ns\":{with_noop:.1},\"noop_overhead_ns\":{:.1},\"pii_redact_ns\":{with_pii:.1},\"pii_redact_events_per_s\":{:.0}}}",
        with_noop - base,
        1e9 / with_pii
    );
}

criterion_group!(benches, bench_wasm);
criterion_main!(benches);
