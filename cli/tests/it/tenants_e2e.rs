//! Tenants isolated by NATS itself, with separate processes (issue 13): a nats-server in
//! operator mode, `weir serve --nats-keys`, a `weir worker` on Weir's internal account. Two
//! tenants declare the same streams and run the same pipeline on identical traffic shapes;
//! each gets exactly its own outputs. Tenant beta then tries every API path into alpha's data
//! and alpha's data stays as it was; alpha's issued worker credentials, used by a raw client,
//! reach nothing of beta's.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{Value, json};
use weir_pipelines::fleet::{
    DEPLOYMENTS_BUCKET, Deployment, WORKERS_BUCKET, WorkerHeartbeat, deployment_key, worker_key,
};
use weir_testkit::nats::NatsServer;

use crate::fleet_api::{Proc, wait_for, wait_healthy, weir_cli_as};
use crate::fleet_support::{block_on, read_all, with_orders_and_out};

const ADMIN_KEY: &str = "weir_e2eTenantsTestKey0123456789abcdefghijklmnopqrs";

/// The same streams and pipeline for both tenants. The publish subject is templated on a
/// field the input controls (`owner`): beta's inputs all claim to be alpha's.
const PIPELINE: &str = r#"
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: orders }
spec:
  source:
    stream: ORDERS
    format: json
    consumer: { ack_wait: 5s, batch_size: 50 }
  nodes:
    - id: out
      publish: { subject: "out.{data.owner}" }
  errors:
    dlq: { stream: DLQ, subject: dlq.orders }
"#;

const ALPHA_N: u64 = 120;
const ALPHA_BAD: u64 = 3;
const BETA_N: u64 = 80;

/// A tenant's view of the API: (status, JSON body) of each call.
pub struct TenantApi {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl TenantApi {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(15));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (status, v) = self.call(method.clone(), path, body).await?;
        ensure!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        Ok(v)
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.ok(reqwest::Method::GET, path, None).await
    }

    /// Sends a pipeline file; returns (status, problem).
    async fn put_pipeline(&self, name: &str, yaml: &str) -> Result<(u16, Value)> {
        let res = self
            .http
            .put(format!("{}/api/v1/pipelines/{name}", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .timeout(Duration::from_secs(15))
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }
}

/// The credentials the control plane issued for `tenant`'s deployment of `pipeline`, as the
/// worker reads them (from `weir_deployments` in Weir's internal account).
pub async fn issued_credentials(
    internal: &jetstream::Context,
    tenant: &str,
    pipeline: &str,
) -> Result<String> {
    let kv = internal.get_key_value(DEPLOYMENTS_BUCKET).await?;
    let value = kv
        .get(deployment_key(tenant, pipeline))
        .await?
        .context("deployment record")?;
    let record: Deployment = serde_json::from_slice(&value)?;
    record
        .credentials
        .context("operator mode: the deployment carries credentials")
}

/// The credentials of the control plane's own user in `tenant`'s account (stable across
/// deploys; from `weir_accounts` in Weir's internal account), for a test's producer.
pub async fn account_credentials(internal: &jetstream::Context, tenant: &str) -> Result<String> {
    let kv = internal.get_key_value("weir_accounts").await?;
    let value = kv.get(tenant).await?.context("account record")?;
    let record: Value = serde_json::from_slice(&value)?;
    Ok(record["credentials"]
        .as_str()
        .context("credentials")?
        .to_string())
}

/// Starts `weir serve` in operator mode on `nats`, waits for `/healthz`.
pub async fn start_serve(nats: &NatsServer, dir: &Path, admin_key: &str) -> Result<(Proc, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let keys = nats.keys_dir().context("operator mode")?;
    let data_dir = dir.join("data");
    let serve = Proc::spawn(
        dir,
        "serve",
        &[
            "serve",
            "--nats",
            &nats.url(),
            "--nats-keys",
            keys.to_str().context("UTF-8")?,
            "--nats-revoke-after",
            "2s",
            "--addr",
            &addr,
            "--data-dir",
            data_dir.to_str().context("UTF-8")?,
        ],
        &[("WEIR_BOOTSTRAP_API_KEY", admin_key)],
    )?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    wait_healthy(&http, &base, &serve, Duration::from_secs(20)).await?;
    Ok((serve, base))
}

/// Starts a `weir worker` on Weir's internal account (credentials written under `dir`).
pub fn start_worker(nats: &NatsServer, dir: &Path, id: &str) -> Result<Proc> {
    let creds = dir.join("weir-internal.creds");
    std::fs::write(
        &creds,
        nats.operator_keys()
            .context("operator mode")?
            .internal_creds(),
    )?;
    Proc::spawn(
        dir,
        id,
        &[
            "worker",
            "--nats",
            &nats.url(),
            "--id",
            id,
            "--nats-creds",
            creds.to_str().context("UTF-8")?,
        ],
        &[],
    )
}

/// Creates tenant `name` with an admin; returns the admin's API.
pub async fn create_tenant(admin: &TenantApi, name: &str) -> Result<(String, String)> {
    let created = admin
        .ok(
            reqwest::Method::POST,
            "/tenants",
            Some(json!({"name": name, "admin": {"email": format!("admin@{name}.test")}})),
        )
        .await?;
    Ok((
        created["tenant"]["id"].as_str().context("id")?.to_string(),
        created["admin_api_key"]
            .as_str()
            .context("admin key")?
            .to_string(),
    ))
}

/// Publishes inputs `ids` from `from` (all naming alpha as `owner`), then `bad` undecodable ones.
async fn publish_inputs(
    js: &jetstream::Context,
    from: &str,
    ids: std::ops::Range<u64>,
    bad: u64,
) -> Result<()> {
    for i in ids {
        let body = json!({"id": i, "owner": "alpha", "from": from}).to_string();
        js.publish("orders.created", body.into()).await?.await?;
    }
    for i in 0..bad {
        js.publish("orders.created", format!("{{\"id\":{i},").into())
            .await?
            .await?;
    }
    Ok(())
}

/// The `probe.*` subjects not ending in `own` that `sub` receives within 800 ms.
async fn foreign_probes(sub: &mut async_nats::Subscriber, own: &str) -> Vec<String> {
    let mut foreign = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        if m.subject.starts_with("probe.") && !m.subject.ends_with(own) {
            foreign.push(m.subject.to_string());
        }
    }
    foreign
}

