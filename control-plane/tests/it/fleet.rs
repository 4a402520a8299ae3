//! Deployments and status against a real nats-server: deploy writes the KV record workers
//! watch, pause/resume/rollback change it, undeploy deletes it; status aggregates hand-written
//! heartbeats (fresh and stale workers); the SSE feed pushes a change; other tenants get 404,
//! viewers 403, and a server without NATS answers 503 `nats_unavailable`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, header};
use futures::StreamExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use weir_pipelines::fleet::{
    Deployment, DesiredState, PipelineCounters, PipelineReport, WorkerHeartbeat, now_ms, worker_key,
};

use crate::support::{ADMIN_KEY, TestApp, pipeline_yaml};

async fn kv_deployment(t: &TestApp, key: &str) -> Option<Deployment> {
    t.nats()
        .deployments()
        .get(key)
        .await
        .unwrap()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn report(tenant: &str, pipeline: &str, version: i64, messages_in: u64) -> PipelineReport {
    PipelineReport {
        tenant: tenant.into(),
        pipeline: pipeline.into(),
        version,
        state: "running".into(),
        counters: PipelineCounters {
            messages_in,
            deliveries: messages_in + 5,
            messages_out: messages_in / 2,
            filtered: messages_in / 2,
            dead_lettered: 1,
            retried: 0,
            ..Default::default()
        },
        lag: 7,
        ack_pending: 3,
        last_error: None,
        last_dead_letter: None,
    }
}

async fn beat(t: &TestApp, worker: &str, sent_at_ms: u64, pipelines: Vec<PipelineReport>) {
    let hb = WorkerHeartbeat {
        worker_id: worker.into(),
        host: format!("{worker}.host"),
        started_at_ms: sent_at_ms.saturating_sub(60_000),
        sent_at_ms,
        pipelines,
    };
    t.nats()
        .workers()
        .put(worker_key(worker), serde_json::to_vec(&hb).unwrap().into())
        .await
        .unwrap();
}

/// A tenant `acme` with pipeline `orders` in two versions (parallelism 2); returns its admin key.
async fn acme_with_orders(t: &TestApp) -> (String, String) {
    let (id, key) = t.tenant("acme").await;
    // Its source stream: deploy refuses a pipeline whose source stream does not exist.
    t.orders_pipeline(&key, "orders", "data.amount > 1").await;
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/orders",
        &key,
        &pipeline_yaml("orders", "data.amount > 2", 2),
    )
    .await
    .ok();
    (id, key)
}

#[tokio::test]
async fn deploy_pause_resume_rollback_undeploy_write_the_kv_record() {
    deploy_scenario(&TestApp::sqlite_nats().await).await;
}

#[tokio::test]
async fn deployments_on_postgres() {
    deploy_scenario(&TestApp::postgres_nats().await).await;
}

