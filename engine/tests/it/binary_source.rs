//! `format: avro` and `format: protobuf` sources: Confluent wire-format payloads (written with
//! any embedded version of the subject) and bare payloads decode into the same outputs as
//! their JSON equivalents; corrupt payloads, unknown schema ids and wrong magic bytes fail
//! alone, as `decode` errors of the source.

use apache_avro::Schema;
use apache_avro::types::Value as Avro;
use prost_reflect::prost::Message as _;
use serde_json::{Value, json};
use weir_engine::{FailureKind, Fate};

use crate::batch::{compile, msg};

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}},{"name":"currency","type":"string","default":"EUR"}]}"#;

fn pipeline(format: &str, writers: &[(i64, &str)], reader: i64) -> String {
    let writers: Vec<Value> = writers
        .iter()
        .map(|(id, s)| json!({"id": id, "schema": s}))
        .collect();
    let schema = json!({"subject": "orders-value", "version": 2, "id": reader, "writers": writers});
    with_source(&format!(
        "{{ stream: ORDERS, format: {format}, schema: {schema} }}"
    ))
}

fn with_source(source: &str) -> String {
    format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: binary-orders }}
spec:
  source: {source}
  nodes:
    - id: big
      filter: "data.amount > 10"
      next: tag
    - id: tag
      map: {{ set: {{ customer_id: "data.customer.id" }} }}
      next: out
    - id: out
      publish: {{ subject: "orders.checked" }}
"#
    )
}

// `to_avro_datum` is the plain "encode one datum" call; its replacement's builder adds nothing
// to a test.
#[allow(deprecated)]
fn avro(schema: &str, id: &str, amount: f64, currency: Option<&str>) -> Vec<u8> {
    let schema = Schema::parse_str(schema).unwrap();
    let mut fields = vec![
        ("id".to_string(), Avro::String(id.into())),
        ("amount".to_string(), Avro::Double(amount)),
        (
            "customer".to_string(),
            Avro::Record(vec![("id".into(), Avro::String(format!("c-{id}")))]),
        ),
    ];
    if let Some(c) = currency {
        fields.push(("currency".into(), Avro::String(c.into())));
    }
    apache_avro::to_avro_datum(&schema, Avro::Record(fields)).unwrap()
}

fn wire(id: u32, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend(body);
    out
}

fn output(fate: &Fate) -> Value {
    let Fate::Outputs(o) = fate else {
        panic!("expected an output, got {fate:?}")
    };
    serde_json::from_slice(&o[0].payload).unwrap()
}

fn decode_error(fate: &Fate) -> String {
    let Fate::Error(e) = fate else {
        panic!("expected a decode error, got {fate:?}")
    };
    assert_eq!((e.kind, e.node.as_str()), (FailureKind::Decode, "source"));
    e.message.clone()
}

#[test]
fn avro_wire_format_and_bare_payloads_decode_like_json() {
    let p = compile(&pipeline("avro", &[(11, V1), (12, V2)], 12));
    let inputs = [
        wire(11, &avro(V1, "o-1", 25.5, None)),
        wire(12, &avro(V2, "o-2", 30.0, Some("USD"))),
        avro(V2, "o-3", 12.0, Some("GBP")),
        wire(12, &avro(V2, "o-4", 5.0, Some("USD"))),
        wire(12, &avro(V2, "o-5", 20.0, Some("USD"))[..7]),
        wire(99, &avro(V2, "o-6", 20.0, Some("USD"))),
        {
            let mut m = wire(12, &avro(V2, "o-7", 20.0, Some("USD")));
            m[0] = 1;
            m
        },
    ];
    let batch: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect();
    let result = p.process(&batch);
    // V1 read as V2: the new field takes its default.
    assert_eq!(
        output(&result.fates[0]),
        json!({"id":"o-1","amount":25.5,"customer":{"id":"c-o-1"},"currency":"EUR","customer_id":"c-o-1"})
    );
    assert_eq!(
        output(&result.fates[1]),
        json!({"id":"o-2","amount":30.0,"customer":{"id":"c-o-2"},"currency":"USD","customer_id":"c-o-2"})
    );
    assert_eq!(
        output(&result.fates[2]),
        json!({"id":"o-3","amount":12.0,"customer":{"id":"c-o-3"},"currency":"GBP","customer_id":"c-o-3"})
    );
    assert_eq!(result.fates[3], Fate::Filtered);
    let corrupt = decode_error(&result.fates[4]);
    assert!(corrupt.starts_with("corrupt Avro payload"), "{corrupt}");
    let unknown = decode_error(&result.fates[5]);
    assert!(
        unknown.starts_with("unknown schema id 99") && unknown.contains("[11, 12]"),
        "{unknown}"
    );
    let magic = decode_error(&result.fates[6]);
    assert!(
        magic.starts_with("not Avro of subject `orders-value`") && magic.contains("byte 0x00"),
        "{magic}"
    );
    assert_eq!(result.nodes[0].errors, 3);
    assert_eq!(result.nodes[0].ports, vec![4]);
}