/// Waits until `stream` of `js` holds `n` messages; returns them.
async fn wait_count(js: &jetstream::Context, stream: &str, n: u64, what: &str) -> Result<()> {
    wait_for(what, Duration::from_secs(30), || async {
        let count = match js.get_stream(stream).await {
            Ok(mut s) => s.info().await?.state.messages,
            Err(_) => 0,
        };
        Ok(((count == n).then_some(()), format!("{count} messages")))
    })
    .await
}

/// Checks that `OUT` of `js` holds exactly one output per input id `0..n` sent by `from`.
async fn assert_outputs(js: &jetstream::Context, from: &str, n: u64) -> Result<()> {
    let out = read_all(js, "OUT").await?;
    let mut ids = BTreeSet::new();
    for m in &out {
        let v: Value = serde_json::from_slice(&m.payload)?;
        ensure!(v["from"] == from, "{from}'s OUT holds {v}");
        ensure!(
            ids.insert(v["id"].as_u64().context("id")?),
            "two outputs of {v}"
        );
    }
    ensure!(
        ids == (0..n).collect::<BTreeSet<_>>(),
        "{from}: {} outputs, ids 0..{n} expected",
        ids.len()
    );
    Ok(())
}

#[test]
fn tenants_are_isolated_across_processes_in_operator_mode() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start_operator()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-tenants-e2e-")
            .tempdir()?;
        let result = run(&nats, dir.path()).await;
        if result.is_err() {
            // Keep the logs of a failure.
            let _ = dir.keep();
        }
        result
    })
}

/// `weir serve`, one `weir worker` and tenants alpha and beta, each with the resources of
/// [`PIPELINE`] (with its streams) applied and its pipeline `orders` running.
struct TwoTenants {
    serve: Proc,
    worker: Proc,
    base: String,
    platform: TenantApi,
    alpha: TenantApi,
    beta: TenantApi,
    alpha_id: String,
    beta_id: String,
}

impl TwoTenants {
    async fn start(nats: &NatsServer, dir: &Path) -> Result<TwoTenants> {
        let (serve, base) = start_serve(nats, dir, ADMIN_KEY).await?;
        let worker = start_worker(nats, dir, "e2e-tenants-w1")?;
        let http = reqwest::Client::new();
        let api = |key: &str| TenantApi {
            base: base.clone(),
            key: key.to_string(),
            http: http.clone(),
        };
        let platform = api(ADMIN_KEY);
        let (alpha_id, alpha_key) = create_tenant(&platform, "alpha").await?;
        let (beta_id, beta_key) = create_tenant(&platform, "beta").await?;
        let file = dir.join("orders.yaml");
        std::fs::write(&file, with_orders_and_out(PIPELINE))?;
        for key in [&alpha_key, &beta_key] {
            let applied = weir_cli_as(dir, &base, key, &["apply", "-f", file.to_str().unwrap()])?;
            ensure!(
                applied.contains("stream/ORDERS created")
                    && applied.contains("pipeline/orders created"),
                "weir apply printed {applied:?}"
            );
            let deployed = weir_cli_as(dir, &base, key, &["deploy", "orders"])?;
            ensure!(
                deployed.contains("deployed"),
                "weir deploy printed {deployed:?}"
            );
        }
        let two = TwoTenants {
            alpha: api(&alpha_key),
            beta: api(&beta_key),
            platform,
            serve,
            worker,
            base,
            alpha_id,
            beta_id,
        };
        for api in [&two.alpha, &two.beta] {
            two.wait_running(api).await?;
        }
        Ok(two)
    }

