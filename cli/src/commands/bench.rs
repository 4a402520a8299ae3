//! `weir bench`: end-to-end throughput against a real nats-server — two raw async-nats
//! read → publish → ack baselines (classic, and the best technique without Weir) and the
//! pipeline under test, interleaved over several rounds in one run, with the median ratios;
//! `--sweep` tunes batch size, max wait, in-flight window and parallelism.

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "bench")]
use anyhow::Context as _;
#[cfg(feature = "bench")]
use weir_benches::{BenchOptions, KnobOverrides};

/// Arguments of `weir bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Pipeline file under test (its first Pipeline; its Streams are created). Default: the
    /// built-in passthrough pipeline.
    #[arg(short = 'f', long = "file", conflicts_with = "builtin")]
    pub file: Option<PathBuf>,
    /// A built-in pipeline: `passthrough`, `orders` (filter + map + route with fan-out),
    /// `validated` (a `validate` node with the order's JSON Schema, then publish) or `window`
    /// (per-minute metrics over 10 000 keys, checkpointed every second).
    #[arg(long)]
    pub builtin: Option<String>,
    /// Use this NATS server instead of starting one.
    #[arg(long)]
    pub nats: Option<String>,
    /// Messages per throughput run.
    #[arg(short = 'n', long, default_value_t = 100_000)]
    pub messages: u64,
    /// Interleaved rounds of (classic raw, best raw, pipeline); the ratios printed are the
    /// medians of the rounds' ratios.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: u64,
    /// Payloads to send, one per line (default: generated ≈223-byte order JSON).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Sweep the knobs and print the best settings.
    #[arg(long)]
    pub sweep: bool,
    /// Messages per fetched batch (default: the pipeline file's, as the next three).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Longest wait for a batch to fill, e.g. `5ms`.
    #[arg(long, value_parser = weir_pipelines::units::parse_duration)]
    pub max_wait: Option<Duration>,
    /// In-flight PubAcks per loop.
    #[arg(long)]
    pub window: Option<usize>,
    /// Concurrent batch loops.
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// Seconds of each paced latency run, each stage at half of its own median throughput,
    /// counted after a 1 s warm-up (0 skips them). Each stage is paced twice (best raw,
    /// pipeline, pipeline, best raw) and reports p50/p99 over both runs.
    #[arg(long, default_value_t = 2.0)]
    pub latency_seconds: f64,
    /// Write every latency of the paced runs to this file, one line each (tab-separated:
    /// stage, run 1 or 2, ms since that run's counted part began, latency ms), e.g. to see
    /// whether the p99 is made by a few stalls.
    #[arg(long)]
    pub latency_out: Option<PathBuf>,
}

/// Without the `bench` feature: says how to build a `weir` with the harness.
#[cfg(not(feature = "bench"))]
pub fn run(_args: Args) -> anyhow::Result<u8> {
    anyhow::bail!(
        "this weir was built without the bench harness (cargo feature `bench`); build one \
         with it: `cargo build -p weir --features bench` (it is on by default)"
    )
}

/// Runs the command; returns the exit code.
#[cfg(feature = "bench")]
pub fn run(args: Args) -> anyhow::Result<u8> {
    let pipeline_yaml = match (&args.file, args.builtin.as_deref()) {
        (Some(file), _) => {
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        (None, None | Some("passthrough")) => weir_benches::harness::PASSTHROUGH.to_string(),
        (None, Some("orders")) => weir_benches::harness::ORDERS.to_string(),
        (None, Some("window")) => weir_benches::harness::WINDOW.to_string(),
        (None, Some("validated")) => weir_benches::harness::VALIDATED.to_string(),
        (None, Some(other)) => {
            anyhow::bail!(
                "unknown built-in pipeline {other:?}; use passthrough, orders, validated or window"
            )
        }
    };
    let inputs = match &args.input {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let lines: Vec<bytes::Bytes> = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| bytes::Bytes::from(l.to_string()))
                .collect();
            anyhow::ensure!(!lines.is_empty(), "{} has no payload lines", path.display());
            Some(lines)
        }
        None => None,
    };
    let options = BenchOptions {
        nats_url: args.nats,
        messages: args.messages,
        pipeline_yaml,
        inputs,
        knobs: KnobOverrides {
            batch_size: args.batch_size,
            max_wait: args.max_wait,
            window: args.window,
            parallelism: args.parallelism,
        },
        rounds: args.rounds as usize,
        sweep: args.sweep,
        latency_seconds: args.latency_seconds,
        latency_out: args.latency_out,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(weir_benches::run(options))?;
    print!("{}", report.table());
    println!("{}", report.json());
    Ok(0)
}
