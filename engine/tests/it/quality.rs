//! The `quality` node: exact per-rule pass and fail counts on a known input set; a failing
//! `reject` rule dead-letters the message naming the rule, a failing `warn` rule adds the
//! `Weir-Quality-Warn` header; bad rules are compile problems at their pointers.

use std::collections::BTreeMap;

use weir_engine::{FailureKind, Fate};

use crate::batch::{compile, msg};

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: checked-orders }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: dq
      quality:
        rules:
          - { name: has-id, field: data.id, required: true }
          - { name: amount-range, field: data.amount, range: { min: 0, max: 1000 } }
          - { name: email, field: data.email, pattern: "^[^@]+@[^@]+$", severity: warn }
          - { name: currency, field: data.currency, enum: [EUR, USD] }
          - { name: note-len, field: data.note, max_length: 5, severity: warn }
          - { name: big-needs-gold, sql: "data.amount < 500 OR data.tier = 'GOLD'" }
      next: out
    - id: out
      publish: { subject: "orders.checked" }
"#;

const INPUTS: [&str; 7] = [
    r#"{"id":"o-1","amount":50,"currency":"EUR","email":"a@b.c","note":"ok"}"#,
    r#"{"id":"o-2","amount":-5,"currency":"EUR","email":"a@b.c"}"#,
    r#"{"id":"o-3","amount":20,"currency":"GBP","email":"nope"}"#,
    r#"{"amount":20,"currency":"USD","email":"x@y.z","note":"far too long"}"#,
    r#"{"id":"o-5","amount":700,"currency":"USD","email":"bad","tier":"SILVER"}"#,
    r#"{"id":"o-6","amount":700,"currency":"USD","email":"x@y","tier":"GOLD","note":"too long"}"#,
    r#"{"id":"o-7","amount":10,"currency":"EUR","email":"nope","note":"hi"}"#,
];

fn warn_header(fate: &Fate) -> Option<String> {
    let Fate::Outputs(o) = fate else {
        panic!("expected an output, got {fate:?}")
    };
    o[0].headers
        .iter()
        .find(|(k, _)| k == "Weir-Quality-Warn")
        .map(|(_, v)| v.clone())
}

fn rejected(fate: &Fate) -> String {
    let Fate::Error(e) = fate else {
        panic!("expected a rejection, got {fate:?}")
    };
    assert_eq!((e.kind, e.node.as_str()), (FailureKind::Validation, "dq"));
    e.message.clone()
}

#[test]
fn exact_counts_rejections_and_warnings_on_a_known_input_set() {
    let p = compile(PIPELINE);
    let batch: Vec<_> = INPUTS
        .iter()
        .enumerate()
        .map(|(i, t)| msg(i as u64 + 1, t.as_bytes()))
        .collect();
    let result = p.process(&batch);
    assert_eq!(warn_header(&result.fates[0]), None);
    assert_eq!(
        rejected(&result.fates[1]),
        "quality rules failed: `amount-range` (range)"
    );
    assert_eq!(
        rejected(&result.fates[2]),
        "quality rules failed: `currency` (enum)"
    );
    assert_eq!(
        rejected(&result.fates[3]),
        "quality rules failed: `has-id` (required)"
    );
    assert_eq!(
        rejected(&result.fates[4]),
        "quality rules failed: `big-needs-gold` (sql)"
    );
    assert_eq!(warn_header(&result.fates[5]).as_deref(), Some("note-len"));
    assert_eq!(warn_header(&result.fates[6]).as_deref(), Some("email"));

    let counts: BTreeMap<String, i64> = p.node_counters().into_iter().next().unwrap().1;
    let want: BTreeMap<String, i64> = [
        ("has-id", 6, 1),
        ("amount-range", 6, 1),
        ("email", 4, 3),
        ("currency", 6, 1),
        ("note-len", 5, 2),
        ("big-needs-gold", 6, 1),
    ]
    .into_iter()
    .flat_map(|(r, pass, fail)| [(format!("{r}.pass"), pass), (format!("{r}.fail"), fail)])
    .collect();
    assert_eq!(counts, want);
    // The same counts in the batch's per-node counts (what workers report to the status).
    let node = result.nodes.iter().find(|n| &*n.node == "dq").unwrap();
    let batch_counts: BTreeMap<String, i64> = node
        .counters
        .iter()
        .map(|(k, v)| (k.clone(), *v as i64))
        .collect();
    assert_eq!(batch_counts, want);
    // The node's own counts: 7 in, 3 passed on, 4 failed.
    let node = result.nodes.iter().find(|n| &*n.node == "dq").unwrap();
    assert_eq!((node.rows_in, node.ports[0], node.errors), (7, 3, 4));
}

#[test]
fn bad_rules_are_problems_at_their_pointers() {
    let text = PIPELINE
        .replace(
            "{ name: has-id, field: data.id, required: true }",
            "{ name: has-id, field: data.id, required: true, max_length: 3 }",
        )
        .replace("\"^[^@]+@[^@]+$\"", "\"([a-z\"")
        .replace("max: 1000", "max: -1")
        .replace("name: note-len, field: data.note,", "name: note-len,")
        .replace("data.tier = 'GOLD'", "no_such_fn(data.tier)");
    let weir_pipelines::Resource::Pipeline(p) = serde_yaml::from_str(&text).unwrap() else {
        panic!("not a pipeline")
    };
    let err = weir_engine::CompiledPipeline::compile(&p).unwrap_err();
    let paths: Vec<&str> = err.problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/spec/nodes/0/quality/rules/0",
            "/spec/nodes/0/quality/rules/1/range",
            "/spec/nodes/0/quality/rules/2/pattern",
            "/spec/nodes/0/quality/rules/4",
            "/spec/nodes/0/quality/rules/5/sql",
        ],
        "{err}"
    );
    assert!(
        err.problems[0].message.contains("required, max_length"),
        "{err}"
    );
    assert!(err.problems[1].message.contains("above `max`"), "{err}");
    assert!(
        err.problems[2]
            .message
            .contains("invalid regular expression"),
        "{err}"
    );
    assert!(err.problems[3].message.contains("needs `field`"), "{err}");
    assert!(err.problems[4].message.contains("no_such_fn"), "{err}");
}
