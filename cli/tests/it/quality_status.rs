//! The `quality` node end to end: a deployed pipeline with six rules on a real nats-server;
//! on a known input set, rejected orders are in the DLQ naming their rules, warned ones are
//! published with `Weir-Quality-Warn`, and the pipeline's status (API) and the worker's
//! metrics show the exact per-rule pass and fail counts. The quality API lists the rules with
//! those counts and their pass rates over the last minute and hour (all of this input is within
//! both), a viewer may read it and `weir status` prints it. Another tenant cannot read either.

use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use async_nats::jetstream;
use serde_json::{Value, json};
use weir_testkit::nats::NatsServer;

use crate::avro_source::weir_stdin;
use crate::fleet_api::{Proc, serve_with_key, wait_for, weir_cli_as};
use crate::fleet_support::{block_on, read_all};
use crate::tenants_e2e::{TenantApi, create_tenant};

const KEY: &str = "weir_quality-status-e2e-admin-key-0123456789abcdefghi";

const RESOURCES: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: CHECKED }
spec: { subjects: ["checked.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: dq-orders }
spec:
  source: { stream: ORDERS }
  nodes:
    - id: dq
      quality:
        rules:
          - { name: has-id, field: data.id, required: true }
          - { name: amount-range, field: data.amount, range: { min: 0, max: 1000 } }
          - { name: email, field: data.email, pattern: "^[^@]+@[^@]+$", severity: warn }
          - { name: currency, field: data.currency, enum: [EUR, USD] }
          - { name: note-len, field: data.note, max_length: 5, severity: warn }
          - { name: big-needs-gold, sql: "data.amount < 500 OR data.tier = 'GOLD'" }
      next: out
    - id: out
      publish: { subject: "checked.orders" }
  errors: { dlq: { stream: DLQ, subject: dlq.dq-orders } }
"#;

const INPUTS: [&str; 7] = [
    r#"{"id":"o-1","amount":50,"currency":"EUR","email":"a@b.c","note":"ok"}"#,
    r#"{"id":"o-2","amount":-5,"currency":"EUR","email":"a@b.c"}"#,
    r#"{"id":"o-3","amount":20,"currency":"GBP","email":"nope"}"#,
    r#"{"amount":20,"currency":"USD","email":"x@y.z","note":"far too long"}"#,
    r#"{"id":"o-5","amount":700,"currency":"USD","email":"bad","tier":"SILVER"}"#,
    r#"{"id":"o-6","amount":700,"currency":"USD","email":"x@y","tier":"GOLD","note":"too long"}"#,
    r#"{"id":"o-7","amount":10,"currency":"EUR","email":"nope","note":"hi"}"#,
];

#[test]
fn quality_counts_reach_the_status_and_rejections_the_dlq() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start()?;
        let dir = tempfile::tempdir()?;
        run(&nats.url(), dir.path()).await
    })
}

