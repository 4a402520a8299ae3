//! Tenants isolated by NATS itself (issue 13), on a real nats-server in operator mode: two
//! tenants declare the same stream name and subjects; the second one tries every way into the
//! first one's data (views, purge, publish into NATS internals, a raw client with its issued
//! credentials) and gets nothing; deleting a tenant removes its account and data.

use axum::http::Method;
use futures::StreamExt;
use serde_json::json;

use crate::support::{TestApp, stream_yaml};

async fn declare_and_create(t: &TestApp, id: &str, name: &str, key: &str) {
    t.yaml(
        Method::PUT,
        "/api/v1/streams/SECRETS",
        key,
        &stream_yaml("SECRETS", "secrets.>"),
    )
    .await
    .ok();
    let conn = t.nats().tenant(id, name).await.expect("tenant connection");
    // Applying the declaration created it in the tenant's account.
    conn.js()
        .get_stream("SECRETS")
        .await
        .expect("SECRETS in the tenant's account");
}

#[tokio::test]
async fn a_second_tenant_cannot_reach_the_first_ones_data() {
    let t = TestApp::sqlite_nats_operator().await;
    let (alpha_id, alpha) = t.tenant("alpha").await;
    let (beta_id, beta) = t.tenant("beta").await;
    declare_and_create(&t, &alpha_id, "alpha", &alpha).await;
    declare_and_create(&t, &beta_id, "beta", &beta).await;

    let p = t
        .json(
            Method::POST,
            "/api/v1/nats/publish",
            &alpha,
            json!({"subject": "secrets.db", "payload": "alpha-password"}),
        )
        .await
        .ok();
    assert_eq!(p["stream"], "SECRETS");
    assert_eq!(p["seq"], 1);

    // Same name, separate streams: beta's SECRETS is its own, empty one.
    let s = t.get("/api/v1/nats/streams/SECRETS", &beta).await.ok();
    assert_eq!(s["messages"], 0, "beta sees only its own stream: {s}");
    t.get("/api/v1/nats/streams/SECRETS/messages/1", &beta)
        .await
        .problem(404, "not_found");
    let purged = t
        .json(
            Method::POST,
            "/api/v1/nats/streams/SECRETS/purge",
            &beta,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(purged["purged"], 0);

    // NATS internals and reserved names are refused where they enter.
    for (name, subject) in [
        ("KV_weir_deployments", "x.>"),
        ("KV_alpha_sessions", "y.>"),
        ("OBJ_x", "z.>"),
        ("ALL", ">"),
        ("ALLTWO", "*.>"),
        ("JS", "$JS.API.>"),
    ] {
        t.yaml(
            Method::PUT,
            &format!("/api/v1/streams/{name}"),
            &beta,
            &stream_yaml(name, subject),
        )
        .await
        .problem(422, "invalid_value");
    }
    for subject in [
        "$KV.weir_deployments.alpha.p",
        "$JS.API.STREAM.DELETE.SECRETS",
        "$JS.API.STREAM.PURGE.SECRETS",
        "$SYS.REQ.CLAIMS.UPDATE",
        "_INBOX.x",
    ] {
        t.json(
            Method::POST,
            "/api/v1/nats/publish",
            &beta,
            json!({"subject": subject, "payload": "x"}),
        )
        .await
        .problem(422, "invalid_value");
    }

    // A raw client with beta's issued credentials: its own account only.
    let creds = t
        .nats()
        .tenant(&beta_id, "beta")
        .await
        .unwrap()
        .credentials
        .expect("operator mode issues credentials");
    let raw = t.nats_server().client_with(Some(&creds)).await.unwrap();
    let mut sub = raw.subscribe("secrets.>").await.unwrap();
    raw.flush().await.unwrap();
    let raw_js = async_nats::jetstream::new(raw.clone());
    raw_js
        .publish("secrets.db", "beta-overwrite".into())
        .await
        .unwrap()
        .await
        .unwrap();
    t.json(
        Method::POST,
        "/api/v1/nats/publish",
        &alpha,
        json!({"subject": "secrets.db", "payload": "alpha-second"}),
    )
    .await
    .ok();
    let got = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            let m = sub.next().await.unwrap();
            if m.payload.as_ref() != b"beta-overwrite" {
                return m;
            }
        }
    })
    .await;
    assert!(got.is_err(), "beta's raw client saw alpha's message");
    let mut names = raw_js.stream_names();
    let mut seen = Vec::new();
    while let Some(n) = names.next().await {
        seen.push(n.unwrap());
    }
    assert_eq!(
        seen,
        vec!["SECRETS".to_string()],
        "beta's account holds only its stream: no weir_* or alpha buckets"
    );
    assert!(raw_js.get_key_value("weir_deployments").await.is_err());

    // Alpha's data is unchanged: its two messages, its content.
    let m = t
        .get("/api/v1/nats/streams/SECRETS/messages/1", &alpha)
        .await
        .ok();
    assert_eq!(m["payload_utf8"], "alpha-password");
    let s = t.get("/api/v1/nats/streams/SECRETS", &alpha).await.ok();
    assert_eq!(s["messages"], 2);

    // Deleting beta removes its account and data; a new beta starts empty.
    t.delete(
        &format!("/api/v1/tenants/{beta_id}"),
        crate::support::ADMIN_KEY,
    )
    .await
    .ok();
    let (beta2_id, _) = t.tenant("beta").await;
    let conn = t.nats().tenant(&beta2_id, "beta").await.unwrap();
    assert_ne!(conn.credentials.as_deref(), Some(creds.as_str()));
    let mut names = conn.js().stream_names();
    assert!(names.next().await.is_none(), "the new beta starts empty");
    let s = t.get("/api/v1/nats/streams/SECRETS", &alpha).await.ok();
    assert_eq!(s["messages"], 2, "alpha undisturbed");
}

