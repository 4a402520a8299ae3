//! The `window` node: tumbling, hopping and session windows on event time, the watermark and
//! allowed lateness, the late port with its headers, the idle timeout, and results flowing on
//! to a `publish` with a subject template.

use crate::batch::compile;
use bytes::Bytes;
use serde_json::{Value, json};
use weir_engine::{CompiledPipeline, Emitted, Fate, InputMessage, OutputMessage};

const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z in ms

fn pipeline(window: &str) -> CompiledPipeline {
    compile(&format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: metrics }}
spec:
  source: {{ stream: ORDERS }}
  nodes:
    - id: w
      window:
{window}
        late: late-out
      next: out
    - id: out
      publish: {{ subject: "metrics.orders.{{data.region}}" }}
    - id: late-out
      publish: {{ subject: "late.orders" }}
"#
    ))
}

fn order(seq: u64, ms: i64, region: &str, amount: f64) -> InputMessage {
    let payload = json!({"ts": ms, "region": region, "amount": amount});
    InputMessage {
        subject: "orders.created".into(),
        headers: vec![("Trace".into(), format!("t-{seq}"))],
        payload: Bytes::from(payload.to_string()),
        seq,
        stream: "ORDERS".into(),
        timestamp_micros: 0,
    }
}

fn outputs(emitted: &[Emitted]) -> Vec<OutputMessage> {
    emitted
        .iter()
        .flat_map(|e| match &e.fate {
            Fate::Outputs(o) => o.clone(),
            other => panic!("window result {} failed: {other:?}", e.id),
        })
        .collect()
}

fn body(o: &OutputMessage) -> Value {
    serde_json::from_slice(&o.payload).expect("json")
}

const TUMBLING: &str = r#"        kind: tumbling
        size: 1m
        time: data.ts
        allowed_lateness: 10s
        group_by: [data.region]
        aggregates:
          orders: count(*)
          total: sum(data.amount)
          mean: avg(data.amount)
          top: max(data.amount)
          p95: approx_percentile_cont(data.amount, 0.95)"#;

#[test]
fn tumbling_emits_per_group_when_the_watermark_passes_the_end() {
    let p = pipeline(TUMBLING);
    let r = p.process(&[
        order(1, T0 + 1_000, "eu", 10.0),
        order(2, T0 + 2_000, "us", 5.0),
        order(3, T0 + 30_000, "eu", 20.5),
        // Out of order, within the lateness: still counted.
        order(4, T0 + 65_000, "eu", 1.0),
        order(5, T0 + 59_000, "eu", 4.0),
    ]);
    // Every input was taken by the window: nothing per input, nothing emitted yet (the
    // watermark is 65s − 10s = 55s, before the first window's end).
    assert!(
        r.fates.iter().all(|f| *f == Fate::Filtered),
        "{:?}",
        r.fates
    );
    assert!(r.emitted.is_empty(), "{:?}", r.emitted);

    let r = p.process(&[order(6, T0 + 70_000, "us", 2.0)]);
    let out = outputs(&r.emitted);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0].subject, "metrics.orders.eu");
    assert_eq!(
        body(&out[0]),
        json!({"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:01:00Z",
               "region": "eu", "orders": 3, "total": 34.5, "mean": 11.5, "top": 20.5, "p95": 20.5})
    );
    assert_eq!(out[1].subject, "metrics.orders.us");
    assert_eq!(body(&out[1])["orders"], json!(1));
    assert_eq!(body(&out[1])["total"], json!(5));
    let header = |o: &OutputMessage, name: &str| {
        o.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header(&out[0], "Weir-Window-End").as_deref(),
        Some("2026-01-01T00:01:00Z")
    );
    // Ids are deterministic: node, window bounds, group key.
    assert_eq!(
        r.emitted[0].id,
        format!("w:{}:{}:[\"eu\"]", T0, T0 + 60_000)
    );

    // The end of input closes the rest: the second minute.
    let rest = p.flush();
    let out = outputs(&rest);
    assert_eq!(out.len(), 2);
    assert_eq!(body(&out[0])["window_start"], json!("2026-01-01T00:01:00Z"));
    assert!(p.flush().is_empty(), "windows close once");
}

