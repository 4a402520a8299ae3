//! `format: avro` sources end to end: orders serialized by Confluent's Python
//! `AvroSerializer` (two versions of the subject, the first soft-deleted before the pipeline
//! is deployed; the Confluent wire format) go through a
//! deployed pipeline on a real nats-server and give the same outputs as the same pipeline
//! reading their JSON equivalents; a corrupt payload, an unknown schema id and a wrong magic
//! byte land in the DLQ with their original bytes and the reason. The same orders serialized by
//! Confluent's Python `ProtobufSerializer` (which registers base64 descriptors with a reference
//! between them) give the same outputs too. Another tenant cannot use the subject.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use async_nats::jetstream;
use serde_json::Value;
use weir_testkit::nats::NatsServer;

use crate::fleet_api::{Proc, serve_with_key, wait_for, weir_cli_as};
use crate::fleet_support::{block_on, read_all};
use crate::schema_registry_client::python;
use crate::tenants_e2e::{TenantApi, create_tenant};

const KEY: &str = "weir_avro-source-e2e-admin-key-0123456789abcdefgh";

/// The same nodes for both pipelines: `SOURCE` and `OUT` replaced.
const NODES: &str = r#"
  nodes:
    - id: interesting
      filter: "data.customer.tier = 'GOLD' OR data.amount > 100"
      next: tag
    - id: tag
      map: { set: { customer_id: "data.customer.id", big: "data.amount > 100", items: "data.quantity * 2" } }
      next: out
    - id: out
      publish: { subject: "OUT" }
"#;

fn resources() -> String {
    let avro = format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: avro-orders }}\nspec:\n  source: {{ stream: ORDERS, format: avro, schema: orders-value }}\n  errors: {{ dlq: {{ stream: DLQ, subject: dlq.avro-orders }} }}{}",
        NODES.replace("OUT", "aout.orders")
    );
    let json = format!(
        "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: json-orders }}\nspec:\n  source: {{ stream: JSONORDERS }}{}",
        NODES.replace("OUT", "jout.orders")
    );
    format!(
        "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: ORDERS }}\nspec: {{ subjects: [\"orders.>\"] }}\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: JSONORDERS }}\nspec: {{ subjects: [\"jsonorders.>\"] }}\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: AOUT }}\nspec: {{ subjects: [\"aout.>\"] }}\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: JOUT }}\nspec: {{ subjects: [\"jout.>\"] }}\n---\n{avro}\n---\n{json}\n"
    )
}

#[test]
fn avro_payloads_from_the_python_serializer_decode_like_json() -> Result<()> {
    let python = python()?;
    block_on(async move {
        let nats = NatsServer::start()?;
        let dir = tempfile::tempdir()?;
        run(&python, &nats.url(), dir.path()).await
    })
}