async fn deploy_scenario(t: &TestApp) {
    let (acme, key) = acme_with_orders(t).await;

    // A pipeline whose source stream exists nowhere cannot run: refused, nothing written.
    let lost = pipeline_yaml("lost", "true", 1).replace("stream: ORDERS", "stream: NOPE");
    t.yaml(Method::POST, "/api/v1/pipelines", &key, &lost)
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/lost/deploy",
            &key,
            json!({}),
        )
        .await
        .problem(422, "invalid_spec");
    assert_eq!(p["diagnostics"][0]["code"], "source-stream-missing", "{p}");
    assert!(kv_deployment(t, "acme.lost").await.is_none());
    // A source filter outside the stream as it exists on NATS (created there, not declared).
    t.nats()
        .js()
        .create_stream(async_nats::jetstream::stream::Config {
            name: "SENSORS".into(),
            subjects: vec!["sensors.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let outside = pipeline_yaml("outside", "true", 1)
        .replace("stream: ORDERS", "stream: SENSORS")
        .replace("orders.created.>", "sensor.>");
    t.yaml(Method::POST, "/api/v1/pipelines", &key, &outside)
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/outside/deploy",
            &key,
            json!({}),
        )
        .await
        .problem(422, "invalid_spec");
    assert_eq!(p["diagnostics"][0]["code"], "subject-outside-stream", "{p}");
    // Deployed on its stream, which then disappears: pausing still works, resuming says why
    // it cannot.
    let gone = pipeline_yaml("gone", "true", 1)
        .replace("stream: ORDERS", "stream: SENSORS")
        .replace("orders.created.>", "sensors.>");
    t.yaml(Method::POST, "/api/v1/pipelines", &key, &gone)
        .await
        .ok();
    t.json(
        Method::POST,
        "/api/v1/pipelines/gone/deploy",
        &key,
        json!({}),
    )
    .await
    .ok();
    t.nats().js().delete_stream("SENSORS").await.unwrap();
    t.call(
        Method::POST,
        "/api/v1/pipelines/gone/pause",
        Some(&key),
        None,
    )
    .await
    .ok();
    t.call(
        Method::POST,
        "/api/v1/pipelines/gone/resume",
        Some(&key),
        None,
    )
    .await
    .problem(422, "invalid_spec");
    t.delete("/api/v1/pipelines/gone/deployment", &key)
        .await
        .ok();

    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/deploy",
            &key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let d = r.json();
    assert_eq!(d["version"], 2);
    assert_eq!(d["parallelism"], 2);
    assert_eq!(d["state"], "running");
    assert_eq!(d["key"], "acme.orders");

    let rec = kv_deployment(t, "acme.orders").await.expect("KV record");
    assert_eq!(rec.tenant, "acme");
    assert_eq!(rec.pipeline, "orders");
    assert_eq!(rec.version, 2);
    assert_eq!(rec.parallelism, 2);
    assert_eq!(rec.state, DesiredState::Running);
    assert_eq!(rec.updated_by, "admin@acme.test");
    assert_eq!(rec.spec["metadata"]["name"], "orders");
    assert_eq!(rec.spec["spec"]["nodes"][0]["filter"], "data.amount > 2");
    // The tenant's data-plane quota travels with the record.
    assert_eq!(rec.quota.max_message_bytes, Some(1024 * 1024));
    assert_eq!(rec.quota.max_ingest_rate, Some(10_000));

    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/pause",
        Some(&key),
        None,
    )
    .await
    .ok();
    assert_eq!(
        kv_deployment(t, "acme.orders").await.unwrap().state,
        DesiredState::Paused
    );
    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/resume",
        Some(&key),
        None,
    )
    .await
    .ok();
    assert_eq!(
        kv_deployment(t, "acme.orders").await.unwrap().state,
        DesiredState::Running
    );

    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/rollback",
            &key,
            json!({"version": 1}),
        )
        .await
        .ok();
    assert_eq!(r["version"], 1);
    let rec = kv_deployment(t, "acme.orders").await.unwrap();
    assert_eq!(rec.version, 1);
    assert_eq!(rec.spec["spec"]["nodes"][0]["filter"], "data.amount > 1");
    assert_eq!(rec.parallelism, 2);
    let got = t
        .get("/api/v1/pipelines/orders/deployment", &key)
        .await
        .ok();
    assert_eq!(got["version"], 1);
    assert_eq!(got["state"], "running");

    // Bad values and unknown versions.
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/rollback",
        &key,
        json!({"version": 9}),
    )
    .await
    .problem(404, "not_found");
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({"parallelism": 0}),
    )
    .await
    .problem(422, "invalid_value");
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({"replicas": 2}),
    )
    .await
    .problem(400, "malformed_json");

    // Quota on total deployed parallelism.
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{acme}/quotas"),
        ADMIN_KEY,
        json!({"max_parallelism": 3}),
    )
    .await
    .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/deploy",
            &key,
            json!({"parallelism": 4}),
        )
        .await
        .problem(429, "quota_exceeded");
    assert_eq!(p["quota"], "max_parallelism");
    assert_eq!(p["limit"], 3);
    assert_eq!(p["usage"], 2);
    assert_eq!(p["requested"], 4);
    assert_eq!(
        kv_deployment(t, "acme.orders").await.unwrap().parallelism,
        2
    );

    // A deployed pipeline cannot be deleted.
    t.delete("/api/v1/pipelines/orders", &key)
        .await
        .problem(409, "conflict");

    // Undeploy deletes the record.
    let r = t.delete("/api/v1/pipelines/orders/deployment", &key).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(kv_deployment(t, "acme.orders").await.is_none());
    t.get("/api/v1/pipelines/orders/deployment", &key)
        .await
        .problem(404, "not_found");
    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/pause",
        Some(&key),
        None,
    )
    .await
    .problem(409, "conflict");

    // Every change is audited with a before/after diff.
    let actions = t.audit_actions("", &key).await;
    let events = t.get("/api/v1/audit", &key).await.ok();
    for a in [
        "pipelines.deploy",
        "pipelines.pause",
        "pipelines.resume",
        "pipelines.rollback",
        "pipelines.deployment.delete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
    let rollback = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pipelines.rollback" && e["outcome"] == "success")
        .unwrap();
    assert!(
        rollback["diff"]
            .as_str()
            .unwrap()
            .contains("-version: 2\n+version: 1"),
        "{rollback}"
    );
}

