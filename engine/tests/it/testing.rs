//! `tests:` cases: a right expectation passes, a wrong one fails with a readable diff.

use weir_engine::CompiledPipeline;
use weir_engine::testing::run_cases;
use weir_pipelines::Resource;

const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: cases }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: big
      filter: "data.amount > 100"
      next: out
    - id: out
      publish: { subject: "orders.{data.region}", headers: { X-Priority: high } }
tests:
  - name: big order is published
    input: { subject: orders.created, data: { amount: 150, region: eu } }
    expect:
      - subject: orders.eu
        headers: { X-Priority: high }
        data: { amount: 150, region: eu }
  - name: small order is filtered
    input: { data: { amount: 5, region: eu } }
    expect_filtered: true
  - name: missing region fails at out
    input: { data: { amount: 500 } }
    expect_error: { node: out, kind: template }
  - name: wrong subject expected
    input: { data: { amount: 150, region: us } }
    expect:
      - subject: orders.eu
        data: { amount: 150, region: us }
  - name: wrong fate expected
    input: { data: { amount: 1, region: us } }
    expect:
      - subject: orders.us
"#;

#[test]
fn cases_pass_and_fail_with_a_diff() {
    let Resource::Pipeline(p) = serde_yaml::from_str(PIPELINE).unwrap() else {
        panic!()
    };
    let compiled = CompiledPipeline::compile(&p).unwrap();
    let outcomes = run_cases(&p, &compiled);
    assert_eq!(outcomes.len(), 5);
    assert!(outcomes[0].passed(), "{:?}", outcomes[0].failure);
    assert!(outcomes[1].passed(), "{:?}", outcomes[1].failure);
    assert!(outcomes[2].passed(), "{:?}", outcomes[2].failure);
    let diff = outcomes[3].failure.as_deref().expect("wrong subject fails");
    assert!(
        diff.contains("--- expected") && diff.contains("+++ actual"),
        "{diff}"
    );
    assert!(diff.contains("-    \"subject\": \"orders.eu\""), "{diff}");
    assert!(diff.contains("+    \"subject\": \"orders.us\""), "{diff}");
    let diff = outcomes[4].failure.as_deref().expect("wrong fate fails");
    assert!(diff.contains("+\"filtered\""), "{diff}");
}

const ROUTED: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: routed }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: route
      route:
        - when: "data.amount > 100"
          next: [vip, audit]
        - when: "data.region = 'eu'"
          next: eu
      default: rest
    - id: vip
      publish: { subject: "vip" }
    - id: audit
      publish: { subject: "audit.{data.region}" }
    - id: eu
      publish: { subject: "eu" }
    - id: rest
      drop: { reason: "not routed" }
"#;

fn input(payload: &str) -> weir_engine::InputMessage {
    weir_engine::InputMessage {
        subject: "orders.created".into(),
        payload: payload.as_bytes().to_vec().into(),
        stream: "ORDERS".into(),
        ..Default::default()
    }
}

/// Per input, the nodes it reached (fan-out included); per node, rows in, rows per port,
/// outputs and errors: what the builder's test panel and live counters show.
#[test]
fn traced_paths_and_node_counts() {
    let Resource::Pipeline(p) = serde_yaml::from_str(ROUTED).unwrap() else {
        panic!()
    };
    let compiled = CompiledPipeline::compile(&p).unwrap();
    let inputs = [
        input(r#"{"amount": 500, "region": "eu"}"#),
        input(r#"{"amount": 5, "region": "eu"}"#),
        input(r#"{"amount": 5, "region": "us"}"#),
        input(r#"{"amount": 500}"#),
        input("not json"),
    ];
    let (result, paths) = compiled.process_traced(&inputs);
    assert_eq!(
        paths,
        vec![
            vec!["route", "vip", "audit", "eu"],
            vec!["route", "eu"],
            vec!["route", "rest"],
            vec!["route", "vip", "audit"],
            vec![],
        ]
    );
    let counts: Vec<(&str, u64, Vec<u64>, u64, u64)> = result
        .nodes
        .iter()
        .map(|n| (&*n.node, n.rows_in, n.ports.clone(), n.outputs, n.errors))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("source", 5, vec![4], 0, 1),
            ("route", 4, vec![2, 2, 1], 0, 0),
            ("vip", 2, vec![0], 2, 0),
            // The fourth input has no region: its subject template fails here.
            ("audit", 2, vec![0], 1, 1),
            ("eu", 2, vec![0], 2, 0),
            ("rest", 1, vec![0], 0, 0),
        ]
    );
}