async fn run(python: &Path, url: &str, dir: &Path) -> Result<()> {
    let (serve, api) = serve_with_key(dir, Some(url), KEY).await?;
    let base = api.base.clone();

    // 1. The subject's two versions and the payloads, from Confluent's serializer.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/avro_source_payloads.py");
    let out = Command::new(python)
        .arg(&script)
        .args([&base, KEY])
        .output()
        .context("running the Python serializer")?;
    if !out.status.success() {
        bail!(
            "the Python serializer failed: {}\nweir serve log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.log_text()
        );
    }
    let produced: Value = serde_json::from_slice(&out.stdout)?;
    let messages = produced["messages"].as_array().context("messages")?;
    let id1 = produced["ids"][0].as_u64().context("id")? as u32;

    // Version 1 soft-deleted (as Confluent's registry does, its id still resolves): the
    // orders written with it before the delete must still decode.
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{base}/schema-registry/subjects/orders-value/versions/1"
        ))
        .bearer_auth(KEY)
        .send()
        .await?;
    ensure!(deleted.status() == 200, "soft delete: {}", deleted.status());

    // 2. Both pipelines applied and deployed; one worker runs them.
    weir_stdin(dir, &base, KEY, &["apply", "-f", "-"], &resources())?;
    let _worker = Proc::spawn(dir, "w", &["worker", "--nats", url, "--id", "avro-w"], &[])?;
    for p in ["avro-orders", "json-orders"] {
        let deployed = weir_cli_as(dir, &base, KEY, &["deploy", p])?;
        ensure!(
            deployed.contains(": running on"),
            "weir deploy {p}: {deployed}"
        );
    }

    // 3. Traffic: each order as Avro and as JSON, and three bad Avro payloads.
    let js = jetstream::new(async_nats::connect(url).await?);
    let first: Vec<u8> = hex(messages[0]["payload"].as_str().context("hex")?)?;
    let mut corrupt = first[..first.len() - 4].to_vec();
    corrupt.extend([0xff; 2]);
    let mut unknown = first.clone();
    unknown[1..5].copy_from_slice(&(id1 + 1000).to_be_bytes());
    let mut magic = first.clone();
    magic[0] = 7;
    let bad = [corrupt, unknown, magic];
    for m in messages {
        let payload = hex(m["payload"].as_str().context("hex")?)?;
        js.publish("orders.created", payload.into()).await?.await?;
        let json = serde_json::to_vec(&m["json"])?;
        js.publish("jsonorders.created", json.into()).await?.await?;
    }
    for b in &bad {
        js.publish("orders.created", b.clone().into())
            .await?
            .await?;
    }

    // 4. The same outputs from Avro as from JSON, one per interesting order.
    let expected = messages
        .iter()
        .filter(|m| {
            m["json"]["customer"]["tier"] == "GOLD" || m["json"]["amount"].as_f64() > Some(100.0)
        })
        .count();
    ensure!(expected > 5 && expected < messages.len(), "{expected}");
    let mut outputs = Vec::new();
    for stream in ["AOUT", "JOUT"] {
        outputs.push(
            wait_for(
                &format!("the outputs in {stream}"),
                Duration::from_secs(30),
                || async {
                    let all = read_all(&js, stream).await?;
                    let seen = format!("{} outputs", all.len());
                    Ok(((all.len() >= expected).then_some(all), seen))
                },
            )
            .await?,
        );
    }
    let json_out = outputs.pop().context("JOUT")?;
    let avro_out = outputs.pop().context("AOUT")?;
    let (avro_out, json_out) = (by_id(&avro_out)?, by_id(&json_out)?);
    ensure!(avro_out.len() == expected, "{avro_out:#?}");
    ensure!(
        avro_out == json_out,
        "Avro {avro_out:#?}\nJSON {json_out:#?}"
    );
    let o1 = &avro_out["o-1"];
    ensure!(
        o1["currency"] == "EUR"
            && o1["customer_id"] == "c-1"
            && o1["note"].is_null()
            && o1["items"] == 2,
        "o-1 (written with version 1, read as version 2): {o1}"
    );

    // 5. The bad payloads in the DLQ: original bytes, kind `decode`, and why.
    let dlq = wait_for("3 dead letters", Duration::from_secs(30), || async {
        let all = read_all(&js, "DLQ").await?;
        let seen = format!("{} dead letters", all.len());
        Ok(((all.len() >= 3).then_some(all), seen))
    })
    .await?;
    ensure!(dlq.len() == 3);
    let reasons = [
        "corrupt Avro payload",
        &format!("unknown schema id {}", id1 + 1000),
        "byte 0x00",
    ];
    // Each bad payload has one dead letter with its bytes (in any order: batches in flight).
    for (original, reason) in bad.iter().zip(reasons) {
        let letter = dlq
            .iter()
            .find(|l| l.payload == *original)
            .context("a dead letter with the original bytes")?;
        ensure!(
            letter.headers["Weir-Error-Kind"] == "decode",
            "{:?}",
            letter.headers
        );
        ensure!(
            letter.headers["Weir-Error"].contains(reason),
            "reason {:?} should say {reason:?}",
            letter.headers["Weir-Error"]
        );
    }

    // 6. The same orders as Protobuf messages: the same outputs (the Protobuf schema has no
    // `note`).
    protobuf_orders(python, &base, dir, messages, &json_out, &js).await?;

    // An Avro source naming the Protobuf subject is refused where it names it.
    let mismatched = resources().replace("schema: orders-value", "schema: orders-proto-value");
    let (status, problem) = validate(&api.http, &base, KEY, &mismatched).await?;
    let text = problem.to_string();
    ensure!(
        status == 422
            && text.contains("/spec/source/schema")
            && text.contains("schema_format_mismatch"),
        "an Avro source on a Protobuf subject: {status} {problem}"
    );

    // 7. Another tenant cannot use the subject: its pipeline is refused where it names it.
    let (_, key_b) = create_tenant(&api, "tenant-b").await?;
    let b = TenantApi { key: key_b, ..api };
    let (status, problem) = validate(&b.http, &base, &b.key, &resources()).await?;
    let text = problem.to_string();
    ensure!(
        status == 422 && text.contains("/spec/source/schema") && text.contains("unknown_schema"),
        "tenant B's pipeline: {status} {problem}"
    );
    Ok(())
}