fn worker<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["worker_id"] == id)
        .unwrap_or_else(|| panic!("no worker {id} in {status}"))
}

#[tokio::test]
async fn status_aggregates_heartbeats_and_reports_dead_workers() {
    let t = TestApp::sqlite_nats().await;
    let (_, key) = acme_with_orders(&t).await;
    let (_, beta) = t.tenant("beta").await;

    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "not_deployed");
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({}),
    )
    .await
    .ok();
    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "down");
    assert_eq!(s["running_workers"], 0);

    let now = now_ms();
    beat(&t, "w1", now, vec![report("acme", "orders", 2, 100)]).await;
    // Stale: older than the heartbeat timeout (a minute ago).
    beat(
        &t,
        "w2",
        now - 60_000,
        vec![report("acme", "orders", 2, 50)],
    )
    .await;
    // Another tenant's pipeline of the same name, on another worker.
    beat(&t, "w3", now, vec![report("beta", "orders", 1, 999)]).await;

    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["running_workers"], 1, "{s}");
    assert_eq!(s["dead_workers"], 1, "{s}");
    assert_eq!(s["totals"]["messages_in"], 100, "only live workers count");
    assert_eq!(s["lag"], 7);
    assert_eq!(s["workers"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(worker(&s, "w1")["alive"], true);
    assert_eq!(worker(&s, "w2")["alive"], false);
    assert_eq!(s["health"], "degraded", "a worker died a minute ago: {s}");

    // A long-dead worker is listed but no longer weighs on health.
    beat(
        &t,
        "w2",
        now - 10 * 60_000,
        vec![report("acme", "orders", 2, 50)],
    )
    .await;
    // A second heartbeat of w1 two seconds later gives rates.
    beat(
        &t,
        "w1",
        now + 2_000,
        vec![report("acme", "orders", 2, 300)],
    )
    .await;
    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "healthy", "{s}");
    assert_eq!(s["totals"]["messages_in"], 300);
    assert_eq!(worker(&s, "w1")["rates"]["messages_in"], 100.0, "{s}");
    assert_eq!(s["rates"]["messages_in"], 100.0);
    // Messages and deliveries (with redeliveries) are counted apart.
    assert_eq!(s["totals"]["deliveries"], 305);

    // A fresh dead letter is a data error of one message, handled as designed: shown, and
    // the pipeline stays healthy.
    let mut r = report("acme", "orders", 2, 300);
    r.last_dead_letter = Some((
        "seq 9 dead-lettered at node source (decode): bad".into(),
        now,
    ));
    beat(&t, "w1", now + 2_000, vec![r]).await;
    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "healthy", "{s}");
    assert!(
        s["last_dead_letter"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("(decode)")),
        "{s}"
    );
    assert!(s["last_error"].is_null(), "{s}");

    // A worker on another version, with a fresh error.
    let mut r = report("acme", "orders", 1, 10);
    r.last_error = Some(("publish timed out".into(), now));
    beat(&t, "w4", now, vec![r]).await;
    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "degraded");
    assert_eq!(s["last_error"]["message"], "publish timed out");
    assert_eq!(s["last_error"]["worker_id"], "w4");
    let reasons = s["reasons"].to_string();
    assert!(reasons.contains("version 1 instead of 2"), "{reasons}");

    // Workers: each tenant sees only its own pipelines' entries.
    let ws = t.get("/api/v1/workers", &key).await.ok();
    let ids: Vec<&str> = ws
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w1", "w2", "w4"]);
    let ws = t.get("/api/v1/workers", &beta).await.ok();
    assert_eq!(ws.as_array().unwrap().len(), 1);
    assert_eq!(ws[0]["worker_id"], "w3");
    assert_eq!(ws[0]["pipelines"][0]["tenant"], "beta");
    let all = t.get("/api/v1/workers", ADMIN_KEY).await.ok();
    assert_eq!(all.as_array().unwrap().len(), 4, "platform admins see all");

    // Paused shows as paused.
    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/pause",
        Some(&key),
        None,
    )
    .await
    .ok();
    let s = t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    assert_eq!(s["health"], "paused");

    // Another tenant: 404 on every fleet endpoint of acme's pipeline (beta has no `orders`).
    for (m, path) in [
        (Method::GET, "/api/v1/pipelines/orders/status"),
        (Method::GET, "/api/v1/pipelines/orders/deployment"),
        (Method::POST, "/api/v1/pipelines/orders/pause"),
        (Method::POST, "/api/v1/pipelines/orders/resume"),
        (Method::DELETE, "/api/v1/pipelines/orders/deployment"),
    ] {
        t.call(m, path, Some(&beta), None)
            .await
            .problem(404, "not_found");
    }
    for (path, body) in [
        ("/api/v1/pipelines/orders/deploy", json!({})),
        ("/api/v1/pipelines/orders/rollback", json!({"version": 1})),
    ] {
        t.json(Method::POST, path, &beta, body)
            .await
            .problem(404, "not_found");
    }
    assert_eq!(
        kv_deployment(&t, "acme.orders").await.unwrap().state,
        DesiredState::Paused
    );

    // Viewers read, but may not change deployments.
    let (_, viewer) = t.user_with_key(&key, "viewer@acme.test", "viewer").await;
    t.get("/api/v1/pipelines/orders/status", &viewer).await.ok();
    for path in [
        "/api/v1/pipelines/orders/resume",
        "/api/v1/pipelines/orders/pause",
    ] {
        t.call(Method::POST, path, Some(&viewer), None)
            .await
            .problem(403, "forbidden");
    }
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &viewer,
        json!({}),
    )
    .await
    .problem(403, "forbidden");
    t.delete("/api/v1/pipelines/orders/deployment", &viewer)
        .await
        .problem(403, "forbidden");
    // Operators may pause and resume.
    let (_, operator) = t
        .user_with_key(&key, "operator@acme.test", "operator")
        .await;
    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/resume",
        Some(&operator),
        None,
    )
    .await
    .ok();
}