    /// Waits until the tenant's `orders` runs on the worker.
    async fn wait_running(&self, api: &TenantApi) -> Result<Value> {
        wait_for("the pipeline running", Duration::from_secs(30), || async {
            let s = api.get("/pipelines/orders/status").await?;
            Ok((
                (s["running_workers"] == 1).then_some(s.clone()),
                s.to_string(),
            ))
        })
        .await
        .map_err(|e| e.context(self.worker.log_text()))
    }

    /// SIGTERM to the worker and the control plane; both exit 0.
    fn stop(mut self) -> Result<()> {
        let status = self.worker.sigterm(Duration::from_secs(15))?;
        ensure!(
            status.success(),
            "worker: {status}; {}",
            self.worker.log_text()
        );
        let status = self.serve.sigterm(Duration::from_secs(10))?;
        ensure!(status.success(), "serve: {status}");
        Ok(())
    }
}

async fn run(nats: &NatsServer, dir: &Path) -> Result<()> {
    let two = TwoTenants::start(nats, dir).await?;
    let (alpha, beta) = (&two.alpha, &two.beta);

    // 2. Traffic on both, through each tenant's issued credentials (as a producer would).
    let internal = jetstream::new(nats.client().await?);
    let alpha_creds = issued_credentials(&internal, "alpha", "orders").await?;
    let beta_creds = issued_credentials(&internal, "beta", "orders").await?;
    let alpha_raw = nats.client_with(Some(&alpha_creds)).await?;
    let beta_raw = nats.client_with(Some(&beta_creds)).await?;
    let alpha_js = jetstream::new(alpha_raw.clone());
    let beta_js = jetstream::new(beta_raw.clone());
    publish_inputs(&alpha_js, "alpha", 0..ALPHA_N, ALPHA_BAD).await?;
    publish_inputs(&beta_js, "beta", 0..BETA_N, 0).await?;
    wait_count(&alpha_js, "OUT", ALPHA_N, "alpha's outputs").await?;
    wait_count(&beta_js, "OUT", BETA_N, "beta's outputs").await?;
    wait_count(&alpha_js, "DLQ", ALPHA_BAD, "alpha's dead letters").await?;
    // Exact outputs for each; beta's inputs that name alpha in the templated subject stayed
    // in beta's account.
    assert_outputs(&alpha_js, "alpha", ALPHA_N).await?;
    assert_outputs(&beta_js, "beta", BETA_N).await?;
    let beta_out = read_all(&beta_js, "OUT").await?;
    ensure!(beta_out.len() as u64 == BETA_N);
    let alpha_dlq = alpha.get("/pipelines/orders/dlq").await?;
    ensure!(alpha_dlq["total"] == ALPHA_BAD, "{alpha_dlq:#}");
    let alpha_dlq_seqs: Vec<u64> = alpha_dlq["entries"]
        .as_array()
        .context("entries")?
        .iter()
        .map(|e| e["seq"].as_u64().unwrap_or(0))
        .collect();
    let alpha_first = alpha.get("/nats/streams/ORDERS/messages/1").await?;
    ensure!(
        alpha_first["payload_utf8"]
            .as_str()
            .unwrap_or("")
            .contains("\"from\":\"alpha\""),
        "{alpha_first}"
    );
    alpha
        .ok(
            reqwest::Method::POST,
            "/nats/kv",
            Some(json!({"name": "alpha_sessions"})),
        )
        .await?;
    alpha
        .ok(
            reqwest::Method::PUT,
            "/nats/kv/alpha_sessions/keys/k",
            Some(json!({"value": "alpha-secret"})),
        )
        .await?;

    // 3. Beta tries every API path into alpha's data.
    use reqwest::Method;
    // Views show beta's own streams only.
    let s = beta.get("/nats/streams/ORDERS").await?;
    ensure!(s["messages"] == BETA_N, "beta's ORDERS: {s}");
    let (status, _) = beta
        .call(
            Method::GET,
            &format!("/nats/streams/ORDERS/messages/{}", BETA_N + 1),
            None,
        )
        .await?;
    ensure!(
        status == 404,
        "alpha's later sequences are not beta's: {status}"
    );
    let first = beta
        .get("/nats/streams/ORDERS/messages?start_time=1970-01-01T00:00:00Z")
        .await?;
    ensure!(
        first["payload_utf8"]
            .as_str()
            .unwrap_or("")
            .contains("\"from\":\"beta\""),
        "beta's first message by time is its own: {first}"
    );
    let consumers = beta.get("/nats/streams/ORDERS/consumers").await?;
    ensure!(
        !consumers.to_string().contains("weir_alpha"),
        "beta sees alpha's consumer: {consumers}"
    );
    let streams = beta.get("/nats/streams").await?;
    ensure!(
        !streams.to_string().contains("sessions") && !streams.to_string().contains("weir_"),
        "beta lists alpha's or Weir's buckets: {streams}"
    );
    for name in [
        "KV_alpha_sessions",
        "KV_weir_deployments",
        "KV_weir_accounts",
        "DLQ",
    ] {
        let (status, v) = beta
            .call(
                Method::GET,
                &format!("/nats/streams/{name}/messages/1"),
                None,
            )
            .await?;
        ensure!(
            status == 404 || status == 422,
            "beta reads {name}/1: {status} {v}"
        );
    }
    // Key-value buckets: alpha's is not beta's to read, write or delete.
    let buckets = beta.get("/nats/kv").await?;
    ensure!(
        !buckets.to_string().contains("alpha_sessions"),
        "beta lists alpha's bucket: {buckets}"
    );
    for (method, path, body) in [
        (Method::GET, "/nats/kv/alpha_sessions/keys", None),
        (Method::GET, "/nats/kv/alpha_sessions/keys/k", None),
        (Method::GET, "/nats/kv/alpha_sessions/keys/k/history", None),
        (
            Method::PUT,
            "/nats/kv/alpha_sessions/keys/k",
            Some(json!({"value": "beta-overwrite"})),
        ),
        (Method::DELETE, "/nats/kv/alpha_sessions/keys/k", None),
        (Method::DELETE, "/nats/kv/alpha_sessions", None),
        (Method::GET, "/nats/kv/weir_deployments/keys", None),
        (
            Method::POST,
            "/nats/kv",
            Some(json!({"name": "alpha_sessions"})),
        ),
    ] {
        let (status, v) = beta.call(method.clone(), path, body).await?;
        ensure!(
            [403, 404, 422].contains(&status),
            "beta {method} {path}: {status} {v}"
        );
    }
    // Publish: into beta's own stream, or refused.
    let p = beta
        .ok(
            Method::POST,
            "/nats/publish",
            Some(json!({"subject": "out.alpha", "payload": "{\"from\":\"beta-publish\"}"})),
        )
        .await?;
    ensure!(p["stream"] == "OUT", "{p}");
    for subject in [
        "$JS.API.STREAM.PURGE.ORDERS",
        "$KV.alpha_sessions.k",
        "$KV.weir_deployments.alpha.orders",
        ">",
    ] {
        let (status, _) = beta
            .call(
                Method::POST,
                "/nats/publish",
                Some(json!({"subject": subject, "payload": "x"})),
            )
            .await?;
        ensure!(status == 422, "publish to {subject}: {status}");
    }
    // DLQ: beta's pipeline of the same name has its own, empty DLQ.
    let d = beta.get("/pipelines/orders/dlq").await?;
    ensure!(d["total"] == 0, "beta sees alpha's dead letters: {d}");
    for seq in &alpha_dlq_seqs {
        let (status, _) = beta
            .call(Method::GET, &format!("/pipelines/orders/dlq/{seq}"), None)
            .await?;
        ensure!(
            status == 404,
            "beta shows alpha's dead letter {seq}: {status}"
        );
    }
    let (status, v) = beta
        .call(
            Method::POST,
            "/pipelines/orders/dlq/redrive",
            Some(json!({"seqs": alpha_dlq_seqs})),
        )
        .await?;
    ensure!(
        status == 404 || v["redriven"].as_array().is_some_and(Vec::is_empty),
        "beta redrives alpha's dead letters: {status} {v}"
    );
    let (status, v) = beta
        .call(
            Method::POST,
            "/pipelines/orders/dlq/redrive",
            Some(json!({"all": true})),
        )
        .await?;
    ensure!(
        status == 404 || v["redriven"].as_array().is_some_and(Vec::is_empty),
        "beta redrives all: {status} {v}"
    );
    let (status, v) = beta
        .call(Method::DELETE, "/pipelines/orders/dlq", None)
        .await?;
    ensure!(
        status == 404 || v["purged"] == 0,
        "beta purges alpha's dead letters: {status} {v}"
    );
    // Pipelines aimed at alpha's data or NATS internals are refused where they enter.
    let thief = |source: &str, publish: &str, dlq: &str| {
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: thief }}\nspec:\n  \
             source: {source}\n  nodes:\n    - id: out\n      publish: {{ subject: \"{publish}\" }}\n  \
             errors:\n    dlq: {dlq}\n"
        )
    };
    let ok_dlq = "{ stream: DLQ, subject: dlq.thief }";
    for (what, yaml) in [
        (
            "KV source",
            thief("{ stream: KV_alpha_sessions }", "out.x", ok_dlq),
        ),
        (
            "$JS source subject",
            thief(
                "{ stream: ORDERS, subjects: [\"$JS.API.>\"] }",
                "out.x",
                ok_dlq,
            ),
        ),
        (
            "root wildcard source",
            thief("{ stream: ORDERS, subjects: [\">\"] }", "out.x", ok_dlq),
        ),
        (
            "templated first token",
            thief("{ stream: ORDERS }", "{data.ns}.orders", ok_dlq),
        ),
        (
            "$KV publish",
            thief("{ stream: ORDERS }", "$KV.sessions.{data.k}", ok_dlq),
        ),
        (
            "$JS publish",
            thief("{ stream: ORDERS }", "$JS.API.STREAM.PURGE.ORDERS", ok_dlq),
        ),
        (
            "$JS DLQ subject",
            thief(
                "{ stream: ORDERS }",
                "out.x",
                "{ stream: DLQ, subject: \"$JS.API.STREAM.DELETE.ORDERS\" }",
            ),
        ),
        (
            "KV DLQ stream",
            thief(
                "{ stream: ORDERS }",
                "out.x",
                "{ stream: KV_alpha_sessions, subject: dlq.thief }",
            ),
        ),
    ] {
        let (status, v) = beta.put_pipeline("thief", &yaml).await?;
        ensure!(status == 422, "{what}: {status} {v}");
    }
    // Beta's stream views and purge act on beta's own streams.
    let purged = beta
        .ok(Method::POST, "/nats/streams/ORDERS/purge", Some(json!({})))
        .await?;
    ensure!(
        purged["purged"] == BETA_N,
        "beta purges its own ORDERS: {purged}"
    );

    // 4. Alpha's data is unchanged: counts and content.
    let s = alpha.get("/nats/streams/ORDERS").await?;
    ensure!(s["messages"] == ALPHA_N + ALPHA_BAD, "alpha's ORDERS: {s}");
    ensure!(alpha.get("/nats/streams/ORDERS/messages/1").await? == alpha_first);
    assert_outputs(&alpha_js, "alpha", ALPHA_N).await?;
    let d = alpha.get("/pipelines/orders/dlq").await?;
    ensure!(
        d["total"] == ALPHA_BAD && d["entries"] == alpha_dlq["entries"],
        "{d:#}"
    );
    let v = alpha.get("/nats/kv/alpha_sessions/keys/k").await?;
    ensure!(v["value_utf8"] == "alpha-secret", "alpha's KV value: {v}");
    let h = alpha.get("/nats/kv/alpha_sessions/keys/k/history").await?;
    ensure!(
        h.as_array().map(Vec::len) == Some(1),
        "one revision of alpha's key: {h}"
    );

    // 5. Alpha's issued worker credentials, used by a raw client, reach nothing of beta's.
    let mut alpha_sub = alpha_raw.subscribe(">").await?;
    alpha_raw.flush().await?;
    let mut beta_sub = beta_raw.subscribe(">").await?;
    beta_raw.flush().await?;
    beta_raw.publish("probe.beta", "beta".into()).await?;
    alpha_raw.publish("probe.alpha", "alpha".into()).await?;
    beta_raw.flush().await?;
    alpha_raw.flush().await?;
    let foreign = foreign_probes(&mut alpha_sub, "alpha").await;
    ensure!(foreign.is_empty(), "alpha's connection saw {foreign:?}");
    let foreign = foreign_probes(&mut beta_sub, "beta").await;
    ensure!(foreign.is_empty(), "beta's connection saw {foreign:?}");
    // Publishing to beta's stream subjects lands in alpha's own account.
    let before = beta_js
        .get_stream("OUT")
        .await?
        .info()
        .await?
        .state
        .messages;
    alpha_js
        .publish("out.beta", "{\"from\":\"alpha-raw\"}".into())
        .await?
        .await?;
    let after = beta_js
        .get_stream("OUT")
        .await?
        .info()
        .await?
        .state
        .messages;
    ensure!(before == after, "alpha's publish reached beta's OUT");
    ensure!(
        alpha_js.get_key_value(DEPLOYMENTS_BUCKET).await.is_err(),
        "alpha's credentials reach Weir's deployment records"
    );

    two.stop()
}

