//! DLQ operations against a real nats-server: dead letters published straight into the DLQ
//! stream are listed by error kind, shown in full, redriven to their source subject (and leave
//! the DLQ), and purged — only the pipeline's own, only by its tenant and permitted roles.

use async_nats::jetstream::{self, stream};
use axum::http::Method;
use serde_json::json;

use crate::support::{TestApp, pipeline_yaml};

/// Publishes a DLQ-shaped message for `pipeline` to `dlq.orders`; returns its DLQ sequence.
async fn dead_letter(
    js: &jetstream::Context,
    pipeline: &str,
    tenant: Option<&str>,
    kind: &str,
    payload: &str,
    source_seq: u64,
) -> u64 {
    let mut h = async_nats::HeaderMap::new();
    h.insert("X-Trace", format!("trace-{source_seq}").as_str());
    h.insert("Weir-Pipeline", pipeline);
    if let Some(t) = tenant {
        h.insert("Weir-Tenant", t);
    }
    h.insert("Weir-Error-Kind", kind);
    h.insert(
        "Weir-Error",
        format!("{kind} failed on row {source_seq}").as_str(),
    );
    h.insert("Weir-Node", "big");
    h.insert("Weir-Source-Stream", "ORDERS");
    h.insert("Weir-Source-Subject", "orders.created.eu");
    h.insert("Weir-Source-Seq", source_seq.to_string().as_str());
    h.insert("Weir-Attempts", "1");
    h.insert("Weir-Failed-At", "2026-11-26T01:00:00.000Z");
    js.publish_with_headers("dlq.orders", h, payload.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence
}

#[tokio::test]
async fn list_show_redrive_and_purge_dead_letters() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    js.create_stream(stream::Config {
        name: "ORDERS".into(),
        subjects: vec!["orders.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dlq_stream = js
        .create_stream(stream::Config {
            name: "DLQ".into(),
            subjects: vec!["dlq.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, key) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    for k in [&key, &beta] {
        t.yaml(
            Method::POST,
            "/api/v1/pipelines",
            k,
            &pipeline_yaml("orders", "true", 1),
        )
        .await
        .ok();
    }

    // Nothing dead-lettered yet.
    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 0);
    assert_eq!(l["stream"], "DLQ");
    assert_eq!(l["subject"], "dlq.orders");

    let s1 = dead_letter(&js, "orders", Some("acme"), "decode", "{not json", 11).await;
    let s2 = dead_letter(&js, "orders", Some("acme"), "decode", "{\"a\":", 12).await;
    let s3 = dead_letter(&js, "orders", Some("acme"), "expression", "{\"a\":1}", 13).await;
    // Another pipeline sharing the subject, and beta's pipeline of the same name.
    let other = dead_letter(&js, "billing", Some("acme"), "decode", "x", 14).await;
    let beta_seq = dead_letter(&js, "orders", Some("beta"), "shape", "y", 15).await;

    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 3, "{l}");
    assert_eq!(l["groups"][0]["kind"], "decode");
    assert_eq!(l["groups"][0]["count"], 2);
    assert_eq!(l["groups"][1]["kind"], "expression");
    assert_eq!(l["groups"][1]["count"], 1);
    let seqs: Vec<u64> = l["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [s1, s2, s3]);
    let e = &l["entries"][2];
    assert_eq!(e["kind"], "expression");
    assert_eq!(e["error"], "expression failed on row 13");
    assert_eq!(e["node"], "big");
    assert_eq!(e["source_subject"], "orders.created.eu");
    assert_eq!(e["source_seq"], 13);
    // Filter and paging.
    let l = t
        .get("/api/v1/pipelines/orders/dlq?kind=decode&limit=1", &key)
        .await
        .ok();
    assert_eq!(l["entries"].as_array().unwrap().len(), 1);
    assert_eq!(l["next_cursor"], s1);
    let l = t
        .get(
            &format!("/api/v1/pipelines/orders/dlq?kind=decode&limit=1&cursor={s1}"),
            &key,
        )
        .await
        .ok();
    assert_eq!(l["entries"][0]["seq"], s2);
    // Beta sees only its own letter.
    let l = t.get("/api/v1/pipelines/orders/dlq", &beta).await.ok();
    assert_eq!(l["total"], 1);
    assert_eq!(l["entries"][0]["seq"], beta_seq);

    // Show one.
    let m = t
        .get(&format!("/api/v1/pipelines/orders/dlq/{s1}"), &key)
        .await
        .ok();
    assert_eq!(m["payload_utf8"], "{not json");
    assert_eq!(m["payload_base64"], "e25vdCBqc29u");
    assert_eq!(m["headers"]["X-Trace"][0], "trace-11");
    assert!(m["headers"].get("Weir-Error").is_none());
    assert_eq!(m["weir_headers"]["Weir-Error-Kind"], "decode");
    assert_eq!(m["weir_headers"]["Weir-Source-Seq"], "11");
    // Not this pipeline's, another tenant's, or absent: 404.
    for seq in [other, beta_seq, 999] {
        t.get(&format!("/api/v1/pipelines/orders/dlq/{seq}"), &key)
            .await
            .problem(404, "not_found");
    }

    // Viewers read but may not redrive or purge.
    let (_, viewer) = t.user_with_key(&key, "viewer@acme.test", "viewer").await;
    t.get("/api/v1/pipelines/orders/dlq", &viewer).await.ok();
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/dlq/redrive",
        &viewer,
        json!({"all": true}),
    )
    .await
    .problem(403, "forbidden");
    t.delete("/api/v1/pipelines/orders/dlq", &viewer)
        .await
        .problem(403, "forbidden");

    // Bad redrive bodies.
    for body in [
        json!({}),
        json!({"all": true, "seqs": [s1]}),
        json!({"seqs": [s1, s2], "payload": "x"}),
    ] {
        t.json(
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            &key,
            body,
        )
        .await
        .problem(422, "invalid_value");
    }

    // Redrive one with an edited payload.
    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            &key,
            json!({"seqs": [s1], "payload": "{\"fixed\":true}"}),
        )
        .await
        .ok();
    assert_eq!(r["redriven"][0]["seq"], s1);
    assert_eq!(r["redriven"][0]["stream"], "ORDERS");
    assert!(r["failed"].as_array().unwrap().is_empty());
    let orders = js.get_stream("ORDERS").await.unwrap();
    let back = orders
        .get_last_raw_message_by_subject("orders.created.eu")
        .await
        .unwrap();
    assert_eq!(&back.payload[..], b"{\"fixed\":true}");
    assert_eq!(back.headers.get("X-Trace").unwrap().as_str(), "trace-11");
    assert!(back.headers.get("Weir-Error-Kind").is_none());
    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 2);

    // Redrive the rest.
    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            &key,
            json!({"all": true}),
        )
        .await
        .ok();
    assert_eq!(r["redriven"].as_array().unwrap().len(), 2, "{r}");
    let mut orders = js.get_stream("ORDERS").await.unwrap();
    assert_eq!(orders.info().await.unwrap().state.messages, 3);
    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 0);

    // Purge removes only this pipeline's letters (the subject holds others too); a letter
    // without `Weir-Tenant` is no tenant's: never shown, never purged.
    dead_letter(&js, "orders", Some("acme"), "decode", "a", 21).await;
    dead_letter(&js, "orders", Some("acme"), "size", "b", 22).await;
    dead_letter(&js, "orders", None, "size", "forged", 23).await;
    let (_, operator) = t
        .user_with_key(&key, "operator@acme.test", "operator")
        .await;
    let p = t
        .delete("/api/v1/pipelines/orders/dlq", &operator)
        .await
        .ok();
    assert_eq!(p["purged"], 2);
    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 0);
    let mut dlq_stream = dlq_stream;
    assert_eq!(
        dlq_stream.info().await.unwrap().state.messages,
        3,
        "billing's, beta's and the tenant-less letters stay"
    );
    let l = t.get("/api/v1/pipelines/orders/dlq", &beta).await.ok();
    assert_eq!(l["total"], 1);

    // A tenant without the pipeline gets 404 everywhere.
    let (_, gamma) = t.tenant("gamma").await;
    for (m, path) in [
        (Method::GET, "/api/v1/pipelines/orders/dlq".to_string()),
        (
            Method::GET,
            format!("/api/v1/pipelines/orders/dlq/{beta_seq}"),
        ),
        (Method::DELETE, "/api/v1/pipelines/orders/dlq".to_string()),
    ] {
        t.call(m, &path, Some(&gamma), None)
            .await
            .problem(404, "not_found");
    }
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/dlq/redrive",
        &gamma,
        json!({"all": true}),
    )
    .await
    .problem(404, "not_found");

    // Redrive and purge are audited.
    let actions = t.audit_actions("?outcome=success", &key).await;
    for a in ["pipelines.dlq.redrive", "pipelines.dlq.delete"] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
}

