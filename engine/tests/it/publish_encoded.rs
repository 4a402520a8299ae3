//! `publish` with a registry schema: outputs written as Avro or Protobuf (Confluent wire format
//! by default, or bare) or JSON checked against a JSON Schema, each with `Weir-Schema-Id`; an
//! output that does not fit its schema fails alone, as a `validation` error naming the field.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use serde_json::{Value, json};
use weir_engine::{FailureKind, Fate, OutputMessage};

use crate::batch::{compile, msg};

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"qty","type":"long","default":1},{"name":"note","type":["null","string"],"default":null},{"name":"tier","type":{"type":"enum","name":"Tier","symbols":["GOLD","SILVER"]}},{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}}]}"#;

const PROTO: &str = r#"syntax = "proto3";
package acme;
message Customer { string id = 1; }
message Order {
  enum Tier { GOLD = 0; SILVER = 1; }
  string id = 1;
  double amount = 2;
  int64 qty = 3;
  Tier tier = 4;
  Customer customer = 5;
  repeated string tags = 6;
}
"#;

/// A pipeline from `source` to one `publish` node with `publish` as its body.
fn pipeline(source: &str, publish: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: enc }}\nspec:\n  source: {source}\n  nodes:\n    - id: out\n      publish: {publish}\n"
    )
}

/// A publish body writing with `format` and the embedded schema `text` under `id`.
fn publish(format: &str, id: i64, text: &str, extra: &str) -> String {
    let writer = json!({"id": id, "schema": text});
    format!(
        "{{ subject: enc.out, format: {format}, schema: {{ subject: orders-out, version: 1, writer: {writer} {extra} }} }}"
    )
}

fn avro_source(id: i64) -> String {
    let schema = json!({"subject": "orders-in", "version": 1, "id": id, "writers": [{"id": id, "schema": ORDER}]});
    format!("{{ stream: ORDERS, format: avro, schema: {schema} }}")
}

fn wire(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend(body);
    out
}

// `to_avro_datum` is the plain "encode one datum" call; its replacement's builder adds nothing
// to a test.
#[allow(deprecated)]
fn avro_order(id: &str, amount: f64, note: Option<&str>) -> Vec<u8> {
    let schema = Schema::parse_str(ORDER).unwrap();
    let note = match note {
        Some(n) => Avro::Union(1, Box::new(Avro::String(n.into()))),
        None => Avro::Union(0, Box::new(Avro::Null)),
    };
    let record = Avro::Record(vec![
        ("id".into(), Avro::String(id.into())),
        ("amount".into(), Avro::Double(amount)),
        ("qty".into(), Avro::Long(3)),
        ("note".into(), note),
        ("tier".into(), Avro::Enum(1, "SILVER".into())),
        (
            "customer".into(),
            Avro::Record(vec![("id".into(), Avro::String(format!("c-{id}")))]),
        ),
    ]);
    apache_avro::to_avro_datum(&schema, record).unwrap()
}

/// The JSON values as a batch, sequence numbers from 1.
fn json_batch(inputs: &[Value]) -> Vec<weir_engine::InputMessage> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, v)| msg(i as u64 + 1, &serde_json::to_vec(v).unwrap()))
        .collect()
}

fn one(fate: &Fate) -> &OutputMessage {
    match fate {
        Fate::Outputs(o) if o.len() == 1 => &o[0],
        other => panic!("expected one output, got {other:?}"),
    }
}

fn header<'m>(o: &'m OutputMessage, name: &str) -> Option<&'m str> {
    o.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn invalid(fate: &Fate) -> String {
    let Fate::Error(e) = fate else {
        panic!("expected a validation error, got {fate:?}")
    };
    assert_eq!((e.kind, e.node.as_str()), (FailureKind::Validation, "out"));
    e.message.clone()
}

#[test]
fn avro_in_avro_out_gives_back_the_same_bytes() {
    let p = compile(&pipeline(&avro_source(12), &publish("avro", 12, ORDER, "")));
    let inputs = [
        wire(12, &avro_order("o-1", 25.5, None)),
        wire(12, &avro_order("o-2", 7.25, Some("fragile"))),
    ];
    let batch: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, m)| msg(i as u64 + 1, m))
        .collect();
    let result = p.process(&batch);
    for (input, fate) in inputs.iter().zip(&result.fates) {
        let out = one(fate);
        assert_eq!(out.payload.as_ref(), input.as_slice());
        assert_eq!(header(out, "Weir-Schema-Id"), Some("12"));
    }
}

