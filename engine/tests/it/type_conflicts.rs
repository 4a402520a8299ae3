//! A value whose kind differs from its neighbours' (`"21.5"` among numbers) fails only its own
//! message, with or without declared `source.fields`; every well-typed message passes.

use crate::batch::{compile, msg};
use proptest::prelude::*;
use weir_engine::{CompiledPipeline, FailureKind, Fate};

/// The new user's IoT pipeline: filter, Fahrenheit map, alerts above 40 °C, all readings out.
fn iot(fields: &str) -> CompiledPipeline {
    compile(&format!(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: iot }}
spec:
  source: {{ stream: READINGS, subjects: ["readings.raw.>"]{fields} }}
  nodes:
    - id: valid
      filter: "data.temp_c IS NOT NULL"
      next: fahrenheit
    - id: fahrenheit
      map: {{ set: {{ temp_f: "data.temp_c * 1.8 + 32" }} }}
      next: hot
    - id: hot
      route:
        - when: "data.temp_c > 40"
          next: alert
      default: clean
    - id: alert
      publish: {{ subject: "alerts.{{data.site}}" }}
    - id: clean
      publish: {{ subject: "readings.clean.{{data.site}}" }}
"#
    ))
}

fn reading(i: usize, temp: &str) -> Vec<u8> {
    format!(r#"{{"site":"plant-{}","temp_c":{temp}}}"#, i % 3).into_bytes()
}

/// One string among 500 numbers, all in one batch (a backlog after a pause): 499 outputs and
/// one error, for the string only.
fn one_string_among_numbers(p: &CompiledPipeline) {
    let inputs: Vec<_> = (0..500)
        .map(|i| {
            let temp = if i == 137 {
                r#""21.5""#.to_string()
            } else {
                format!("{}.5", 10 + i % 40)
            };
            msg(i as u64 + 1, &reading(i, &temp))
        })
        .collect();
    let result = p.process(&inputs);
    let mut outputs = 0;
    for (i, fate) in result.fates.iter().enumerate() {
        match fate {
            Fate::Outputs(o) => {
                assert_ne!(i, 137, "the string reading passed: {o:?}");
                assert_eq!(o.len(), 1, "{o:?}");
                let v: serde_json::Value = serde_json::from_slice(&o[0].payload).unwrap();
                let c = v["temp_c"].as_f64().unwrap();
                assert!((v["temp_f"].as_f64().unwrap() - (c * 1.8 + 32.0)).abs() < 1e-9);
                outputs += 1;
            }
            Fate::Error(e) => {
                assert_eq!(i, 137, "a well-typed reading failed: {e:?}");
                assert!(
                    matches!(e.kind, FailureKind::Expression | FailureKind::Decode),
                    "{e:?}"
                );
            }
            Fate::Filtered => panic!("reading {i} filtered"),
        }
    }
    assert_eq!(outputs, 499);
}

#[test]
fn one_string_among_numbers_fails_alone_without_fields() {
    one_string_among_numbers(&iot(""));
}

#[test]
fn one_string_among_numbers_fails_alone_with_fields() {
    one_string_among_numbers(&iot(", fields: { temp_c: float64 }"));
}

#[test]
fn strings_are_fine_where_strings_are_expected() {
    // A field that is a number in one message and a string in another: each message is
    // evaluated with its own kind, so a string comparison passes the string messages and
    // an arithmetic one passes the numbers.
    let p = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: mixed }
spec:
  source: { stream: S }
  nodes:
    - id: m
      map: { set: { shown: "CONCAT('v=', CAST(data.v AS VARCHAR))" } }
      next: out
    - id: out
      publish: { subject: "out" }
"#,
    );
    let result = p.process(&[
        msg(1, br#"{"v":1}"#),
        msg(2, br#"{"v":"one"}"#),
        msg(3, br#"{"v":true}"#),
        msg(4, br#"{"v":{"a":1}}"#),
        msg(5, br#"{}"#),
    ]);
    let shown: Vec<serde_json::Value> = result
        .fates
        .iter()
        .map(|f| match f {
            Fate::Outputs(o) => {
                serde_json::from_slice::<serde_json::Value>(&o[0].payload).unwrap()["shown"].clone()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(shown[0], "v=1");
    assert_eq!(shown[1], "v=one");
    assert_eq!(shown[2], "v=true");
    assert_eq!(shown[3], r#"v={"a":1}"#);
}

/// One value of a generated message: its JSON text and whether it is a number (or null).
fn value() -> impl Strategy<Value = (String, bool)> {
    prop_oneof![
        (-1000i64..1000).prop_map(|n| (n.to_string(), true)),
        (-1000.0f64..1000.0).prop_map(|f| (format!("{f:.3}"), true)),
        Just(("null".to_string(), true)),
        "[a-z]{0,6}".prop_map(|s| (format!("\"{s}\""), false)),
        any::<bool>().prop_map(|b| (b.to_string(), false)),
        Just((r#"{"x":1}"#.to_string(), false)),
    ]
}

/// The sum `s` of an output, as a number (an integer sum alone may be a float in a batch that
/// also holds fractions: both are numbers).
fn sum_of(fate: &Fate) -> Option<(String, Option<f64>)> {
    match fate {
        Fate::Outputs(o) => {
            let v: serde_json::Value = serde_json::from_slice(&o[0].payload).unwrap();
            Some((o[0].subject.clone(), v["s"].as_f64()))
        }
        _ => None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Messages with a random kind per field: every message whose `a` and `b` are numbers (or
    /// null) gets its output with the right sum, whatever its batch holds, and every message
    /// has the same fate in the batch as on its own.
    #[test]
    fn every_well_typed_message_passes(
        batch in prop::collection::vec((value(), value(), "[a-z]{1,6}"), 1..40)
    ) {
        let p = compile(
            r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: sums }
spec:
  source: { stream: S }
  nodes:
    - id: keep
      filter: "data.a IS NULL OR data.a <> 999999"
      next: sum
    - id: sum
      map: { set: { s: "data.a + data.b" } }
      next: out
    - id: out
      publish: { subject: "out.{data.c}" }
"#,
        );
        let inputs: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(i, ((a, _), (b, _), c))| {
                msg(i as u64, format!(r#"{{"a":{a},"b":{b},"c":"{c}"}}"#).as_bytes())
            })
            .collect();
        let together = p.process(&inputs);
        for (i, ((_, a_num), (_, b_num), c)) in batch.iter().enumerate() {
            let alone = p.process(std::slice::from_ref(&inputs[i])).fates.remove(0);
            let fate = &together.fates[i];
            let shown = String::from_utf8_lossy(&inputs[i].payload).to_string();
            prop_assert_eq!(
                std::mem::discriminant(fate),
                std::mem::discriminant(&alone),
                "message {}: in the batch {:?}, alone {:?}", shown, fate, alone
            );
            if *a_num && *b_num {
                let Some((subject, s)) = sum_of(fate) else {
                    return Err(TestCaseError::fail(format!(
                        "well-typed message {shown} failed: {fate:?}"
                    )));
                };
                prop_assert_eq!(subject, format!("out.{c}"));
                prop_assert_eq!(s, sum_of(&alone).unwrap().1, "message {}", shown);
            }
        }
    }
}

#[test]
fn a_subject_placeholder_with_dots_or_wildcards_fails_its_message() {
    let p = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: sites }
spec:
  source: { stream: S }
  nodes:
    - id: out
      publish: { subject: "alerts.{data.site}", headers: { X-Site: "{data.site}" } }
"#,
    );
    let result = p.process(&[
        msg(1, br#"{"site":"a"}"#),
        msg(2, br#"{"site":"a.b"}"#),
        msg(3, br#"{"site":"x y"}"#),
        msg(4, br#"{"site":"*"}"#),
    ]);
    let Fate::Outputs(o) = &result.fates[0] else {
        panic!("{:?}", result.fates[0])
    };
    assert_eq!(o[0].subject, "alerts.a");
    for fate in &result.fates[1..] {
        let Fate::Error(e) = fate else {
            panic!("{fate:?}")
        };
        assert_eq!(e.kind, FailureKind::Template, "{e:?}");
        assert!(e.message.contains("one subject token"), "{}", e.message);
    }
}

/// A declared `int64` field (as a JSON source's schema declares `integer` properties): an
/// integer past 64 bits fails its own message, naming the field, and `5.0` (an integer to
/// JSON Schema) reads as 5.
#[test]
fn integers_past_int64_fail_alone() {
    let p = compile(
        r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: counts }
spec:
  source: { stream: S, fields: { n: int64 } }
  nodes:
    - id: out
      publish: { subject: "out.{data.n}" }
"#,
    );
    let result = p.process(&[
        msg(1, br#"{"n":7}"#),
        msg(2, br#"{"n":99999999999999999999}"#),
        msg(3, br#"{"n":5.0}"#),
    ]);
    let subject = |i: usize| match &result.fates[i] {
        Fate::Outputs(o) => o[0].subject.clone(),
        other => panic!("message {i}: {other:?}"),
    };
    assert_eq!(subject(0), "out.7");
    assert_eq!(subject(2), "out.5");
    let Fate::Error(e) = &result.fates[1] else {
        panic!("{:?}", result.fates[1])
    };
    assert_eq!(e.kind, FailureKind::Decode);
    assert!(
        e.message.contains("data.n") && e.message.contains("expected an integer"),
        "{}",
        e.message
    );
}
