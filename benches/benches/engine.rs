//! Engine operator path in memory (TARGETS.md: ≥ 1.5 M events/s/core): decode → filter → map →
//! route → publish template → encode on 223-byte order JSON, one thread, and the pipeline of
//! `weir bench --builtin orders` (`builtin_orders`). Also a batch-size
//! sweep (the per-batch fixed cost), the passthrough and parse-only ceilings, and the same
//! pipeline written with JSON functions instead of `data.<path>` columns (the decode choice).
//! Avro: the same orders as Avro records (Confluent wire format), decoded by a `format: avro`
//! source (passthrough, the order path, and decoding alone: `decode_only`, the four columns
//! read and every order dropped), and JSON orders encoded by `publish: {format: avro}`.
//! Protobuf: the same for orders as Protobuf messages (Confluent wire format, message indexes).
//!
//! Run: `cargo bench -p weir-benches --bench engine -- --warm-up-time 1 --measurement-time 3`

/// The allocator the `weir` binary uses, so that the figures are the worker's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use weir_engine::{CompiledPipeline, Fate, InputMessage};
use weir_pipelines::Resource;

/// `n` order messages from the `weir bench` generator (≈ 223 bytes each).
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

fn compile(yaml: &str) -> CompiledPipeline {
    let Resource::Pipeline(p) = serde_yaml::from_str(yaml).expect("bench pipeline parses") else {
        panic!("not a pipeline")
    };
    CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"))
}

const ORDER_PATH: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-order-path }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: big
      filter: "data.amount > 20 AND data.status = 'pending'"
      next: enrich
    - id: enrich
      map:
        set:
          amount_cents: "CAST(data.amount * 100 AS BIGINT)"
          tier: "CASE WHEN data.amount > 500 THEN 'gold' ELSE 'std' END"
      next: route
    - id: route
      route:
        - when: "data.currency IN ('USD', 'EUR') AND data.amount > 900"
          next: [vip, audit]
        - when: "data.region LIKE 'eu-%'"
          next: eu
      default: standard
    - id: vip
      publish: { subject: "orders.vip.{data.region}", headers: { X-Priority: high } }
    - id: audit
      publish: { subject: "audit.orders" }
    - id: eu
      publish: { subject: "orders.eu.{data.region}" }
    - id: standard
      publish: { subject: "orders.standard.{data.currency}" }
"#;

/// The same pipeline with `datafusion-functions-json` calls on the payload text.
const ORDER_PATH_JSON_FUNCTIONS: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-order-path-json-functions }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: big
      filter: "json_get_float(data, 'amount') > 20 AND json_get_str(data, 'status') = 'pending'"
      next: enrich
    - id: enrich
      map:
        set:
          amount_cents: "CAST(json_get_float(data, 'amount') * 100 AS BIGINT)"
          tier: "CASE WHEN json_get_float(data, 'amount') > 500 THEN 'gold' ELSE 'std' END"
      next: route
    - id: route
      route:
        - when: "json_get_str(data, 'currency') IN ('USD', 'EUR') AND json_get_float(data, 'amount') > 900"
          next: [vip, audit]
        - when: "json_get_str(data, 'region') LIKE 'eu-%'"
          next: eu
      default: standard
    - id: vip
      publish: { subject: "orders.vip.{json_get_str(data, 'region')}", headers: { X-Priority: high } }
    - id: audit
      publish: { subject: "audit.orders" }
    - id: eu
      publish: { subject: "orders.eu.{json_get_str(data, 'region')}" }
    - id: standard
      publish: { subject: "orders.standard.{json_get_str(data, 'currency')}" }
"#;

/// The order path behind a `validate` node with the order's JSON Schema (10 properties): the
/// difference to `order_path` is the cost of validation per message.
fn order_path_validated() -> String {
    ORDER_PATH.replacen(
        "  nodes:\n",
        r#"  nodes:
    - id: check
      validate:
        json_schema:
          type: object
          required: [order_id, customer_id, amount, currency, status, region, items]
          properties:
            order_id: { type: string }
            customer_id: { type: string }
            amount: { type: number, minimum: 0 }
            currency: { enum: [USD, EUR, GBP] }
            status: { type: string }
            region: { type: string }
            items: { type: array, items: { type: object, required: [sku, qty] } }
            channel: { type: string }
            payment: { type: string }
            created_at: { type: string }
      next: big
"#,
        1,
    )
}

