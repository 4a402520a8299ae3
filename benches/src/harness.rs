//! The measurement: preload, run a stage (the two raw baselines or the pipeline) on a fresh
//! durable consumer until every input is settled (nothing pending, nothing un-acked). Stages
//! are interleaved over several rounds (classic, best, pipeline, classic, best, …) and the
//! ratios are the medians of the rounds' ratios, since single runs on a shared machine vary by
//! ±20 %. Then, for the best raw stage and the pipeline, a paced run at half of that stage's
//! median throughput for latency (input stored → output stored, read from the streams' own
//! timestamps), after a warm-up that is not counted. Prints a table and one JSON line.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use weir_pipelines::{PipelineResource, Resource};
use weir_runtime::{Metrics, PipelineConfig, Worker};

use crate::knobs::nats;
pub use crate::knobs::{BenchError, KnobOverrides, Knobs};
use crate::orders::order;
use crate::raw::{run_raw_best, run_raw_classic};

/// The streams of the built-in pipelines: `BENCH_IN` (`bench.in.>`), `BENCH_OUT`
/// (`bench.out.>`).
macro_rules! bench_streams {
    () => {
        r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: BENCH_IN }
spec: { subjects: ["bench.in.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: BENCH_OUT }
spec: { subjects: ["bench.out.>"] }
---
"#
    };
}

/// The built-in passthrough pipeline (the default of `weir bench`).
pub const PASSTHROUGH: &str = concat!(
    bench_streams!(),
    r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-passthrough }
spec:
  # The knobs of the best raw stage: batches of 500 taken as they come, 16 in flight.
  source: { stream: BENCH_IN, consumer: { batch_size: 500, max_wait: 0ms } }
  nodes:
    - id: out
      publish: { subject: "bench.out.orders" }
  execution: { delivery: exclusive, max_in_flight: 8000 }
"#
);

/// A built-in validating pipeline: each order is checked against the order's JSON Schema
/// (10 properties, the one `benches/benches/engine.rs` measures in memory) and published
/// unchanged; an invalid one would go to the dead-letter stream. The same file users run with
/// `weir bench -f docs/examples/bench-validated.yaml`.
pub const VALIDATED: &str = include_str!("../../docs/examples/bench-validated.yaml");

/// A built-in stateful pipeline: per-minute metrics (count, sum, avg, max of the amount) over
/// 10 000 keys by stream time, checkpointed every second. It emits far fewer messages than it
/// takes in: like every stage, it is measured by the inputs it has acked (after the checkpoint
/// that covers them).
pub const WINDOW: &str = concat!(
    bench_streams!(),
    r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-window }
spec:
  source: { stream: BENCH_IN }
  nodes:
    - id: per-minute
      window:
        kind: tumbling
        size: 1m
        group_by: { key: "seq % 10000" }
        aggregates:
          orders: count(*)
          total: sum(data.amount)
          mean: avg(data.amount)
          top: max(data.amount)
        late: late
      next: out
    - { id: out, publish: { subject: "bench.out.metrics" } }
    - { id: late, drop: {} }
  execution: { checkpoint: { interval: 1s } }
"#
);

/// A built-in real pipeline: filter + map + route (3 rules, fan-out) + publish.
pub const ORDERS: &str = concat!(
    bench_streams!(),
    r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-orders }
spec:
  # The knobs of the best raw stage: batches of 500 taken as they come, 16 in flight.
  source: { stream: BENCH_IN, consumer: { batch_size: 500, max_wait: 0ms } }
  nodes:
    - id: open
      filter: "data.status <> 'refunded'"
      next: tag
    - id: tag
      map: { set: { amount_cents: "CAST(data.amount * 100 AS BIGINT)", tier: "'std'" } }
      next: route
    - id: route
      route:
        - when: "data.currency IN ('USD', 'EUR') AND data.amount > 10000"
          next: [vip, audit]
        - when: "data.region LIKE 'eu-%'"
          next: eu
        - when: "data.status = 'pending'"
          next: audit
      default: standard
    - id: vip
      publish: { subject: "bench.out.vip" }
    - id: audit
      publish: { subject: "bench.out.audit" }
    - id: eu
      publish: { subject: "bench.out.eu.{data.region}" }
    - id: standard
      publish: { subject: "bench.out.standard" }
  execution: { delivery: exclusive, max_in_flight: 8000 }
"#
);

/// The stream that stores the raw stages' outputs (it takes fast batches, as Weir-declared
/// streams do).
const RAW_STREAM: &str = "BENCH_RAW";
/// The subject the raw stages publish to.
const RAW_SUBJECT: &str = "bench.raw.out";

/// What to bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Use this server instead of starting one.
    pub nats_url: Option<String>,
    /// Messages per throughput run.
    pub messages: u64,
    /// The pipeline file's text (default: [`PASSTHROUGH`]).
    pub pipeline_yaml: String,
    /// Payloads to cycle through instead of generated orders.
    pub inputs: Option<Vec<Bytes>>,
    /// Knobs of the main measurement that replace the pipeline file's own (the file's values
    /// and Weir's defaults for the rest).
    pub knobs: KnobOverrides,
    /// Interleaved rounds of (classic raw, best raw, pipeline); ratios are their medians.
    pub rounds: usize,
    /// Also sweep the knobs.
    pub sweep: bool,
    /// Seconds of each paced latency run (0 = skip); each stage is paced twice, and its
    /// p50 and p99 are those of both runs' latencies together.
    pub latency_seconds: f64,
    /// Where to write every latency the paced runs measured, one line each (tab-separated:
    /// stage, run (1 or 2), milliseconds since that run's counted part began by the input's
    /// storage time, latency in milliseconds): to see whether a p99 comes from stalls or
    /// from every message.
    pub latency_out: Option<std::path::PathBuf>,
}

