//! `publish` with a registry schema end to end, on a real nats-server through the API: JSON
//! orders go through a deployed pipeline that writes each as Avro (Confluent wire format) and
//! as JSON checked against a JSON Schema; Confluent's Python `AvroDeserializer` decodes the
//! Avro outputs (fetching the writer schema by the id in their header) into the JSON outputs'
//! records. Both output schemas take part of their definition from another subject (registry
//! references: an Avro named type, a JSON Schema `$ref`). An order that fits one schema but not
//! the other lands in the DLQ with its original
//! bytes and the failing field, and neither branch of it is published. At validate, a pinned
//! output version that the subject's latest version cannot read is refused where it is named
//! (and accepted once the subject's level is `NONE`), a format mismatch too, and another
//! tenant cannot name the subject.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use async_nats::jetstream;
use serde_json::{Value, json};
use weir_testkit::nats::NatsServer;

use crate::avro_source::{validate, weir_stdin};
use crate::fleet_api::{Proc, serve_with_key, wait_for, weir_cli_as};
use crate::fleet_support::{Stored, block_on, read_all};
use crate::schema_registry_client::python;
use crate::tenants_e2e::{TenantApi, create_tenant};

const KEY: &str = "weir_publish-encoded-e2e-admin-key-0123456789abcd";

/// The order takes `acme.Customer` from another subject (a registry reference).
const ORDER_AVRO: &str = r#"{"type":"record","name":"Order","namespace":"acme","fields":[
  {"name":"id","type":"string"},{"name":"amount","type":"double"},{"name":"quantity","type":"int"},
  {"name":"total","type":"double"},{"name":"note","type":["null","string"],"default":null},
  {"name":"customer","type":"acme.Customer"}]}"#;

const CUSTOMER_AVRO: &str = r#"{"type":"record","name":"Customer","namespace":"acme","fields":[
    {"name":"id","type":"string"},{"name":"tier","type":{"type":"enum","name":"Tier","symbols":["GOLD","SILVER"]}}]}"#;

/// The order's `customer` is checked by another subject's schema (`$ref` to a reference).
const ORDER_JSON: &str = r#"{"type":"object","required":["id","total"],"properties":{"total":{"type":"number","minimum":0},"customer":{"$ref":"customer.json"}}}"#;

const CUSTOMER_JSON: &str =
    r#"{"type":"object","required":["id"],"properties":{"id":{"type":"string","pattern":"^c-"}}}"#;