/// The order path behind a `validate` node whose schema is `{type: object}`: what the node
/// costs with (almost) nothing to check, the floor under `order_path_validated`.
fn order_path_validated_object() -> String {
    ORDER_PATH.replacen(
        "  nodes:\n",
        "  nodes:\n    - id: check\n      validate: { json_schema: { type: object } }\n      next: big\n",
        1,
    )
}

const PASSTHROUGH: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-passthrough }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: out
      publish: { subject: "orders.copy" }
"#;

/// Reads the order's columns (the ones `order_path` reads) and keeps every order: the cost of
/// decoding payloads into typed columns, with the least work after it.
const DECODE_COLUMNS: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-decode-columns }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: all
      filter: "data.amount IS NOT NULL OR data.status IS NOT NULL OR data.currency IS NOT NULL OR data.region IS NOT NULL"
      next: out
    - id: out
      publish: { subject: "orders.copy" }
"#;

/// Reads the four columns of [`DECODE_COLUMNS`] and drops every order: the cost of decoding
/// the payloads into typed columns (and one vectorized filter), with no output.
const DECODE_ONLY: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bench-decode-only }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: none
      filter: "data.amount IS NULL AND data.status IS NULL AND data.currency IS NULL AND data.region IS NULL"
      next: out
    - id: out
      publish: { subject: "orders.copy" }
"#;

/// The Avro schema of the order (10 fields, items as an array of records).
const ORDER_AVRO: &str = r#"{"type":"record","name":"Order","namespace":"bench","fields":[
  {"name":"order_id","type":"string"},{"name":"customer_id","type":"string"},
  {"name":"amount","type":"double"},{"name":"currency","type":"string"},
  {"name":"status","type":"string"},{"name":"region","type":"string"},
  {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
    {"name":"sku","type":"string"},{"name":"qty","type":"long"}]}}},
  {"name":"channel","type":"string"},{"name":"payment","type":"string"},
  {"name":"created_at","type":"string"}]}"#;

/// A passthrough writing the orders as Avro with [`ORDER_AVRO`] (schema id 1).
fn avro_encoder() -> String {
    let writer = serde_json::json!({"id": 1, "schema": ORDER_AVRO});
    PASSTHROUGH.replace(
        r#"publish: { subject: "orders.copy" }"#,
        &format!(
            r#"publish: {{ subject: "orders.copy", format: avro, schema: {{ subject: orders-avro, writer: {writer} }} }}"#
        ),
    )
}

/// `yaml` reading the orders as Avro with [`ORDER_AVRO`] (schema id 1).
fn avro_source(yaml: &str) -> String {
    let schema = serde_json::json!({"subject": "orders-avro", "id": 1, "writers": [{"id": 1, "schema": ORDER_AVRO}]});
    yaml.replace(
        "source: { stream: ORDERS }",
        &format!("source: {{ stream: ORDERS, format: avro, schema: {schema} }}"),
    )
}

/// The orders of `batch` as Avro records in the Confluent wire format, written by the engine's
/// own `publish: {format: avro}`.
fn avro_orders(batch: &[InputMessage]) -> Vec<InputMessage> {
    encoded(&compile(&avro_encoder()), batch)
}

/// The Protobuf schema of the order (the fields of [`ORDER_AVRO`]).
const ORDER_PROTO: &str = r#"syntax = "proto3";
package bench;
message Item { string sku = 1; int64 qty = 2; }
message Order {
  string order_id = 1; string customer_id = 2; double amount = 3; string currency = 4;
  string status = 5; string region = 6; repeated Item items = 7; string channel = 8;
  string payment = 9; string created_at = 10;
}
"#;

/// A passthrough writing the orders as `bench.Order` messages (schema id 2).
fn protobuf_encoder() -> String {
    let writer = serde_json::json!({"id": 2, "schema": ORDER_PROTO});
    PASSTHROUGH.replace(
        r#"publish: { subject: "orders.copy" }"#,
        &format!(
            r#"publish: {{ subject: "orders.copy", format: protobuf, schema: {{ subject: orders-proto, writer: {writer}, message: bench.Order }} }}"#
        ),
    )
}

