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