/// Reads server-sent events from `body` until one's data satisfies `want`.
async fn next_event(
    events: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    buffer: &mut String,
    want: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data: String = frame
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            if frame.lines().any(|l| l == "event: status")
                && let Ok(v) = serde_json::from_str::<Value>(&data)
                && want(&v)
            {
                return v;
            }
        }
        let chunk = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("no matching event within 15 s")
            .expect("the event stream ended")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn status_stream_pushes_an_event_after_a_heartbeat() {
    let t = TestApp::sqlite_nats().await;
    let (_, key) = acme_with_orders(&t).await;
    let (_, beta) = t.tenant("beta").await;
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({}),
    )
    .await
    .ok();
    let req = Request::get("/api/v1/status/stream")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = res.into_body().into_data_stream();
    let mut buffer = String::new();
    // The snapshot on connect.
    let first = next_event(&mut events, &mut buffer, |v| v["pipeline"] == "orders").await;
    assert_eq!(first["health"], "down");
    // A heartbeat makes it healthy.
    beat(&t, "w1", now_ms(), vec![report("acme", "orders", 2, 5)]).await;
    let next = next_event(&mut events, &mut buffer, |v| v["running_workers"] == 1).await;
    assert_eq!(next["health"], "healthy");
    assert_eq!(next["workers"][0]["worker_id"], "w1");

    // Beta's feed carries nothing of acme's.
    let req = Request::get("/api/v1/status/stream")
        .header(header::AUTHORIZATION, format!("Bearer {beta}"))
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    let mut beta_events = res.into_body().into_data_stream();
    beat(&t, "w1", now_ms(), vec![report("acme", "orders", 2, 6)]).await;
    let got = tokio::time::timeout(Duration::from_secs(3), beta_events.next()).await;
    if let Ok(Some(Ok(chunk))) = got {
        let text = String::from_utf8_lossy(&chunk);
        assert!(!text.contains("orders"), "beta saw acme's status: {text}");
    }
}

#[tokio::test]
async fn without_nats_fleet_endpoints_are_503() {
    let t = TestApp::sqlite().await;
    let (_, key) = acme_with_orders(&t).await;
    for (m, path, body) in [
        (
            Method::POST,
            "/api/v1/pipelines/orders/deploy",
            Some(json!({})),
        ),
        (Method::POST, "/api/v1/pipelines/orders/pause", None),
        (Method::POST, "/api/v1/pipelines/orders/resume", None),
        (
            Method::POST,
            "/api/v1/pipelines/orders/rollback",
            Some(json!({"version": 1})),
        ),
        (Method::GET, "/api/v1/pipelines/orders/deployment", None),
        (Method::DELETE, "/api/v1/pipelines/orders/deployment", None),
        (Method::GET, "/api/v1/pipelines/orders/status", None),
        (Method::GET, "/api/v1/workers", None),
        (Method::GET, "/api/v1/status/stream", None),
        (Method::GET, "/api/v1/pipelines/orders/dlq", None),
        (Method::GET, "/api/v1/pipelines/orders/dlq/1", None),
        (
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            Some(json!({"all": true})),
        ),
        (Method::DELETE, "/api/v1/pipelines/orders/dlq", None),
        (Method::GET, "/api/v1/nats/streams", None),
        (
            Method::POST,
            "/api/v1/nats/publish",
            Some(json!({"subject": "orders.x"})),
        ),
    ] {
        let r = match body {
            Some(b) => t.json(m, path, &key, b).await,
            None => t.call(m, path, Some(&key), None).await,
        };
        let p = r.problem(503, "nats_unavailable");
        assert!(
            p["detail"].as_str().unwrap().contains("--nats"),
            "{path}: {p}"
        );
    }
}

