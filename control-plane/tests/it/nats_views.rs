//! NATS views against a real nats-server: a tenant sees, reads, publishes to and purges only
//! the streams it declared; everything else is 404 (or 422 for an uncaptured subject).

use async_nats::jetstream::{consumer, stream};
use axum::http::Method;
use serde_json::json;

use crate::support::{TestApp, stream_yaml};

#[tokio::test]
async fn streams_consumers_messages_publish_and_purge() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    let (_, key) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    for (name, subject) in [("ORDERS", "orders.>"), ("LATER", "later.>")] {
        t.yaml(
            Method::PUT,
            &format!("/api/v1/streams/{name}"),
            &key,
            &stream_yaml(name, subject),
        )
        .await
        .ok();
    }
    // Applied: created on NATS.
    let orders = js.get_stream("ORDERS").await.unwrap();
    orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("weir_acme_p1".into()),
            ..Default::default()
        })
        .await
        .unwrap();

    // Publish through the API.
    let r = t
        .json(
            Method::POST,
            "/api/v1/nats/publish",
            &key,
            json!({"subject": "orders.created.eu", "payload": "{\"id\":1}",
                   "headers": {"X-Trace": "t-1"}}),
        )
        .await
        .ok();
    assert_eq!(r["stream"], "ORDERS");
    assert_eq!(r["seq"], 1);
    let p = t
        .json(
            Method::POST,
            "/api/v1/nats/publish",
            &key,
            json!({"subject": "billing.x", "payload": "x"}),
        )
        .await
        .problem(422, "invalid_value");
    assert!(p["detail"].as_str().unwrap().contains("ORDERS: orders.>"));
    t.json(
        Method::POST,
        "/api/v1/nats/publish",
        &beta,
        json!({"subject": "orders.created.eu", "payload": "x"}),
    )
    .await
    .problem(422, "invalid_value");

    // Applying created LATER on NATS; removed there behind Weir's back, it is still listed
    // as declared, and as missing.
    js.delete_stream("LATER").await.unwrap();
    let list = t.get("/api/v1/nats/streams", &key).await.ok();
    assert_eq!(list[0]["name"], "LATER");
    assert_eq!(list[0]["exists"], false);
    assert_eq!(list[1]["name"], "ORDERS");
    assert_eq!(list[1]["messages"], 1);
    let s = t.get("/api/v1/nats/streams/ORDERS", &key).await.ok();
    assert_eq!(s["subjects"][0], "orders.>");
    assert_eq!(s["config"]["name"], "ORDERS");
    let c = t
        .get("/api/v1/nats/streams/ORDERS/consumers", &key)
        .await
        .ok();
    assert_eq!(c[0]["name"], "weir_acme_p1");
    assert_eq!(c[0]["num_pending"], 1);
    let m = t
        .get("/api/v1/nats/streams/ORDERS/messages/1", &key)
        .await
        .ok();
    assert_eq!(m["payload_utf8"], "{\"id\":1}");
    assert_eq!(m["headers"]["X-Trace"][0], "t-1");
    let m = t
        .get(
            "/api/v1/nats/streams/ORDERS/messages?last_by_subject=orders.created.eu",
            &key,
        )
        .await
        .ok();
    assert_eq!(m["seq"], 1);
    t.get("/api/v1/nats/streams/ORDERS/messages/99", &key)
        .await
        .problem(404, "not_found");
    t.get("/api/v1/nats/streams/LATER", &key)
        .await
        .problem(404, "not_found");

    // Another tenant does not see acme's stream.
    assert_eq!(t.get("/api/v1/nats/streams", &beta).await.ok(), json!([]));
    for path in [
        "/api/v1/nats/streams/ORDERS",
        "/api/v1/nats/streams/ORDERS/consumers",
        "/api/v1/nats/streams/ORDERS/messages/1",
    ] {
        t.get(path, &beta).await.problem(404, "not_found");
    }
    t.json(
        Method::POST,
        "/api/v1/nats/streams/ORDERS/purge",
        &beta,
        json!({}),
    )
    .await
    .problem(404, "not_found");

    // Purge: operators may not; admins purge by subject.
    let (_, operator) = t
        .user_with_key(&key, "operator@acme.test", "operator")
        .await;
    t.json(
        Method::POST,
        "/api/v1/nats/streams/ORDERS/purge",
        &operator,
        json!({}),
    )
    .await
    .problem(403, "forbidden");
    t.json(
        Method::POST,
        "/api/v1/nats/streams/ORDERS/purge",
        &key,
        json!({"sequence": 2, "keep": 1}),
    )
    .await
    .problem(422, "invalid_value");
    let p = t
        .json(
            Method::POST,
            "/api/v1/nats/streams/ORDERS/purge",
            &key,
            json!({"subject": "orders.other"}),
        )
        .await
        .ok();
    assert_eq!(p["purged"], 0);
    let p = t
        .json(
            Method::POST,
            "/api/v1/nats/streams/ORDERS/purge",
            &key,
            json!({"subject": "orders.>"}),
        )
        .await
        .ok();
    assert_eq!(p["purged"], 1);
}

