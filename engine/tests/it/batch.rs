//! A batch through a compiled pipeline: outputs, filtering, fan-out and per-message errors.

use bytes::Bytes;
use weir_engine::{CompiledPipeline, FailureKind, Fate, InputMessage};
use weir_pipelines::Resource;

pub(crate) fn compile(yaml: &str) -> CompiledPipeline {
    let resource: Resource = serde_yaml::from_str(yaml).expect("test pipeline parses");
    let Resource::Pipeline(p) = resource else {
        panic!("not a pipeline")
    };
    CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn msg(seq: u64, payload: &[u8]) -> InputMessage {
    InputMessage {
        subject: "orders.created.eu".into(),
        headers: vec![("Trace".into(), format!("t-{seq}"))],
        payload: Bytes::copy_from_slice(payload),
        seq,
        stream: "ORDERS".into(),
        timestamp_micros: 1_700_000_000_000_000,
    }
}

const ROUTING: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: order-routing }
spec:
  source: { stream: ORDERS, subjects: ["orders.created.>"] }
  nodes:
    - id: big
      filter: "data.amount > 100 AND data.status = 'pending'"
      next: route
    - id: route
      route:
        - when: "data.currency IN ('USD', 'EUR') AND data.amount > 10000"
          next: [vip, audit]
          stop: true
        - when: "data.region LIKE 'eu-%'"
          next: eu
      default: standard
    - id: vip
      map:
        set: { tier: "'vip'", amount_cents: "CAST(data.amount * 100 AS BIGINT)" }
        remove: [internal_id]
      next: publish-vip
    - id: publish-vip
      publish: { subject: "orders.vip.{data.region}", headers: { X-Priority: high } }
    - id: audit
      publish: { subject: "audit.orders" }
    - id: eu
      publish: { subject: "orders.eu.{data.customer_id}" }
    - id: standard
      publish: { subject: "orders.standard" }
"#;

fn order(amount: f64, region: &str, customer: &str) -> Vec<u8> {
    format!(
        r#"{{"order_id":"ord-1","customer_id":"{customer}","amount":{amount},"currency":"USD","status":"pending","region":"{region}","internal_id":7}}"#
    )
    .into_bytes()
}

#[test]
fn filter_route_map_publish() {
    let p = compile(ROUTING);
    assert_eq!(p.name(), "order-routing");
    let inputs = vec![
        msg(1, &order(50.0, "eu-west", "c1")),    // filtered
        msg(2, &order(150.0, "eu-west", "c2")),   // eu
        msg(3, &order(150.0, "us-east", "c3")),   // standard
        msg(4, &order(20000.0, "eu-west", "c4")), // vip + audit, stop
    ];
    let result = p.process(&inputs);
    assert_eq!(result.fates.len(), 4);
    assert_eq!(result.fates[0], Fate::Filtered);
    let Fate::Outputs(o) = &result.fates[1] else {
        panic!("{:?}", result.fates[1])
    };
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].subject, "orders.eu.c2");
    assert_eq!(&*o[0].node, "eu");
    // Unchanged payload: the very same bytes, zero-copy.
    assert_eq!(o[0].payload.as_ptr(), inputs[1].payload.as_ptr());
    let Fate::Outputs(o) = &result.fates[2] else {
        panic!()
    };
    assert_eq!(o[0].subject, "orders.standard");
    let Fate::Outputs(o) = &result.fates[3] else {
        panic!("{:?}", result.fates[3])
    };
    assert_eq!(o.len(), 2, "{o:?}");
    let vip = o.iter().find(|m| &*m.node == "publish-vip").unwrap();
    assert_eq!(vip.subject, "orders.vip.eu-west");
    assert!(vip.headers.contains(&("X-Priority".into(), "high".into())));
    assert!(vip.headers.contains(&("Trace".into(), "t-4".into())));
    let v: serde_json::Value = serde_json::from_slice(&vip.payload).unwrap();
    assert_eq!(v["tier"], "vip");
    assert_eq!(v["amount_cents"], 2000000);
    assert!(v.get("internal_id").is_none());
    let audit = o.iter().find(|m| &*m.node == "audit").unwrap();
    assert_eq!(audit.payload, inputs[3].payload);
}

