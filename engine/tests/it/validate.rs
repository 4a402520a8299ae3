//! The `validate` node: valid orders pass; invalid ones are dead-lettered with every failing
//! JSON pointer and rule, dropped, or tagged with `Weir-Invalid`, and never fail their batch.

use weir_engine::{FailureKind, Fate};

use crate::batch::{compile, msg};

fn pipeline(on_invalid: &str) -> String {
    format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: checked-orders }}
spec:
  source: {{ stream: ORDERS, subjects: ["orders.created.>"] }}
  nodes:
    - id: check
      validate:
        on_invalid: {on_invalid}
        json_schema:
          type: object
          required: [id, amount, customer]
          properties:
            id: {{ type: string }}
            amount: {{ type: number, minimum: 0 }}
            customer:
              type: object
              required: [email]
              properties: {{ email: {{ type: string, pattern: "@" }} }}
      next: big
    - id: big
      filter: "data.amount > 10"
      next: out
    - id: out
      publish: {{ subject: "orders.checked" }}
"#
    )
}

const VALID: &[u8] = br#"{"id":"o-1","amount":25.5,"customer":{"email":"a@b.c"}}"#;
const SMALL: &[u8] = br#"{"id":"o-2","amount":5,"customer":{"email":"a@b.c"}}"#;
const BAD_AMOUNT: &[u8] = br#"{"id":"o-3","amount":-1,"customer":{"email":"nope"}}"#;
const MISSING: &[u8] = br#"{"id":"o-4","amount":40}"#;
const NOT_JSON: &[u8] = br#"{"id":"#;

fn batch() -> Vec<weir_engine::InputMessage> {
    [VALID, SMALL, BAD_AMOUNT, MISSING]
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect()
}

#[test]
fn invalid_messages_go_to_the_dlq_with_pointer_and_rule() {
    let result = compile(&pipeline("dlq")).process(&batch());
    assert!(matches!(&result.fates[0], Fate::Outputs(o) if o.len() == 1));
    assert_eq!(result.fates[1], Fate::Filtered);
    let Fate::Error(e) = &result.fates[2] else {
        panic!("{:?}", result.fates[2])
    };
    assert_eq!(
        (e.node.as_str(), e.kind),
        ("check", FailureKind::Validation)
    );
    assert!(e.message.contains("/amount: minimum:"), "{}", e.message);
    assert!(
        e.message.contains("/customer/email: pattern:"),
        "{}",
        e.message
    );
    let Fate::Error(e) = &result.fates[3] else {
        panic!("{:?}", result.fates[3])
    };
    assert!(
        e.message.contains("/: required:") && e.message.contains("customer"),
        "{}",
        e.message
    );
}

#[test]
fn drop_and_tag() {
    let dropped = compile(&pipeline("drop")).process(&batch());
    assert_eq!(dropped.fates[2], Fate::Filtered);
    assert_eq!(dropped.fates[3], Fate::Filtered);
    assert!(matches!(&dropped.fates[0], Fate::Outputs(_)));

    let tagged = compile(&pipeline("tag")).process(&batch());
    let Fate::Outputs(valid) = &tagged.fates[0] else {
        panic!()
    };
    assert!(valid[0].headers.iter().all(|(k, _)| k != "Weir-Invalid"));
    let Fate::Outputs(out) = &tagged.fates[3] else {
        panic!("{:?}", tagged.fates[3])
    };
    let tag = out[0]
        .headers
        .iter()
        .find(|(k, _)| k == "Weir-Invalid")
        .map(|(_, v)| v.as_str())
        .unwrap();
    assert!(tag.contains("/: required:"), "{tag}");
    // Tagged messages still pass the nodes after `validate` (-1 is filtered by `big`).
    assert_eq!(tagged.fates[2], Fate::Filtered);
}

#[test]
fn a_payload_that_is_not_json_fails_alone() {
    let result = compile(&pipeline("dlq")).process(&[msg(1, NOT_JSON), msg(2, VALID)]);
    assert!(matches!(&result.fates[0], Fate::Error(_)));
    assert!(matches!(&result.fates[1], Fate::Outputs(_)));
}

#[test]
fn an_invalid_inline_schema_is_refused_at_compile_time() {
    let yaml = pipeline("dlq").replace("type: number, minimum: 0", "type: numbr");
    let resource: weir_pipelines::Resource = serde_yaml::from_str(&yaml).unwrap();
    let weir_pipelines::Resource::Pipeline(p) = resource else {
        panic!()
    };
    let Err(err) = weir_engine::CompiledPipeline::compile(&p) else {
        panic!("an invalid JSON Schema compiled")
    };
    let err = err.to_string();
    assert!(
        err.contains("node `check`") && err.contains("invalid JSON Schema"),
        "{err}"
    );
}