#[tokio::test]
async fn deleting_a_tenant_deletes_its_deployment_records() {
    let t = TestApp::sqlite_nats().await;
    let (acme, key) = acme_with_orders(&t).await;
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({}),
    )
    .await
    .ok();
    assert!(kv_deployment(&t, "acme.orders").await.is_some());
    let r = t
        .delete(&format!("/api/v1/tenants/{acme}"), ADMIN_KEY)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(kv_deployment(&t, "acme.orders").await.is_none());
}

/// A paused pipeline has no worker polling its consumer: its lag comes from NATS.
#[tokio::test]
async fn a_paused_pipelines_lag_is_read_from_nats() {
    let t = TestApp::sqlite_nats().await;
    let (_, key) = acme_with_orders(&t).await;
    let (_, beta) = t.tenant("beta").await;
    let (_, viewer) = t.user_with_key(&key, "viewer@acme.test", "viewer").await;
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/deploy",
        &key,
        json!({}),
    )
    .await
    .ok();
    t.call(
        Method::POST,
        "/api/v1/pipelines/orders/pause",
        Some(&key),
        None,
    )
    .await
    .ok();
    // The consumer a worker created before the pause, and 50 messages since.
    let js = t.nats().js().clone();
    js.get_stream("ORDERS")
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("weir_acme_orders".into()),
            filter_subject: "orders.created.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for i in 0..50 {
        js.publish("orders.created.eu", format!("{{\"i\":{i}}}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // Heartbeats say nothing of it (no worker runs it); NATS does.
    let s = t.get("/api/v1/pipelines/orders/status", &viewer).await.ok();
    assert_eq!(s["health"], "paused", "{s}");
    assert_eq!(s["lag"], 50, "{s}");
    assert_eq!(s["ack_pending"], 0, "{s}");
    // The live status stream (the console's) says the same.
    let req = Request::get("/api/v1/status/stream")
        .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    let mut events = res.into_body().into_data_stream();
    let mut buffer = String::new();
    let live = next_event(&mut events, &mut buffer, |v| v["pipeline"] == "orders").await;
    assert_eq!(live["health"], "paused", "{live}");
    assert_eq!(live["lag"], 50, "{live}");
    t.get("/api/v1/pipelines/orders/status", &beta)
        .await
        .problem(404, "not_found");
    // A user without `deployments:read`: a custom role with streams only.
    let r = t
        .json(
            Method::POST,
            "/api/v1/roles",
            &key,
            json!({"name": "streams-only", "permissions": ["streams:read"]}),
        )
        .await;
    r.ok();
    let (_, weak) = t
        .user_with_key(&key, "weak@acme.test", "streams-only")
        .await;
    t.get("/api/v1/pipelines/orders/status", &weak)
        .await
        .problem(403, "forbidden");
}

/// `/metrics` needs no credentials and says nothing of tenants: request counts and the
/// fleet's workers and pipeline states.
#[tokio::test]
async fn metrics_count_requests_and_the_fleet_without_tenant_names() {
    let t = TestApp::sqlite_nats().await;
    let (_, key) = acme_with_orders(&t).await;
    let now = weir_pipelines::fleet::now_ms();
    beat(&t, "w1", now, vec![report("acme", "orders", 2, 10)]).await;
    beat(
        &t,
        "w2",
        now - 10 * 60_000,
        vec![report("acme", "orders", 2, 5)],
    )
    .await;
    t.get("/api/v1/pipelines/orders/status", &key).await.ok();
    let reply = t.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        reply
            .content_type
            .starts_with("application/openmetrics-text"),
        "{}",
        reply.content_type
    );
    let text = &reply.text;
    for line in [
        "weir_api_requests_total{method=\"GET\",status=\"200\"}",
        "weir_fleet_workers{state=\"alive\"} 1",
        "weir_fleet_workers{state=\"dead\"} 1",
        "weir_fleet_pipeline_instances{state=\"running\"} 1",
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        !text.contains("acme") && !text.contains("orders"),
        "no tenant or pipeline names: {text}"
    );
}