#[test]
fn redeploy_rotates_credentials_and_deleting_a_tenant_stops_its_pipelines() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start_operator()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-tenants-rotate-")
            .tempdir()?;
        let result = rotate_and_delete(&nats, dir.path()).await;
        if result.is_err() {
            let _ = dir.keep();
        }
        result
    })
}

/// Waits until connecting with `creds` is refused by the server.
async fn wait_refused(nats: &NatsServer, creds: &str, what: &str) -> Result<()> {
    wait_for(what, Duration::from_secs(10), || async {
        Ok(match nats.client_with(Some(creds)).await {
            Ok(c) => {
                // Connected: the server may still refuse the first request.
                let refused = c.flush().await.is_err();
                (refused.then_some(()), "still accepted".to_string())
            }
            Err(e) => (Some(()), format!("{e:#}")),
        })
    })
    .await
}

async fn rotate_and_delete(nats: &NatsServer, dir: &Path) -> Result<()> {
    let two = TwoTenants::start(nats, dir).await?;
    let internal = jetstream::new(nats.client().await?);
    let first = issued_credentials(&internal, "alpha", "orders").await?;
    let old_conn = nats.client_with(Some(&first)).await?;
    let old_js = jetstream::new(old_conn.clone());
    publish_inputs(&old_js, "alpha", 0..50, 0).await?;
    wait_count(&old_js, "OUT", 50, "alpha's first outputs").await?;

    // A redeploy issues fresh credentials; the worker moves to them; the old ones are revoked.
    let deployed = weir_cli_as(dir, &two.base, &two.alpha.key, &["deploy", "orders"])?;
    ensure!(deployed.contains("deployed"), "{deployed}");
    let second = issued_credentials(&internal, "alpha", "orders").await?;
    ensure!(second != first, "a redeploy issues new credentials");
    wait_refused(nats, &first, "the old credentials refused").await?;
    wait_for(
        "the old connection closed by the server",
        Duration::from_secs(10),
        || async {
            let state = old_conn.connection_state();
            Ok((
                (state != async_nats::connection::State::Connected).then_some(()),
                format!("{state:?}"),
            ))
        },
    )
    .await?;
    two.wait_running(&two.alpha).await?;
    let new_js = jetstream::new(nats.client_with(Some(&second)).await?);
    publish_inputs(&new_js, "alpha", 50..100, 0).await?;
    wait_count(&new_js, "OUT", 100, "alpha's outputs after the redeploy")
        .await
        .map_err(|e| e.context(two.worker.log_text()))?;
    assert_outputs(&new_js, "alpha", 100).await?;

    // Deleting beta while its pipeline runs: the pipeline stops, the account is gone, alpha
    // carries on.
    let beta_creds = issued_credentials(&internal, "beta", "orders").await?;
    let (status, v) = two
        .platform
        .call(
            reqwest::Method::DELETE,
            &format!("/tenants/{}", two.beta_id),
            None,
        )
        .await?;
    ensure!(status == 204, "delete beta: {status} {v}");
    let workers = internal.get_key_value(WORKERS_BUCKET).await?;
    wait_for(
        "beta's pipeline gone from the worker",
        Duration::from_secs(20),
        || async {
            let beat: WorkerHeartbeat = serde_json::from_slice(
                &workers
                    .get(worker_key("e2e-tenants-w1"))
                    .await?
                    .context("heartbeat")?,
            )?;
            let tenants: Vec<String> = beat.pipelines.iter().map(|p| p.tenant.clone()).collect();
            Ok((
                (!tenants.contains(&"beta".to_string()) && tenants.contains(&"alpha".to_string()))
                    .then_some(()),
                format!("{tenants:?}"),
            ))
        },
    )
    .await?;
    wait_refused(nats, &beta_creds, "beta's account gone").await?;
    ensure!(
        internal
            .get_key_value(DEPLOYMENTS_BUCKET)
            .await?
            .get(deployment_key("beta", "orders"))
            .await?
            .is_none(),
        "beta's deployment record removed"
    );
    let (status, _) = two
        .beta
        .call(reqwest::Method::GET, "/pipelines", None)
        .await?;
    ensure!(status == 401, "beta's key after deletion: {status}");
    publish_inputs(&new_js, "alpha", 100..120, 0).await?;
    wait_count(&new_js, "OUT", 120, "alpha's outputs after beta's deletion").await?;
    assert_outputs(&new_js, "alpha", 120).await?;

    // Undeploying revokes the pipeline's credentials too.
    let undeployed = weir_cli_as(dir, &two.base, &two.alpha.key, &["undeploy", "orders"])?;
    ensure!(undeployed.contains("undeployed"), "{undeployed}");
    wait_refused(
        nats,
        &second,
        "the undeployed pipeline's credentials refused",
    )
    .await?;
    two.stop()
}