#[tokio::test]
async fn plain_nats_refuses_a_second_tenant_unless_allowed() {
    let t = TestApp::sqlite_nats().await;
    assert!(!t.nats().isolated());
    // The test harness allows sharing (Settings::new); `weir serve` does not by default.
    let t2 = {
        let server = weir_testkit::nats::NatsServer::start().unwrap();
        let nats = weir_control_plane::nats::Nats::connect(&server.url())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = weir_control_plane::Db::connect(&weir_control_plane::Db::sqlite_url(
            &dir.path().join("weir.db"),
        ))
        .await
        .unwrap();
        weir_control_plane::tenants::bootstrap(&db, Some(crate::support::ADMIN_KEY))
            .await
            .unwrap();
        let mut settings = weir_control_plane::Settings::new([7u8; 32]);
        settings.allow_shared_nats = false;
        let state = weir_control_plane::AppState::with_nats(db, settings, Some(nats));
        (weir_control_plane::app(state), server, dir)
    };
    let req = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/tenants")
        .header(
            "authorization",
            format!("Bearer {}", crate::support::ADMIN_KEY),
        )
        .header("content-type", "application/json")
        .body(axum::body::Body::from(json!({"name": "beta"}).to_string()))
        .unwrap();
    let res = tower::ServiceExt::oneshot(t2.0.clone(), req).await.unwrap();
    assert_eq!(res.status(), 409);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("--allow-shared-nats"), "{text}");
}