/// One measured run (or, in a report, the median run of a stage over the rounds).
#[derive(Debug, Clone)]
pub struct Measurement {
    /// `raw-classic`, `raw-best` or the pipeline name.
    pub name: String,
    /// Knobs used.
    pub knobs: Knobs,
    /// Inputs processed.
    pub messages: u64,
    /// Wall time until every input was settled.
    pub seconds: f64,
    /// Inputs per second.
    pub msgs_per_s: f64,
    /// Input megabytes per second.
    pub mb_per_s: f64,
    /// Messages the stage stored in its output streams (a pipeline that filters stores fewer
    /// than its inputs, one that fans out more).
    pub outputs: u64,
    /// Stored outputs per second.
    pub outputs_per_s: f64,
    /// Inputs per second of the paced latency run (half of `msgs_per_s`).
    pub paced_rate: Option<f64>,
    /// Median latency of the paced run, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

/// One interleaved round: inputs per second of each stage.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Classic raw stage (per-message PubAcks and acks).
    pub classic: f64,
    /// Best raw stage (fast batches, one AckAll per batch).
    pub best: f64,
    /// The pipeline.
    pub pipeline: f64,
    /// Outputs the best raw stage stored per second (one per input).
    pub best_outputs: f64,
    /// Outputs the pipeline stored per second.
    pub pipeline_outputs: f64,
}

/// The result of `weir bench`.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The classic raw baseline (median round).
    pub classic: Measurement,
    /// The best raw baseline (median round): the bar the pipeline is held to.
    pub best: Measurement,
    /// The pipeline under test (median round).
    pub pipeline: Measurement,
    /// Every round, in order.
    pub rounds: Vec<Round>,
    /// Sweep trials, in order.
    pub sweep: Vec<Measurement>,
    /// The best knobs found by the sweep.
    pub best_knobs: Option<Knobs>,
    /// Mean input size in bytes.
    pub mean_size: f64,
    /// The garbage-collector settings of the bench's own nats-server (`GOGC`, `GOMEMLIMIT`
    /// as the bench found them in its environment); `None` with `--nats`.
    pub server_gc: Option<ServerGc>,
}

/// The Go garbage-collector settings a nats-server started by the bench inherits. On a
/// machine of few cores its collections make most of the latency tail (docs/bench.md).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerGc {
    /// `GOGC` (`None`: unset, Go's default 100).
    pub gogc: Option<String>,
    /// `GOMEMLIMIT` (`None`: unset, no limit).
    pub gomemlimit: Option<String>,
}