#[test]
fn the_same_orders_as_json_give_the_same_outputs() {
    let json_pipeline = with_source("{ stream: ORDERS }");
    let j = compile(&json_pipeline);
    let a = compile(&pipeline("avro", &[(12, V2)], 12));
    let doc = br#"{"id":"o-2","amount":30.0,"customer":{"id":"c-o-2"},"currency":"USD"}"#;
    let from_json = j.process(&[msg(1, doc)]);
    let from_avro = a.process(&[msg(1, &wire(12, &avro(V2, "o-2", 30.0, Some("USD"))))]);
    assert_eq!(output(&from_json.fates[0]), output(&from_avro.fates[0]));
}

/// `acme.Customer` as its own subject, and an order that names it (a registry reference).
const CUSTOMER: &str = r#"{"type":"record","name":"Customer","namespace":"acme","fields":[{"name":"id","type":"string"}]}"#;
const ORDER_WITH_REF: &str = r#"{"type":"record","name":"Order","namespace":"acme","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":"acme.Customer"},{"name":"currency","type":"string","default":"EUR"}]}"#;

#[test]
fn avro_schemas_with_references_decode_and_resolve() {
    // Writer 21 is the order with the customer inline; reader 22 takes it from a reference.
    let writers = json!([
        {"id": 21, "schema": V1.replace("\"name\":\"Order\"", "\"name\":\"Order\",\"namespace\":\"acme\"")},
        {"id": 22, "schema": ORDER_WITH_REF,
         "references": [{"name": "acme.Customer", "schema": CUSTOMER}]},
    ]);
    let schema = json!({"subject": "orders-value", "version": 2, "id": 22, "writers": writers});
    let p = compile(&with_source(&format!(
        "{{ stream: ORDERS, format: avro, schema: {schema} }}"
    )));
    let inline = Schema::parse_str(&V2.replace(
        "\"name\":\"Order\"",
        "\"name\":\"Order\",\"namespace\":\"acme\"",
    ))
    .unwrap()
    .canonical_form();
    let with_ref = {
        let (s, named) = Schema::parse_str_with_list(ORDER_WITH_REF, [CUSTOMER]).unwrap();
        assert_eq!(s.independent_canonical_form(&named).unwrap(), inline);
        V2
    };
    let v1 = V1.replace(
        "\"name\":\"Order\"",
        "\"name\":\"Order\",\"namespace\":\"acme\"",
    );
    let result = p.process(&[
        msg(1, &wire(22, &avro(with_ref, "o-1", 25.5, Some("USD")))),
        msg(2, &wire(21, &avro(&v1, "o-2", 30.0, None))),
    ]);
    assert_eq!(
        output(&result.fates[0]),
        json!({"id":"o-1","amount":25.5,"customer":{"id":"c-o-1"},"currency":"USD","customer_id":"c-o-1"})
    );
    // Written without the referenced subject, read with it: the default fills the new field.
    assert_eq!(
        output(&result.fates[1]),
        json!({"id":"o-2","amount":30.0,"customer":{"id":"c-o-2"},"currency":"EUR","customer_id":"c-o-2"})
    );
}

const PROTO: &str = r#"syntax = "proto3";
package acme;
message Customer { string id = 1; }
message Order {
  string id = 1;
  double amount = 2;
  Customer customer = 3;
  message Line { string sku = 1; int64 qty = 2; }
  repeated Line lines = 4;
}
"#;

/// An `acme.Order` encoded with prost-reflect from its JSON-like fields.
fn proto_order(id: &str, amount: f64) -> Vec<u8> {
    let pool = weir_pipelines::proto_files::compile("o.proto", PROTO, []).unwrap();
    let desc = pool.get_message_by_name("acme.Order").unwrap();
    let mut m = prost_reflect::DynamicMessage::new(desc.clone());
    m.set_field_by_name("id", prost_reflect::Value::String(id.into()));
    m.set_field_by_name("amount", prost_reflect::Value::F64(amount));
    let mut c =
        prost_reflect::DynamicMessage::new(pool.get_message_by_name("acme.Customer").unwrap());
    c.set_field_by_name("id", prost_reflect::Value::String(format!("c-{id}")));
    m.set_field_by_name("customer", prost_reflect::Value::Message(c));
    m.encode_to_vec()
}

