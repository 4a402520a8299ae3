//! Checks of a pipeline against the streams of its file: a source filter outside its stream's
//! subjects, a pipeline publishing into its own source, a named DLQ stream that does not
//! capture the DLQ subject. Each is reported at the line and column of the offending value.

use weir_pipelines::load_str;

fn codes(text: &str) -> Vec<(usize, String)> {
    match load_str(text, "test.yaml") {
        Ok(_) => vec![],
        Err(diags) => diags.iter().map(|d| (d.line, d.code.clone())).collect(),
    }
}

const STREAMS: &str = r#"apiVersion: weir.dev/v1
kind: Stream
metadata: { name: READINGS }
spec: { subjects: ["sensors.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: FAILED }
spec: { subjects: ["failed.>"] }
---
"#;

fn file(source_subjects: &str, publish: &str, dlq: &str) -> String {
    format!(
        "{STREAMS}apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: iot }}\nspec:\n  source:\n    stream: READINGS\n    subjects: {source_subjects}\n  nodes:\n    - id: out\n      publish: {{ subject: \"{publish}\" }}\n{dlq}"
    )
}

#[test]
fn a_source_filter_outside_its_stream_is_refused() {
    let text = file(r#"["sensor.>"]"#, "clean.{data.site}", "");
    let found = codes(&text);
    assert_eq!(
        found,
        vec![(17, "subject-outside-stream".to_string())],
        "{found:?}"
    );
    let message = load_str(&text, "t.yaml").unwrap_err().to_string();
    assert!(message.contains("sensors.>"), "{message}");
    assert!(codes(&file(r#"["sensors.a.*"]"#, "clean.{data.site}", "")).is_empty());
}

#[test]
fn publishing_into_the_own_source_is_refused() {
    let found = codes(&file(r#"["sensors.>"]"#, "sensors.clean.{data.site}", ""));
    assert_eq!(found, vec![(20, "publish-loop".to_string())], "{found:?}");
    // Without source subjects, the source reads the whole stream.
    let found = codes(&file("[]", "sensors.x", ""));
    assert_eq!(found, vec![(20, "publish-loop".to_string())], "{found:?}");
    assert!(
        codes(&file(
            r#"["sensors.raw.>"]"#,
            "sensors.clean.{data.site}",
            ""
        ))
        .is_empty()
    );
}

#[test]
fn a_named_dlq_stream_that_does_not_capture_the_subject_is_refused() {
    let dlq = "  errors: { dlq: { subject: failed.iot, stream: DLQ } }\n";
    let found = codes(&file(r#"["sensors.>"]"#, "clean.x", dlq));
    assert_eq!(
        found,
        vec![(21, "dlq-stream-conflict".to_string())],
        "{found:?}"
    );
    let ok = "  errors: { dlq: { subject: failed.iot } }\n";
    assert!(codes(&file(r#"["sensors.>"]"#, "clean.x", ok)).is_empty());
    let ok = "  errors: { dlq: { subject: failed.iot, stream: FAILED } }\n";
    assert!(codes(&file(r#"["sensors.>"]"#, "clean.x", ok)).is_empty());
}