impl ServerGc {
    /// The settings in this process's environment, which the server inherits.
    fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        ServerGc {
            gogc: var("GOGC"),
            gomemlimit: var("GOMEMLIMIT"),
        }
    }

    fn describe(&self) -> String {
        format!(
            "GOGC={}, GOMEMLIMIT={}",
            self.gogc.as_deref().unwrap_or("100 (default)"),
            self.gomemlimit.as_deref().unwrap_or("none")
        )
    }
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl BenchReport {
    /// Median over the rounds of pipeline / best raw throughput.
    pub fn ratio(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.pipeline / r.best).collect())
    }

    /// Median over the rounds of pipeline / best raw stored outputs per second: the server's
    /// side of the work, which the input ratio hides when a pipeline filters or fans out.
    pub fn ratio_stored(&self) -> f64 {
        median(
            self.rounds
                .iter()
                .map(|r| r.pipeline_outputs / r.best_outputs)
                .collect(),
        )
    }

    /// Outputs per input of the pipeline's median round.
    pub fn outputs_per_input(&self) -> f64 {
        self.pipeline.outputs as f64 / self.pipeline.messages as f64
    }

    /// Median over the rounds of pipeline / classic raw throughput.
    pub fn ratio_classic(&self) -> f64 {
        median(self.rounds.iter().map(|r| r.pipeline / r.classic).collect())
    }

    /// A human table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<22} {:>9} {:>8} {:>11} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}\n",
            "stage (median round)",
            "messages",
            "seconds",
            "msgs/s",
            "MB/s",
            "out/in",
            "paced/s",
            "p50 ms",
            "p99 ms",
            "vs best"
        );
        let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let best_of_classic = median(self.rounds.iter().map(|r| r.classic / r.best).collect());
        for (m, ratio) in [
            (&self.classic, best_of_classic),
            (&self.best, 1.0),
            (&self.pipeline, self.ratio()),
        ] {
            out.push_str(&format!(
                "{:<22} {:>9} {:>8.2} {:>11.0} {:>8.2} {:>7.2} {:>9} {:>9} {:>9} {:>9.3}\n",
                m.name,
                m.messages,
                m.seconds,
                m.msgs_per_s,
                m.mb_per_s,
                m.outputs as f64 / m.messages as f64,
                m.paced_rate
                    .map(|r| format!("{r:.0}"))
                    .unwrap_or_else(|| "-".into()),
                ms(m.p50_ms),
                ms(m.p99_ms),
                ratio
            ));
        }
        out.push_str(&format!(
            "\nratio (median of {} interleaved rounds): {:.3} × best raw, {:.3} × classic raw\n",
            self.rounds.len(),
            self.ratio(),
            self.ratio_classic()
        ));
        out.push_str(&format!(
            "stored outputs per second: {:.3} × best raw (the pipeline stores {:.2} outputs per \
             input, the raw stages 1)\n",
            self.ratio_stored(),
            self.outputs_per_input()
        ));
        if self.best.p50_ms.is_some() {
            out.push_str(&format!(
                "latency: each stage paced at half of its median msgs/s (paced/s), input stored → \
                 output stored, after a {}-second warm-up\n",
                LATENCY_WARMUP.as_secs()
            ));
            if let Some(gc) = &self.server_gc {
                out.push_str(&format!(
                    "the bench's nats-server collects garbage with {}: on few cores its \
                     collections make most of the p99 (docs/bench.md)\n",
                    gc.describe()
                ));
            }
        }
        out.push_str("rounds (msgs/s): classic / best / pipeline\n");
        for (i, r) in self.rounds.iter().enumerate() {
            out.push_str(&format!(
                "  {:>2}: {:>9.0} / {:>9.0} / {:>9.0}   {:.3} × best\n",
                i + 1,
                r.classic,
                r.best,
                r.pipeline,
                r.pipeline / r.best
            ));
        }
        if !self.sweep.is_empty() {
            out.push_str("\nsweep (pipeline):\n");
            for m in &self.sweep {
                out.push_str(&format!(
                    "  batch={:<5} max_wait={:<6} window={:<5} parallelism={:<2} {:>9.0} msgs/s\n",
                    m.knobs.batch_size,
                    format!("{:?}", m.knobs.max_wait),
                    m.knobs.window,
                    m.knobs.parallelism,
                    m.msgs_per_s
                ));
            }
            if let Some(best) = &self.best_knobs {
                out.push_str("best settings, to paste into the pipeline file:\n");
                out.push_str(&best.snippet());
            }
        }
        out
    }

    /// One JSON line for comparing runs.
    pub fn json(&self) -> String {
        let m = |m: &Measurement| {
            serde_json::json!({
                "name": m.name, "messages": m.messages, "seconds": m.seconds,
                "msgs_per_s": m.msgs_per_s, "mb_per_s": m.mb_per_s,
                "outputs": m.outputs, "outputs_per_s": m.outputs_per_s,
                "paced_rate": m.paced_rate, "p50_ms": m.p50_ms, "p99_ms": m.p99_ms,
                "batch_size": m.knobs.batch_size, "max_wait_ms": m.knobs.max_wait.as_secs_f64() * 1e3,
                "window": m.knobs.window, "parallelism": m.knobs.parallelism,
            })
        };
        serde_json::json!({
            "bench": "weir-e2e",
            "mean_size": self.mean_size,
            "raw_classic": m(&self.classic),
            "raw_best": m(&self.best),
            "pipeline": m(&self.pipeline),
            "ratio": self.ratio(),
            "ratio_classic": self.ratio_classic(),
            "ratio_stored": self.ratio_stored(),
            "outputs_per_input": self.outputs_per_input(),
            "server_gc": self.server_gc.as_ref().map(|gc| serde_json::json!({
                "gogc": gc.gogc, "gomemlimit": gc.gomemlimit,
            })),
            "rounds": self.rounds.iter().map(|r| serde_json::json!({
                "classic": r.classic, "best": r.best, "pipeline": r.pipeline,
                "best_outputs": r.best_outputs, "pipeline_outputs": r.pipeline_outputs,
            })).collect::<Vec<_>>(),
            "best_knobs": self.best_knobs.map(|b| serde_json::json!({
                "batch_size": b.batch_size, "max_wait_ms": b.max_wait.as_secs_f64() * 1e3,
                "max_in_flight": b.window, "parallelism": b.parallelism,
            })),
        })
        .to_string()
    }
}

struct Setup {
    client: async_nats::Client,
    js: jetstream::Context,
    /// A connection of its own for the inputs of the paced run, as a producer would have:
    /// on the stage's connection they would queue behind its outputs and acks.
    producer: jetstream::Context,
    pipeline: PipelineResource,
    /// The pipeline, checked and planned once (each trial compiles and runs it).
    plan: weir_pipelines::ValidatedPipeline,
    source_stream: String,
    subject: String,
    output_streams: Vec<String>,
    inputs: Vec<Bytes>,
    trial: usize,
    /// The pipeline has `window` or `dedup` nodes.
    stateful: bool,
    /// The pipeline runs one loop whatever its parallelism (`delivery: exclusive`, or one
    /// unpartitioned state): the sweep leaves parallelism at 1.
    one_loop: bool,
    /// The knobs of the main measurement: the file's, those given instead, parallelism 1 for
    /// one loop.
    knobs: Knobs,
}

/// The bench's own nats-server (JetStream store in a temporary directory), killed on drop.
struct LocalServer {
    server: weir_connectors::nats_server::RunningServer,
    _dir: tempfile::TempDir,
}