#[test]
fn protobuf_wire_format_with_message_indexes_and_bare_payloads() {
    let p = compile(&pipeline("protobuf", &[(21, PROTO)], 21));
    let body = proto_order("o-1", 25.5);
    // Message indexes: `[1]` (the second top-level message, acme.Order) is count 1, index 1,
    // zigzag-encoded: 0x02 0x02.
    let mut wire_order = wire(21, &[0x02, 0x02]);
    wire_order.extend(&body);
    // A lone 0 means the first message (acme.Customer): its field 1 reads the order's id.
    let mut wire_first = wire(21, &[0x00]);
    wire_first.extend(&body);
    let mut corrupt = wire(21, &[0x02, 0x02]);
    corrupt.extend(&body[..body.len() - 3]);
    let mut bad_index = wire(21, &[0x02, 0x0a]);
    bad_index.extend(&body);
    let inputs = [wire_order, wire_first, corrupt, bad_index, wire(77, &body)];
    let batch: Vec<_> = inputs
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect();
    let result = p.process(&batch);
    assert_eq!(
        output(&result.fates[0]),
        json!({"id":"o-1","amount":25.5,"customer":{"id":"c-o-1"},"lines":[],"customer_id":"c-o-1"})
    );
    // acme.Customer has no `amount`: the filter drops it.
    assert_eq!(result.fates[1], Fate::Filtered);
    assert!(decode_error(&result.fates[2]).starts_with("corrupt Protobuf payload"));
    assert!(decode_error(&result.fates[3]).contains("name no message"));
    assert!(decode_error(&result.fates[4]).starts_with("unknown schema id 77"));
}

#[test]
fn an_unresolved_binary_source_does_not_compile_to_run() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: p }\nspec:\n  source: { stream: S, format: avro, schema: orders-value }\n  nodes:\n    - id: out\n      publish: { subject: o }\n";
    let weir_pipelines::Resource::Pipeline(p) = serde_yaml::from_str(text).unwrap() else {
        panic!("not a pipeline")
    };
    let err = weir_engine::CompiledPipeline::compile(&p).unwrap_err();
    assert_eq!(err.problems[0].path, "/spec/source/schema");
    assert!(err.problems[0].message.contains("not resolved"), "{err}");
    // Checking the file without the registry is fine.
    assert_eq!(weir_engine::check::check(&p), vec![]);
}