#[test]
fn a_storage_quota_holds_outputs_back_until_raised() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start_operator()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-tenants-quota-")
            .tempdir()?;
        let result = storage_quota(&nats, dir.path()).await;
        if result.is_err() {
            let _ = dir.keep();
        }
        result
    })
}

/// Messages in `stream` of `js` (0 when it does not exist).
async fn count(js: &jetstream::Context, stream: &str) -> Result<u64> {
    Ok(match js.get_stream(stream).await {
        Ok(mut s) => s.info().await?.state.messages,
        Err(_) => 0,
    })
}

async fn storage_quota(nats: &NatsServer, dir: &Path) -> Result<()> {
    const N: u64 = 100;
    let two = TwoTenants::start(nats, dir).await?;
    let internal = jetstream::new(nats.client().await?);
    // Inputs stored while the pipeline is paused.
    let paused = weir_cli_as(dir, &two.base, &two.alpha.key, &["pause", "orders"])?;
    ensure!(paused.contains("paused"), "{paused}");
    let creds = account_credentials(&internal, "alpha").await?;
    let js = jetstream::new(nats.client_with(Some(&creds)).await?);
    publish_inputs(&js, "alpha", 0..N, 0)
        .await
        .context("publishing while paused")?;
    js.create_stream(jetstream::stream::Config {
        name: "PROBE".into(),
        subjects: vec!["probe.>".into()],
        ..Default::default()
    })
    .await
    .context("creating PROBE")?;

    // A storage quota just above what the account stores now.
    let usage = two.alpha.get("/quotas/usage").await?;
    let stored = usage["quotas"]
        .as_array()
        .context("quotas")?
        .iter()
        .find(|q| q["name"] == "max_storage_bytes")
        .and_then(|q| q["usage"].as_i64())
        .with_context(|| format!("storage usage in {usage}"))?;
    ensure!(stored > 0, "{usage}");
    let quotas = |bytes: Option<i64>| json!({"max_storage_bytes": bytes, "max_streams": 50});
    two.platform
        .ok(
            reqwest::Method::PUT,
            &format!("/tenants/{}/quotas", two.alpha_id),
            Some(quotas(Some(stored + 1_000))),
        )
        .await?;
    // The server refuses what does not fit.
    wait_for(
        "a publish past the account's storage refused",
        Duration::from_secs(10),
        || async {
            let refused = match js.publish("probe.big", vec![b'x'; 2_000].into()).await {
                Ok(ack) => ack.await.is_err(),
                Err(_) => true,
            };
            Ok((refused.then_some(()), "accepted".to_string()))
        },
    )
    .await?;

    // Resumed: some outputs fit, the rest wait (not acked, not dead-lettered).
    let resumed = weir_cli_as(dir, &two.base, &two.alpha.key, &["resume", "orders"])?;
    ensure!(
        resumed.contains("running") || resumed.contains("resumed"),
        "{resumed}"
    );
    two.wait_running(&two.alpha).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = count(&js, "OUT").await?;
    eprintln!("storage quota: {held} of {N} outputs stored before raising it");
    ensure!(held < N, "{held} outputs stored past the quota");
    ensure!(count(&js, "DLQ").await? == 0, "outputs dead-lettered");
    let info = js
        .get_stream("ORDERS")
        .await?
        .consumer_info("weir_alpha_orders")
        .await
        .context("consumer info")?;
    ensure!(
        info.num_pending + info.num_ack_pending as u64 > 0,
        "the held inputs are not acked: {info:?}"
    );
    // Beta is not held back.
    let beta_js = jetstream::new(
        nats.client_with(Some(
            &issued_credentials(&internal, "beta", "orders").await?,
        ))
        .await?,
    );
    publish_inputs(&beta_js, "beta", 0..10, 0)
        .await
        .context("beta's inputs")?;
    wait_count(&beta_js, "OUT", 10, "beta's outputs").await?;

    // Raised: every output arrives, exactly once, none dead-lettered.
    two.platform
        .ok(
            reqwest::Method::PUT,
            &format!("/tenants/{}/quotas", two.alpha_id),
            Some(quotas(None)),
        )
        .await?;
    wait_count(&js, "OUT", N, "alpha's outputs after raising the quota")
        .await
        .map_err(|e| e.context(two.worker.log_text()))?;
    assert_outputs(&js, "alpha", N).await?;
    ensure!(count(&js, "DLQ").await? == 0, "outputs dead-lettered");
    two.stop()
}

