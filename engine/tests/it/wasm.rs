//! `wasm` nodes on real guests built from source (`wasm/build.sh`): every way a guest can
//! fail sends only the failing message to the DLQ with the trap text while the rest of the
//! batch goes on; the example modules' outputs are exact; modules are per tenant.

use crate::batch::msg;
use bytes::Bytes;
use std::sync::OnceLock;
use weir_engine::{CompiledPipeline, FailureKind, Fate, InputMessage, OutputMessage};
use weir_pipelines::Resource;

/// A guest module from `wasm/out/`, built once per test process.
pub(crate) fn guest(name: &str) -> Bytes {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm");
    BUILT.get_or_init(|| {
        let status = std::process::Command::new(root.join("build.sh"))
            .status()
            .expect("wasm/build.sh runs");
        assert!(status.success(), "wasm/build.sh failed");
    });
    let path = root.join(format!("out/{name}.wasm"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn compile_for(tenant: &str, node: &str) -> Result<CompiledPipeline, String> {
    let yaml = format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: wasm-test, tenant: {tenant} }}
spec:
  source: {{ stream: ORDERS, subjects: ["orders.>"] }}
  nodes:
    - id: udf
      wasm: {node}
      next: out
    - id: out
      publish: {{ subject: "out.{{replace(subject, '.', '_')}}" }}
"#
    );
    let Resource::Pipeline(p) = serde_yaml::from_str(&yaml).expect("test pipeline parses") else {
        panic!("not a pipeline")
    };
    CompiledPipeline::compile(&p).map_err(|e| e.to_string())
}

fn traps(tenant: &str) {
    weir_engine::wasm::register_module(tenant, "traps", 1, guest("weir-test-traps"));
}

fn batch(poison_at: usize, n: usize) -> Vec<InputMessage> {
    (0..n)
        .map(|i| {
            let body = if i == poison_at {
                r#"{"id":0,"note":"poison"}"#.to_string()
            } else {
                format!(r#"{{"id":{i}}}"#)
            };
            msg(i as u64, body.as_bytes())
        })
        .collect()
}

fn payloads(outputs: &[OutputMessage]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.payload).into_owned())
        .collect()
}