/// A pipeline whose entry node is a filter: Avro payloads written with the reader schema are
/// decoded into their path values alone, and only the messages that reach a node that reads
/// payloads get their JSON text (once, however many routes they take). The outputs are the
/// JSON pipeline's; payloads the fast path does not take (another writer schema) and bad ones
/// behave as before.
#[test]
fn avro_read_straight_into_columns_gets_its_text_only_where_a_node_reads_it() {
    let nodes = r#"
  nodes:
    - id: big
      filter: "data.amount > 10 AND data.customer.id IS NOT NULL"
      next: split
    - id: split
      route:
        - when: "data.currency = 'USD'"
          next: [us, all]
        - when: "data.customer IS NOT NULL AND data.id = 'o-3'"
          next: all
      default: all
    - id: us
      publish: { subject: "orders.us.{data.customer.id}" }
    - id: all
      publish: { subject: "orders.all" }
"#;
    let doc = |source: &str| {
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: skim }}\nspec:\n  source: {source}{nodes}"
        )
    };
    let writers = json!([{"id": 11, "schema": V1}, {"id": 12, "schema": V2}]);
    let schema = json!({"subject": "orders-value", "id": 12, "writers": writers});
    let a = compile(&doc(&format!(
        "{{ stream: ORDERS, format: avro, schema: {schema} }}"
    )));
    let j = compile(&doc("{ stream: ORDERS }"));
    let orders = [
        ("o-1", 30.0, "USD"),
        ("o-2", 5.0, "USD"),
        ("o-3", 12.5, "GBP"),
        ("o-4", 99.0, "EUR"),
    ];
    let mut avro_in: Vec<Vec<u8>> = orders
        .iter()
        .map(|(id, amount, cur)| wire(12, &avro(V2, id, *amount, Some(cur))))
        .collect();
    let mut json_in: Vec<Vec<u8>> = orders
        .iter()
        .map(|(id, amount, cur)| {
            serde_json::to_vec(&json!({"id": id, "amount": amount, "customer": {"id": format!("c-{id}")}, "currency": cur}))
                .unwrap()
        })
        .collect();
    // Written with the older schema: resolved by apache-avro, its text written at once.
    avro_in.push(wire(11, &avro(V1, "o-5", 50.0, None)));
    json_in
        .push(br#"{"id":"o-5","amount":50.0,"customer":{"id":"c-o-5"},"currency":"EUR"}"#.to_vec());
    let from_avro = a.process(
        &avro_in
            .iter()
            .enumerate()
            .map(|(i, p)| msg(i as u64 + 1, p))
            .collect::<Vec<_>>(),
    );
    let from_json = j.process(
        &json_in
            .iter()
            .enumerate()
            .map(|(i, p)| msg(i as u64 + 1, p))
            .collect::<Vec<_>>(),
    );
    for (k, (a, j)) in from_avro.fates.iter().zip(&from_json.fates).enumerate() {
        assert_eq!(
            subjects_and_payloads(a),
            subjects_and_payloads(j),
            "order {k}"
        );
    }
    assert_eq!(from_avro.fates[1], Fate::Filtered);
    let first = subjects_and_payloads(&from_avro.fates[0]);
    assert_eq!(
        first.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        ["orders.us.c-o-1", "orders.all"]
    );
    assert_eq!(
        first[0].1,
        json!({"id":"o-1","amount":30.0,"customer":{"id":"c-o-1"},"currency":"USD"})
    );
    assert_eq!(from_avro.nodes, from_json.nodes);

    // Bad payloads fail alone at the source, as with any other pipeline: skimmed (a pipeline
    // new to traffic skims), or written at once (most of `a`'s last batch reached a publish,
    // so it writes every text as it decodes).
    let bad = [
        msg(1, &wire(12, &avro(V2, "o-6", 20.0, Some("USD")))[..9]),
        msg(2, &wire(99, &avro(V2, "o-7", 20.0, Some("USD")))),
        msg(3, &wire(12, &avro(V2, "o-8", 20.0, Some("USD")))),
    ];
    let fresh = compile(&doc(&format!(
        "{{ stream: ORDERS, format: avro, schema: {schema} }}"
    )));
    let skimmed = fresh.process(&bad);
    let written = a.process(&bad);
    assert_eq!(skimmed.fates, written.fates);
    assert!(decode_error(&skimmed.fates[0]).starts_with("corrupt Avro payload"));
    assert!(decode_error(&skimmed.fates[1]).starts_with("unknown schema id 99"));
    assert_eq!(subjects_and_payloads(&skimmed.fates[2]).len(), 2);
}

/// Primitive fields of every kind: long, boolean, enum, nullable string and double.
const TYPED: &str = r#"{"type":"record","name":"Order","fields":[
  {"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"qty","type":"long"},
  {"name":"express","type":"boolean"},
  {"name":"tier","type":{"type":"enum","name":"Tier","symbols":["GOLD","STD"]}},
  {"name":"note","type":["null","string"]},{"name":"discount","type":["null","double"]},
  {"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}}]}"#;

/// A pipeline that reads only primitive paths reads Avro batches straight into typed
/// columns; the outputs and counts are the JSON pipeline's for the same orders, including
/// nulls, a NaN (null in JSON), and a batch whose nullable text column the JSON decoder
/// splits into frames (read through the JSON text instead).
/// The nodes of the typed-column tests: a filter, a route and publish templates reading
/// scalars, a nullable text, a nested field and an enum.
const TYPED_NODES: &str = r#"
  nodes:
    - id: keep
      filter: "data.amount > 10 OR data.discount IS NOT NULL"
      next: split
    - id: split
      route:
        - when: "data.tier = 'GOLD' AND data.express"
          next: gold
        - when: "data.qty > 2 AND (data.note IS NULL OR data.note <> 'skip')"
          next: bulk
      default: rest
    - id: gold
      publish: { subject: "gold.{data.customer.id}" }
    - id: bulk
      publish: { subject: "bulk.{data.qty}" }
    - id: rest
      publish: { subject: "rest" }
"#;

/// An order of the typed-column tests, as JSON.
fn typed_order(
    id: &str,
    amount: f64,
    qty: i64,
    express: bool,
    tier: &str,
    note: Option<&str>,
    discount: Option<f64>,
) -> Value {
    json!({"id": id, "amount": amount, "qty": qty, "express": express, "tier": tier,
           "note": note, "discount": discount, "customer": {"id": format!("c-{id}")}})
}

/// A pipeline of [`TYPED_NODES`] reading from `source`.
fn typed_doc(source: &str) -> String {
    format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: typed }}\nspec:\n  source: {source}{TYPED_NODES}"
    )
}

