//! Concurrent writes through the API on SQLite and on a real PostgreSQL: 50 creates of distinct
//! pipelines and 50 updates of one pipeline at once, while another client keeps reading. No
//! 5xx; every write succeeds or gets 409; versions contiguous; every success audited in the
//! store; reads never wait more than a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
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
