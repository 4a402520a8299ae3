//! `weir bench` as a user runs it: both raw baselines and the pipeline, interleaved rounds,
//! a table and one JSON line with the median ratios.

use std::process::Command;

use crate::fleet_support::weir_binary;

/// `weir bench --builtin <builtin>` on 3000 messages with `rounds` rounds and half a second
/// of latency measurement, and `more` arguments: its output and its JSON line.
fn bench(builtin: &str, rounds: &str, more: &[&str]) -> (String, serde_json::Value) {
    let out = Command::new(weir_binary())
        .args([
            "bench",
            "--builtin",
            builtin,
            "-n",
            "3000",
            "--rounds",
            rounds,
            "--latency-seconds",
            "0.5",
        ])
        .args(more)
        .env(
            "WEIR_NATS_SERVER",
            weir_testkit::nats::nats_server_binary().expect("nats-server"),
        )
        .output()
        .expect("the weir binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "weir bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON");
    (stdout, json)
}

#[test]
fn bench_interleaves_both_baselines_and_the_pipeline() {
    let (stdout, json) = bench("orders", "2", &[]);
    for stage in ["raw-classic", "raw-best", "bench-orders"] {
        assert!(stdout.contains(stage), "no {stage} row in:\n{stdout}");
    }
    let rounds = json["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{json}");
    for round in rounds {
        for stage in ["classic", "best", "pipeline"] {
            assert!(round[stage].as_f64().unwrap() > 0.0, "{json}");
        }
    }
    let ratio = json["ratio"].as_f64().expect("ratio");
    assert!(ratio > 0.0 && ratio.is_finite(), "{json}");
    // What each stage stored is counted: one output per input for the raw stages, and for
    // `orders` a quarter filtered out (refunded) and the route's fan-out: ≈ 1.3 per input.
    for stage in ["raw_classic", "raw_best"] {
        assert_eq!(json[stage]["outputs"], json[stage]["messages"], "{json}");
    }
    let per_input = json["outputs_per_input"]
        .as_f64()
        .expect("outputs_per_input");
    assert!((1.25..1.35).contains(&per_input), "{json}");
    let stored = json["ratio_stored"].as_f64().expect("ratio_stored");
    assert!((stored / ratio - per_input).abs() < 0.05, "{json}");
    assert!(stdout.contains("stored outputs per second"), "{stdout}");
    // The latency run covers the best raw stage and the pipeline, each paced at half of its
    // own median throughput.
    for stage in ["raw_best", "pipeline"] {
        let p99 = json[stage]["p99_ms"].as_f64();
        assert!(p99.is_some_and(|p| p >= 0.0), "no p99 for {stage}: {json}");
        let paced = json[stage]["paced_rate"].as_f64().expect("paced_rate");
        let max = json[stage]["msgs_per_s"].as_f64().expect("msgs_per_s");
        assert!((paced - max / 2.0).abs() <= max * 1e-9, "{stage}: {json}");
    }
    assert!(stdout.contains("paced/s"), "{stdout}");
    assert!(stdout.contains("input stored → output stored"), "{stdout}");
    // The pipeline runs with the knobs its file sets.
    let knobs = &json["pipeline"];
    assert_eq!(knobs["batch_size"], 500, "{json}");
    assert_eq!(knobs["max_wait_ms"], 0.0, "{json}");
    assert_eq!(knobs["window"], 8000, "{json}");
    assert_eq!(knobs["parallelism"], 1, "{json}");
}

#[test]
fn bench_runs_the_windowed_builtin_by_its_acked_inputs() {
    let (stdout, json) = bench("window", "1", &[]);
    assert!(stdout.contains("bench-window"), "{stdout}");
    let ratio = json["ratio"].as_f64().expect("ratio");
    assert!(ratio > 0.0 && ratio.is_finite(), "{json}");
    // No knob in the file: Weir's defaults.
    assert_eq!(json["pipeline"]["batch_size"], 256, "{json}");
    assert_eq!(json["pipeline"]["window"], 1024, "{json}");
    // Window results are no single input's output: no pipeline latency, the raw one only.
    assert!(json["pipeline"]["p99_ms"].is_null(), "{json}");
    assert!(json["raw_best"]["p99_ms"].as_f64().is_some(), "{json}");
}

#[test]
fn bench_runs_the_validating_builtin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("latencies.tsv");
    let (stdout, json) = bench(
        "validated",
        "1",
        &[
            "--batch-size",
            "64",
            "--latency-out",
            file.to_str().unwrap(),
        ],
    );
    assert!(stdout.contains("bench-validated"), "{stdout}");
    let ratio = json["ratio"].as_f64().expect("ratio");
    assert!(ratio > 0.0 && ratio.is_finite(), "{json}");
    // Every generated order is valid: each has its output, so the pipeline has a latency.
    assert!(json["pipeline"]["p99_ms"].as_f64().is_some(), "{json}");
    // A knob given on the command line replaces the file's; the others stay the file's.
    assert_eq!(json["pipeline"]["batch_size"], 64, "{json}");
    assert_eq!(json["pipeline"]["window"], 8000, "{json}");
    // Every latency is written out, and the p99 printed is that of both runs' together.
    let text = std::fs::read_to_string(&file).expect("the latencies file");
    let mut by_stage: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut runs: std::collections::BTreeMap<&str, std::collections::BTreeSet<usize>> =
        Default::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 4, "{line}");
        let run: usize = fields[1].parse().expect("run");
        let at: f64 = fields[2].parse().expect("ms since the start");
        let ms: f64 = fields[3].parse().expect("latency ms");
        assert!(at >= 0.0 && ms >= 0.0, "{line}");
        by_stage.entry(fields[0]).or_default().push(ms);
        runs.entry(fields[0]).or_default().insert(run);
    }
    // Each stage was paced twice, once early and once late.
    for (stage, runs) in &runs {
        assert_eq!(runs.iter().copied().collect::<Vec<_>>(), [1, 2], "{stage}");
    }
    assert_eq!(
        by_stage.keys().copied().collect::<Vec<_>>(),
        ["bench-validated", "raw-best"],
        "{text}"
    );
    let mut pipeline = by_stage["bench-validated"].clone();
    pipeline.sort_by(f64::total_cmp);
    let p99 = pipeline[((pipeline.len() as f64 - 1.0) * 0.99).round() as usize];
    let printed = json["pipeline"]["p99_ms"].as_f64().expect("p99");
    assert!(
        (p99 - printed).abs() < 0.001,
        "{p99} in the file, {printed} printed"
    );
    // The bench started its own server: it says how that server collects garbage.
    assert!(json["server_gc"].is_object(), "{json}");
    assert!(stdout.contains("collects garbage with GOGC="), "{stdout}");
}