/// A windowed pipeline in 4 keyed partitions, applied and deployed by tenant alpha.
const PARTITIONED: &str = r#"
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: READINGS }
spec: { subjects: ["readings.in"] }
---
apiVersion: weir.dev/v1
kind: Stream
metadata: { name: SUMS }
spec: { subjects: ["sums.>"] }
---
apiVersion: weir.dev/v1
kind: Pipeline
metadata: { name: sums }
spec:
  source: { stream: READINGS, consumer: { ack_wait: 5s } }
  nodes:
    - id: per-second
      window:
        kind: tumbling
        size: 1s
        time: data.ts
        group_by: [data.k]
        aggregates: { n: "count(*)", total: "sum(data.v)" }
        late: late
      next: out
    - id: out
      publish: { subject: "sums.{data.k}" }
    - { id: late, drop: {} }
  execution: { partitions: 4, checkpoint: { interval: 200ms } }
"#;

#[test]
fn a_partitioned_window_runs_inside_its_tenant_account() -> Result<()> {
    block_on(async {
        let nats = NatsServer::start_operator()?;
        let dir = tempfile::Builder::new()
            .prefix("weir-partitions-e2e-")
            .tempdir()?;
        let result = partitioned(&nats, dir.path()).await;
        if result.is_err() {
            let _ = dir.keep();
        }
        result
    })
}