#[test]
fn avro_read_into_typed_columns_gives_the_json_outputs() {
    let doc = typed_doc;
    let schema =
        json!({"subject": "orders-value", "id": 7, "writers": [{"id": 7, "schema": TYPED}]});
    let avro_source = format!("{{ stream: ORDERS, format: avro, schema: {schema} }}");
    let parsed = Schema::parse_str(TYPED).unwrap();
    #[allow(deprecated)]
    let encode = |o: &Value| {
        let union = |v: &Value, f: fn(&Value) -> Avro| match v {
            Value::Null => Avro::Union(0, Box::new(Avro::Null)),
            v => Avro::Union(1, Box::new(f(v))),
        };
        let discount = o.get("nan").map_or_else(
            || union(&o["discount"], |v| Avro::Double(v.as_f64().unwrap())),
            |_| Avro::Union(1, Box::new(Avro::Double(f64::NAN))),
        );
        let tier = o["tier"].as_str().unwrap();
        let record = Avro::Record(vec![
            ("id".into(), Avro::String(o["id"].as_str().unwrap().into())),
            ("amount".into(), Avro::Double(o["amount"].as_f64().unwrap())),
            ("qty".into(), Avro::Long(o["qty"].as_i64().unwrap())),
            (
                "express".into(),
                Avro::Boolean(o["express"].as_bool().unwrap()),
            ),
            (
                "tier".into(),
                Avro::Enum(u32::from(tier == "STD"), tier.into()),
            ),
            (
                "note".into(),
                union(&o["note"], |v| Avro::String(v.as_str().unwrap().into())),
            ),
            ("discount".into(), discount),
            (
                "customer".into(),
                Avro::Record(vec![(
                    "id".into(),
                    Avro::String(o["customer"]["id"].as_str().unwrap().into()),
                )]),
            ),
        ]);
        wire(7, &apache_avro::to_avro_datum(&parsed, record).unwrap())
    };
    let order = typed_order;
    let mut nan = order("o-5", 40.0, 1, false, "STD", Some("n"), None);
    nan["nan"] = json!(true);
    let all_notes = vec![
        order("o-1", 30.0, 1, true, "GOLD", Some("a"), None),
        order("o-2", 5.0, 9, false, "STD", Some("b"), None),
        order("o-3", 5.0, 3, false, "STD", Some("c"), Some(1.5)),
        order("o-4", 12.25, 4, true, "STD", Some("skip"), Some(0.1)),
        nan,
    ];
    let some_notes = vec![
        order("o-6", 30.0, 5, false, "STD", None, None),
        order("o-7", 50.0, 5, false, "STD", Some("x"), None),
    ];
    for batch in [all_notes, some_notes] {
        let a = compile(&doc(&avro_source));
        let j = compile(&doc("{ stream: ORDERS }"));
        let avro_in: Vec<Vec<u8>> = batch.iter().map(&encode).collect();
        let json_in: Vec<Vec<u8>> = batch
            .iter()
            .map(|o| {
                let mut o = o.clone();
                if o.get("nan").is_some() {
                    o["discount"] = Value::Null;
                }
                o.as_object_mut().unwrap().remove("nan");
                serde_json::to_vec(&o).unwrap()
            })
            .collect();
        assert_same_results(
            &a.process(&numbered(&avro_in)),
            &j.process(&numbered(&json_in)),
        );
    }
    // Bad payloads in a batch read into typed columns fail alone at the source.
    let good = encode(&order("o-8", 30.0, 1, true, "GOLD", Some("a"), None));
    let mut unknown = good.clone();
    unknown[4] = 99;
    let a = compile(&doc(&avro_source));
    // Cut short in its last string, which apache-avro alone would read as null.
    let cut = &good[..good.len() - 3];
    let result = a.process(&[
        msg(1, &good),
        msg(2, &good[..9]),
        msg(3, &unknown),
        msg(4, cut),
    ]);
    assert_eq!(outputs_of(&result.fates[0]), ["gold.c-o-8"]);
    assert!(decode_error(&result.fates[1]).starts_with("corrupt Avro payload"));
    assert!(decode_error(&result.fates[2]).starts_with("unknown schema id 99"));
    let cut_error = decode_error(&result.fates[3]);
    assert!(cut_error.contains("ends early"), "{cut_error}");
    assert_eq!(result.nodes[0].errors, 3);
    // The same from a pipeline that writes every text at once.
    let written = compile(
        &doc("{ stream: ORDERS }")
            .replace("{ stream: ORDERS }", &avro_source)
            .replace(
                "filter: \"data.amount > 10 OR data.discount IS NOT NULL\"",
                "map: { set: { seen: \"true\" } }",
            ),
    );
    assert_eq!(
        decode_error(&written.process(&[msg(1, cut)]).fates[0]),
        cut_error
    );
}