/// `POST /api/v1/pipelines:validate` of `yaml` with `key`: the status and the body.
pub(crate) async fn validate(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    yaml: &str,
) -> Result<(u16, Value)> {
    let res = http
        .post(format!("{base}/api/v1/pipelines:validate"))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(yaml.to_string())
        .send()
        .await?;
    Ok((res.status().as_u16(), res.json().await?))
}

/// Outputs by their `id`.
fn by_id(stored: &[crate::fleet_support::Stored]) -> Result<BTreeMap<String, Value>> {
    stored
        .iter()
        .map(|s| {
            let v: Value = serde_json::from_slice(&s.payload)?;
            Ok((v["id"].as_str().context("id")?.to_string(), v))
        })
        .collect()
}

/// Sends the orders through a `format: protobuf` pipeline with the same nodes, each serialized
/// by Confluent's Python `ProtobufSerializer` (which registers `orders-proto-value` with a
/// reference to `acme/customer.proto`, both as base64 descriptors), and requires the JSON
/// pipeline's outputs without `note` (the Protobuf schema has none).
async fn protobuf_orders(
    python: &Path,
    base: &str,
    dir: &Path,
    messages: &[Value],
    json_out: &BTreeMap<String, Value>,
    js: &jetstream::Context,
) -> Result<()> {
    let orders: Vec<&Value> = messages.iter().map(|m| &m["json"]).collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/protobuf_source_payloads.py");
    let out = Command::new(python)
        .arg(&script)
        .args([base, KEY, &serde_json::to_string(&orders)?])
        .output()
        .context("running the Python Protobuf serializer")?;
    ensure!(
        out.status.success(),
        "the Python Protobuf serializer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let produced: Value = serde_json::from_slice(&out.stdout)?;
    let pipeline = format!(
        "apiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: PORDERS }}\nspec: {{ subjects: [\"porders.>\"] }}\n---\napiVersion: weir.dev/v1\nkind: Stream\nmetadata: {{ name: POUT }}\nspec: {{ subjects: [\"pout.>\"] }}\n---\napiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: proto-orders }}\nspec:\n  source: {{ stream: PORDERS, format: protobuf, schema: {{ subject: orders-proto-value, version: latest }} }}{}",
        NODES.replace("OUT", "pout.orders")
    );
    weir_stdin(dir, base, KEY, &["apply", "-f", "-"], &pipeline)?;
    let deployed = weir_cli_as(dir, base, KEY, &["deploy", "proto-orders"])?;
    ensure!(deployed.contains(": running on"), "weir deploy: {deployed}");

    let payloads = produced["messages"].as_array().context("messages")?;
    ensure!(payloads.len() == messages.len());
    let id = produced["id"].as_u64().context("id")? as u32;
    for m in payloads {
        let payload = hex(m["payload"].as_str().context("hex")?)?;
        ensure!(
            payload[1..5] == id.to_be_bytes(),
            "schema id in {payload:?}"
        );
        js.publish("porders.created", payload.into()).await?.await?;
    }
    let out = wait_for("the Protobuf outputs", Duration::from_secs(30), || async {
        let all = read_all(js, "POUT").await?;
        let seen = format!("{} outputs", all.len());
        Ok(((all.len() >= json_out.len()).then_some(all), seen))
    })
    .await?;
    let proto_out = by_id(&out)?;
    let mut want = json_out.clone();
    for v in want.values_mut() {
        v.as_object_mut().context("object")?.remove("note");
    }
    ensure!(proto_out == want, "Protobuf {proto_out:#?}\nJSON {want:#?}");
    Ok(())
}

/// `weir ARGS` with `input` on standard input, with API key `key`.
pub(crate) fn weir_stdin(
    dir: &Path,
    base: &str,
    key: &str,
    args: &[&str],
    input: &str,
) -> Result<String> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(crate::fleet_support::weir_binary())
        .args(args)
        .env("WEIR_URL", base)
        .env("WEIR_API_KEY", key)
        .env("HOME", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    ensure!(
        out.status.success(),
        "weir {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(stdout)
}

pub(crate) fn hex(text: &str) -> Result<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).context("hex"))
        .collect()
}