#[test]
fn late_events_go_to_the_late_port_with_the_window_they_missed() {
    let p = pipeline(TUMBLING);
    let r = p.process(&[
        order(1, T0 + 1_000, "eu", 10.0),
        order(2, T0 + 75_000, "eu", 1.0), // watermark 65s: the first minute closes
        order(3, T0 + 59_999, "eu", 7.0), // its only window has closed: late
        order(4, T0 + 60_000, "eu", 3.0), // the second minute is open
    ]);
    assert_eq!(r.fates[0], Fate::Filtered);
    assert_eq!(r.fates[1], Fate::Filtered);
    assert_eq!(r.fates[3], Fate::Filtered);
    let Fate::Outputs(late) = &r.fates[2] else {
        panic!("late event: {:?}", r.fates[2])
    };
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].subject, "late.orders");
    assert_eq!(
        body(&late[0]),
        json!({"ts": T0 + 59_999, "region": "eu", "amount": 7.0})
    );
    let h: Vec<(&str, &str)> = late[0]
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(h.contains(&("Trace", "t-3")), "{h:?}");
    assert!(
        h.contains(&("Weir-Window-Start", "2026-01-01T00:00:00Z")),
        "{h:?}"
    );
    assert!(
        h.contains(&("Weir-Window-End", "2026-01-01T00:01:00Z")),
        "{h:?}"
    );
    assert!(
        h.contains(&("Weir-Watermark", "2026-01-01T00:01:05Z")),
        "{h:?}"
    );
    // The closed window counted only the on-time event.
    let out = outputs(&r.emitted);
    assert_eq!(out.len(), 1);
    assert_eq!(body(&out[0])["orders"], json!(1));
    let out = outputs(&p.flush());
    assert_eq!(body(&out[0])["orders"], json!(2));
}

#[test]
fn hopping_windows_count_an_event_in_each_window_it_falls_in() {
    let p = pipeline(
        r#"        kind: hopping
        size: 30s
        slide: 10s
        time: data.ts
        group_by: { region: data.region }
        aggregates: { n: count(*), total: sum(data.amount) }"#,
    );
    let r = p.process(&[order(1, T0 + 25_000, "eu", 1.0)]);
    assert!(r.emitted.is_empty());
    let out = outputs(&p.flush());
    let windows: Vec<(Value, Value)> = out
        .iter()
        .map(|o| (body(o)["window_start"].clone(), body(o)["n"].clone()))
        .collect();
    assert_eq!(
        windows,
        vec![
            (json!("2026-01-01T00:00:00Z"), json!(1)),
            (json!("2026-01-01T00:00:10Z"), json!(1)),
            (json!("2026-01-01T00:00:20Z"), json!(1)),
        ]
    );
}

#[test]
fn sessions_merge_events_closer_than_the_gap() {
    let p = pipeline(
        r#"        kind: session
        gap: 10s
        time: data.ts
        allowed_lateness: 30s
        group_by: [data.region]
        aggregates: { n: count(*), first: min(data.amount), last: max(data.amount) }"#,
    );
    p.process(&[
        order(1, T0, "eu", 1.0),
        order(2, T0 + 15_000, "eu", 3.0), // 15 s later: a second session
        order(3, T0 + 9_000, "us", 9.0),
        order(4, T0 + 8_000, "eu", 2.0), // within 10 s of both: bridges the eu sessions
    ]);
    let out = outputs(&p.flush());
    let got: Vec<Value> = out.iter().map(body).collect();
    assert_eq!(
        got,
        vec![
            json!({"window_start": "2026-01-01T00:00:09Z", "window_end": "2026-01-01T00:00:19Z",
                   "region": "us", "n": 1, "first": 9, "last": 9}),
            json!({"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T00:00:25Z",
                   "region": "eu", "n": 3, "first": 1, "last": 3}),
        ]
    );
}