fn outputs_of(fate: &Fate) -> Vec<String> {
    match fate {
        Fate::Outputs(o) => o.iter().map(|o| o.subject.clone()).collect(),
        other => panic!("expected outputs, got {other:?}"),
    }
}

/// Messages 1, 2, … with `payloads`.
fn numbered(payloads: &[Vec<u8>]) -> Vec<weir_engine::InputMessage> {
    payloads
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect()
}

/// Both results give each input the same outputs, and their nodes the same counts.
fn assert_same_results(binary: &weir_engine::BatchResult, json: &weir_engine::BatchResult) {
    for (k, (b, j)) in binary.fates.iter().zip(&json.fates).enumerate() {
        assert_eq!(
            subjects_and_payloads(b),
            subjects_and_payloads(j),
            "order {k}"
        );
    }
    assert_eq!(binary.nodes, json.nodes);
}

/// Each output's subject and payload (none when filtered); an error fails the test.
fn subjects_and_payloads(fate: &Fate) -> Vec<(String, Value)> {
    match fate {
        Fate::Outputs(o) => o
            .iter()
            .map(|o| {
                (
                    o.subject.clone(),
                    serde_json::from_slice(&o.payload).unwrap(),
                )
            })
            .collect(),
        Fate::Filtered => Vec::new(),
        Fate::Error(e) => panic!("{e:?}"),
    }
}

/// Payloads that go through `apache-avro` (written with another schema version, resolved into
/// the reader's) and are cut short: in the last string (apache-avro reads it as null), and
/// just before a union's branch (apache-avro reads it as the null branch). Each is a decode
/// error naming the truncation; the whole payloads beside them decode.
#[test]
fn avro_payloads_cut_short_are_errors_on_the_resolving_path_too() {
    const W: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}},{"name":"note","type":["null","string"]}]}"#;
    const R: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"customer","type":{"type":"record","name":"Customer","fields":[{"name":"id","type":"string"}]}},{"name":"note","type":["null","string"]},{"name":"currency","type":"string","default":"EUR"}]}"#;
    let writer = Schema::parse_str(W).unwrap();
    #[allow(deprecated)]
    let body = |note: Avro| {
        apache_avro::to_avro_datum(
            &writer,
            Avro::Record(vec![
                ("id".into(), Avro::String("o-1".into())),
                ("amount".into(), Avro::Double(25.0)),
                (
                    "customer".into(),
                    Avro::Record(vec![("id".into(), Avro::String("c-1".into()))]),
                ),
                ("note".into(), note),
            ]),
        )
        .unwrap()
    };
    let with_note = body(Avro::Union(1, Box::new(Avro::String("gift".into()))));
    let without_note = body(Avro::Union(0, Box::new(Avro::Null)));
    let payloads = [
        wire(21, &with_note),
        wire(21, &with_note[..with_note.len() - 2]),
        wire(21, &without_note),
        wire(21, &without_note[..without_note.len() - 1]),
    ];
    let yaml = pipeline("avro", &[(21, W), (22, R)], 22);
    let batch: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect();
    let result = compile(&yaml).process(&batch);
    assert_eq!(output(&result.fates[0])["note"], json!("gift"));
    assert_eq!(output(&result.fates[2])["note"], Value::Null);
    assert_eq!(output(&result.fates[2])["currency"], json!("EUR"));
    for i in [1, 3] {
        let error = decode_error(&result.fates[i]);
        assert!(error.contains("ends early"), "payload {i}: {error}");
    }
}