impl LocalServer {
    fn start() -> Result<Self, BenchError> {
        use weir_connectors::nats_server::{LaunchSpec, find_binary};
        let fail = |e: &dyn std::fmt::Display| BenchError::Server(e.to_string());
        let binary = find_binary(&[std::path::PathBuf::from(".tools/bin/nats-server")])
            .map_err(|e| fail(&format!("{e}; or give --nats URL of a running server")))?;
        let dir = tempfile::Builder::new()
            .prefix("weir-bench-nats-")
            .tempdir()
            .map_err(|e| fail(&e))?;
        let server = LaunchSpec::new(binary, dir.path())
            .launch()
            .map_err(|e| fail(&e))?;
        Ok(Self { server, _dir: dir })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.server.kill();
    }
}

/// The raw stages' stream: stored as the pipeline's first output stream declared in the file
/// is (storage, replicas, limits, duplicate window), so that both sides pay the server the
/// same per message; on its own subjects. Defaults when the file declares no output stream.
fn raw_stream_config(
    output: Option<&weir_pipelines::StreamResource>,
) -> Result<stream::Config, BenchError> {
    let like = match output {
        Some(resource) => weir_connectors::stream_config(resource).map_err(nats)?,
        None => stream::Config {
            allow_batch_publish: true,
            ..Default::default()
        },
    };
    Ok(stream::Config {
        name: RAW_STREAM.into(),
        subjects: vec!["bench.raw.>".into()],
        ..like
    })
}

/// Runs the bench.
pub async fn run(options: BenchOptions) -> Result<BenchReport, BenchError> {
    let _server;
    let server_gc = options.nats_url.is_none().then(ServerGc::from_env);
    let url = match &options.nats_url {
        Some(url) => url.clone(),
        None => {
            let server = LocalServer::start()?;
            let url = server.server.url();
            _server = server;
            url
        }
    };
    let mut setup = Setup::prepare(&url, &options).await?;
    let mean_size =
        setup.inputs.iter().map(Bytes::len).sum::<usize>() as f64 / setup.inputs.len() as f64;
    let (runs, rounds) = interleaved_rounds(&mut setup, &options).await?;
    let [classic, mut best, mut main] = runs.map(median_run);
    if options.latency_seconds > 0.0 {
        // Each stage is paced twice, once early and once late (best, pipeline, pipeline,
        // best): the server's heap grows through the bench, and its collections stall longer
        // as it does, so the stage that always went second met the longer stalls.
        let mut paced_runs: Vec<PacedRun> = Vec::new();
        for (i, stage) in [
            Stage::RawBest,
            Stage::Pipeline,
            Stage::Pipeline,
            Stage::RawBest,
        ]
        .into_iter()
        .enumerate()
        {
            // A window's results are not outputs of single inputs: no input → output latency.
            if stage == Stage::Pipeline && setup.stateful {
                continue;
            }
            let m = if stage.is_raw() { &mut best } else { &mut main };
            // "At 50 % of max throughput" (TARGETS.md): each stage at half of its own median
            // round, so that each runs at the same load.
            let rate = m.msgs_per_s * 0.5;
            m.paced_rate = Some(rate);
            let latencies = latency(&mut setup, stage, rate, options.latency_seconds).await?;
            paced_runs.push(PacedRun {
                stage,
                name: m.name.clone(),
                run: i / 2 + 1,
                latencies,
            });
        }
        for (stage, m) in [(Stage::RawBest, &mut best), (Stage::Pipeline, &mut main)] {
            let mut sorted: Vec<f64> = paced_runs
                .iter()
                .filter(|r| r.stage == stage)
                .flat_map(|r| r.latencies.iter().map(|(_, ms)| *ms))
                .collect();
            if sorted.is_empty() {
                continue;
            }
            sorted.sort_by(|a, b| a.total_cmp(b));
            let pick = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
            m.p50_ms = Some(pick(0.5));
            m.p99_ms = Some(pick(0.99));
        }
        if let Some(path) = &options.latency_out {
            write_latencies(path, &paced_runs)?;
        }
    }
    let (sweep, best_knobs) = if options.sweep {
        let (sweep, knobs) = sweep_knobs(&mut setup, &options, main.msgs_per_s).await?;
        (sweep, Some(knobs))
    } else {
        (Vec::new(), None)
    };
    Ok(BenchReport {
        classic,
        best,
        pipeline: main,
        rounds,
        sweep,
        best_knobs,
        mean_size,
        server_gc,
    })
}

/// One paced run of a stage: every latency it measured (see [`latency`]).
struct PacedRun {
    stage: Stage,
    /// The stage's name (`raw-best` or the pipeline's).
    name: String,
    /// 1 for the stage's early run, 2 for its late one.
    run: usize,
    latencies: Vec<(f64, f64)>,
}