#[test]
fn bad_messages_fail_alone() {
    let p = compile(ROUTING);
    let inputs = vec![
        msg(1, &order(150.0, "eu-west", "c1")),
        msg(2, b"{not json"),
        msg(
            3,
            br#"{"amount":150,"status":"pending","region":"eu-west"}"#,
        ), // no customer_id
        msg(4, &order(150.0, "eu-west", "c4")),
        msg(5, &[0xff, 0xfe, b'{']),
        msg(6, b""),
    ];
    let result = p.process(&inputs);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!()
    };
    assert_eq!(o[0].subject, "orders.eu.c1");
    let Fate::Error(e) = &result.fates[1] else {
        panic!()
    };
    assert_eq!((e.node.as_str(), e.kind), ("source", FailureKind::Decode));
    assert!(e.message.contains("not valid JSON"), "{}", e.message);
    let Fate::Error(e) = &result.fates[2] else {
        panic!("{:?}", result.fates[2])
    };
    assert_eq!((e.node.as_str(), e.kind), ("eu", FailureKind::Template));
    assert!(e.message.contains("data.customer_id"), "{}", e.message);
    let Fate::Outputs(o) = &result.fates[3] else {
        panic!()
    };
    assert_eq!(o[0].subject, "orders.eu.c4");
    let Fate::Error(e) = &result.fates[4] else {
        panic!()
    };
    assert!(e.message.contains("UTF-8"), "{}", e.message);
    let Fate::Error(e) = &result.fates[5] else {
        panic!()
    };
    assert!(e.message.contains("empty"), "{}", e.message);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let p = compile(ROUTING);
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!(
        r#"{{"amount":150,"x":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let result = p.process(&[msg(1, deep.as_bytes()), msg(2, deep_obj.as_bytes())]);
    for fate in &result.fates {
        let Fate::Error(e) = fate else {
            panic!("{fate:?}")
        };
        assert_eq!(e.kind, FailureKind::Decode);
        assert!(e.message.contains("nested deeper"), "{}", e.message);
    }
}

#[test]
fn failing_cast_fails_only_its_row() {
    let p = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: casts }
spec:
  source: { stream: S }
  nodes:
    - id: m
      map: { set: { n: "CAST(data.v AS BIGINT) + 1" } }
      next: out
    - id: out
      publish: { subject: "out" }
"#,
    );
    let result = p.process(&[
        msg(1, br#"{"v":"41"}"#),
        msg(2, br#"{"v":"forty"}"#),
        msg(3, br#"{"v":"1"}"#),
    ]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates)
    };
    assert_eq!(&o[0].payload[..], br#"{"v":"41","n":42}"#);
    let Fate::Error(e) = &result.fates[1] else {
        panic!()
    };
    assert_eq!((e.node.as_str(), e.kind), ("m", FailureKind::Expression));
    assert!(e.message.contains("forty"), "{}", e.message);
    let Fate::Outputs(o) = &result.fates[2] else {
        panic!()
    };
    assert_eq!(&o[0].payload[..], br#"{"v":"1","n":2}"#);
}

#[test]
fn compile_reports_every_problem_with_its_node() {
    let resource: Resource = serde_yaml::from_str(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: bad }
spec:
  source: { stream: S }
  nodes:
    - id: f
      filter: "data.a >"
      next: nowhere
    - id: g
      filter: "no_such_function(data.a)"
      next: p
    - id: p
      publish: { subject: "a.{data.x" }
"#,
    )
    .unwrap();
    let Resource::Pipeline(p) = resource else {
        panic!()
    };
    let err = CompiledPipeline::compile(&p).unwrap_err();
    let nodes: Vec<&str> = err.problems.iter().map(|p| p.node.as_str()).collect();
    assert!(
        nodes.contains(&"f") && nodes.contains(&"g") && nodes.contains(&"p"),
        "{err}"
    );
    assert!(
        err.problems.iter().any(|p| p.message.contains("nowhere")),
        "{err}"
    );
    assert!(err.problems.len() >= 4, "{err}");
}

/// `format: raw`: a pipeline that reads `data` (as text) dead-letters a payload that is not
/// UTF-8 with a decode error, never reading it as `""`; one that reads only the subject passes
/// any bytes unchanged.
#[test]
fn raw_payloads_that_are_not_utf8_fail_only_where_data_is_read() {
    let reads = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: raw-text }
spec:
  source: { stream: ORDERS, subjects: ["orders.>"], format: raw }
  nodes:
    - id: keep
      filter: "data LIKE '%abc%'"
      next: out
    - id: out
      publish: { subject: "raw.out" }
"#,
    );
    let binary: &[u8] = b"\xff\xfeabc";
    let result = reads.process(&[msg(1, binary), msg(2, b"xyz"), msg(3, b"abc")]);
    let Fate::Error(e) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(e.kind, FailureKind::Decode);
    assert!(e.message.contains("not UTF-8"), "{}", e.message);
    assert_eq!(result.fates[1], Fate::Filtered);
    assert!(matches!(result.fates[2], Fate::Outputs(_)));

    let passes = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: raw-bytes }
spec:
  source: { stream: ORDERS, subjects: ["orders.>"], format: raw }
  nodes:
    - id: keep
      filter: "subject LIKE 'orders.%'"
      next: out
    - id: out
      publish: { subject: "raw.out" }
"#,
    );
    let result = passes.process(&[msg(1, binary)]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(o[0].payload.as_ref(), binary);
}
