//! Key expressions of keyed partitions, evaluated on input messages as the source decodes
//! them: values as text, a missing value as the empty text, an undecodable payload as that
//! message's error.

use weir_engine::keys::KeyExtractor;
use weir_engine::{CompiledPipeline, InputMessage};
use weir_pipelines::Resource;

fn input(payload: &str, seq: u64) -> InputMessage {
    InputMessage {
        subject: "orders.eu".into(),
        headers: Vec::new(),
        payload: bytes::Bytes::from(payload.to_string()),
        seq,
        stream: "ORDERS".into(),
        timestamp_micros: 0,
    }
}

#[test]
fn keys_are_the_texts_of_their_expressions() {
    let yaml = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: k }\nspec:\n  source: { stream: ORDERS }\n  nodes:\n    - id: once\n      dedup: { key: data.id, within: 1m }\n      next: out\n    - { id: out, publish: { subject: o } }\n  execution: { partitions: 4 }\n";
    let Resource::Pipeline(p) = serde_yaml::from_str(yaml).expect("parses") else {
        panic!("a pipeline")
    };
    CompiledPipeline::compile(&p).expect("compiles");
    let keys = KeyExtractor::compile(&p, &["data.id".into(), "upper(subject)".into()])
        .expect("keys compile");
    let got = keys.keys(&[
        input(r#"{"id":"a-1"}"#, 1),
        input(r#"{"id":7}"#, 2),
        input(r#"{"other":1}"#, 3),
        input(r#"{"id":"#, 4),
    ]);
    let texts = |i: usize| got[i].as_ref().expect("a key").clone();
    assert_eq!(texts(0), vec!["a-1".to_string(), "ORDERS.EU".to_string()]);
    assert_eq!(texts(1), vec!["7".to_string(), "ORDERS.EU".to_string()]);
    assert_eq!(texts(2), vec![String::new(), "ORDERS.EU".to_string()]);
    let bad = got[3].as_ref().expect_err("undecodable");
    assert_eq!(bad.node, "source", "{bad:?}");
}