#[test]
fn json_outputs_that_do_not_fit_the_avro_schema_fail_alone_naming_the_field() {
    let p = compile(&pipeline(
        "{ stream: ORDERS }",
        &publish("avro", 12, ORDER, ""),
    ));
    let good = json!({"id":"o-1","amount":25.5,"tier":"SILVER","customer":{"id":"c-o-1"}});
    let inputs = [
        good.clone(),
        json!({"id":"o-2","amount":"lots","tier":"SILVER","customer":{"id":"c"}}),
        json!({"id":"o-3","amount":1.0,"tier":"BRONZE","customer":{"id":"c"}}),
        json!({"id":"o-4","amount":1.0,"tier":"GOLD","customer":{}}),
        json!({"id":"o-5","amount":1.0,"tier":"GOLD","customer":{"id":"c"},"extra":true}),
        json!({"id":"o-6","amount":1.0,"tier":"GOLD","customer":{"id":"c"},"note":42}),
    ];
    let batch = json_batch(&inputs);
    let result = p.process(&batch);
    // The good one: the record with its defaults (qty 1, note null), in the wire format.
    let out = one(&result.fates[0]);
    let schema = Schema::parse_str(ORDER).unwrap();
    assert_eq!(&out.payload[..5], &[0, 0, 0, 0, 12]);
    let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
        .build()
        .and_then(|r| r.read_value(&mut &out.payload[5..]))
        .unwrap();
    let decoded: Value = decoded.try_into().unwrap();
    assert_eq!(
        decoded,
        json!({"id":"o-1","amount":25.5,"qty":1,"note":null,"tier":"SILVER","customer":{"id":"c-o-1"}})
    );
    let reasons: Vec<String> = result.fates[1..].iter().map(invalid).collect();
    let want = [
        "/amount: expected a double, found \"lots\"",
        "/tier: expected one of [\"GOLD\", \"SILVER\"], found \"BRONZE\"",
        "/customer/id: missing; the Avro field has no default",
        "/extra: not a field of Avro record `acme.Order`",
        "/note: expected one of [null, a string], found 42",
    ];
    for (reason, want) in reasons.iter().zip(want) {
        assert!(
            reason.starts_with("the output does not fit Avro schema `orders-out` (id 12): ")
                && reason.contains(want),
            "{reason:?} should say {want:?}"
        );
    }
}

#[test]
fn protobuf_outputs_carry_the_message_indexes_and_decode_back() {
    let out_publish = publish("protobuf", 21, PROTO, ", message: acme.Order");
    let p = compile(&pipeline("{ stream: ORDERS }", &out_publish));
    let order = json!({"id":"o-1","amount":25.5,"qty":3,"tier":"SILVER","customer":{"id":"c-1"},"tags":["a","b"]});
    let inputs = [
        serde_json::to_vec(&order).unwrap(),
        br#"{"id":"o-2","amount":1,"qty":"many","tier":"GOLD"}"#.to_vec(),
        br#"{"id":"o-3","amount":1,"tier":"PLATINUM"}"#.to_vec(),
        br#"{"id":"o-4","customer":{"id":"c","vip":true}}"#.to_vec(),
    ];
    let batch: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, m)| msg(i as u64 + 1, m))
        .collect();
    let result = p.process(&batch);
    let out = one(&result.fates[0]);
    // acme.Order is the second top-level message: indexes [1] = count 1, index 1 (zigzag 2, 2).
    assert_eq!(&out.payload[..7], &[0, 0, 0, 0, 21, 2, 2]);
    assert_eq!(header(out, "Weir-Schema-Id"), Some("21"));
    // Read back by a Protobuf source of the same subject: the same order.
    let schema =
        json!({"subject": "orders-out", "id": 21, "writers": [{"id": 21, "schema": PROTO}]});
    let reader = compile(&pipeline(
        &format!("{{ stream: ORDERS, format: protobuf, schema: {schema} }}"),
        "{ subject: back }",
    ));
    let back = reader.process(&[msg(1, &out.payload)]);
    let back: Value = serde_json::from_slice(&one(&back.fates[0]).payload).unwrap();
    assert_eq!(back, order);
    let want = [
        "/qty: expected a whole number, found \"many\"",
        "/tier: expected one of [\"GOLD\", \"SILVER\"], found \"PLATINUM\"",
        "/customer/vip: not a field of message `acme.Customer`",
    ];
    for (fate, want) in result.fates[1..].iter().zip(want) {
        let reason = invalid(fate);
        assert!(
            reason.starts_with("the output does not fit Protobuf schema `orders-out` (id 21): ")
                && reason.contains(want),
            "{reason:?} should say {want:?}"
        );
    }
}

#[test]
fn bare_wire_leaves_the_header_out_and_a_missing_message_is_a_problem() {
    let writer = json!({"id": 12, "schema": ORDER});
    let bare = format!(
        "{{ subject: o, format: avro, wire: bare, schema: {{ subject: orders-out, writer: {writer} }} }}"
    );
    let p = compile(&pipeline(&avro_source(12), &bare));
    let input = wire(12, &avro_order("o-1", 2.0, None));
    let result = p.process(&[msg(1, &input)]);
    assert_eq!(one(&result.fates[0]).payload.as_ref(), &input[5..]);

    let missing = publish("protobuf", 21, PROTO, ", message: acme.Nope");
    let text = pipeline("{ stream: ORDERS }", &missing);
    let weir_pipelines::Resource::Pipeline(p) = serde_yaml::from_str(&text).unwrap() else {
        panic!("not a pipeline")
    };
    let err = weir_engine::CompiledPipeline::compile(&p).err().unwrap();
    assert_eq!(err.problems[0].path, "/spec/nodes/0/publish/schema");
    assert!(
        err.problems[0]
            .message
            .contains("the schema has no message `acme.Nope` (it has acme.Customer, acme.Order"),
        "{err}"
    );
}

