//! Property test of the `window` node: random event streams, out of order within and beyond
//! the allowed lateness, cut into random batches, for each window kind. The results equal a
//! naive reference — the events bucketed one by one in arrival order, then aggregated by
//! DataFusion batch SQL — and the late port gets exactly the events the reference calls late.

use crate::batch::compile;
use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Float64Type;
use bytes::Bytes;
use datafusion::prelude::SessionContext;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use weir_engine::{CompiledPipeline, Emitted, Fate, InputMessage};

const T0: i64 = 1_767_225_600_000;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling { size: i64 },
    Hopping { size: i64, slide: i64 },
    Session { gap: i64 },
}

#[derive(Debug, Clone)]
struct Event {
    id: u64,
    t: i64,
    key: i64,
    amount: i64,
}

/// One window result: (start, end, key) and count, sum, min, max, avg.
type Row = (String, String, i64, [String; 5]);

fn yaml(kind: Kind, lateness: i64) -> String {
    let shape = match kind {
        Kind::Tumbling { size } => format!("kind: tumbling\n        size: {size}ms"),
        Kind::Hopping { size, slide } => {
            format!("kind: hopping\n        size: {size}ms\n        slide: {slide}ms")
        }
        Kind::Session { gap } => format!("kind: session\n        gap: {gap}ms"),
    };
    format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: props }}
spec:
  source: {{ stream: EVENTS }}
  nodes:
    - id: w
      window:
        {shape}
        time: data.t
        allowed_lateness: {lateness}ms
        group_by: [data.k]
        aggregates: {{ n: count(*), total: sum(data.amount), lo: min(data.amount), hi: max(data.amount), mean: avg(data.amount) }}
        late: late
      next: out
    - {{ id: out, publish: {{ subject: out }} }}
    - {{ id: late, publish: {{ subject: late }} }}
"#
    )
}

fn input(e: &Event) -> InputMessage {
    InputMessage {
        subject: "events".into(),
        headers: Vec::new(),
        payload: Bytes::from(
            json!({"id": e.id, "t": e.t, "k": e.key, "amount": e.amount}).to_string(),
        ),
        seq: e.id,
        stream: "EVENTS".into(),
        timestamp_micros: 0,
    }
}

fn num(v: &Value) -> String {
    format!("{:.6}", v.as_f64().unwrap_or(f64::NAN))
}

fn rfc3339(ms: i64) -> String {
    let t = arrow::temporal_conversions::timestamp_ms_to_datetime(ms).expect("in range");
    if ms.rem_euclid(1000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }
}

/// Runs the operator: window results and the ids of the late events.
fn run(p: &CompiledPipeline, events: &[Event], cuts: &[usize]) -> (Vec<Row>, BTreeSet<u64>) {
    let mut emitted: Vec<Emitted> = Vec::new();
    let mut late = BTreeSet::new();
    let mut rest = events;
    let mut cuts = cuts.iter().cycle();
    while !rest.is_empty() {
        let n = (*cuts.next().unwrap_or(&1)).clamp(1, rest.len());
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        let inputs: Vec<InputMessage> = batch.iter().map(input).collect();
        let r = p.process(&inputs);
        for (e, fate) in batch.iter().zip(&r.fates) {
            match fate {
                Fate::Filtered => {}
                Fate::Outputs(o) => {
                    assert_eq!(o.len(), 1);
                    assert_eq!(o[0].subject, "late");
                    assert!(late.insert(e.id));
                }
                Fate::Error(err) => panic!("event {e:?}: {err:?}"),
            }
        }
        emitted.extend(r.emitted);
    }
    emitted.extend(p.flush());
    let rows = emitted
        .iter()
        .map(|e| {
            let Fate::Outputs(o) = &e.fate else {
                panic!("{e:?}")
            };
            let v: Value = serde_json::from_slice(&o[0].payload).expect("json");
            let ms = |s: &Value| s.as_str().unwrap_or_default().to_string();
            (
                ms(&v["window_start"]),
                ms(&v["window_end"]),
                v["k"].as_i64().expect("key"),
                [
                    num(&v["n"]),
                    num(&v["total"]),
                    num(&v["lo"]),
                    num(&v["hi"]),
                    num(&v["mean"]),
                ],
            )
        })
        .collect();
    (rows, late)
}

