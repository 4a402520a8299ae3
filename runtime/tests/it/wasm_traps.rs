//! `wasm` nodes on a real nats-server: for every way a guest can fail, the poisoned message is
//! in the DLQ with its original bytes, kind `wasm` and the trap text; every other message of
//! the batch is published; another tenant's pipeline on the same worker serves all of its
//! messages meanwhile; the worker keeps running all the pipelines afterwards.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use weir_testkit::nats::NatsServer;

use crate::support::*;

/// A guest module from `wasm/out/`, built from source once per test process.
fn guest(name: &str) -> Bytes {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wasm");
    BUILT.get_or_init(|| {
        let ok = std::process::Command::new(root.join("build.sh"))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "wasm/build.sh failed");
    });
    std::fs::read(root.join(format!("out/{name}.wasm")))
        .expect("guest built")
        .into()
}

/// (function, node limits, expected text in `Weir-Error`)
const TRAPS: &[(&str, &str, &str)] = &[
    ("unreachable", "", "unreachable"),
    ("oob", "", "out of bounds memory access"),
    ("spin", ", timeout: 50ms", "past its deadline of 50ms"),
    ("grow", ", max_memory: 4MiB", "memory past the cap"),
    ("recurse", "", "call stack exhausted"),
    ("malformed", "", "malformed result"),
];

fn pipelines() -> String {
    let mut yaml = String::from(
        "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: IN }\nspec: { subjects: [\"in.>\"] }\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: { name: OUT }\nspec: { subjects: [\"out.>\"] }\n",
    );
    for (function, limits, _) in TRAPS {
        yaml.push_str(&format!(
            r#"---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: {{ name: trap-{function}, tenant: acme }}
spec:
  source: {{ stream: IN, subjects: ["in.{function}"], consumer: {{ batch_size: 64 }} }}
  nodes:
    - id: udf
      wasm: {{ module: traps, function: {function}{limits} }}
      next: out
    - id: out
      publish: {{ subject: "out.{function}" }}
"#
        ));
    }
    // Another tenant's pipeline on the same worker, with its own module: it must serve every
    // message while the first tenant's modules trap.
    yaml.push_str(
        r#"---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: other-tenant, tenant: globex }
spec:
  source: { stream: IN, subjects: ["in.other"], consumer: { batch_size: 64 } }
  nodes:
    - id: udf
      wasm: { module: traps, function: noop }
      next: out
    - id: out
      publish: { subject: "out.other" }
"#,
    );
    yaml
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_trap_sends_only_the_poisoned_message_to_the_dlq() -> Result<()> {
    weir_engine::wasm::register_module("acme", "traps", 1, guest("weir-test-traps"));
    weir_engine::wasm::register_module("globex", "traps", 1, guest("weir-test-traps"));
    let server = NatsServer::start()?;
    let (_client, js) = connect(&server).await?;
    // The inputs are in the stream before the worker starts, so each pipeline's first fetch
    // takes them as one batch (the poisoned message in its middle).
    let yaml = pipelines();
    let resources = weir_pipelines::load_str(&yaml, "traps.yaml")
        .map_err(|d| anyhow::anyhow!("test pipeline invalid: {d}"))?;
    let streams: Vec<_> = resources
        .iter()
        .filter(|r| matches!(r, weir_pipelines::Resource::Stream(_)))
        .cloned()
        .collect();
    let setup = start_worker_with(&server, &streams).await?;
    assert!(setup.stop().await);
    let mut poisoned = Vec::new();
    for (function, _, _) in TRAPS {
        for i in 0..10 {
            let body = if i == 4 {
                format!(r#"{{"i":{i},"note":"poison"}}"#)
            } else {
                format!(r#"{{"i":{i}}}"#)
            };
            let seq = publish(
                &js,
                &format!("in.{function}"),
                &[("X-I", &i.to_string())],
                Bytes::from(body.clone()),
                None,
            )
            .await?;
            if i == 4 {
                poisoned.push((*function, seq, body));
            }
        }
    }
    for i in 0..50 {
        let body = format!(r#"{{"i":{i},"tenant":"globex"}}"#);
        publish(&js, "in.other", &[], Bytes::from(body), None).await?;
    }
    let worker = start_worker(&server, &yaml).await?;
    let n = TRAPS.len() as u64;
    wait_for_count(&js, "OUT", 9 * n + 50, Duration::from_secs(60)).await?;
    wait_for_count(&js, "DLQ", n, Duration::from_secs(60)).await?;

    let out = read_all(&js, "OUT").await?;
    assert_eq!(
        out.len() as u64,
        9 * n + 50,
        "every other message is published once"
    );
    let other: Vec<_> = out.iter().filter(|m| m.subject == "out.other").collect();
    assert_eq!(
        other.len(),
        50,
        "the other tenant's pipeline served all its messages"
    );
    for (function, _, _) in TRAPS {
        let mine: Vec<_> = out
            .iter()
            .filter(|m| m.subject == format!("out.{function}"))
            .collect();
        assert_eq!(mine.len(), 9, "{function}");
        assert!(
            mine.iter()
                .all(|m| !m.payload.windows(6).any(|w| w == b"poison"))
        );
    }
    let dead = read_all(&js, "DLQ").await?;
    assert_eq!(dead.len() as u64, n);
    for ((function, seq, body), (_, _, expect)) in poisoned.iter().zip(TRAPS) {
        let letter = dead
            .iter()
            .find(|d| {
                d.headers.get("Weir-Pipeline").map(String::as_str)
                    == Some(&format!("trap-{function}"))
            })
            .unwrap_or_else(|| panic!("no dead letter of {function}"));
        let h = &letter.headers;
        assert_eq!(
            letter.payload.as_ref(),
            body.as_bytes(),
            "{function}: original bytes"
        );
        assert_eq!(h["Weir-Error-Kind"], "wasm", "{function}: {h:?}");
        assert_eq!(h["Weir-Node"], "udf");
        assert_eq!(h["Weir-Source-Seq"], seq.to_string());
        assert_eq!(h["X-I"], "4");
        assert!(
            h["Weir-Error"].contains(expect),
            "{function}: {}",
            h["Weir-Error"]
        );
    }

    // The worker lives, and every pipeline serves new messages.
    for (function, _, _) in TRAPS {
        publish(
            &js,
            &format!("in.{function}"),
            &[],
            Bytes::from_static(br#"{"after":1}"#),
            None,
        )
        .await?;
    }
    wait_for_count(&js, "OUT", 10 * n + 50, Duration::from_secs(30)).await?;
    assert!(worker.stop().await, "worker stopped cleanly");
    Ok(())
}