#[test]
fn an_unresolved_registry_schema_dead_letters_with_the_reason() {
    let yaml = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: checked }
spec:
  source: { stream: ORDERS, subjects: ["orders.>"] }
  nodes:
    - id: check
      validate: { schema: { subject: orders-json } }
      next: out
    - id: out
      publish: { subject: "x" }
"#;
    let result = compile(yaml).process(&[msg(1, VALID)]);
    let Fate::Error(e) = &result.fates[0] else {
        panic!()
    };
    assert!(
        e.message.contains("orders-json") && e.message.contains("not resolved"),
        "{}",
        e.message
    );
}

/// A schema whose `customer` is another registry subject's (a `$ref` to a reference, as the
/// control plane embeds it at deploy): the reference's rules apply, with their pointers.
#[test]
fn refs_to_embedded_references_are_checked() {
    let yaml = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: checked-orders }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: check
      validate:
        json_schema:
          type: object
          required: [customer]
          properties: { customer: { $ref: customer.json } }
        references:
          - name: customer.json
            schema: '{"type":"object","required":["email"],"properties":{"email":{"type":"string","pattern":"@"}}}'
      next: out
    - id: out
      publish: { subject: "orders.checked" }
"#;
    let result = compile(yaml).process(&batch());
    assert!(matches!(&result.fates[0], Fate::Outputs(o) if o.len() == 1));
    let Fate::Error(e) = &result.fates[2] else {
        panic!("{:?}", result.fates[2])
    };
    assert_eq!(e.kind, FailureKind::Validation);
    assert!(e.message.contains("/customer/email"), "{}", e.message);
}

/// Schemas within the fast check's subset (`json_check`): one on the payloads as decoded,
/// another on the same rows, and one after a `map` that edits them. Each node gives its own
/// verdicts, and every invalid message is caught by the node whose rule it breaks.
#[test]
fn fast_checked_schemas_give_each_node_its_own_verdicts() {
    let yaml = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: fast-checked }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: first
      validate:
        json_schema:
          type: object
          required: [id, amount, currency, items]
          properties:
            id: { type: string }
            amount: { type: number, minimum: 0 }
            currency: { enum: [USD, EUR] }
            items: { type: array, items: { type: object, required: [sku] } }
      next: second
    - id: second
      validate:
        json_schema: { type: object, required: [channel] }
      next: edit
    - id: edit
      map: { set: { channel: "CAST(data.amount AS VARCHAR)" } }
      next: third
    - id: third
      validate:
        json_schema:
          type: object
          properties: { channel: { type: string, maxLength: 3 } }
      next: out
    - id: out
      publish: { subject: "orders.checked" }
"#;
    let payloads: [&[u8]; 8] = [
        br#"{"id":"o-1","amount":5,"currency":"EUR","items":[{"sku":"a"}],"channel":"web"}"#,
        br#"{"id":"o-2","amount":0.5,"currency":"USD","items":[],"channel":"web"}"#,
        br#"{"id":"o-3","amount":-1,"currency":"EUR","items":[{"sku":"a"}],"channel":"web"}"#,
        br#"{"id":"o-4","amount":5,"currency":"GBP","items":[{"sku":"a"}],"channel":"web"}"#,
        br#"{"id":"o-5","amount":5,"currency":"EUR","items":[{"qty":1}],"channel":"web"}"#,
        br#"{"id":5,"amount":5,"currency":"EUR","items":[{"sku":"a"}],"channel":"web"}"#,
        br#"{"id":"o-7","amount":5,"currency":"EUR","items":[{"sku":"a"}]}"#,
        br#"{"id":"o-8","amount":12345,"currency":"EUR","items":[{"sku":"a"}],"channel":"x"}"#,
    ];
    let batch: Vec<_> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| msg(i as u64 + 1, p))
        .collect();
    let result = compile(yaml).process(&batch);
    let failed_at = |i: usize| match &result.fates[i] {
        Fate::Error(e) => {
            assert_eq!(e.kind, FailureKind::Validation, "{}", e.message);
            Some((e.node.clone(), e.message.clone()))
        }
        Fate::Outputs(o) if o.len() == 1 => None,
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(failed_at(0), None);
    assert_eq!(failed_at(1), None);
    for (i, pointer) in [
        (2, "/amount"),
        (3, "/currency"),
        (4, "/items/0"),
        (5, "/id"),
    ] {
        let (node, message) = failed_at(i).unwrap_or_else(|| panic!("message {i} passed"));
        assert_eq!(node, "first", "message {i}: {message}");
        assert!(message.contains(pointer), "message {i}: {message}");
    }
    let (node, message) = failed_at(6).expect("no channel");
    assert_eq!(node, "second", "{message}");
    // "12345" is written by the map: longer than 3 characters.
    let (node, message) = failed_at(7).expect("a long channel");
    assert_eq!(node, "third", "{message}");
}