/// `yaml` reading the orders as Protobuf with [`ORDER_PROTO`] (schema id 2).
fn protobuf_source(yaml: &str) -> String {
    let schema = serde_json::json!({"subject": "orders-proto", "id": 2, "writers": [{"id": 2, "schema": ORDER_PROTO}]});
    yaml.replace(
        "source: { stream: ORDERS }",
        &format!("source: {{ stream: ORDERS, format: protobuf, schema: {schema} }}"),
    )
}

/// The outputs of `encoder` for `batch`, one per input, as the inputs of another pipeline.
fn encoded(encoder: &CompiledPipeline, batch: &[InputMessage]) -> Vec<InputMessage> {
    let result = encoder.process(batch);
    batch
        .iter()
        .zip(&result.fates)
        .map(|(m, f)| {
            let Fate::Outputs(o) = f else {
                panic!("order not encoded: {f:?}")
            };
            InputMessage {
                payload: o[0].payload.clone(),
                ..m.clone()
            }
        })
        .collect()
}

/// The decode benches both binary formats have, in `group`: `encoded` is the JSON `batch` in
/// that format, and `source` gives a pipeline that format's source. Checks first that the
/// decoded orders take the JSON orders' routes.
fn bench_binary_decode<'c>(
    c: &'c mut Criterion,
    group: &str,
    source: impl Fn(&str) -> String,
    encoded: &[InputMessage],
    batch: &[InputMessage],
) -> criterion::BenchmarkGroup<'c, criterion::measurement::WallTime> {
    let avg = encoded.iter().map(|m| m.payload.len()).sum::<usize>() / encoded.len();
    eprintln!("{group}: order payload of {avg} bytes on average");
    let decode_passthrough = compile(&source(PASSTHROUGH));
    let decode_order_path = compile(&source(ORDER_PATH));
    let decode_columns = compile(&source(DECODE_COLUMNS));
    let decode_only = compile(&source(DECODE_ONLY));
    assert_eq!(outputs(&decode_only.process(encoded)), 0);
    assert!(
        decode_only
            .process(encoded)
            .fates
            .iter()
            .all(|f| matches!(f, Fate::Filtered))
    );
    assert_eq!(outputs(&decode_columns.process(encoded)), batch.len());
    assert_eq!(
        outputs(&decode_order_path.process(encoded)),
        outputs(&compile(ORDER_PATH).process(batch))
    );
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(batch.len() as u64));
    for (name, pipeline) in [
        ("decode_passthrough/1024", decode_passthrough),
        ("decode_columns/1024", decode_columns),
        ("decode_only/1024", decode_only),
        ("decode_order_path/1024", decode_order_path),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(pipeline.process(black_box(encoded))))
        });
    }
    g
}

fn bench_protobuf(c: &mut Criterion) {
    let batch = orders(1024);
    let proto = encoded(&compile(&protobuf_encoder()), &batch);
    bench_binary_decode(c, "engine_protobuf", protobuf_source, &proto, &batch).finish();
}

fn bench_avro(c: &mut Criterion) {
    let batch = orders(1024);
    let avro = avro_orders(&batch);
    let encoder = compile(&avro_encoder());
    let json_columns = compile(DECODE_COLUMNS);
    let json_decode_only = compile(DECODE_ONLY);
    let mut g = bench_binary_decode(c, "engine_avro", avro_source, &avro, &batch);
    g.bench_function("json_decode_columns/1024", |b| {
        b.iter(|| black_box(json_columns.process(black_box(&batch))))
    });
    g.bench_function("json_decode_only/1024", |b| {
        b.iter(|| black_box(json_decode_only.process(black_box(&batch))))
    });
    g.bench_function("encode_from_json/1024", |b| {
        b.iter(|| black_box(encoder.process(black_box(&batch))))
    });
    g.finish();
}

fn outputs(result: &weir_engine::BatchResult) -> usize {
    result
        .fates
        .iter()
        .map(|f| match f {
            Fate::Outputs(o) => o.len(),
            _ => 0,
        })
        .sum()
}