/// A `format: json` source whose registry JSON Schema the control plane embedded: the paths
/// the pipeline reads take their types from it, as if declared in `source.fields`. A payload
/// whose value has another type fails alone, naming the field; without the schema the same
/// batch is typed from its values.
#[test]
fn a_json_sources_schema_types_the_fields_it_reads() {
    const SCHEMA: &str = r#"{"type":"object","properties":{"id":{"type":"string"},"amount":{"type":"number"},"customer":{"type":"object","properties":{"id":{"type":"string"}}}}}"#;
    let typed = pipeline("json", &[(31, SCHEMA)], 31);
    let payloads: [&[u8]; 3] = [
        br#"{"id":"o-1","amount":25,"customer":{"id":"c-1"}}"#,
        br#"{"id":"o-2","amount":"25","customer":{"id":"c-2"}}"#,
        br#"{"id":"o-3","amount":12.5,"customer":{"id":"c-3"}}"#,
    ];
    let batch: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect();
    let result = compile(&typed).process(&batch);
    assert_eq!(output(&result.fates[0])["customer_id"], json!("c-1"));
    assert_eq!(output(&result.fates[2])["customer_id"], json!("c-3"));
    let Fate::Error(e) = &result.fates[1] else {
        panic!("{:?}", result.fates[1])
    };
    assert!(e.message.contains("amount"), "{}", e.message);
    // The schema is what typed it: a bare subject (nothing embedded) runs untyped.
    let bare = with_source("{ stream: ORDERS, schema: orders-json }");
    let untyped = compile(&bare).process(&batch);
    assert!(
        !matches!(untyped.fates[1], Fate::Error(_)),
        "{:?}",
        untyped.fates[1]
    );
    // Through `$ref`s: a definition of the schema, and registry references by name.
    const WITH_REFS: &str = r##"{"type":"object","properties":{"amount":{"$ref":"#/$defs/money"},"customer":{"$ref":"customer.json"}},"$defs":{"money":{"$ref":"money.json"}}}"##;
    let references = json!([
        {"name": "money.json", "schema": r#"{"type":"number"}"#},
        {"name": "customer.json", "schema": r#"{"type":"object","properties":{"id":{"type":"integer"}}}"#},
    ]);
    let schema = json!({"subject": "orders-json", "id": 32,
        "writers": [{"id": 32, "schema": WITH_REFS, "references": references}]});
    let with_refs = compile(&with_source(&format!(
        "{{ stream: ORDERS, format: json, schema: {schema} }}"
    )));
    let payloads: [&[u8]; 3] = [
        br#"{"amount":25,"customer":{"id":7}}"#,
        br#"{"amount":"25","customer":{"id":7}}"#,
        br#"{"amount":25,"customer":{"id":"c-7"}}"#,
    ];
    let result = with_refs.process(&numbered(&payloads.map(<[u8]>::to_vec)));
    assert_eq!(output(&result.fates[0])["customer_id"], json!(7));
    for (k, field) in [(1, "amount"), (2, "customer.id")] {
        let Fate::Error(e) = &result.fates[k] else {
            panic!("{:?}", result.fates[k])
        };
        assert!(e.message.contains(field), "{}", e.message);
    }
}

/// The order of the typed-column tests as Protobuf (`note` and `discount` with presence).
const TYPED_PROTO: &str = r#"syntax = "proto3";
package acme;
enum Tier { STD = 0; GOLD = 1; }
message Customer { string id = 1; }
message Order {
  string id = 1;
  double amount = 2;
  int64 qty = 3;
  bool express = 4;
  Tier tier = 5;
  optional string note = 6;
  optional double discount = 7;
  Customer customer = 8;
}
"#;

#[test]
fn protobuf_read_straight_from_the_binary_gives_the_json_outputs() {
    let pool = weir_pipelines::proto_files::compile("o.proto", TYPED_PROTO, []).unwrap();
    let order_desc = pool.get_message_by_name("acme.Order").unwrap();
    let customer_desc = pool.get_message_by_name("acme.Customer").unwrap();
    // acme.Order is the second top-level message: indexes [1] (zigzag 2, 2).
    let encode = |o: &Value| {
        let mut m = prost_reflect::DynamicMessage::new(order_desc.clone());
        for (k, v) in o.as_object().unwrap() {
            let value = match (k.as_str(), v) {
                (_, Value::Null) => continue,
                ("id" | "note", Value::String(s)) => prost_reflect::Value::String(s.clone()),
                ("amount" | "discount", v) => prost_reflect::Value::F64(v.as_f64().unwrap()),
                ("qty", v) => prost_reflect::Value::I64(v.as_i64().unwrap()),
                ("express", Value::Bool(b)) => prost_reflect::Value::Bool(*b),
                ("tier", v) => prost_reflect::Value::EnumNumber(i32::from(v == "GOLD")),
                ("customer", v) => {
                    let mut c = prost_reflect::DynamicMessage::new(customer_desc.clone());
                    c.set_field_by_name(
                        "id",
                        prost_reflect::Value::String(v["id"].as_str().unwrap().into()),
                    );
                    prost_reflect::Value::Message(c)
                }
                other => panic!("{other:?}"),
            };
            m.set_field_by_name(k, value);
        }
        let mut payload = wire(31, &[0x02, 0x02]);
        payload.extend(m.encode_to_vec());
        payload
    };
    let schema = json!({"subject": "orders-value", "id": 31, "writers": [{"id": 31, "schema": TYPED_PROTO}]});
    let proto_source = format!("{{ stream: ORDERS, format: protobuf, schema: {schema} }}");
    let order = typed_order;
    let all_notes = vec![
        order("o-1", 30.0, 1, true, "GOLD", Some("a"), None),
        order("o-2", 5.0, 9, false, "STD", Some("b"), None),
        order("o-3", 5.0, 3, false, "STD", Some("c"), Some(1.5)),
        order("o-4", 12.25, 4, true, "STD", Some("skip"), Some(0.1)),
        // Defaults are not on the wire: the text and the columns read them all the same.
        order("", 0.0, 0, false, "STD", Some(""), Some(0.0)),
    ];
    let some_notes = vec![
        order("o-6", 30.0, 5, false, "STD", None, None),
        order("o-7", 50.0, 5, false, "GOLD", Some("x"), None),
        order("o-9", 40.0, 4, false, "STD", Some("skip"), None),
        order("o-10", 20.0, 1, true, "GOLD", None, None),
    ];
    // The JSON a Protobuf message reads as: fields with presence only when set.
    let as_json = |o: &Value| {
        let mut o = o.clone();
        o.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        serde_json::to_vec(&o).unwrap()
    };
    // With a map first, every text is written and scanned (the path through prost-reflect).
    let with_map = |doc: String| {
        doc.replace(
            "filter: \"data.amount > 10 OR data.discount IS NOT NULL\"",
            "map: { set: { seen: \"true\" } }",
        )
    };
    for batch in [all_notes, some_notes] {
        let proto_in: Vec<Vec<u8>> = batch.iter().map(&encode).collect();
        let json_in: Vec<Vec<u8>> = batch.iter().map(&as_json).collect();
        for (from, json) in [
            (typed_doc(&proto_source), typed_doc("{ stream: ORDERS }")),
            (
                with_map(typed_doc(&proto_source)),
                with_map(typed_doc("{ stream: ORDERS }")),
            ),
        ] {
            assert_same_results(
                &compile(&from).process(&numbered(&proto_in)),
                &compile(&json).process(&numbered(&json_in)),
            );
        }
    }
    // Bad payloads fail alone at the source, with the message prost-reflect gives.
    let good = encode(&order("o-8", 30.0, 1, true, "GOLD", Some("a"), None));
    let cut = good[..good.len() - 3].to_vec();
    let mut not_utf8 = good.clone();
    let at = not_utf8.windows(3).position(|w| w == b"o-8").unwrap();
    not_utf8[at] = 0xff;
    let mut unknown = good.clone();
    unknown[4] = 99;
    let bad = [good.clone(), cut, not_utf8, unknown];
    let read = compile(&typed_doc(&proto_source)).process(&numbered(&bad));
    let written = compile(&with_map(typed_doc(&proto_source))).process(&numbered(&bad));
    assert_eq!(outputs_of(&read.fates[0]), ["gold.c-o-8"]);
    for k in 1..bad.len() {
        assert_eq!(
            decode_error(&read.fates[k]),
            decode_error(&written.fates[k]),
            "payload {k}"
        );
    }
    assert!(decode_error(&read.fates[1]).starts_with("corrupt Protobuf payload"));
    assert!(
        decode_error(&read.fates[2]).contains("UTF-8"),
        "{}",
        decode_error(&read.fates[2])
    );
    assert!(decode_error(&read.fates[3]).starts_with("unknown schema id 99"));
    assert_eq!(read.nodes[0].errors, 3);
}
