//! The example pipeline files end to end on JetStream: every `tests:` case of every example
//! pipeline is published to the real source stream; each expected output must land on its
//! subject with its headers and payload, each expected error in the DLQ with the original
//! bytes and the failing node, and the counts must add up exactly (no extra output).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use weir_engine::testing::input_message;
use weir_pipelines::Resource;
use weir_testkit::nats::NatsServer;

use crate::support::{Stored, connect, publish, read_all, start_worker_with};

fn examples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pipelines/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Whether `actual` carries `expected`: same subject, the listed headers, the same JSON.
fn matches(expected: &weir_pipelines::spec::TestMessage, actual: &Stored) -> bool {
    if !expected.subject.is_empty() && expected.subject != actual.subject {
        return false;
    }
    if expected
        .headers
        .iter()
        .any(|(k, v)| actual.headers.get(k) != Some(v))
    {
        return false;
    }
    match &expected.data {
        Some(data) => {
            serde_json::from_slice::<Value>(&actual.payload)
                .ok()
                .as_ref()
                == Some(data)
        }
        None => true,
    }
}

fn load(file: &PathBuf) -> Result<Vec<Resource>> {
    let text = std::fs::read_to_string(file)?;
    weir_pipelines::load_str(&text, &file.display().to_string()).map_err(|d| anyhow::anyhow!("{d}"))
}

/// Runs the pipelines of `file` alone (the other examples' pipelines read the same source),
/// with the streams of every example (a file may use a stream another one declares).
async fn run_example(file: &PathBuf, streams: &[Resource]) -> Result<usize> {
    let mut resources: Vec<Resource> = streams.to_vec();
    resources.extend(
        load(file)?
            .into_iter()
            .filter(|r| matches!(r, Resource::Pipeline(_))),
    );
    let server = NatsServer::start()?;
    let worker = start_worker_with(&server, &resources).await?;
    let (_client, js) = connect(&server).await?;

    let mut expected_outputs = Vec::new();
    let mut expected_errors = Vec::new();
    let mut cases = 0;
    let mut dlq_streams = Vec::new();
    for resource in &resources {
        let Resource::Pipeline(p) = resource else {
            continue;
        };
        dlq_streams.push(weir_connectors::DlqTarget::for_pipeline(p).stream);
        // A windowed pipeline's results on JetStream are those the engine emits for the same
        // inputs in the same order, without the end of input that `weir test` adds (which
        // closes the windows still open).
        let reference = weir_engine::CompiledPipeline::compile(p)?;
        for (i, case) in p.tests.iter().enumerate() {
            for (k, message) in std::iter::once(&case.input)
                .chain(&case.more_inputs)
                .enumerate()
            {
                let input = input_message(message, &p.spec.source.stream, 0)
                    .map_err(|e| anyhow::anyhow!("case {}: {e}", case.name))?;
                let headers: Vec<(&str, &str)> = input
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let id = format!("case-{}-{i}-{k}", p.metadata.name);
                publish(
                    &js,
                    &input.subject,
                    &headers,
                    input.payload.clone(),
                    Some(&id),
                )
                .await?;
                for emitted in reference.process(std::slice::from_ref(&input)).emitted {
                    if let weir_engine::Fate::Outputs(outputs) = emitted.fate {
                        expected_outputs.extend(outputs.into_iter().map(|o| {
                            weir_pipelines::spec::TestMessage {
                                subject: o.subject,
                                data: serde_json::from_slice(&o.payload).ok(),
                                ..Default::default()
                            }
                        }));
                    }
                }
            }
            cases += 1;
            expected_outputs.extend(case.expect.iter().cloned());
            if let Some(e) = &case.expect_error {
                let input = input_message(&case.input, &p.spec.source.stream, 0)
                    .map_err(|e| anyhow::anyhow!("case {}: {e}", case.name))?;
                expected_errors.push((e.node.clone(), input.payload));
            }
        }
    }
    assert!(cases > 0, "{} has no tests: cases", file.display());

    // Every stream of the file but the DLQs holds outputs (and the inputs, told apart by their
    // `case-…` message ids).
    let output_streams: Vec<String> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Stream(s) if !dlq_streams.contains(&s.metadata.name) => {
                Some(s.metadata.name.clone())
            }
            _ => None,
        })
        .collect();
    let read_outputs = || async {
        let mut all = Vec::new();
        for s in &output_streams {
            all.extend(read_all(&js, s).await?.into_iter().filter(|m| {
                !m.headers
                    .get("Nats-Msg-Id")
                    .is_some_and(|id| id.starts_with("case-"))
            }));
        }
        anyhow::Ok(all)
    };
    let read_dead = || async {
        let mut all = Vec::new();
        for s in &dlq_streams {
            if js.get_stream(s).await.is_ok() {
                all.extend(read_all(&js, s).await?);
            }
        }
        anyhow::Ok(all)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (outs, dead) = (read_outputs().await?, read_dead().await?);
        if outs.len() >= expected_outputs.len() && dead.len() >= expected_errors.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{}: {} of {} outputs and {} of {} dead letters after 30 s",
                file.display(),
                outs.len(),
                expected_outputs.len(),
                dead.len(),
                expected_errors.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let anything extra (a duplicate, an unexpected output) arrive before the exact checks.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut outs = read_outputs().await?;
    let dead = read_dead().await?;
    assert_eq!(
        outs.len(),
        expected_outputs.len(),
        "{}: outputs {:#?}",
        file.display(),
        outs
    );
    for expected in &expected_outputs {
        let at = outs
            .iter()
            .position(|a| matches(expected, a))
            .with_context(|| {
                format!(
                    "{}: no output matches {expected:?}; left: {outs:#?}",
                    file.display()
                )
            })?;
        outs.remove(at);
    }
    assert_eq!(
        dead.len(),
        expected_errors.len(),
        "{}: {dead:#?}",
        file.display()
    );
    for (node, payload) in &expected_errors {
        assert!(
            dead.iter().any(|d| d.payload == *payload
                && d.headers.get("Weir-Node") == Some(node)
                && d.headers.contains_key("Weir-Error")),
            "{}: no dead letter from node {node} with the original bytes: {dead:#?}",
            file.display()
        );
    }
    assert!(worker.stop().await, "worker drained on stop");
    Ok(cases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run_their_tests_cases_on_jetstream() -> Result<()> {
    let files = examples();
    let mut streams = Vec::new();
    for file in &files {
        streams.extend(
            load(file)?
                .into_iter()
                .filter(|r| matches!(r, Resource::Stream(_))),
        );
    }
    let mut total = 0;
    for file in &files {
        total += run_example(file, &streams).await?;
    }
    assert!(total >= 8, "only {total} cases in the examples");
    Ok(())
}
