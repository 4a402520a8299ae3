//! Concurrent writes through the API on SQLite and on a real PostgreSQL: 50 creates of distinct
//! pipelines and 50 updates of one pipeline at once, while another client keeps reading. No
//! 5xx; every write succeeds or gets 409; versions contiguous; every success audited in the
//! store; reads never wait more than a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use futures::StreamExt;
use serde_json::Value;

use crate::support::{ADMIN_KEY, TestApp, pipeline_yaml};

const N: usize = 50;

/// Figures of one burst of requests.
#[derive(Debug, Default)]
struct Burst {
    requests: usize,
    server_errors: usize,
    conflicts: usize,
    successes: usize,
    latencies: Vec<Duration>,
}

impl Burst {
    fn p99(&mut self) -> Duration {
        self.latencies.sort();
        let i = (self.latencies.len() * 99).div_ceil(100).saturating_sub(1);
        self.latencies.get(i).copied().unwrap_or_default()
    }
}

async fn burst(t: &Arc<TestApp>, requests: Vec<Request<Body>>) -> (Burst, Vec<(u16, String)>) {
    let mut tasks = Vec::new();
    for req in requests {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = t.send(req).await;
            (start.elapsed(), r.status.as_u16(), r.text)
        }));
    }
    let mut b = Burst::default();
    let mut replies = Vec::new();
    for task in tasks {
        let (took, status, text) = task.await.unwrap();
        b.requests += 1;
        b.latencies.push(took);
        match status {
            500..=599 => b.server_errors += 1,
            409 => b.conflicts += 1,
            200..=299 => b.successes += 1,
            _ => {}
        }
        replies.push((status, text));
    }
    (b, replies)
}

fn put(name: &str, filter: &str, if_match: Option<i64>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/api/v1/pipelines/{name}"))
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .header(header::CONTENT_TYPE, "application/yaml");
    if let Some(v) = if_match {
        req = req.header(header::IF_MATCH, format!("\"{v}\""));
    }
    req.body(Body::from(pipeline_yaml(name, filter, 1)))
        .unwrap()
}

fn post(name: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/api/v1/pipelines")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .header(header::CONTENT_TYPE, "application/yaml")
        .body(Body::from(pipeline_yaml(name, "data.amount > 1", 1)))
        .unwrap()
}

async fn audited(t: &TestApp, action: &str) -> usize {
    let v = t
        .get(
            &format!("/api/v1/audit?action={action}&outcome=success&limit=1000"),
            ADMIN_KEY,
        )
        .await
        .ok();
    v["items"].as_array().unwrap().len()
}