/// A forged dead letter in the tenant's own DLQ whose `Weir-Source-Subject` points outside the
/// pipeline's source (another tenant's subject, a JetStream API subject) is not redriven: it
/// stays in the DLQ with the reason, and nothing is published there.
#[tokio::test]
async fn forged_source_subjects_are_not_redriven() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    for (name, subject) in [
        ("ORDERS", "orders.>"),
        ("DLQ", "dlq.>"),
        ("OTHER", "other.>"),
    ] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    js.publish("other.data", "keep".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (_, key) = t.tenant("acme").await;
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &key,
        &pipeline_yaml("orders", "true", 1),
    )
    .await
    .ok();
    let mut seqs = Vec::new();
    for target in ["other.data", "$JS.API.STREAM.PURGE.OTHER"] {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Weir-Pipeline", "orders");
        h.insert("Weir-Tenant", "acme");
        h.insert("Weir-Error-Kind", "decode");
        h.insert("Weir-Error", "forged");
        h.insert("Weir-Source-Subject", target);
        let ack = js
            .publish_with_headers("dlq.orders", h, "{}".into())
            .await
            .unwrap()
            .await
            .unwrap();
        seqs.push(ack.sequence);
    }
    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            &key,
            json!({"all": true}),
        )
        .await
        .ok();
    assert!(r["redriven"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(r["failed"].as_array().unwrap().len(), 2, "{r}");
    let mut other = js.get_stream("OTHER").await.unwrap();
    assert_eq!(
        other.info().await.unwrap().state.messages,
        1,
        "OTHER untouched"
    );
    let l = t.get("/api/v1/pipelines/orders/dlq", &key).await.ok();
    assert_eq!(l["total"], 2, "the forged letters stay in the DLQ");
}