/// Declares `name` (capturing `subject`) for the tenant of `key`: applying it creates it on
/// NATS.
async fn declared_stream(
    t: &TestApp,
    key: &str,
    name: &str,
    subject: &str,
    retention: stream::RetentionPolicy,
) -> stream::Stream {
    let mut yaml = stream_yaml(name, subject);
    if retention == stream::RetentionPolicy::WorkQueue {
        yaml.push_str("  retention: workqueue\n");
    }
    t.yaml(Method::PUT, &format!("/api/v1/streams/{name}"), key, &yaml)
        .await
        .ok();
    let stream = t.nats().js().get_stream(name).await.unwrap();
    assert_eq!(stream.cached_info().config.retention, retention);
    stream
}

fn parse_time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn message_by_start_time_on_a_work_queue_stream() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    let (_, key) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    declared_stream(
        &t,
        &key,
        "JOBS",
        "jobs.>",
        stream::RetentionPolicy::WorkQueue,
    )
    .await;
    js.publish("jobs.a", "first".into())
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    js.publish("jobs.b", "second".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish("jobs.c", "third".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let at = |t: chrono::DateTime<chrono::Utc>| {
        format!(
            "/api/v1/nats/streams/JOBS/messages?start_time={}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        )
    };
    // The same body as by sequence.
    let m = t.get(&at(between), &key).await.ok();
    assert_eq!(m["seq"], 2);
    assert_eq!(m["subject"], "jobs.b");
    assert_eq!(m["payload_utf8"], "second");
    let by_seq = t
        .get("/api/v1/nats/streams/JOBS/messages/2", &key)
        .await
        .ok();
    assert_eq!(m, by_seq);
    assert!(parse_time(&m["time"]) >= between - chrono::Duration::milliseconds(1));
    let m = t
        .get(&at(between - chrono::Duration::hours(1)), &key)
        .await
        .ok();
    assert_eq!(m["seq"], 1);
    t.get(&at(chrono::Utc::now() + chrono::Duration::hours(1)), &key)
        .await
        .problem(404, "not_found");
    t.get(
        "/api/v1/nats/streams/JOBS/messages?start_time=yesterday",
        &key,
    )
    .await
    .problem(400, "bad_query");
    t.get(
        "/api/v1/nats/streams/JOBS/messages?start_time=2026-01-01T00:00:00Z&last_by_subject=jobs.a",
        &key,
    )
    .await
    .problem(422, "invalid_value");
    t.get("/api/v1/nats/streams/JOBS/messages", &key)
        .await
        .problem(422, "invalid_value");
    // Another tenant: 404.
    t.get(&at(between), &beta).await.problem(404, "not_found");
}

#[tokio::test]
async fn consumers_pause_and_resume() {
    let t = TestApp::sqlite_nats().await;
    let (_, key) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let orders = declared_stream(
        &t,
        &key,
        "ORDERS",
        "orders.>",
        stream::RetentionPolicy::Limits,
    )
    .await;
    orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("weir_acme_p1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let base = "/api/v1/nats/streams/ORDERS/consumers/weir_acme_p1";
    let (_, viewer) = t.user_with_key(&key, "viewer@acme.test", "viewer").await;
    let (_, operator) = t
        .user_with_key(&key, "operator@acme.test", "operator")
        .await;

    // Not paused at first.
    let c = t
        .get("/api/v1/nats/streams/ORDERS/consumers", &key)
        .await
        .ok();
    assert_eq!(c[0]["paused"], false);
    assert!(c[0]["pause_until"].is_null());

    // Viewers may not; another tenant does not see the consumer.
    t.json(Method::POST, &format!("{base}/pause"), &viewer, json!({}))
        .await
        .problem(403, "forbidden");
    t.json(Method::POST, &format!("{base}/resume"), &viewer, json!({}))
        .await
        .problem(403, "forbidden");
    t.json(Method::POST, &format!("{base}/pause"), &beta, json!({}))
        .await
        .problem(404, "not_found");
    t.json(Method::POST, &format!("{base}/resume"), &beta, json!({}))
        .await
        .problem(404, "not_found");
    t.json(
        Method::POST,
        "/api/v1/nats/streams/ORDERS/consumers/nope/pause",
        &key,
        json!({}),
    )
    .await
    .problem(404, "not_found");
    t.json(
        Method::POST,
        &format!("{base}/pause"),
        &key,
        json!({"until": "2000-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "invalid_value");

    // Pause until a given time (an operator may).
    let until = chrono::Utc::now() + chrono::Duration::hours(2);
    let c = t
        .json(
            Method::POST,
            &format!("{base}/pause"),
            &operator,
            json!({"until": until.to_rfc3339()}),
        )
        .await
        .ok();
    assert_eq!(c["name"], "weir_acme_p1");
    assert_eq!(c["paused"], true);
    let got = parse_time(&c["pause_until"]);
    assert!(
        (got - until).num_milliseconds().abs() < 1000,
        "{got} vs {until}"
    );
    let list = t
        .get("/api/v1/nats/streams/ORDERS/consumers", &key)
        .await
        .ok();
    assert_eq!(list[0]["paused"], true);

    // Resume.
    let c = t
        .json(
            Method::POST,
            &format!("{base}/resume"),
            &operator,
            json!({}),
        )
        .await
        .ok();
    assert_eq!(c["paused"], false);
    assert!(c["pause_until"].is_null());

    // The default: 24 hours from now.
    let c = t
        .json(Method::POST, &format!("{base}/pause"), &key, json!({}))
        .await
        .ok();
    assert_eq!(c["paused"], true);
    let left = parse_time(&c["pause_until"]) - chrono::Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "{left}"
    );
    // Pausing and resuming are audited.
    let events = t
        .get("/api/v1/audit?action=nats.streams.consumers.pause", &key)
        .await
        .ok();
    assert!(events["items"].as_array().unwrap().len() >= 2, "{events}");
}

#[tokio::test]
async fn kv_buckets_and_keys_are_scoped_by_tenant_prefix() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    let (_, key) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, viewer) = t.user_with_key(&key, "viewer@acme.test", "viewer").await;
    // A bucket of beta's and an unowned one exist beside Weir's own (`weir_*`).
    for bucket in ["beta_cache", "sessions"] {
        js.create_key_value(async_nats::jetstream::kv::Config {
            bucket: bucket.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert_eq!(t.get("/api/v1/nats/kv", &key).await.ok(), json!([]));

    // Create: the name must carry the tenant's prefix.
    for name in [
        "sessions", "beta_x", "weir_x", "acme_", "acme-x", "acme_a.b",
    ] {
        let p = t
            .json(Method::POST, "/api/v1/nats/kv", &key, json!({"name": name}))
            .await
            .problem(422, "invalid_value");
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains("must start with `acme_`"),
            "{p}"
        );
    }
    t.json(
        Method::POST,
        "/api/v1/nats/kv",
        &key,
        json!({"name": "acme_x", "history": 0}),
    )
    .await
    .problem(422, "invalid_value");
    t.json(
        Method::POST,
        "/api/v1/nats/kv",
        &viewer,
        json!({"name": "acme_v"}),
    )
    .await
    .problem(403, "forbidden");
    let r = t
        .json(
            Method::POST,
            "/api/v1/nats/kv",
            &key,
            json!({"name": "acme_sessions", "history": 5, "max_bytes": 1048576,
                   "ttl_seconds": 3600}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let b = r.json();
    assert_eq!(b["name"], "acme_sessions");
    assert_eq!(b["history"], 5);
    assert_eq!(b["max_bytes"], 1048576);
    assert_eq!(b["ttl_seconds"], 3600);
    t.json(
        Method::POST,
        "/api/v1/nats/kv",
        &key,
        json!({"name": "acme_sessions"}),
    )
    .await
    .problem(409, "conflict");

    // Keys: put (text and base64), get, list, history, delete.
    let k = "/api/v1/nats/kv/acme_sessions/keys";
    assert_eq!(
        t.get(k, &key).await.ok(),
        json!([]),
        "a new bucket has no keys"
    );
    t.json(
        Method::PUT,
        &format!("{k}/a*b"),
        &key,
        json!({"value": "v"}),
    )
    .await
    .problem(422, "invalid_value");
    let r1 = t
        .json(
            Method::PUT,
            &format!("{k}/user.1"),
            &key,
            json!({"value": "alice"}),
        )
        .await
        .ok();
    assert_eq!(r1["key"], "user.1");
    let r2 = t
        .json(
            Method::PUT,
            &format!("{k}/user.1"),
            &key,
            json!({"value": "bob"}),
        )
        .await
        .ok();
    assert!(r2["revision"].as_u64() > r1["revision"].as_u64());
    t.json(
        Method::PUT,
        &format!("{k}/blob"),
        &key,
        json!({"value_base64": "/wA="}),
    )
    .await
    .ok();
    t.json(Method::PUT, &format!("{k}/x"), &key, json!({}))
        .await
        .problem(422, "invalid_value");
    t.json(
        Method::PUT,
        &format!("{k}/x"),
        &key,
        json!({"value": "a", "value_base64": "YQ=="}),
    )
    .await
    .problem(422, "invalid_value");
    let e = t.get(&format!("{k}/user.1"), &key).await.ok();
    assert_eq!(e["value_utf8"], "bob");
    assert_eq!(e["value_base64"], "Ym9i");
    assert_eq!(e["revision"], r2["revision"]);
    assert_eq!(e["operation"], "put");
    parse_time(&e["created"]);
    let e = t.get(&format!("{k}/blob"), &key).await.ok();
    assert_eq!(e["value_base64"], "/wA=");
    assert!(e["value_utf8"].is_null());
    t.get(&format!("{k}/missing"), &key)
        .await
        .problem(404, "not_found");
    assert_eq!(
        t.get(k, &viewer).await.ok(),
        json!(["blob", "user.1"]),
        "viewers read"
    );
    let h = t.get(&format!("{k}/user.1/history"), &key).await.ok();
    let values: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value_utf8"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["alice", "bob"]);
    t.get(&format!("{k}/missing/history"), &key)
        .await
        .problem(404, "not_found");
    let list = t.get("/api/v1/nats/kv", &viewer).await.ok();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["name"], "acme_sessions");
    assert_eq!(list[0]["values"], 3);
    assert!(list[0]["bytes"].as_u64().unwrap() > 0);

    // Viewers may not write.
    t.json(
        Method::PUT,
        &format!("{k}/user.1"),
        &viewer,
        json!({"value": "eve"}),
    )
    .await
    .problem(403, "forbidden");
    t.delete(&format!("{k}/user.1"), &viewer)
        .await
        .problem(403, "forbidden");
    t.delete("/api/v1/nats/kv/acme_sessions", &viewer)
        .await
        .problem(403, "forbidden");

    // Another tenant gets 404 on everything of acme's, and acme on beta's and unowned buckets.
    assert!(
        !t.get("/api/v1/nats/kv", &beta)
            .await
            .ok()
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "acme_sessions")
    );
    for path in [
        k.to_string(),
        format!("{k}/user.1"),
        format!("{k}/user.1/history"),
    ] {
        t.get(&path, &beta).await.problem(404, "not_found");
    }
    t.json(
        Method::PUT,
        &format!("{k}/user.1"),
        &beta,
        json!({"value": "eve"}),
    )
    .await
    .problem(404, "not_found");
    t.delete(&format!("{k}/user.1"), &beta)
        .await
        .problem(404, "not_found");
    t.delete("/api/v1/nats/kv/acme_sessions", &beta)
        .await
        .problem(404, "not_found");
    for bucket in ["beta_cache", "sessions", "weir_deployments", "weir_workers"] {
        t.get(&format!("/api/v1/nats/kv/{bucket}/keys"), &key)
            .await
            .problem(404, "not_found");
        t.delete(&format!("/api/v1/nats/kv/{bucket}"), &key)
            .await
            .problem(404, "not_found");
    }
    js.get_key_value("beta_cache").await.unwrap();
    assert_eq!(
        t.get("/api/v1/nats/kv", &beta).await.ok()[0]["name"],
        "beta_cache"
    );
    assert_eq!(
        t.get("/api/v1/nats/kv/acme_sessions/keys/user.1", &key)
            .await
            .ok()["value_utf8"],
        "bob",
        "nothing changed"
    );

    // Delete a key: gone from get and keys, a delete in the history.
    assert_eq!(t.delete(&format!("{k}/user.1"), &key).await.status, 204);
    t.get(&format!("{k}/user.1"), &key)
        .await
        .problem(404, "not_found");
    t.delete(&format!("{k}/user.1"), &key)
        .await
        .problem(404, "not_found");
    assert_eq!(t.get(k, &key).await.ok(), json!(["blob"]));
    let h = t.get(&format!("{k}/user.1/history"), &key).await.ok();
    assert_eq!(h.as_array().unwrap().last().unwrap()["operation"], "delete");

    // Delete the bucket (an admin may).
    assert_eq!(
        t.delete("/api/v1/nats/kv/acme_sessions", &key).await.status,
        204
    );
    t.get(k, &key).await.problem(404, "not_found");
    assert_eq!(t.get("/api/v1/nats/kv", &key).await.ok(), json!([]));

    // Every mutation is audited.
    let events = t
        .get("/api/v1/audit?action=nats.kv.create", &key)
        .await
        .ok();
    assert!(!events["items"].as_array().unwrap().is_empty());
    let events = t
        .get("/api/v1/audit?action=nats.kv.keys.update", &key)
        .await
        .ok();
    assert!(!events["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn without_nats_the_new_views_are_503() {
    let t = TestApp::sqlite().await;
    let (_, key) = t.tenant("acme").await;
    for path in [
        "/api/v1/nats/kv",
        "/api/v1/nats/kv/acme_b/keys",
        "/api/v1/nats/kv/acme_b/keys/k",
        "/api/v1/nats/kv/acme_b/keys/k/history",
        "/api/v1/nats/streams/S/messages?start_time=2026-01-01T00:00:00Z",
    ] {
        t.get(path, &key).await.problem(503, "nats_unavailable");
    }
    t.json(
        Method::POST,
        "/api/v1/nats/kv",
        &key,
        json!({"name": "acme_b"}),
    )
    .await
    .problem(503, "nats_unavailable");
    t.json(
        Method::PUT,
        "/api/v1/nats/kv/acme_b/keys/k",
        &key,
        json!({"value": "v"}),
    )
    .await
    .problem(503, "nats_unavailable");
    t.json(
        Method::POST,
        "/api/v1/nats/streams/S/consumers/c/pause",
        &key,
        json!({}),
    )
    .await
    .problem(503, "nats_unavailable");
}