async fn partitioned(nats: &NatsServer, dir: &Path) -> Result<()> {
    let two = TwoTenants::start(nats, dir).await?;
    let file = dir.join("sums.yaml");
    std::fs::write(&file, PARTITIONED)?;
    let key = &two.alpha.key;
    weir_cli_as(
        dir,
        &two.base,
        key,
        &["apply", "-f", file.to_str().unwrap()],
    )?;
    let deployed = weir_cli_as(dir, &two.base, key, &["deploy", "sums"])?;
    ensure!(deployed.contains("deployed"), "{deployed}");
    let status = wait_for(
        "the four partitions owned",
        Duration::from_secs(30),
        || async {
            let s = two.alpha.get("/pipelines/sums/status").await?;
            let owned = s["operator_state"]["partitions"]
                .as_array()
                .map_or(0, Vec::len);
            Ok(((owned == 4).then_some(s.clone()), s.to_string()))
        },
    )
    .await
    .map_err(|e| e.context(two.worker.log_text()))?;
    ensure!(status["running_workers"] == 1, "{status:#}");

    // Ten readings per key in the first second, then one per key past it: four sums.
    let internal = jetstream::new(nats.client().await?);
    let creds = issued_credentials(&internal, "alpha", "sums").await?;
    let alpha_js = jetstream::new(nats.client_with(Some(&creds)).await?);
    const T0: u64 = 1_800_000_000_000;
    let publish = |i: u64| {
        let ts = if i < 40 { T0 + i * 10 } else { T0 + 5_000 };
        let body = json!({"k": format!("k{}", i % 4), "v": i, "ts": ts}).to_string();
        let js = alpha_js.clone();
        async move { anyhow::Ok(js.publish("readings.in", body.into()).await?.await?) }
    };
    for i in 0..40u64 {
        publish(i).await?;
    }
    // The routing stage keeps no order of its own across a retried batch: the readings past
    // the window go once every reading is routed, so none of them can arrive late.
    let readings = alpha_js.get_stream("READINGS").await?;
    wait_for("the readings routed", Duration::from_secs(30), || async {
        let info = readings.consumer_info("weir_alpha_sums").await?;
        let routed = info.num_pending == 0 && info.num_ack_pending == 0;
        Ok((routed.then_some(()), format!("{info:?}")))
    })
    .await?;
    for i in 40..44u64 {
        publish(i).await?;
    }
    wait_count(&alpha_js, "SUMS", 4, "the four sums").await?;
    let mut sums: Vec<(String, u64, u64)> = read_all(&alpha_js, "SUMS")
        .await?
        .iter()
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap_or_default();
            let k = v["k"].as_str().unwrap_or("?").to_string();
            (
                k,
                v["n"].as_u64().unwrap_or(0),
                v["total"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    sums.sort();
    let expected: Vec<(String, u64, u64)> = (0..4u64)
        .map(|k| (format!("k{k}"), 10, (0..40).filter(|i| i % 4 == k).sum()))
        .collect();
    ensure!(sums == expected, "{sums:?}");

    // The partition stream lives in alpha's account; beta sees neither it nor the status.
    let mut names = alpha_js.stream_names();
    let mut partition_streams = Vec::new();
    while let Some(name) = names.next().await {
        let name = name?;
        if name.starts_with("WEIR_PART_") {
            partition_streams.push(name);
        }
    }
    ensure!(partition_streams.len() == 1, "{partition_streams:?}");
    let (code, _) = two
        .beta
        .call(reqwest::Method::GET, "/pipelines/sums/status", None)
        .await?;
    ensure!(code == 404, "beta reads alpha's partitioned status: {code}");
    let beta_creds = issued_credentials(&internal, "beta", "orders").await?;
    let beta_js = jetstream::new(nats.client_with(Some(&beta_creds)).await?);
    ensure!(
        beta_js.get_stream(&partition_streams[0]).await.is_err(),
        "beta's account has alpha's partition stream"
    );
    two.stop()
}