#[test]
fn rfc3339_event_times_and_bad_ones() {
    let p = pipeline(
        r#"        kind: tumbling
        size: 1h
        time: data.at
        group_by: [data.region]
        aggregates: { n: count(*) }"#,
    );
    let m = |seq: u64, at: Value| InputMessage {
        payload: Bytes::from(json!({"at": at, "region": "eu"}).to_string()),
        ..order(seq, 0, "eu", 0.0)
    };
    let r = p.process(&[
        m(1, json!("2026-01-01T00:10:00Z")),
        m(2, json!("2026-01-01T01:00:00+01:00")), // the same hour, in UTC
        m(3, json!("yesterday")),
        m(4, Value::Null),
    ]);
    assert_eq!(r.fates[0], Fate::Filtered);
    assert_eq!(r.fates[1], Fate::Filtered);
    for f in &r.fates[2..] {
        let Fate::Error(e) = f else { panic!("{f:?}") };
        assert_eq!(e.node, "w");
        assert!(e.message.contains("event time"), "{}", e.message);
    }
    let out = outputs(&p.flush());
    assert_eq!(body(&out[0])["n"], json!(2));
    assert_eq!(body(&out[0])["window_start"], json!("2026-01-01T00:00:00Z"));
}

#[test]
fn idle_timeout_moves_the_watermark_with_the_clock() {
    let p = pipeline(
        r#"        kind: tumbling
        size: 1m
        time: data.ts
        idle_timeout: 30s
        group_by: [data.region]
        aggregates: { n: count(*) }"#,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    p.process(&[order(1, T0 + 5_000, "eu", 1.0)]);
    assert!(p.advance(now + 10_000_000).is_empty(), "not idle yet");
    // 90 s of quiet: the watermark moves from 5 s to 95 s, past the window's end.
    let out = outputs(&p.advance(now + 90_000_000));
    assert_eq!(out.len(), 1);
    assert_eq!(body(&out[0])["n"], json!(1));
}

#[test]
fn stateless_pipelines_say_so() {
    let p = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: p }
spec:
  source: { stream: ORDERS }
  nodes:
    - { id: out, publish: { subject: x } }
"#,
    );
    assert!(!p.is_stateful());
    assert!(pipeline(TUMBLING).is_stateful());
}

#[test]
fn validate_names_unknown_and_non_aggregate_functions_at_their_field() {
    let yaml = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: metrics }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: w
      window:
        kind: tumbling
        size: 1m
        aggregates: { a: summ(data.amount), b: upper(data.region), c: count(*) }
        late: out
      next: out
    - id: out
      publish: { subject: metrics }
"#;
    let Ok(weir_pipelines::Resource::Pipeline(p)) = serde_yaml::from_str(yaml) else {
        panic!("parses")
    };
    let problems = weir_engine::check(&p);
    let got: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p.path.as_str(), p.message.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "/spec/nodes/0/window/aggregates/a");
    assert!(got[0].1.contains("summ"), "{}", got[0].1);
    assert_eq!(got[1].0, "/spec/nodes/0/window/aggregates/b");
    assert!(got[1].1.contains("not an aggregate"), "{}", got[1].1);
}

#[test]
fn window_stats_count_open_windows_keys_and_late_events() {
    let p = pipeline(TUMBLING);
    p.process(&[
        order(1, T0 + 1_000, "eu", 1.0),
        order(2, T0 + 2_000, "us", 1.0),
        order(3, T0 + 61_000, "eu", 1.0),
    ]);
    let stats = p.stats();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].0, "w");
    assert_eq!(stats[0].1.open_windows, 2);
    assert_eq!(stats[0].1.keys_held, 3);
    p.process(&[
        order(4, T0 + 90_000, "eu", 1.0),
        order(5, T0 + 3_000, "eu", 1.0),
    ]);
    let s = p.stats()[0].1;
    assert_eq!((s.open_windows, s.keys_held, s.late_events), (1, 1, 1));
}

const DEDUP: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: once }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: once
      dedup: { key: data.region, within: 10s }
      next: out
    - { id: out, publish: { subject: "out.{data.region}" } }
"#;

