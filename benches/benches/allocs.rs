//! Heap allocations per input on the worker's path of a batch, counted exactly (not timed):
//! the engine (`CompiledPipeline::process`), the outputs turned into the sink's messages
//! (`Outbound::from_output`, ids included) and each message's wire headers as the sink sends
//! them. Allocation was a fifth of the worker's CPU in `perf` (docs/bench.md), and a count does
//! not vary with the machine, so a change to the path shows here even where the end-to-end
//! throughput is too noisy to tell.
//!
//! Run: `cargo bench -p weir-benches --bench allocs` (prints a table and a JSON line; the
//! counts do not depend on the build profile, so `cargo test --bench allocs` prints the same).

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

use weir_connectors::{MsgIdPolicy, Outbound};
use weir_engine::{CompiledPipeline, Fate, InputMessage};
use weir_pipelines::Resource;

/// The system allocator with counters (the count is the allocator's callers', so it is the same
/// under the mimalloc of the `weir` binary).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations included) and bytes asked for while `f` runs, and what it
/// returned.
fn counted<T>(f: impl FnOnce() -> T) -> (u64, u64, T) {
    let region = Region::new(GLOBAL);
    let out = f();
    let change = region.change();
    (
        (change.allocations + change.reallocations) as u64,
        (change.bytes_allocated as i64 + change.bytes_reallocated as i64).max(0) as u64,
        out,
    )
}

/// `n` orders as `weir bench` sends them: generated payloads, no headers.
fn inputs(n: u64) -> Vec<InputMessage> {
    (0..n)
        .map(|i| InputMessage {
            subject: "bench.in.orders".into(),
            headers: Vec::new(),
            payload: weir_benches::orders::order(i),
            seq: i + 1,
            stream: "BENCH_IN".into(),
            timestamp_micros: 1_795_000_000_000_000 + i as i64,
        })
        .collect()
}

/// The pipeline of a built-in of `weir bench` (its file also declares streams), compiled.
fn builtin(file: &str) -> (String, CompiledPipeline) {
    let resources = weir_pipelines::load_str(file, "built-in").expect("the built-in loads");
    let p = resources
        .into_iter()
        .find_map(|r| match r {
            Resource::Pipeline(p) => Some(p),
            _ => None,
        })
        .expect("the built-in declares a pipeline");
    let name = p.metadata.name.clone();
    (
        name,
        CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}")),
    )
}

struct Row {
    name: &'static str,
    outputs_per_input: f64,
    engine: f64,
    outbound: f64,
    headers: f64,
    bytes: f64,
}

fn measure(name: &'static str, file: &str, batch: &[InputMessage]) -> Row {
    let (pipeline_name, pipeline) = builtin(file);
    let ids = MsgIdPolicy::PerInput {
        pipeline: pipeline_name,
    };
    // Warm up: first calls fill caches (compiled expressions, thread locals).
    for _ in 0..3 {
        drop(pipeline.process(batch));
    }
    let n = batch.len() as f64;
    let (engine, engine_bytes, result) = counted(|| pipeline.process(batch));
    let outputs: Vec<(usize, usize, _)> = result
        .fates
        .into_iter()
        .enumerate()
        .filter_map(|(i, fate)| match fate {
            Fate::Outputs(outputs) => {
                Some(outputs.into_iter().enumerate().map(move |(k, o)| (i, k, o)))
            }
            _ => None,
        })
        .flatten()
        .collect();
    let count = outputs.len();
    let (outbound, outbound_bytes, messages) = counted(|| {
        outputs
            .into_iter()
            .map(|(i, k, o)| Outbound::from_output(&ids, &batch[i], k, o).expect("sendable"))
            .collect::<Vec<_>>()
    });
    let (headers, header_bytes, maps) = counted(|| {
        messages
            .iter()
            .map(Outbound::wire_headers)
            .collect::<Vec<_>>()
    });
    drop(maps);
    Row {
        name,
        outputs_per_input: count as f64 / n,
        engine: engine as f64 / n,
        outbound: outbound as f64 / n,
        headers: headers as f64 / n,
        bytes: (engine_bytes + outbound_bytes + header_bytes) as f64 / n,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a plain `cargo test` of the benches runs this too.
    let batch = inputs(500);
    let rows = [
        measure("passthrough", weir_benches::harness::PASSTHROUGH, &batch),
        measure("orders", weir_benches::harness::ORDERS, &batch),
    ];
    println!(
        "{:<12} {:>8} {:>8} {:>9} {:>8} {:>7} {:>9}",
        "built-in", "out/in", "engine", "outbound", "headers", "total", "bytes/in"
    );
    for r in &rows {
        println!(
            "{:<12} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>7.2} {:>9.0}",
            r.name,
            r.outputs_per_input,
            r.engine,
            r.outbound,
            r.headers,
            r.engine + r.outbound + r.headers,
            r.bytes
        );
    }
    let json = serde_json::json!({
        "bench": "allocations-per-input",
        "batch": batch.len(),
        "rows": rows.iter().map(|r| serde_json::json!({
            "pipeline": r.name, "outputs_per_input": r.outputs_per_input, "engine": r.engine,
            "outbound": r.outbound, "headers": r.headers, "bytes": r.bytes,
        })).collect::<Vec<_>>(),
    });
    println!("{json}");
}
