//! Test before deploy (`POST /api/v1/pipelines:test`) against the real `weir serve` (which links
//! the engine) and a nats-server in operator mode: two tenants capture the last messages of
//! their own `ORDERS` stream and see per input the nodes it reached and its outputs or error;
//! pasted and JSON-lines samples; a viewer may test; a role without `messages:read` may not
//! capture; bad input is problem+json. Then the pipeline is deployed on a `weir worker` and its
//! per-node counts on that known input reach the status API exactly.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use async_nats::jetstream;
use reqwest::Method;
use serde_json::{Value, json};
use weir_testkit::nats::NatsServer;

use crate::fleet_api::{wait_for, weir_cli_as};
use crate::fleet_support::block_on;
use crate::tenants_e2e::{
    TenantApi, account_credentials, create_tenant, start_serve, start_worker,
};

const ADMIN_KEY: &str = "weir_e2eSampleTestKey0123456789abcdefghijklmnopqrs";

const STREAMS: &str = r#"apiVersion: weir.dev/v1
kind: Stream
metadata: { name: ORDERS }
spec: { subjects: ["orders.>"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: OUT }
spec: { subjects: ["out.>"] }
"#;

/// big (amount > 100) → out (publish to out.<region>, with a header).
const PIPELINE: &str = r#"apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: orders }
spec:
  source: { stream: ORDERS, subjects: ["orders.created.>"], format: json }
  nodes:
    - id: big
      filter: "data.amount > 100"
      next: out
    - id: out
      publish: { subject: "out.{data.region}", headers: { X-Tier: big } }
"#;

#[test]
fn pipelines_are_tested_on_captured_pasted_and_jsonl_samples_per_tenant() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start_operator()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-sample-test-")
            .tempdir()?;
        let result = run(&nats, dir.path()).await;
        if result.is_err() {
            let _ = dir.keep();
        }
        result
    })
}

/// POST /pipelines:test as `api`; (status, body).
async fn test_call(api: &TenantApi, body: Value) -> Result<(u16, Value)> {
    api.call(Method::POST, "/pipelines:test", Some(body)).await
}

fn paths(result: &Value) -> Vec<Value> {
    result["results"]
        .as_array()
        .map(|rs| rs.iter().map(|r| r["path"].clone()).collect())
        .unwrap_or_default()
}