/// Writes the latencies of the paced runs to `path`, one line each.
fn write_latencies(path: &std::path::Path, runs: &[PacedRun]) -> Result<(), BenchError> {
    use std::io::Write as _;
    let fail = |e: std::io::Error| BenchError::Io(format!("{}: {e}", path.display()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    for r in runs {
        for (at, ms) in &r.latencies {
            writeln!(out, "{}\t{}\t{at:.3}\t{ms:.3}", r.name, r.run).map_err(fail)?;
        }
    }
    out.flush().map_err(fail)
}

impl Setup {
    /// The streams `stage` writes its outputs to.
    fn output_streams_of(&self, stage: Stage) -> Vec<String> {
        if stage.is_raw() {
            vec![RAW_STREAM.into()]
        } else {
            self.output_streams.clone()
        }
    }

    /// Connects to `url`, declares the file's streams and the raw stages' stream, and reads
    /// the pipeline and its source.
    async fn prepare(url: &str, options: &BenchOptions) -> Result<Setup, BenchError> {
        let client = weir_connectors::connect(url, "weir bench")
            .await
            .map_err(nats)?;
        let js = jetstream::new(client.clone());
        let resources = weir_pipelines::load_str(&options.pipeline_yaml, "bench pipeline")
            .map_err(|d| BenchError::Pipeline(d.to_string()))?;
        let mut streams = Vec::new();
        let mut pipeline = None;
        for resource in &resources {
            match resource {
                Resource::Stream(s) => {
                    weir_connectors::ensure_stream(&js, s).await.map_err(nats)?;
                    streams.push(s);
                }
                Resource::Pipeline(p) if pipeline.is_none() => pipeline = Some(p.clone()),
                Resource::Pipeline(_) => {}
            }
        }
        let pipeline =
            pipeline.ok_or_else(|| BenchError::Pipeline("the file has no Pipeline".into()))?;
        let source_stream = pipeline.spec.source.stream.clone();
        let subject = input_subject(&js, &pipeline, &source_stream).await?;
        let output_streams: Vec<_> = streams
            .into_iter()
            .filter(|s| s.metadata.name != source_stream)
            .collect();
        js.create_or_update_stream(raw_stream_config(output_streams.first().copied())?)
            .await
            .map_err(nats)?;
        let output_streams = output_streams
            .into_iter()
            .map(|s| s.metadata.name.clone())
            .collect();
        let inputs = options
            .inputs
            .clone()
            .unwrap_or_else(|| (0..1000).map(order).collect());
        let producer = jetstream::new(
            weir_connectors::connect(url, "weir bench producer")
                .await
                .map_err(nats)?,
        );
        let stateful = pipeline
            .spec
            .nodes
            .iter()
            .any(|n| n.window.is_some() || n.dedup.is_some());
        let x = &pipeline.spec.execution;
        let one_loop = x.delivery == weir_pipelines::spec::DeliveryMode::Exclusive
            || (stateful && x.partitions.unwrap_or(1) <= 1);
        let plan = weir_engine::plan(&pipeline).map_err(|e| BenchError::Pipeline(e.to_string()))?;
        let mut knobs = options
            .knobs
            .over(Knobs::of(&PipelineConfig::from_plan(&plan)));
        if one_loop {
            knobs.parallelism = 1;
        }
        Ok(Setup {
            client,
            js,
            producer,
            stateful,
            one_loop,
            knobs,
            pipeline,
            plan,
            source_stream,
            subject,
            output_streams,
            inputs,
            trial: 0,
        })
    }
}

/// The subject the inputs are published on: the pipeline's first source filter (or its source
/// stream's first subject) with its wildcards filled in.
async fn input_subject(
    js: &jetstream::Context,
    pipeline: &PipelineResource,
    source_stream: &str,
) -> Result<String, BenchError> {
    let mut info = js
        .get_stream(source_stream)
        .await
        .map_err(|e| BenchError::Pipeline(format!("source stream {source_stream}: {e}")))?;
    let stream_subjects = info.info().await.map_err(nats)?.config.subjects.clone();
    let filter = pipeline
        .spec
        .source
        .subjects
        .first()
        .or(stream_subjects.first())
        .cloned()
        .ok_or_else(|| BenchError::Pipeline("source stream has no subjects".into()))?;
    Ok(filter.replace(['>', '*'], "bench"))
}

/// The three stages measured in turn, round after round (A/B/C/A/B/C…), so that a machine's
/// drift touches each alike: every stage's runs, and each round's rates.
async fn interleaved_rounds(
    setup: &mut Setup,
    options: &BenchOptions,
) -> Result<([Vec<Measurement>; 3], Vec<Round>), BenchError> {
    let rounds = options.rounds.max(1);
    let mut runs: [Vec<Measurement>; 3] = Default::default();
    for round in 0..rounds {
        for (i, stage) in [Stage::RawClassic, Stage::RawBest, Stage::Pipeline]
            .into_iter()
            .enumerate()
        {
            let knobs = setup.knobs;
            let m = measure(setup, stage, knobs, options.messages).await?;
            eprintln!(
                "bench: round {}/{rounds} {:<20} {:>9.0} msgs/s",
                round + 1,
                m.name,
                m.msgs_per_s
            );
            runs[i].push(m);
        }
    }
    let round_list = (0..rounds)
        .map(|i| Round {
            classic: runs[0][i].msgs_per_s,
            best: runs[1][i].msgs_per_s,
            pipeline: runs[2][i].msgs_per_s,
            best_outputs: runs[1][i].outputs_per_s,
            pipeline_outputs: runs[2][i].outputs_per_s,
        })
        .collect();
    Ok((runs, round_list))
}

/// Coordinate descent over the knobs, one at a time, keeping what helps: every run measured,
/// and the best knobs found.
async fn sweep_knobs(
    setup: &mut Setup,
    options: &BenchOptions,
    start_rate: f64,
) -> Result<(Vec<Measurement>, Knobs), BenchError> {
    let mut sweep = Vec::new();
    let mut current = setup.knobs;
    let mut current_rate = start_rate;
    let knobs = if setup.one_loop { 3 } else { 4 };
    for knob in 0..knobs {
        for knobs in candidates(current, knob) {
            if knobs == current {
                continue;
            }
            let m = measure(setup, Stage::Pipeline, knobs, options.messages).await?;
            if m.msgs_per_s > current_rate {
                current = knobs;
                current_rate = m.msgs_per_s;
            }
            sweep.push(m);
        }
    }
    Ok((sweep, current))
}

/// The values the sweep tries for knob number `knob` (batch size, fetch wait, window,
/// parallelism), the others as in `current`.
fn candidates(current: Knobs, knob: usize) -> Vec<Knobs> {
    match knob {
        0 => [64, 256, 1024]
            .iter()
            .map(|&b| Knobs {
                batch_size: b,
                ..current
            })
            .collect(),
        1 => [1, 5, 20]
            .iter()
            .map(|&w| Knobs {
                max_wait: Duration::from_millis(w),
                ..current
            })
            .collect(),
        2 => [256, 1024, 4096]
            .iter()
            .map(|&w| Knobs {
                window: w,
                ..current
            })
            .collect(),
        _ => [1, 2, 4, 8]
            .iter()
            .map(|&p| Knobs {
                parallelism: p,
                ..current
            })
            .collect(),
    }
}

/// The run of median throughput among a stage's rounds.
fn median_run(mut runs: Vec<Measurement>) -> Measurement {
    runs.sort_by(|a, b| a.msgs_per_s.total_cmp(&b.msgs_per_s));
    runs.swap_remove(runs.len() / 2)
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    RawClassic,
    RawBest,
    Pipeline,
}

impl Stage {
    fn is_raw(self) -> bool {
        self != Stage::Pipeline
    }
}

/// A running stage and how to stop it.
enum Running {
    Raw(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<Result<(), BenchError>>,
    ),
    Pipeline(
        tokio_util::sync::CancellationToken,
        tokio::task::JoinHandle<bool>,
    ),
}

async fn preload(setup: &Setup, n: u64, offset: u64) -> Result<u64, BenchError> {
    let mut in_flight = FuturesUnordered::new();
    let mut first = None;
    for i in 0..n {
        while in_flight.len() >= 4096 {
            if let Some(r) = in_flight.next().await {
                let ack: async_nats::jetstream::publish::PublishAck = r?;
                first = Some(first.map_or(ack.sequence, |f: u64| f.min(ack.sequence)));
            }
        }
        let payload = setup.inputs[((offset + i) % setup.inputs.len() as u64) as usize].clone();
        let ack = setup
            .js
            .publish(setup.subject.clone(), payload)
            .await
            .map_err(nats)?;
        in_flight.push(async move { ack.await.map_err(nats) });
    }
    while let Some(r) = in_flight.next().await {
        let ack = r?;
        first = Some(first.map_or(ack.sequence, |f: u64| f.min(ack.sequence)));
    }
    Ok(first.unwrap_or(0))
}

async fn start(
    setup: &mut Setup,
    stage: Stage,
    knobs: Knobs,
    start_seq: u64,
) -> Result<(Running, consumer::PullConsumer), BenchError> {
    setup.trial += 1;
    let durable = format!(
        "bench_{}_{}",
        match stage {
            Stage::RawClassic => "classic",
            Stage::RawBest => "best",
            Stage::Pipeline => "weir",
        },
        setup.trial
    );
    let deliver = consumer::DeliverPolicy::ByStartSequence {
        start_sequence: start_seq,
    };
    match stage {
        Stage::RawClassic | Stage::RawBest => {
            let stream = setup
                .js
                .get_stream(&setup.source_stream)
                .await
                .map_err(nats)?;
            let consumer: consumer::PullConsumer = stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(durable),
                    deliver_policy: deliver,
                    ack_policy: if stage == Stage::RawBest {
                        consumer::AckPolicy::All
                    } else {
                        consumer::AckPolicy::Explicit
                    },
                    filter_subject: setup.subject.clone(),
                    max_ack_pending: weir_connectors::source::DEFAULT_MAX_ACK_PENDING,
                    ..Default::default()
                })
                .await
                .map_err(nats)?;
            let (tx, rx) = tokio::sync::watch::channel(false);
            let (js, out) = (setup.js.clone(), RAW_SUBJECT.to_string());
            let task = if stage == Stage::RawBest {
                tokio::spawn(run_raw_best(js, consumer.clone(), out, rx))
            } else {
                tokio::spawn(run_raw_classic(js, consumer.clone(), out, knobs, rx))
            };
            Ok((Running::Raw(tx, task), consumer))
        }
        Stage::Pipeline => {
            let plan = &setup.plan;
            let mut config = PipelineConfig::from_plan(plan);
            config.source.durable = durable;
            config.source.deliver = deliver;
            config.source.filter_subjects = vec![setup.subject.clone()];
            config.source.batch_size = knobs.batch_size;
            config.source.max_wait = knobs.max_wait;
            config.max_in_flight = knobs.window;
            config.parallelism = knobs.parallelism;
            let compiled = weir_engine::CompiledPipeline::from_plan(plan)
                .map_err(|e| BenchError::Pipeline(e.to_string()))?;
            let mut worker = Worker::new(setup.client.clone(), Arc::new(Metrics::new()));
            let source = config.source.clone();
            worker
                .start_pipeline(config, Arc::new(compiled))
                .await
                .map_err(|e| BenchError::Pipeline(e.to_string()))?;
            let stop = worker.stop_token();
            let task = tokio::spawn(worker.run_until_stopped(Duration::from_secs(10)));
            let stream = setup
                .js
                .get_stream(&setup.source_stream)
                .await
                .map_err(nats)?;
            // A stateful pipeline creates its consumer once it holds its lease.
            let waited = Instant::now();
            let consumer = loop {
                match stream.get_consumer(&source.durable).await {
                    Ok(consumer) => break consumer,
                    Err(_) if waited.elapsed() < Duration::from_secs(20) => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(e) => return Err(nats(e)),
                }
            };
            Ok((Running::Pipeline(stop, task), consumer))
        }
    }
}

