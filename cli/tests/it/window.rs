//! Windowed pipelines from the command line: `weir validate` locates a bad aggregate, and
//! `weir test` runs the order-metrics example's stream case (window results and a late order).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn weir(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the weir binary runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("weir exits")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const EXAMPLE: &str = "pipelines/examples/order-metrics.yaml";

#[test]
fn the_order_metrics_example_validates_and_its_stream_case_passes() {
    let out = weir(&["validate", "-f", EXAMPLE], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = weir(&["test", "-f", EXAMPLE], None);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    // A wrong p95 fails with a diff of the window result.
    let text = std::fs::read_to_string(repo().join(EXAMPLE)).expect("example");
    let wrong = text.replacen("mean: 200, p95: 300", "mean: 200, p95: 301", 1);
    assert_ne!(text, wrong);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wrong.yaml");
    std::fs::write(&file, wrong).expect("write");
    let out = weir(&["test", "-f", file.to_str().expect("utf-8")], None);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("-        \"p95\": 301"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("+        \"p95\": 300"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_bad_aggregate_and_a_bad_slide_are_located() {
    let text = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: m }\nspec:\n  source: { stream: ORDERS }\n  nodes:\n    - id: w\n      window:\n        kind: tumbling\n        size: 1m\n        aggregates: { total: \"summ(data.amount)\" }\n        late: out\n      next: out\n    - id: out\n      publish: { subject: metrics }\n";
    let out = weir(&["validate", "-f", "-"], Some(text));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let shown = stdout(&out);
    assert!(shown.starts_with("<stdin>:11:30: "), "{shown}");
    assert!(shown.contains("summ"), "{shown}");

    let hopping = text.replace(
        "kind: tumbling\n        size: 1m",
        "kind: hopping\n        size: 1m\n        slide: 5m",
    );
    let out = weir(&["validate", "-f", "-"], Some(&hopping));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let shown = stdout(&out);
    assert!(shown.starts_with("<stdin>:11:16: "), "{shown}");
    assert!(
        shown.contains("slide (5m) is longer than size (1m)"),
        "{shown}"
    );
}