/// A tenant's `max_connections` and `max_storage_bytes` quotas are its NATS account's limits:
/// the server itself refuses a connection or a publish past them, and raising the quota lets
/// them through.
#[tokio::test]
async fn account_limits_follow_the_tenant_quotas() {
    let t = TestApp::sqlite_nats_operator().await;
    let (id, key) = t.tenant("alpha").await;
    // The control plane's own connection to the account is one of the two.
    let conn = t.nats().tenant(&id, "alpha").await.unwrap();
    let creds = conn.credentials.clone().unwrap();
    conn.js()
        .create_stream(async_nats::jetstream::stream::Config {
            name: "BIG".into(),
            subjects: vec!["big.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let quotas = |connections: i64, storage: i64| json!({"max_streams": 50, "max_connections": connections, "max_storage_bytes": storage});
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        crate::support::ADMIN_KEY,
        quotas(2, 4096),
    )
    .await
    .ok();
    let first = t.nats_server().client_with(Some(&creds)).await;
    assert!(first.is_ok(), "the second connection fits");
    let third = t.nats_server().client_with(Some(&creds)).await;
    assert!(
        third.is_err(),
        "a third connection is refused by the server"
    );
    let js = conn.js();
    // The server checks what the account stores before each message: one may cross the
    // limit, the next is refused.
    let mut refused = false;
    for _ in 0..2 {
        refused = match js.publish("big.x", vec![b'x'; 8192].into()).await {
            Ok(ack) => ack.await.is_err(),
            Err(_) => true,
        };
    }
    assert!(refused, "a publish past the storage limit is refused");
    let usage = t.get("/api/v1/quotas/usage", &key).await.ok();
    let storage = usage["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "max_storage_bytes")
        .unwrap()
        .clone();
    assert_eq!(storage["limit"], 4096, "{usage}");
    assert!(
        storage["usage"].as_i64().is_some_and(|u| u >= 4096),
        "the account's stored bytes: {usage}"
    );

    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        crate::support::ADMIN_KEY,
        quotas(3, 1 << 20),
    )
    .await
    .ok();
    assert!(
        t.nats_server().client_with(Some(&creds)).await.is_ok(),
        "a third connection fits the raised quota"
    );
    js.publish("big.x", vec![b'x'; 8192].into())
        .await
        .unwrap()
        .await
        .expect("a publish within the raised storage limit");
}

/// Whether `creds` can still talk to the server (a revoked user is refused at connect or at its
/// first request).
async fn creds_work(t: &TestApp, creds: &str) -> bool {
    match t.nats_server().client_with(Some(creds)).await {
        Ok(client) => client.flush().await.is_ok(),
        Err(_) => false,
    }
}

/// Concurrent deploys of one pipeline: each replaced its predecessor's credentials, and only
/// the final record's still connect (a read-then-put once let two deploys both revoke the first
/// record's credentials and leave one alive).
#[tokio::test]
async fn concurrent_deploys_leave_only_the_current_credentials_alive() {
    const DEPLOYS: usize = 4;
    let t = std::sync::Arc::new(
        TestApp::sqlite_nats_operator_with(|n| n.with_revoke_after(std::time::Duration::ZERO))
            .await,
    );
    let (_, key) = t.tenant("acme").await;
    t.orders_pipeline(&key, "orders", "true").await;
    let mut tasks = Vec::new();
    for _ in 0..DEPLOYS {
        let (t, key) = (t.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            t.json(
                Method::POST,
                "/api/v1/pipelines/orders/deploy",
                &key,
                json!({}),
            )
            .await
        }));
    }
    for task in tasks {
        let r = task.await.unwrap();
        assert!(r.status.is_success(), "{}: {}", r.status, r.text);
    }
    // Every record written (the bucket keeps this many revisions), oldest first.
    let mut history = t.nats().deployments().history("acme.orders").await.unwrap();
    let mut issued = Vec::new();
    while let Some(entry) = history.next().await {
        let record: weir_pipelines::fleet::Deployment =
            serde_json::from_slice(&entry.unwrap().value).unwrap();
        issued.push(
            record
                .credentials
                .expect("operator mode issues credentials"),
        );
    }
    assert_eq!(issued.len(), DEPLOYS);
    let (current, replaced) = issued.split_last().unwrap();
    assert!(
        creds_work(&t, current).await,
        "the current credentials work"
    );
    for (i, creds) in replaced.iter().enumerate() {
        assert!(
            !creds_work(&t, creds).await,
            "replaced credentials {i} still work"
        );
    }
}