#[test]
fn dedup_drops_keys_seen_within_the_span_but_not_redeliveries() {
    let p = compile(DEDUP);
    let at = |seq: u64, region: &str, secs: i64| InputMessage {
        timestamp_micros: (T0 + secs * 1000) * 1000,
        ..order(seq, 0, region, 1.0)
    };
    let passed = |fates: &[Fate]| -> Vec<bool> {
        fates
            .iter()
            .map(|f| matches!(f, Fate::Outputs(_)))
            .collect()
    };
    let r = p.process(&[
        at(1, "eu", 0),
        at(2, "us", 1),
        at(3, "eu", 5),
        at(4, "eu", 9),
    ]);
    assert_eq!(passed(&r.fates), vec![true, true, false, false]);
    assert_eq!(r.fates[2], Fate::Filtered);
    // The same message again (a redelivery after a failed publish) passes; a new one 10 s
    // after the first `eu` is no duplicate any more.
    let r = p.process(&[at(1, "eu", 0), at(5, "eu", 10), at(6, "us", 3)]);
    assert_eq!(passed(&r.fates), vec![true, true, false]);
    let s = p.stats()[0].1;
    assert_eq!(s.duplicates_dropped, 3);
    // A restarted worker restores the keys from a checkpoint: still a duplicate.
    let restarted = compile(DEDUP);
    restarted.restore(&p.snapshot().unwrap()).unwrap();
    let r = restarted.process(&[at(8, "eu", 12)]);
    assert_eq!(r.fates[0], Fate::Filtered);
    assert_eq!(restarted.stats()[0].1.duplicates_dropped, 4);
    // Keys older than the span are forgotten: state stays bounded by `within`.
    p.process(&[at(7, "ap", 100)]);
    assert_eq!(p.stats()[0].1.keys_held, 1);
}

const WITH_TESTS: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: order-metrics }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: per-minute
      window:
        kind: tumbling
        size: 1m
        time: data.created_at
        allowed_lateness: 5s
        group_by: [data.region]
        aggregates: { orders: count(*), total: sum(data.amount) }
        late: late-orders
      next: metrics
    - { id: metrics, publish: { subject: "metrics.orders.{data.region}" } }
    - { id: late-orders, publish: { subject: "orders.late.{data.region}" } }
tests:
  - name: per-minute totals by region, a late order to its own subject
    input: { data: { region: eu, amount: 10, created_at: "2026-01-01T00:00:10Z" } }
    more_inputs:
      - { data: { region: eu, amount: 5, created_at: "2026-01-01T00:00:50Z" } }
      - { data: { region: us, amount: 7, created_at: "2026-01-01T00:01:30Z" } }
      - { data: { region: eu, amount: 1, created_at: "2026-01-01T00:00:20Z" } }
    expect:
      - subject: orders.late.eu
        headers: { Weir-Window-End: "2026-01-01T00:01:00Z" }
    expect_windows:
      - subject: metrics.orders.eu
        data: { window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z", region: eu, orders: 2, total: 15 }
      - subject: metrics.orders.us
        data: { window_start: "2026-01-01T00:01:00Z", window_end: "2026-01-01T00:02:00Z", region: us, orders: 1, total: 7 }
  - name: a wrong total fails with a diff
    input: { data: { region: eu, amount: 10, created_at: "2026-01-01T00:00:10Z" } }
    expect_windows:
      - data: { window_start: "2026-01-01T00:00:00Z", window_end: "2026-01-01T00:01:00Z", region: eu, orders: 1, total: 11 }
"#;

#[test]
fn weir_test_cases_assert_window_results_and_late_events() {
    let weir_pipelines::Resource::Pipeline(p) = serde_yaml::from_str(WITH_TESTS).unwrap() else {
        panic!()
    };
    let compiled = CompiledPipeline::compile(&p).unwrap();
    let outcomes = weir_engine::testing::run_cases(&p, &compiled);
    assert_eq!(outcomes.len(), 2);
    assert!(outcomes[0].passed(), "{:?}", outcomes[0].failure);
    let diff = outcomes[1]
        .failure
        .as_deref()
        .expect("the second case fails");
    assert!(diff.contains("-        \"total\": 11"), "{diff}");
    assert!(diff.contains("+        \"total\": 10"), "{diff}");
    // `weir test --input`: one line per input, then one per window result.
    let lines = weir_engine::testing::run_jsonl(
        &compiled,
        "ORDERS",
        "{\"data\": {\"region\": \"eu\", \"amount\": 3, \"created_at\": \"2026-01-01T00:00:10Z\"}}\n",
    )
    .unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], json!({"filtered": true}));
    assert_eq!(lines[1]["window"]["node"], json!("per-minute"));
    assert_eq!(lines[1]["outputs"][0]["data"]["total"], json!(3));
}