/// The reference: bucket events one by one (late decided against the watermark of the events
/// before), then aggregate with DataFusion SQL.
fn reference(kind: Kind, lateness: i64, events: &[Event]) -> (Vec<Row>, BTreeSet<u64>) {
    let mut watermark = i64::MIN;
    let mut late = BTreeSet::new();
    // (bucket, window start, window end or -1 for sessions, key, t, amount)
    let mut rows: Vec<(i64, i64, i64, i64, i64)> = Vec::new();
    let mut accepted: Vec<&Event> = Vec::new();
    for e in events {
        match kind {
            Kind::Tumbling { size } | Kind::Hopping { size, .. } => {
                let slide = match kind {
                    Kind::Hopping { slide, .. } => slide,
                    _ => size,
                };
                let mut any = false;
                let mut s = e.t.div_euclid(slide) * slide;
                while s + size > e.t {
                    if s + size > watermark {
                        rows.push((s, s + size, e.key, e.t, e.amount));
                        any = true;
                    }
                    s -= slide;
                }
                if !any {
                    late.insert(e.id);
                }
            }
            Kind::Session { .. } => {
                if e.t < watermark {
                    late.insert(e.id);
                } else {
                    accepted.push(e);
                }
            }
        }
        watermark = watermark.max(e.t - lateness);
    }
    if let Kind::Session { gap } = kind {
        // Sessionize each key's accepted events offline; the bucket is the session's start.
        let mut by_key: std::collections::BTreeMap<i64, Vec<&Event>> = Default::default();
        for e in accepted {
            by_key.entry(e.key).or_default().push(e);
        }
        for (key, mut es) in by_key {
            es.sort_by_key(|e| e.t);
            let mut start = i64::MIN;
            let mut end = i64::MIN;
            for e in es {
                if e.t >= end {
                    start = e.t;
                }
                end = end.max(e.t + gap);
                rows.push((start, -1, key, e.t, e.amount));
            }
        }
    }
    (sql(kind, &rows), late)
}

fn sql(kind: Kind, rows: &[(i64, i64, i64, i64, i64)]) -> Vec<Row> {
    let col = |f: fn(&(i64, i64, i64, i64, i64)) -> i64| -> Arc<dyn Array> {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(f)))
    };
    let batch = RecordBatch::try_from_iter(vec![
        ("ws", col(|r| r.0)),
        ("we", col(|r| r.1)),
        ("k", col(|r| r.2)),
        ("t", col(|r| r.3)),
        ("amount", col(|r| r.4)),
    ])
    .expect("batch");
    let end = match kind {
        Kind::Session { gap } => format!("max(t) + {gap}"),
        _ => "max(we)".into(),
    };
    let query = format!(
        "SELECT ws, {end} AS we, k, CAST(count(*) AS DOUBLE), CAST(sum(amount) AS DOUBLE), \
         CAST(min(amount) AS DOUBLE), CAST(max(amount) AS DOUBLE), avg(CAST(amount AS DOUBLE)) \
         FROM ev GROUP BY ws, k"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let batches = rt.block_on(async {
        let ctx = SessionContext::new();
        ctx.register_batch("ev", batch).expect("register");
        ctx.sql(&query)
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs")
    });
    let mut out = Vec::new();
    for b in batches {
        let int = |i: usize| {
            b.column(i)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .clone()
        };
        let float = |i: usize| b.column(i).as_primitive::<Float64Type>().clone();
        let (ws, we, k) = (int(0), int(1), int(2));
        for r in 0..b.num_rows() {
            let a = [3, 4, 5, 6, 7].map(|c| format!("{:.6}", float(c).value(r)));
            out.push((rfc3339(ws.value(r)), rfc3339(we.value(r)), k.value(r), a));
        }
    }
    out
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec((0i64..3_000, -20_000i64..4_000, 0i64..3, 1i64..100), 1..120).prop_map(
        |raw| {
            let mut base = 0;
            raw.into_iter()
                .enumerate()
                .map(|(i, (step, jitter, key, amount))| {
                    base += step;
                    Event {
                        id: i as u64 + 1,
                        t: T0 + 30_000 + base + jitter,
                        key,
                        amount,
                    }
                })
                .collect()
        },
    )
}

fn kinds() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1i64..20).prop_map(|s| Kind::Tumbling { size: s * 1_000 }),
        (1i64..6, 1i64..4).prop_map(|(slide, k)| Kind::Hopping {
            size: slide * k * 1_000 + 500,
            slide: slide * 1_000
        }),
        (1i64..8).prop_map(|g| Kind::Session { gap: g * 1_000 }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn windows_equal_the_sql_reference(
        kind in kinds(),
        lateness in 0i64..8_000,
        events in events(),
        cuts in prop::collection::vec(1usize..40, 1..8),
    ) {
        let p = compile(&yaml(kind, lateness));
        let (mut got, got_late) = run(&p, &events, &cuts);
        let (mut want, want_late) = reference(kind, lateness, &events);
        got.sort();
        want.sort();
        prop_assert_eq!(got_late, want_late);
        prop_assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A checkpoint taken between two batches and restored into a fresh pipeline (a worker
    /// restarted) gives the same results, ids included, as running straight through.
    #[test]
    fn snapshot_and_restore_change_nothing(
        kind in kinds(),
        lateness in 0i64..8_000,
        events in events(),
        cut in 0usize..120,
    ) {
        let yaml = yaml(kind, lateness);
        let straight = compile(&yaml);
        let mut want = straight.process(&events.iter().map(input).collect::<Vec<_>>()).emitted;
        want.extend(straight.flush());

        let cut = cut.min(events.len());
        let first = compile(&yaml);
        let mut got = first.process(&events[..cut].iter().map(input).collect::<Vec<_>>()).emitted;
        let snapshot = first.snapshot().expect("snapshot");
        drop(first);
        let second = compile(&yaml);
        second.restore(&snapshot).expect("restore");
        got.extend(second.process(&events[cut..].iter().map(input).collect::<Vec<_>>()).emitted);
        got.extend(second.flush());
        prop_assert_eq!(got, want);
    }
}