#[test]
fn json_with_a_schema_is_checked_and_named_in_a_header() {
    let schema = r#"{"type":"object","required":["id","amount"],"properties":{"amount":{"type":"number","minimum":0}}}"#;
    let p = compile(&pipeline(
        "{ stream: ORDERS }",
        &publish("json", 31, schema, ""),
    ));
    let good = br#"{"id":"o-1","amount":3}"#;
    let result = p.process(&[msg(1, good), msg(2, br#"{"id":"o-2","amount":-1}"#)]);
    let out = one(&result.fates[0]);
    assert_eq!(out.payload.as_ref(), good);
    assert_eq!(header(out, "Weir-Schema-Id"), Some("31"));
    let reason = invalid(&result.fates[1]);
    assert!(
        reason.contains(
            "JSON schema `orders-out` (id 31): /amount: minimum: -1 is less than the minimum of 0"
        ),
        "{reason}"
    );
}

#[test]
fn an_unresolved_output_schema_checks_but_dead_letters_when_run() {
    let text = pipeline(
        "{ stream: ORDERS }",
        "{ subject: o, format: avro, schema: { subject: orders-out } }",
    );
    let weir_pipelines::Resource::Pipeline(p) = serde_yaml::from_str(&text).unwrap() else {
        panic!("not a pipeline")
    };
    assert_eq!(weir_engine::check::check(&p), vec![]);
    let result = compile(&text).process(&[msg(1, b"{}")]);
    assert!(invalid(&result.fates[0]).contains("was not resolved"));
    // `format: avro` without `schema` is a located problem of the file.
    let no_schema = pipeline("{ stream: ORDERS }", "{ subject: o, format: avro }");
    let problems = weir_pipelines::load_str(&no_schema, "p.yaml").unwrap_err();
    let text = format!("{problems:?}");
    assert!(
        text.contains("/spec/nodes/0/publish/format") && text.contains("needs `schema"),
        "{text}"
    );
}

/// Decimals (on bytes and on fixed), big decimals and durations: JSON → Avro by `publish`,
/// Avro → JSON by an Avro source, the same values; digits the schema cannot hold fail alone.
#[test]
fn avro_decimals_and_durations_round_trip() {
    const PRICED: &str = r#"{"type":"record","name":"Priced","fields":[
      {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
      {"name":"fee","type":{"type":"fixed","name":"Fee","size":4,"logicalType":"decimal","precision":7,"scale":3}},
      {"name":"exact","type":{"type":"bytes","logicalType":"big-decimal"}},
      {"name":"wait","type":{"type":"fixed","name":"Wait","size":12,"logicalType":"duration"}}]}"#;
    let out = compile(&pipeline(
        "{ stream: ORDERS }",
        &publish("avro", 31, PRICED, ""),
    ));
    let good = json!({"price": "-12.30", "fee": 7.5, "exact": "123456789.000000001",
                      "wait": {"months": 1, "days": 2, "millis": 3}});
    let inputs = [
        good.clone(),
        json!({"price": "1.234", "fee": 1, "exact": "1", "wait": {}}),
        json!({"price": "12345678.9", "fee": 1, "exact": "1", "wait": {}}),
        json!({"price": "lots", "fee": 1, "exact": "1", "wait": {}}),
        json!({"price": "1", "fee": 1, "exact": "1", "wait": {"weeks": 1}}),
    ];
    let batch = json_batch(&inputs);
    let result = out.process(&batch);
    let written = one(&result.fates[0]).payload.to_vec();
    for (fate, says) in result.fates[1..].iter().zip([
        "/price: \"1.234\" has more than the 2 decimal places",
        "/price: \"12345678.9\" has more than the 9 digits",
        "/price: expected a decimal",
        "/wait/weeks: not a part of an Avro duration",
    ]) {
        let reason = invalid(fate);
        assert!(reason.contains(says), "{reason} should say {says}");
    }

    // Read back by an Avro source with the same schema.
    let schema = json!({"subject": "priced", "version": 1, "id": 31, "writers": [{"id": 31, "schema": PRICED}]});
    let back = compile(&pipeline(
        &format!("{{ stream: ORDERS, format: avro, schema: {schema} }}"),
        "{ subject: enc.back }",
    ));
    let result = back.process(&[msg(1, &written)]);
    let value: Value = serde_json::from_slice(&one(&result.fates[0]).payload).unwrap();
    assert_eq!(
        value,
        json!({"price": "-12.30", "fee": "7.500", "exact": "123456789.000000001",
               "wait": {"months": 1, "days": 2, "millis": 3}})
    );
}