async fn run(nats: &NatsServer, dir: &Path) -> Result<()> {
    let (_serve, base) = start_serve(nats, dir, ADMIN_KEY).await?;
    let http = reqwest::Client::new();
    let api = |key: &str| TenantApi {
        base: base.clone(),
        key: key.to_string(),
        http: http.clone(),
    };
    let platform = api(ADMIN_KEY);
    let (_, alpha_key) = create_tenant(&platform, "alpha").await?;
    let (_, beta_key) = create_tenant(&platform, "beta").await?;
    let (alpha, beta) = (api(&alpha_key), api(&beta_key));
    let file = dir.join("streams.yaml");
    std::fs::write(&file, STREAMS)?;
    for key in [&alpha_key, &beta_key] {
        weir_cli_as(dir, &base, key, &["apply", "-f", file.to_str().unwrap()])?;
    }

    // Traffic in each tenant's own account: alpha a small order, a big one, an undecodable one
    // and one on a subject the source does not read; beta one big order of its own.
    let internal = jetstream::new(nats.client().await?);
    let alpha_js = jetstream::new(
        nats.client_with(Some(&account_credentials(&internal, "alpha").await?))
            .await?,
    );
    let beta_js = jetstream::new(
        nats.client_with(Some(&account_credentials(&internal, "beta").await?))
            .await?,
    );
    for (subject, body) in [
        ("orders.created.1", r#"{"amount": 50, "region": "us"}"#),
        ("orders.created.2", r#"{"amount": 500, "region": "eu"}"#),
        ("orders.created.3", r#"{"amount": "#),
        ("orders.cancelled.4", r#"{"amount": 900, "region": "eu"}"#),
    ] {
        alpha_js.publish(subject, body.into()).await?.await?;
    }
    beta_js
        .publish(
            "orders.created.9",
            r#"{"amount": 700, "region": "beta-land"}"#.into(),
        )
        .await?
        .await?;

    // Alpha captures its last messages on the source's subjects, oldest first.
    let r = test_call(
        &alpha,
        json!({"pipeline": PIPELINE, "capture": {"count": 10}}),
    )
    .await?;
    ensure!(r.0 == 200, "alpha capture: {r:?}");
    let res = &r.1["results"];
    ensure!(
        res.as_array().map(Vec::len) == Some(3),
        "three captured (the cancelled one is not on the source's subjects): {res:#}"
    );
    ensure!(
        paths(&r.1) == vec![json!(["big"]), json!(["big", "out"]), json!([])],
        "{res:#}"
    );
    ensure!(res[0]["outcome"] == "filtered" && res[0]["input"]["seq"] == 1);
    ensure!(res[1]["outcome"] == "outputs", "{:#}", res[1]);
    let out = &res[1]["outputs"][0];
    ensure!(
        out["node"] == "out"
            && out["subject"] == "out.eu"
            && out["headers"]["X-Tier"] == json!(["big"])
            && out["data"] == json!({"amount": 500, "region": "eu"}),
        "{out:#}"
    );
    ensure!(
        res[2]["outcome"] == "error"
            && res[2]["error"]["kind"] == "decode"
            && res[2]["error"]["node"] == "source"
            && res[2]["input"]["payload_b64"].is_string(),
        "{:#}",
        res[2]
    );
    // Capture takes only the last `count`.
    let r = test_call(
        &alpha,
        json!({"pipeline": PIPELINE, "capture": {"count": 1}}),
    )
    .await?;
    ensure!(
        r.0 == 200 && r.1["results"].as_array().map(Vec::len) == Some(1),
        "{r:?}"
    );
    ensure!(r.1["results"][0]["input"]["seq"] == 3, "{r:?}");

    // Beta captures from its own account only.
    let r = test_call(
        &beta,
        json!({"pipeline": PIPELINE, "capture": {"count": 10}}),
    )
    .await?;
    ensure!(r.0 == 200, "beta capture: {r:?}");
    ensure!(
        r.1["results"].as_array().map(Vec::len) == Some(1)
            && r.1["results"][0]["outputs"][0]["subject"] == "out.beta-land",
        "beta sees only its own message: {:#}",
        r.1
    );

    // Pasted and JSON-lines samples.
    let r = test_call(
        &alpha,
        json!({"pipeline": PIPELINE, "messages": [
            {"subject": "orders.created.x", "headers": {"H": "1"}, "data": {"amount": 101, "region": "apac"}},
            {"data": {"amount": 3}}
        ]}),
    )
    .await?;
    ensure!(r.0 == 200, "{r:?}");
    ensure!(
        r.1["results"][0]["outputs"][0]["subject"] == "out.apac"
            && r.1["results"][0]["outputs"][0]["headers"]["H"] == json!(["1"])
            && r.1["results"][1]["outcome"] == "filtered",
        "{:#}",
        r.1
    );
    let r = test_call(
        &alpha,
        json!({"pipeline": PIPELINE,
               "jsonl": "{\"data\": {\"amount\": 1000, \"region\": \"eu\"}}\n\n{\"payload_b64\": \"bm90IGpzb24=\"}\n"}),
    )
    .await?;
    ensure!(r.0 == 200, "{r:?}");
    ensure!(
        r.1["results"][0]["outcome"] == "outputs" && r.1["results"][1]["error"]["kind"] == "decode",
        "{:#}",
        r.1
    );

    // Bad input: problem+json with a stable code.
    async fn problem(api: &TenantApi, body: Value, status: u16, code: &str) -> Result<()> {
        let r = test_call(api, body).await?;
        ensure!(
            r.0 == status && r.1["code"] == code,
            "expected {status} {code}: {r:?}"
        );
        Ok(())
    }
    problem(
        &alpha,
        json!({"pipeline": PIPELINE, "jsonl": "{\"data\": 1}\nnot json\n"}),
        400,
        "malformed_jsonl",
    )
    .await?;
    problem(
        &alpha,
        json!({"pipeline": PIPELINE.replace("data.amount > 100", "data.amount >"), "messages": [{}]}),
        422,
        "invalid_spec",
    )
    .await?;
    problem(
        &alpha,
        json!({"pipeline": PIPELINE, "messages": [{}], "capture": {"count": 1}}),
        422,
        "invalid_value",
    )
    .await?;
    problem(
        &alpha,
        json!({"pipeline": PIPELINE, "capture": {"count": 0}}),
        422,
        "invalid_value",
    )
    .await?;
    let many: Vec<Value> = (0..101).map(|i| json!({"data": {"amount": i}})).collect();
    problem(
        &alpha,
        json!({"pipeline": PIPELINE, "messages": many}),
        422,
        "invalid_value",
    )
    .await?;
    problem(
        &alpha,
        json!({"pipeline": PIPELINE, "messages": [], "extra": 1}),
        400,
        "malformed_json",
    )
    .await?;
    // A stream the tenant did not declare is not there to capture from.
    problem(
        &alpha,
        json!({"pipeline": PIPELINE.replace("stream: ORDERS", "stream: SECRET"), "capture": {"count": 1}}),
        404,
        "not_found",
    )
    .await?;

    // A viewer may test, captures included; a role with `pipelines:read` alone may test pasted
    // samples but not capture; no credentials, no test.
    let viewer = api(&key_for_role(&alpha, "viewer@alpha.test", "viewer").await?);
    let r = test_call(
        &viewer,
        json!({"pipeline": PIPELINE, "capture": {"count": 2}}),
    )
    .await?;
    ensure!(
        r.0 == 200 && r.1["results"].as_array().map(Vec::len) == Some(2),
        "viewer: {r:?}"
    );
    alpha
        .ok(
            Method::POST,
            "/roles",
            Some(json!({"name": "pipeline-reader", "permissions": ["pipelines:read"]})),
        )
        .await?;
    let reader = api(&key_for_role(&alpha, "reader@alpha.test", "pipeline-reader").await?);
    let r = test_call(&reader, json!({"pipeline": PIPELINE, "messages": [{}]})).await?;
    ensure!(r.0 == 200, "pipelines:read may test pasted samples: {r:?}");
    problem(
        &reader,
        json!({"pipeline": PIPELINE, "capture": {"count": 1}}),
        403,
        "forbidden",
    )
    .await?;
    let anonymous = api("weir_not-a-key");
    let r = test_call(&anonymous, json!({"pipeline": PIPELINE, "messages": [{}]})).await?;
    ensure!(r.0 == 401, "{r:?}");

    deployed_counts(nats, dir, &base, &alpha_key, &alpha).await
}

/// Deploys the pipeline for alpha on a worker: the three inputs on its subjects give exact
/// per-node counts in the status (one undecodable at `source`, one filtered by `big`, one
/// published by `out`), as the test above predicted.
async fn deployed_counts(
    nats: &NatsServer,
    dir: &Path,
    base: &str,
    key: &str,
    alpha: &TenantApi,
) -> Result<()> {
    let mut worker = start_worker(nats, dir, "sample-test-w1")?;
    let file = dir.join("orders.yaml");
    std::fs::write(&file, PIPELINE)?;
    weir_cli_as(dir, base, key, &["apply", "-f", file.to_str().unwrap()])?;
    weir_cli_as(dir, base, key, &["deploy", "orders"])?;
    let expected = json!({
        "source": {"rows_in": 3, "ports": [2], "outputs": 0, "errors": 1},
        "big": {"rows_in": 2, "ports": [1], "outputs": 0, "errors": 0},
        "out": {"rows_in": 1, "ports": [0], "outputs": 1, "errors": 0},
    });
    let status = wait_for("exact per-node counts", Duration::from_secs(30), || async {
        let s = alpha.get("/pipelines/orders/status").await?;
        Ok(((s["nodes"] == expected).then_some(s.clone()), s.to_string()))
    })
    .await
    .map_err(|e| e.context(worker.log_text()))?;
    ensure!(
        status["totals"]["messages_in"] == 3 && status["totals"]["dead_lettered"] == 1,
        "{status:#}"
    );
    // They stay exact: nothing is counted twice across heartbeats.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = alpha.get("/pipelines/orders/status").await?;
    ensure!(again["nodes"] == expected, "{again:#}");
    worker.sigterm(Duration::from_secs(15))?;
    Ok(())
}

/// A user of the caller's tenant with `role`, and an API key of theirs.
async fn key_for_role(admin: &TenantApi, email: &str, role: &str) -> Result<String> {
    let user = admin
        .ok(
            Method::POST,
            "/users",
            Some(json!({"email": email, "role": role})),
        )
        .await?;
    let key = admin
        .ok(
            Method::POST,
            "/api-keys",
            Some(json!({"name": format!("{role}-key"), "user_id": user["id"]})),
        )
        .await?;
    Ok(key["key"].as_str().context("key")?.to_string())
}