/// Runs a batch with a poisoned third message through `function` and checks: only it failed,
/// with kind `wasm` and a text containing `expect`; the others went out unchanged; the next
/// clean batch is served in full.
fn only_the_poisoned_message_fails(function: &str, limits: &str, expect: &str) {
    traps("t-traps");
    let p = compile_for(
        "t-traps",
        &format!("{{ module: traps, function: {function}{limits} }}"),
    )
    .unwrap();
    let input = batch(2, 6);
    let result = p.process(&input);
    for (i, fate) in result.fates.iter().enumerate() {
        if i == 2 {
            let Fate::Error(e) = fate else {
                panic!("{function}: message 2 should fail, got {fate:?}")
            };
            assert_eq!(e.kind, FailureKind::Wasm, "{function}: {e:?}");
            assert_eq!(e.node, "udf");
            assert!(
                e.message.contains(expect),
                "{function}: `{}` lacks `{expect}`",
                e.message
            );
        } else {
            let Fate::Outputs(o) = fate else {
                panic!("{function}: message {i} should pass, got {fate:?}")
            };
            assert_eq!(payloads(o), vec![format!(r#"{{"id":{i}}}"#)]);
            assert_eq!(o[0].subject, "out.orders_created_eu");
            assert_eq!(
                o[0].payload, input[i].payload,
                "unchanged bytes pass as they were"
            );
        }
    }
    let clean = batch(usize::MAX, 4);
    let again = p.process(&clean);
    assert!(
        again.fates.iter().all(|f| matches!(f, Fate::Outputs(_))),
        "{function}: the module serves the next batch: {:?}",
        again.fates
    );
}

#[test]
fn unreachable_fails_only_the_poisoned_message() {
    only_the_poisoned_message_fails("unreachable", "", "unreachable");
}

#[test]
fn out_of_bounds_access_fails_only_the_poisoned_message() {
    only_the_poisoned_message_fails("oob", "", "out of bounds memory access");
}

#[test]
fn an_infinite_loop_ends_at_the_deadline() {
    let started = std::time::Instant::now();
    only_the_poisoned_message_fails("spin", ", timeout: 50ms", "past its deadline of 50ms");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn memory_growth_past_the_cap_fails_only_the_poisoned_message() {
    only_the_poisoned_message_fails(
        "grow",
        ", max_memory: 4MiB",
        "memory past the cap of 4194304 bytes",
    );
}

#[test]
fn stack_overflow_fails_only_the_poisoned_message() {
    only_the_poisoned_message_fails("recurse", "", "call stack exhausted");
}

#[test]
fn malformed_results_fail_only_the_poisoned_message() {
    only_the_poisoned_message_fails("malformed", "", "malformed result");
}

#[test]
fn a_guest_error_goes_to_the_dlq_with_its_text() {
    only_the_poisoned_message_fails("fail", "", "refused: the payload is poisoned");
}

#[test]
fn fuel_ends_a_runaway_batch() {
    only_the_poisoned_message_fails("spin", ", fuel: 1000000", "out of fuel");
}

#[test]
fn outputs_carry_new_subjects_and_headers() {
    traps("t-fan");
    let p = compile_for("t-fan", "{ module: traps, function: fan_out }").unwrap();
    let result = p.process(&[msg(1, br#"{"id":1}"#)]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(o.len(), 2);
    assert_eq!(o[0].subject, "out.orders_created_eu");
    assert_eq!(o[1].subject, "out.copies_orders_created_eu");
    assert_eq!(o[1].payload.as_ref(), br#"{"id":1}"#);
    assert!(o[1].headers.contains(&("X-Copy".into(), "1".into())));
    assert!(o[1].headers.contains(&("Trace".into(), "t-1".into())));
    assert!(!o[0].headers.iter().any(|(k, _)| k == "X-Copy"));
}

#[test]
fn pii_redact_masks_emails_and_card_numbers_exactly() {
    weir_engine::wasm::register_module("t-pii", "pii-redact", 1, guest("pii-redact"));
    let p = compile_for("t-pii", "{ module: pii-redact, function: redact }").unwrap();
    let cases: [(&str, &str); 5] = [
        (
            r#"{"email":"jane.doe@example.com","note":"card 4111 1111 1111 1111 ok"}"#,
            r#"{"email":"********@example.com","note":"card **** **** **** 1111 ok"}"#,
        ),
        (
            r#"{"customer":{"contact":"mail bob@shop.co.uk or 5500-0000-0000-0004"},"tags":["x@y.io"]}"#,
            r#"{"customer":{"contact":"mail ***@shop.co.uk or ****-****-****-0004"},"tags":["*@y.io"]}"#,
        ),
        // Not a card (fails Luhn), an order id, a key that looks like an email: unchanged.
        (
            r#"{"order":"4111111111111112","id":1234567890123,"a@b.com":1}"#,
            r#"{"order":"4111111111111112","id":1234567890123,"a@b.com":1}"#,
        ),
        // Digits outside strings are numbers, not text: left alone.
        (r#"{"n":4111111111111111}"#, r#"{"n":4111111111111111}"#),
        ("plain text to jo@ex.org", "plain text to **@ex.org"),
    ];
    let input: Vec<InputMessage> = cases
        .iter()
        .enumerate()
        .map(|(i, (raw, _))| msg(i as u64, raw.as_bytes()))
        .collect();
    // The last case is not JSON: run it through a raw-format pipeline.
    let result = p.process(&input[..4]);
    for (i, fate) in result.fates.iter().enumerate() {
        let Fate::Outputs(o) = fate else {
            panic!("case {i}: {fate:?}")
        };
        assert_eq!(payloads(o), vec![cases[i].1.to_string()], "case {i}");
    }
    let Fate::Outputs(o) = &result.fates[2] else {
        unreachable!()
    };
    assert_eq!(
        o[0].payload, input[2].payload,
        "nothing masked: the original bytes"
    );
    let raw = raw_pipeline("t-pii", "{ module: pii-redact, function: redact }");
    let result = raw.process(&input[4..]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(payloads(o), vec![cases[4].1.to_string()]);
    let counters = p.node_counters();
    assert_eq!(counters.len(), 1);
    assert_eq!(counters[0].1.get("masked"), Some(&5), "{counters:?}");
}

fn raw_pipeline(tenant: &str, node: &str) -> CompiledPipeline {
    let yaml = format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: wasm-raw, tenant: {tenant} }}
spec:
  source: {{ stream: ORDERS, subjects: ["orders.>"], format: raw }}
  nodes:
    - id: udf
      wasm: {node}
      next: out
    - id: out
      publish: {{ subject: "out" }}
"#
    );
    let Resource::Pipeline(p) = serde_yaml::from_str(&yaml).unwrap() else {
        panic!()
    };
    CompiledPipeline::compile(&p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn enrich_geo_adds_the_region_exactly() {
    weir_engine::wasm::register_module("t-geo", "enrich-geo", 3, guest("enrich-geo"));
    let p = compile_for(
        "t-geo",
        r#"{ module: enrich-geo, version: 3, function: enrich, config: { field: cc } }"#,
    )
    .unwrap();
    let input = [
        msg(1, br#"{"id":1,"cc":"DE"}"#),
        msg(2, br#"{"id":2,"cc":"jp","region":"old"}"#),
        msg(3, br#"{"id":3}"#),
        msg(4, br#"[1,2]"#),
    ];
    let result = p.process(&input);
    let out = |i: usize| match &result.fates[i] {
        Fate::Outputs(o) => (
            String::from_utf8_lossy(&o[0].payload).into_owned(),
            o[0].headers
                .iter()
                .find(|(k, _)| k == "Weir-Region")
                .map(|(_, v)| v.clone()),
        ),
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(
        out(0),
        (
            r#"{"id":1,"cc":"DE","region":"eu"}"#.into(),
            Some("eu".into())
        )
    );
    assert_eq!(
        out(1),
        (
            r#"{"id":2,"cc":"jp","region":"apac"}"#.into(),
            Some("apac".into())
        )
    );
    assert_eq!(
        out(2),
        (
            r#"{"id":3,"region":"unknown"}"#.into(),
            Some("unknown".into())
        )
    );
    let Fate::Error(e) = &result.fates[3] else {
        panic!("{:?}", result.fates[3])
    };
    assert_eq!(e.kind, FailureKind::Wasm);
    assert!(e.message.contains("not a JSON object"), "{}", e.message);
}

#[test]
fn a_tenant_cannot_use_another_tenants_module() {
    traps("t-owner");
    assert!(compile_for("t-owner", "{ module: traps, function: noop }").is_ok());
    let err = compile_for("t-other", "{ module: traps, function: noop }").unwrap_err();
    assert!(
        err.contains("no module `traps` of tenant `t-other`"),
        "{err}"
    );
    let err = compile_for("t-owner", "{ module: traps, version: 9, function: noop }").unwrap_err();
    assert!(err.contains("no module `traps` version 9"), "{err}");
    let err = compile_for("t-owner", "{ module: traps, function: missing }").unwrap_err();
    assert!(err.contains("function `missing`"), "{err}");
}

#[test]
fn the_documented_pii_redaction_example_masks_an_order() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples/pii-redaction.yaml");
    let resources = weir_pipelines::load_file(&path).unwrap_or_else(|d| panic!("{d}"));
    let Some(Resource::Pipeline(p)) = resources
        .iter()
        .find(|r| matches!(r, Resource::Pipeline(_)))
    else {
        panic!("no pipeline in {}", path.display())
    };
    let tenant = p.metadata.tenant.clone().unwrap_or_default();
    weir_engine::wasm::register_module(&tenant, "pii-redact", 1, guest("pii-redact"));
    let p = CompiledPipeline::compile(p).unwrap_or_else(|e| panic!("{e}"));
    let order = br#"{"order_id":"ord-1","email":"ann@shop.example","card":"4111-1111-1111-1111","amount":12.5}"#;
    let result = p.process(&[msg(1, order)]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(o.len(), 1);
    assert_eq!(o[0].subject, "redacted.orders");
    assert_eq!(
        String::from_utf8_lossy(&o[0].payload),
        r#"{"order_id":"ord-1","email":"***@shop.example","card":"****-****-****-1111","amount":12.5}"#
    );
    assert!(o[0].headers.contains(&("X-Redacted".into(), "true".into())));
}