const RESOURCES: &str = r#"apiVersion: weir.dev/v1
kind: Stream
metadata: { name: IN }
spec: { subjects: ["in.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: AOUT }
spec: { subjects: ["aout.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: JOUT }
spec: { subjects: ["jout.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: encode-orders }
spec:
  source: { stream: IN }
  errors: { dlq: { stream: DLQ, subject: dlq.encode-orders } }
  nodes:
    - id: total
      map: { set: { total: "data.amount * data.quantity" } }
      next: [avro-out, json-out]
    - id: avro-out
      publish: { subject: aout.orders, format: avro, schema: { subject: orders-out-value } }
    - id: json-out
      publish: { subject: jout.orders, schema: { subject: orders-out-json } }
"#;

#[test]
fn publish_writes_avro_and_checked_json_with_registry_schemas() -> Result<()> {
    let python = python()?;
    block_on(async move {
        let nats = NatsServer::start()?;
        let dir = tempfile::tempdir()?;
        run(&python, &nats.url(), dir.path()).await
    })
}

/// Registers `schema` (of `kind`) under `subject` through the Confluent API; its id.
async fn register(api: &TenantApi, subject: &str, kind: &str, schema: &str) -> Result<i64> {
    register_with(api, subject, kind, schema, json!([])).await
}

/// [`register`] with `references` (`[{name, subject, version}]`).
async fn register_with(
    api: &TenantApi,
    subject: &str,
    kind: &str,
    schema: &str,
    references: Value,
) -> Result<i64> {
    let res = api
        .http
        .post(format!(
            "{}/schema-registry/subjects/{subject}/versions",
            api.base
        ))
        .bearer_auth(&api.key)
        .json(&json!({"schema": schema, "schemaType": kind, "references": references}))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    ensure!(
        status.is_success(),
        "registering {subject}: {status} {body}"
    );
    body["id"].as_i64().context("id")
}

fn orders() -> Vec<Value> {
    (1..=6)
        .map(|i| {
            json!({
                "id": format!("o-{i}"),
                "amount": f64::from(i) * 2.5,
                "quantity": i,
                "note": if i % 2 == 0 { Value::Null } else { json!(format!("note {i}")) },
                "customer": {"id": format!("c-{}", i % 3), "tier": if i % 2 == 0 { "GOLD" } else { "SILVER" }},
            })
        })
        .collect()
}

async fn run(python: &Path, url: &str, dir: &Path) -> Result<()> {
    let (serve, api) = serve_with_key(dir, Some(url), KEY).await?;
    let base = api.base.clone();
    register(&api, "customer-value", "AVRO", CUSTOMER_AVRO).await?;
    let avro_id = register_with(
        &api,
        "orders-out-value",
        "AVRO",
        ORDER_AVRO,
        json!([{"name": "acme.Customer", "subject": "customer-value", "version": 1}]),
    )
    .await?;
    register(&api, "customer-json", "JSON", CUSTOMER_JSON).await?;
    let json_id = register_with(
        &api,
        "orders-out-json",
        "JSON",
        ORDER_JSON,
        json!([{"name": "customer.json", "subject": "customer-json", "version": 1}]),
    )
    .await?;

    weir_stdin(dir, &base, KEY, &["apply", "-f", "-"], RESOURCES)?;
    let _worker = Proc::spawn(dir, "w", &["worker", "--nats", url, "--id", "enc-w"], &[])?;
    let deployed = weir_cli_as(dir, &base, KEY, &["deploy", "encode-orders"])?;
    ensure!(deployed.contains(": running on"), "weir deploy: {deployed}");

    // Six good orders; one whose tier the Avro enum lacks, one whose total is negative, one
    // whose customer the referenced JSON Schema refuses.
    let js = jetstream::new(async_nats::connect(url).await?);
    let good = orders();
    let bad_tier =
        br#"{"id":"b-1","amount":1.5,"quantity":2,"customer":{"id":"c-9","tier":"BRONZE"}}"#;
    let bad_total =
        br#"{"id":"b-2","amount":-4.0,"quantity":1,"customer":{"id":"c-9","tier":"GOLD"}}"#;
    let bad_customer =
        br#"{"id":"b-3","amount":1.0,"quantity":1,"customer":{"id":"x-1","tier":"GOLD"}}"#;
    for o in &good {
        js.publish("in.orders", serde_json::to_vec(o)?.into())
            .await?
            .await?;
    }
    for b in [&bad_tier[..], &bad_total[..], &bad_customer[..]] {
        js.publish("in.orders", b.to_vec().into()).await?.await?;
    }
    let expected: BTreeMap<String, Value> = good
        .iter()
        .map(|o| {
            let mut o = o.clone();
            let total = o["amount"].as_f64().unwrap_or(0.0) * o["quantity"].as_f64().unwrap_or(0.0);
            o["total"] = json!(total);
            (o["id"].as_str().unwrap_or("").to_string(), o)
        })
        .collect();

    // JSON outputs: unchanged JSON with the schema id in a header.
    let jout = outputs(&js, "JOUT", good.len()).await?;
    let mut json_out = BTreeMap::new();
    for s in &jout {
        ensure!(
            s.headers.get("Weir-Schema-Id") == Some(&json_id.to_string()),
            "{:?}",
            s.headers
        );
        let v: Value = serde_json::from_slice(&s.payload)?;
        json_out.insert(v["id"].as_str().context("id")?.to_string(), v);
    }
    ensure!(
        same_numbers(&json_out, &expected),
        "JSON {json_out:#?}\nwant {expected:#?}"
    );

    // Avro outputs: the Confluent header with the subject's id, decoded by Confluent's
    // deserializer into the same records.
    let aout = outputs(&js, "AOUT", good.len()).await?;
    for s in &aout {
        ensure!(
            s.payload[0] == 0 && s.payload[1..5] == (avro_id as u32).to_be_bytes(),
            "{:?}",
            &s.payload[..5]
        );
        ensure!(s.headers.get("Weir-Schema-Id") == Some(&avro_id.to_string()));
    }
    let decoded = python_decode(python, &base, &aout, &serve)?;
    let avro_out: BTreeMap<String, Value> = decoded
        .into_iter()
        .map(|v| (v["id"].as_str().unwrap_or("").to_string(), v))
        .collect();
    ensure!(
        same_numbers(&avro_out, &expected),
        "Avro {avro_out:#?}\nwant {expected:#?}"
    );

    // The three bad orders: dead letters with their bytes and the field; nothing published.
    let dlq = wait_for("3 dead letters", Duration::from_secs(30), || async {
        let all = read_all(&js, "DLQ").await?;
        let seen = format!("{} dead letters", all.len());
        Ok(((all.len() >= 3).then_some(all), seen))
    })
    .await?;
    for (original, node, reason) in [
        (
            &bad_tier[..],
            "avro-out",
            "does not fit Avro schema `orders-out-value`",
        ),
        (&bad_total[..], "json-out", "/total: minimum"),
        (&bad_customer[..], "json-out", "/customer/id: pattern"),
    ] {
        let letter = dlq
            .iter()
            .find(|l| l.payload == original)
            .context("a dead letter with the original bytes")?;
        let h = &letter.headers;
        ensure!(
            h["Weir-Error-Kind"] == "validation"
                && h["Weir-Node"] == node
                && h["Weir-Error"].contains(reason),
            "{h:?} should name {node} and say {reason:?}"
        );
    }
    ensure!(dlq.iter().any(|l| {
        l.headers["Weir-Error"]
            .contains("/customer/tier: expected one of [\"GOLD\", \"SILVER\"], found \"BRONZE\"")
    }));
    ensure!(read_all(&js, "AOUT").await?.len() == good.len());
    ensure!(read_all(&js, "JOUT").await?.len() == good.len());

    deploy_checks(&api).await
}

/// Validate-time checks of output schemas: a pinned version the latest cannot read, a format
/// mismatch, and another tenant's subject.
async fn deploy_checks(api: &TenantApi) -> Result<()> {
    // v1 {id, amount: double}; v2 drops amount; v3 brings it back as a string with a default.
    // Each step is BACKWARD-compatible, but v3 cannot read what v1 writes.
    let record = |fields: &str| {
        format!(
            r#"{{"type":"record","name":"Legacy","fields":[{{"name":"id","type":"string"}}{fields}]}}"#
        )
    };
    register(
        api,
        "legacy-value",
        "AVRO",
        &record(r#",{"name":"amount","type":"double"}"#),
    )
    .await?;
    register(api, "legacy-value", "AVRO", &record("")).await?;
    register(
        api,
        "legacy-value",
        "AVRO",
        &record(r#",{"name":"amount","type":"string","default":""}"#),
    )
    .await?;
    let pipeline = |publish: &str| {
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: legacy }}\nspec:\n  source: {{ stream: IN }}\n  nodes:\n    - id: pass\n      filter: \"true\"\n      next: out\n    - id: out\n      publish: {publish}\n"
        )
    };
    let pinned = |v: u32| {
        pipeline(&format!(
            "{{ subject: aout.legacy, format: avro, schema: {{ subject: legacy-value, version: {v} }} }}"
        ))
    };
    let (status, problem) = validate(&api.http, &api.base, &api.key, &pinned(1)).await?;
    let text = problem.to_string();
    ensure!(
        status == 422
            && text.contains("/spec/nodes/1/publish/schema")
            && text.contains("incompatible_output_schema")
            && text.contains("latest version 3 cannot read what version 1 writes"),
        "pinning version 1: {status} {problem}"
    );
    let (status, problem) = validate(&api.http, &api.base, &api.key, &pinned(2)).await?;
    ensure!(status == 200, "pinning version 2: {status} {problem}");
    let res = api
        .http
        .put(format!("{}/schema-registry/config/legacy-value", api.base))
        .bearer_auth(&api.key)
        .json(&json!({"compatibility": "NONE"}))
        .send()
        .await?;
    ensure!(res.status().is_success(), "PUT config: {}", res.status());
    let (status, problem) = validate(&api.http, &api.base, &api.key, &pinned(1)).await?;
    ensure!(status == 200, "version 1 under NONE: {status} {problem}");

    let mismatch =
        pipeline("{ subject: aout.x, format: protobuf, schema: { subject: orders-out-value } }");
    let (status, problem) = validate(&api.http, &api.base, &api.key, &mismatch).await?;
    ensure!(
        status == 422
            && problem.to_string().contains("/spec/nodes/1/publish/schema")
            && problem.to_string().contains("schema_format_mismatch"),
        "protobuf on an Avro subject: {status} {problem}"
    );

    let (_, key_b) = create_tenant(api, "tenant-b").await?;
    let (status, problem) = validate(&api.http, &api.base, &key_b, &pinned(2)).await?;
    ensure!(
        status == 422
            && problem.to_string().contains("/spec/nodes/1/publish/schema")
            && problem.to_string().contains("unknown_schema"),
        "tenant B naming tenant A's subject: {status} {problem}"
    );
    Ok(())
}

async fn outputs(js: &jetstream::Context, stream: &str, n: usize) -> Result<Vec<Stored>> {
    wait_for(
        &format!("{n} outputs in {stream}"),
        Duration::from_secs(30),
        || async {
            let all = read_all(js, stream).await?;
            let seen = format!("{} outputs", all.len());
            Ok(((all.len() >= n).then_some(all), seen))
        },
    )
    .await
}

/// Equal records, numbers compared as floats (a whole `total` may be written `15` or `15.0`).
fn same_numbers(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> bool {
    fn norm(v: &Value) -> Value {
        match v {
            Value::Number(n) => json!(n.as_f64()),
            Value::Array(a) => Value::Array(a.iter().map(norm).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), norm(v))).collect())
            }
            other => other.clone(),
        }
    }
    a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).map(norm) == Some(norm(v)))
}

/// The payloads decoded by Confluent's `AvroDeserializer`.
fn python_decode(python: &Path, base: &str, stored: &[Stored], serve: &Proc) -> Result<Vec<Value>> {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/publish_encoded_decode.py");
    let hexes: Vec<String> = stored
        .iter()
        .map(|s| s.payload.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut child = Command::new(python)
        .arg(&script)
        .args([base, KEY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running the Python deserializer")?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(serde_json::to_string(&hexes)?.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "the Python deserializer failed: {}\nweir serve log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            serve.log_text()
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