async fn run(url: &str, dir: &Path) -> Result<()> {
    let (_serve, api) = serve_with_key(dir, Some(url), KEY).await?;
    let base = api.base.clone();
    weir_stdin(dir, &base, KEY, &["apply", "-f", "-"], RESOURCES)?;
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let _worker = Proc::spawn(
        dir,
        "w",
        &[
            "worker",
            "--nats",
            url,
            "--id",
            "dq-w",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[],
    )?;
    let deployed = weir_cli_as(dir, &base, KEY, &["deploy", "dq-orders"])?;
    ensure!(deployed.contains(": running on"), "weir deploy: {deployed}");

    let js = jetstream::new(async_nats::connect(url).await?);
    for input in INPUTS {
        js.publish("orders.created", input.as_bytes().to_vec().into())
            .await?
            .await?;
    }

    // The status: exact per-rule counts.
    let mut want = serde_json::Map::new();
    for (rule, pass, fail) in [
        ("amount-range", 6, 1),
        ("big-needs-gold", 6, 1),
        ("currency", 6, 1),
        ("email", 4, 3),
        ("has-id", 6, 1),
        ("note-len", 5, 2),
    ] {
        want.insert(format!("{rule}.fail"), json!(fail));
        want.insert(format!("{rule}.pass"), json!(pass));
    }
    let want = Value::Object(want);
    wait_for(
        "the rule counts in the status",
        Duration::from_secs(30),
        || async {
            let s = api.get("/pipelines/dq-orders/status").await?;
            let dq = &s["nodes"]["dq"];
            Ok((
                (dq["counters"] == want && dq["errors"] == 4).then_some(()),
                format!("{dq}"),
            ))
        },
    )
    .await?;

    // The worker's metrics: the same counts per rule and outcome.
    let metrics = api
        .http
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    for line in [
        r#"weir_quality_checks_total{pipeline="dq-orders",node="dq",rule="email",outcome="fail"} 3"#,
        r#"weir_quality_checks_total{pipeline="dq-orders",node="dq",rule="email",outcome="pass"} 4"#,
        r#"weir_quality_checks_total{pipeline="dq-orders",node="dq",rule="has-id",outcome="fail"} 1"#,
    ] {
        ensure!(
            metrics.lines().any(|l| l == line),
            "{line} not in:\n{metrics}"
        );
    }

    quality_api(&api, dir).await?;

    // Rejected: in the DLQ naming the rules. Warned: published with the header.
    // (Sorted: batches in flight may publish in either order.)
    let dlq = read_all(&js, "DLQ").await?;
    let mut reasons: Vec<(&str, &[u8])> = dlq
        .iter()
        .map(|d| (d.headers["Weir-Error"].as_str(), d.payload.as_slice()))
        .collect();
    reasons.sort();
    let mut want_dlq = vec![
        (
            "quality rules failed: `amount-range` (range)",
            INPUTS[1].as_bytes(),
        ),
        (
            "quality rules failed: `currency` (enum)",
            INPUTS[2].as_bytes(),
        ),
        (
            "quality rules failed: `has-id` (required)",
            INPUTS[3].as_bytes(),
        ),
        (
            "quality rules failed: `big-needs-gold` (sql)",
            INPUTS[4].as_bytes(),
        ),
    ];
    want_dlq.sort();
    ensure!(reasons == want_dlq, "{reasons:?}");
    let out = read_all(&js, "CHECKED").await?;
    let mut warned: Vec<(String, Option<&str>)> = out
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            let id = v["id"].as_str().unwrap_or_default().to_string();
            (id, m.headers.get("Weir-Quality-Warn").map(String::as_str))
        })
        .collect();
    warned.sort();
    ensure!(
        warned
            == [
                ("o-1".to_string(), None),
                ("o-6".to_string(), Some("note-len")),
                ("o-7".to_string(), Some("email")),
            ],
        "{warned:?}"
    );

    // Tenant B does not see A's pipeline.
    let (_, key_b) = create_tenant(&api, "tenant-b").await?;
    let b = TenantApi { key: key_b, ..api };
    let (status, _) = b
        .call(reqwest::Method::GET, "/pipelines/dq-orders/status", None)
        .await?;
    ensure!(status == 404, "tenant B reads A's status: {status}");
    let (status, _) = b
        .call(reqwest::Method::GET, "/pipelines/dq-orders/quality", None)
        .await?;
    ensure!(status == 404, "tenant B reads A's quality rules: {status}");
    Ok(())
}

/// `GET /pipelines/dq-orders/quality` as a viewer: every rule in the file's order with its
/// severity, the exact counts (the same over the last minute and hour, where all the input
/// is) and pass rates; then `weir status` prints them.
async fn quality_api(api: &TenantApi, dir: &Path) -> Result<()> {
    let user = api
        .ok(
            reqwest::Method::POST,
            "/users",
            Some(json!({"email": "viewer@dq.test", "role": "viewer"})),
        )
        .await?;
    let key = api
        .ok(
            reqwest::Method::POST,
            "/api-keys",
            Some(json!({"name": "dq-viewer", "user_id": user["id"]})),
        )
        .await?;
    let viewer = TenantApi {
        base: api.base.clone(),
        key: key["key"].as_str().unwrap_or_default().to_string(),
        http: api.http.clone(),
    };
    let q = viewer.get("/pipelines/dq-orders/quality").await?;
    ensure!(q["workers"] == 1 && q["version"] == 1, "{q}");
    let rules = q["rules"].as_array().cloned().unwrap_or_default();
    let want = [
        ("has-id", "reject", 6, 1),
        ("amount-range", "reject", 6, 1),
        ("email", "warn", 4, 3),
        ("currency", "reject", 6, 1),
        ("note-len", "warn", 5, 2),
        ("big-needs-gold", "reject", 6, 1),
    ];
    ensure!(rules.len() == want.len(), "{q}");
    for (r, (rule, severity, pass, fail)) in rules.iter().zip(want) {
        let rate = f64::from(pass) / f64::from(pass + fail);
        let expected = json!({
            "node": "dq", "rule": rule, "severity": severity,
            "passed": pass, "failed": fail, "pass_rate": rate,
            "passed_1m": pass, "failed_1m": fail, "pass_rate_1m": rate,
            "passed_1h": pass, "failed_1h": fail, "pass_rate_1h": rate,
        });
        ensure!(*r == expected, "{r} != {expected}");
    }
    let printed = weir_cli_as(dir, &viewer.base, &viewer.key, &["status", "dq-orders"])?;
    let email = printed
        .lines()
        .find(|l| l.starts_with("dq ") && l.contains(" email "))
        .unwrap_or_default();
    ensure!(
        email.contains(" warn ") && email.matches("57.1%").count() == 3,
        "weir status: {printed}"
    );
    Ok(())
}
