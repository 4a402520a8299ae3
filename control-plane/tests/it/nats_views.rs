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
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
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