async fn scenario(t: TestApp, store: &str) {
    let t = Arc::new(t);
    // An unrelated reader runs through every burst and records its slowest wait.
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (t, reading) = (t.clone(), reading.clone());
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let mut reads = 0;
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let start = Instant::now();
                let r = t.get("/api/v1/auth/me", ADMIN_KEY).await;
                assert_eq!(r.status.as_u16(), 200, "{}", r.text);
                slowest = slowest.max(start.elapsed());
                reads += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (reads, slowest)
        })
    };

    // 50 creates of distinct pipelines.
    let (mut creates, _) = burst(&t, (0..N).map(|i| post(&format!("c-{i}"))).collect()).await;
    assert_eq!(creates.server_errors, 0, "{creates:?}");
    assert_eq!(creates.successes, N, "{creates:?}");

    // 50 blind updates of one pipeline: serialised, each a new version.
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/hot",
        ADMIN_KEY,
        &pipeline_yaml("hot", "data.amount > 0", 1),
    )
    .await
    .ok();
    let (mut updates, replies) = burst(
        &t,
        (0..N)
            .map(|i| put("hot", &format!("data.amount > {}", i + 1), None))
            .collect(),
    )
    .await;
    assert_eq!(updates.server_errors, 0, "{replies:?}");
    assert_eq!(updates.successes + updates.conflicts, N, "{replies:?}");
    let versions = t
        .get("/api/v1/pipelines/hot/versions", ADMIN_KEY)
        .await
        .ok();
    let mut numbers: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    numbers.sort();
    let expected: Vec<i64> = (1..=(1 + updates.successes as i64)).collect();
    assert_eq!(
        numbers, expected,
        "versions are contiguous, one per success"
    );

    // 50 updates based on the same version (If-Match): exactly one wins, the others get 409.
    let current = *numbers.last().unwrap();
    let (mut guarded, replies) = burst(
        &t,
        (0..N)
            .map(|i| put("hot", &format!("data.amount > {}", 1000 + i), Some(current)))
            .collect(),
    )
    .await;
    assert_eq!(guarded.server_errors, 0, "{replies:?}");
    assert_eq!(guarded.successes, 1, "{replies:?}");
    assert_eq!(guarded.conflicts, N - 1, "{replies:?}");
    let lost = replies.iter().find(|(s, _)| *s == 409).unwrap();
    let problem: Value = serde_json::from_str(&lost.1).unwrap();
    assert_eq!(problem["code"], "version_conflict", "{problem}");

    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    let (reads, slowest) = reader.await.unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "an unrelated read waited {slowest:?}"
    );

    // Every success is in the audit log.
    assert_eq!(audited(&t, "pipelines.create").await, N);
    assert_eq!(
        audited(&t, "pipelines.update").await,
        1 + updates.successes + guarded.successes
    );
    let (p_creates, p_updates, p_guarded) = (creates.p99(), updates.p99(), guarded.p99());
    eprintln!(
        "concurrency on {store}: creates {} requests, {} 5xx, p99 {:?}; updates {} requests, \
         {} 5xx, {} conflicts, p99 {:?}; If-Match updates {} requests, {} 5xx, {} conflicts, \
         p99 {:?}; {reads} unrelated reads, slowest {slowest:?}",
        creates.requests,
        creates.server_errors,
        p_creates,
        updates.requests,
        updates.server_errors,
        updates.conflicts,
        p_updates,
        guarded.requests,
        guarded.server_errors,
        guarded.conflicts,
        p_guarded,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_sqlite() {
    scenario(TestApp::sqlite().await, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_on_postgres() {
    scenario(TestApp::postgres().await, "postgres").await;
}

fn authed(method: Method, uri: &str, key: &str, content_type: &str, body: String) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap()
}

/// Quotas hold under concurrent writes: 10 stream creations with 3 places left under
/// `max_streams` give exactly 3 successes and 7 `429 quota_exceeded`, and NATS holds exactly
/// the 3 streams the store has; 3 deploys at parallelism 2 against `max_parallelism: 3` give
/// exactly one deployment.
async fn quotas_hold_under_concurrent_writes(t: TestApp) {
    let t = Arc::new(t);
    let (id, key) = t.tenant("busy").await;
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        ADMIN_KEY,
        serde_json::json!({"max_streams": 4, "max_parallelism": 3}),
    )
    .await
    .ok();
    // One stream for the pipelines' source, then a burst for the 3 places left.
    t.yaml(
        Method::PUT,
        "/api/v1/streams/ORDERS",
        &key,
        &crate::support::stream_yaml("ORDERS", "orders.>"),
    )
    .await
    .ok();
    let streams = (0..10)
        .map(|i| {
            let name = format!("S{i}");
            authed(
                Method::PUT,
                &format!("/api/v1/streams/{name}"),
                &key,
                "application/yaml",
                crate::support::stream_yaml(&name, &format!("s{i}.>")),
            )
        })
        .collect();
    let (created, replies) = burst(&t, streams).await;
    assert_eq!(created.server_errors, 0, "{replies:?}");
    assert_eq!(created.successes, 3, "{replies:?}");
    let refused = replies.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!(refused, 7, "{replies:?}");
    let on_nats = t
        .nats()
        .js()
        .stream_names()
        .filter(|n| std::future::ready(n.as_ref().is_ok_and(|n| n.starts_with('S'))))
        .count()
        .await;
    assert_eq!(on_nats, 3, "streams over quota must not be created on NATS");

    for i in 0..3 {
        t.yaml(
            Method::POST,
            "/api/v1/pipelines",
            &key,
            &pipeline_yaml(&format!("p-{i}"), "true", 1),
        )
        .await
        .ok();
    }
    let deploys = (0..3)
        .map(|i| {
            authed(
                Method::POST,
                &format!("/api/v1/pipelines/p-{i}/deploy"),
                &key,
                "application/json",
                r#"{"parallelism": 2}"#.into(),
            )
        })
        .collect();
    let (deployed, replies) = burst(&t, deploys).await;
    assert_eq!(deployed.server_errors, 0, "{replies:?}");
    assert_eq!(deployed.successes, 1, "{replies:?}");
    assert_eq!(
        replies.iter().filter(|(s, _)| *s == 429).count(),
        2,
        "{replies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_hold_under_concurrent_writes_on_sqlite() {
    quotas_hold_under_concurrent_writes(TestApp::sqlite_nats().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quotas_hold_under_concurrent_writes_on_postgres() {
    quotas_hold_under_concurrent_writes(TestApp::postgres_nats().await).await;
}

/// Concurrent writes of one new secret and of one new custom role: every secret write
/// succeeds (one creates it, the others replace it; no 5xx, no lost row), and exactly one role
/// creation wins while the others get 409.
async fn secrets_and_roles_under_concurrent_writes(t: TestApp) {
    let t = Arc::new(t);
    let secret = |i: usize| {
        let body = serde_json::json!({"kind": "token", "secret": {"token": format!("t{i}")}});
        authed(
            Method::PUT,
            "/api/v1/secrets/shared",
            ADMIN_KEY,
            "application/json",
            body.to_string(),
        )
    };
    let (b, replies) = burst(&t, (0..20).map(secret).collect()).await;
    assert_eq!(b.server_errors, 0, "{replies:?}");
    assert_eq!(b.successes, 20, "{replies:?}");
    let created = replies.iter().filter(|(s, _)| *s == 201).count();
    assert!(created >= 1, "one write created the secret: {replies:?}");
    let list = t.get("/api/v1/secrets", ADMIN_KEY).await.ok();
    let shared: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "shared")
        .collect();
    assert_eq!(shared.len(), 1);

    let role = |_| {
        let body = serde_json::json!({"name": "reader", "description": "reads",
                                      "permissions": ["pipelines:read"]});
        authed(
            Method::POST,
            "/api/v1/roles",
            ADMIN_KEY,
            "application/json",
            body.to_string(),
        )
    };
    let (b, replies) = burst(&t, (0..20).map(role).collect()).await;
    assert_eq!(b.server_errors, 0, "{replies:?}");
    assert_eq!((b.successes, b.conflicts), (1, 19), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_and_roles_under_concurrent_writes_on_sqlite() {
    secrets_and_roles_under_concurrent_writes(TestApp::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secrets_and_roles_under_concurrent_writes_on_postgres() {
    secrets_and_roles_under_concurrent_writes(TestApp::postgres().await).await;
}