/// How much longer `iters` runs of `more` take than as many of `base`: each iteration runs
/// the two back to back and counts only the difference, so that the machine's drift between
/// two separate benches (often larger than the difference) cancels out.
fn extra_time(
    iters: u64,
    more: &CompiledPipeline,
    base: &CompiledPipeline,
    batch: &[InputMessage],
) -> Duration {
    let mut extra_nanos = 0i128;
    for _ in 0..iters {
        let t0 = Instant::now();
        black_box(more.process(black_box(batch)));
        let t1 = Instant::now();
        black_box(base.process(black_box(batch)));
        extra_nanos += (t1 - t0).as_nanos() as i128 - t1.elapsed().as_nanos() as i128;
    }
    // At least 1 ns: criterion refuses a sample of no time, and with few iterations noise can
    // make the difference negative.
    Duration::from_nanos(extra_nanos.max(1) as u64)
}

/// The pipeline document of a built-in of `weir bench` (its file also declares the streams).
fn builtin_pipeline(file: &str) -> CompiledPipeline {
    let doc = file
        .split("\n---\n")
        .find(|d| d.contains("kind: Pipeline"))
        .expect("the built-in declares a pipeline");
    compile(doc)
}

fn bench_order_path(c: &mut Criterion) {
    let pipeline = compile(ORDER_PATH);
    // `weir bench --builtin orders`: most orders pass its filter and all are mapped, so its
    // engine cost per input is the one the end-to-end figure pays.
    let builtin_orders = builtin_pipeline(weir_benches::harness::ORDERS);
    let json_functions = compile(ORDER_PATH_JSON_FUNCTIONS);
    let passthrough = compile(PASSTHROUGH);
    let validated = compile(&order_path_validated());
    let validated_object = compile(&order_path_validated_object());
    let batch = orders(1024);
    let avg = batch.iter().map(|m| m.payload.len()).sum::<usize>() / batch.len();
    eprintln!("order payload: {avg} bytes on average");
    // Both variants must agree before their speed is compared.
    assert_eq!(pipeline.process(&batch), json_functions.process(&batch));
    assert!(outputs(&pipeline.process(&batch)) > 0);
    // Every order is valid: validation changes nothing but the time.
    assert_eq!(
        pipeline.process(&batch).fates,
        validated.process(&batch).fates
    );
    assert_eq!(
        pipeline.process(&batch).fates,
        validated_object.process(&batch).fates
    );

    let mut g = c.benchmark_group("engine");
    g.throughput(criterion::Throughput::Elements(batch.len() as u64));
    g.bench_function("order_path/1024", |b| {
        b.iter(|| black_box(pipeline.process(black_box(&batch))))
    });
    g.bench_function("builtin_orders/1024", |b| {
        b.iter(|| black_box(builtin_orders.process(black_box(&batch))))
    });
    g.bench_function("order_path_validated/1024", |b| {
        b.iter(|| black_box(validated.process(black_box(&batch))))
    });
    // What validation adds, measured directly (see `extra_time`).
    g.bench_function("validate_cost/1024", |b| {
        b.iter_custom(|iters| extra_time(iters, &validated, &pipeline, &batch))
    });
    // The same for a node that checks only `{type: object}`: its fixed cost (the node, its
    // place in the graph), so that `validate_cost` minus this is the schema check's own.
    g.bench_function("validate_floor/1024", |b| {
        b.iter_custom(|iters| extra_time(iters, &validated_object, &pipeline, &batch))
    });
    g.bench_function("order_path_json_functions/1024", |b| {
        b.iter(|| black_box(json_functions.process(black_box(&batch))))
    });
    g.bench_function("passthrough/1024", |b| {
        b.iter(|| black_box(passthrough.process(black_box(&batch))))
    });
    g.bench_function("parse_only/1024", |b| {
        b.iter(|| {
            for m in &batch {
                black_box(serde_json::from_slice::<serde::de::IgnoredAny>(&m.payload).is_ok());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("engine_batch_size");
    for size in [1usize, 16, 128, 1024, 4096] {
        let batch = orders(size);
        g.throughput(Throughput::Elements(size as u64));
        g.bench_with_input(BenchmarkId::new("order_path", size), &batch, |b, batch| {
            b.iter_batched(
                || (),
                |()| black_box(pipeline.process(batch)),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_order_path, bench_avro, bench_protobuf);
criterion_main!(benches);