async fn stop(running: Running) -> Result<(), BenchError> {
    match running {
        Running::Raw(tx, task) => {
            let _ = tx.send(true);
            task.await.map_err(nats)?
        }
        Running::Pipeline(token, task) => {
            token.cancel();
            task.await.map_err(nats)?;
            Ok(())
        }
    }
}

async fn settle(consumer: &consumer::PullConsumer, deadline: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut next_report = started + Duration::from_secs(5);
    loop {
        let info = consumer.get_info().await.map_err(nats)?;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return Ok(());
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(5);
            eprintln!(
                "bench: consumer {} still has {} pending and {} un-acked after {:.0?}",
                info.name,
                info.num_pending,
                info.num_ack_pending,
                started.elapsed()
            );
        }
        if started.elapsed() > deadline {
            return Err(BenchError::Stalled(format!(
                "consumer {} still has {} pending and {} un-acked after {deadline:?}",
                info.name, info.num_pending, info.num_ack_pending
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn measure(
    setup: &mut Setup,
    stage: Stage,
    knobs: Knobs,
    n: u64,
) -> Result<Measurement, BenchError> {
    let start_seq = preload(setup, n, setup.trial as u64 * n).await?;
    let (running, consumer) = start(setup, stage, knobs, start_seq).await?;
    let started = Instant::now();
    settle(&consumer, Duration::from_secs(300)).await?;
    let seconds = started.elapsed().as_secs_f64();
    stop(running).await?;
    let outputs = outputs_of(setup, stage).await?;
    reset(setup, &consumer).await?;
    let bytes: f64 = setup.inputs.iter().map(Bytes::len).sum::<usize>() as f64
        / setup.inputs.len() as f64
        * n as f64;
    Ok(Measurement {
        name: match stage {
            Stage::RawClassic => "raw-classic".into(),
            Stage::RawBest => "raw-best".into(),
            Stage::Pipeline => setup.pipeline.metadata.name.clone(),
        },
        knobs,
        messages: n,
        seconds,
        msgs_per_s: n as f64 / seconds,
        mb_per_s: bytes / seconds / 1e6,
        outputs,
        outputs_per_s: outputs as f64 / seconds,
        paced_rate: None,
        p50_ms: None,
        p99_ms: None,
    })
}

/// Messages in the stage's output streams (all of them are its own: every stage starts on
/// purged streams).
async fn outputs_of(setup: &Setup, stage: Stage) -> Result<u64, BenchError> {
    let mut total = 0;
    for name in setup.output_streams_of(stage) {
        let mut stream = setup.js.get_stream(name).await.map_err(nats)?;
        total += stream.info().await.map_err(nats)?.state.messages;
    }
    Ok(total)
}

/// Puts the server back where it was before a stage: its consumer deleted, the source and
/// output streams purged. Every stage then starts on the same, empty streams, so that the
/// order of the stages does not favour one of them (a stream that holds more messages costs
/// the server more per message).
async fn reset(setup: &Setup, consumer: &consumer::PullConsumer) -> Result<(), BenchError> {
    let mut consumer = consumer.clone();
    let name = consumer.info().await.map_err(nats)?.name.clone();
    let source = setup
        .js
        .get_stream(&setup.source_stream)
        .await
        .map_err(nats)?;
    source.delete_consumer(&name).await.map_err(nats)?;
    let streams = std::iter::once(setup.source_stream.as_str())
        .chain(std::iter::once(RAW_STREAM))
        .chain(setup.output_streams.iter().map(String::as_str));
    for name in streams {
        let stream = setup.js.get_stream(name).await.map_err(nats)?;
        stream.purge().await.map_err(nats)?;
    }
    Ok(())
}

/// How long a paced run goes before its latencies count.
const LATENCY_WARMUP: Duration = Duration::from_secs(1);

/// Paced run at `rate` msgs/s for `seconds` after [`LATENCY_WARMUP`]: the latency of every
/// counted output, input stored → output stored, both read from the streams' own timestamps
/// (one clock, the server's), with its input's storage time in milliseconds since the counted
/// part began; in input order.
async fn latency(
    setup: &mut Setup,
    stage: Stage,
    rate: f64,
    seconds: f64,
) -> Result<Vec<(f64, f64)>, BenchError> {
    let next_seq = next_sequence(setup, &setup.source_stream).await?;
    let out_streams = setup.output_streams_of(stage);
    let mut out_start = HashMap::new();
    for name in &out_streams {
        out_start.insert(name.clone(), next_sequence(setup, name).await?);
    }
    let (running, consumer) = start(setup, stage, setup.knobs, next_seq).await?;
    publish_paced(setup, rate, LATENCY_WARMUP.as_secs_f64() + seconds).await?;
    settle(&consumer, Duration::from_secs(120)).await?;
    stop(running).await?;
    let inputs = stored(setup, &setup.source_stream, next_seq).await?;
    // The stage's first messages find it still starting (a consumer re-created, a lease
    // taken, the first fetch): they are sent, but only the ones after the warm-up count.
    let counted_from = inputs
        .iter()
        .map(|m| m.at)
        .min()
        .map(|t| t + LATENCY_WARMUP);
    let input_at: HashMap<u64, SystemTime> = inputs
        .into_iter()
        .filter(|m| Some(m.at) >= counted_from)
        .map(|m| (m.seq, m.at))
        .collect();
    let ms = |later: SystemTime, earlier: SystemTime| {
        later
            .duration_since(earlier)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let mut latencies = Vec::with_capacity(input_at.len());
    for name in &out_streams {
        for output in stored(setup, name, out_start[name]).await? {
            if let Some(at) = output.input.and_then(|seq| input_at.get(&seq)) {
                let since = counted_from.map_or(0.0, |from| ms(*at, from));
                latencies.push((since, ms(output.at, *at)));
            }
        }
    }
    if latencies.is_empty() {
        return Err(BenchError::Stalled(
            "no output of the paced run was found".into(),
        ));
    }
    latencies.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(latencies)
}

/// The sequence the next message stored in stream `name` will get.
async fn next_sequence(setup: &Setup, name: &str) -> Result<u64, BenchError> {
    let mut stream = setup.js.get_stream(name).await.map_err(nats)?;
    Ok(stream.info().await.map_err(nats)?.state.last_sequence + 1)
}

/// Publishes the inputs at `rate` for `seconds` from the producer's connection, as a
/// high-rate producer does: plain publishes into the stream's subject, with no PubAck to
/// wait for. (With a PubAck per input, the producer took so much of a 2-core machine's
/// server that even the best raw stage fell behind at half its throughput: p50 314 ms.)
async fn publish_paced(setup: &Setup, rate: f64, seconds: f64) -> Result<(), BenchError> {
    let total = (rate * seconds).max(1.0) as u64;
    let client = setup.producer.client();
    let started = Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let payload = setup.inputs[(i % setup.inputs.len() as u64) as usize].clone();
        client
            .publish(setup.subject.clone(), payload)
            .await
            .map_err(nats)?;
    }
    client.flush().await.map_err(nats)?;
    Ok(())
}

/// A message read back from a stream.
struct Stored {
    /// Its sequence in the stream.
    seq: u64,
    /// The input sequence its `Nats-Msg-Id` names (an output's), if any.
    input: Option<u64>,
    /// When the stream stored it.
    at: SystemTime,
}

/// Every message of stream `name` from `start_seq` on.
async fn stored(setup: &Setup, name: &str, start_seq: u64) -> Result<Vec<Stored>, BenchError> {
    let stream = setup.js.get_stream(name).await.map_err(nats)?;
    let reader: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            ack_policy: consumer::AckPolicy::None,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_seq,
            },
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut messages = Vec::new();
    loop {
        let mut batch = reader
            .fetch()
            .max_messages(1000)
            .messages()
            .await
            .map_err(nats)?;
        let mut got = 0;
        while let Some(Ok(message)) = batch.next().await {
            got += 1;
            let Ok(info) = message.info() else {
                continue;
            };
            let input = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .and_then(|id| input_seq(id.as_str()));
            messages.push(Stored {
                seq: info.stream_sequence,
                input,
                at: SystemTime::UNIX_EPOCH
                    + Duration::from_nanos(info.published.unix_timestamp_nanos() as u64),
            });
        }
        if got == 0 {
            return Ok(messages);
        }
    }
}

/// The input sequence an output id names: `raw:<seq>` or `<pipeline>:<stream>:<seq>:<k>`.
fn input_seq(id: &str) -> Option<u64> {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        ["raw", seq] => seq.parse().ok(),
        [_, _, seq, _] => seq.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_stream_is_stored_like_the_pipelines_output() {
        let file = "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: OUT }\nspec:\n  \
                    subjects: [out.>]\n  storage: memory\n  duplicate_window: 30s\n  \
                    max_msgs: 1000\n";
        let resources = weir_pipelines::load_str(file, "test").expect("a valid file");
        let Resource::Stream(out) = &resources[0] else {
            panic!("a stream")
        };
        let raw = raw_stream_config(Some(out)).expect("a config");
        assert_eq!(raw.name, RAW_STREAM);
        assert_eq!(raw.subjects, ["bench.raw.>"]);
        assert_eq!(raw.storage, stream::StorageType::Memory);
        assert_eq!(raw.duplicate_window, Duration::from_secs(30));
        assert_eq!(raw.max_messages, 1000);
        assert!(raw.allow_batch_publish);
        // No output stream in the file: the server's defaults, fast batches allowed.
        let plain = raw_stream_config(None).expect("a config");
        assert_eq!(plain.storage, stream::StorageType::File);
        assert!(plain.allow_batch_publish);
    }
}
