//! What applying and deleting does on NATS, against a real nats-server: a declared stream is
//! created when applied and removed when deleted (one holding messages only with `force`); a
//! deleted pipeline's durable consumer goes with it (unless `keep_position`) and its dead
//! letters stay reachable by its name; redrive by error kind, with a lineage header.

use async_nats::jetstream::{self, consumer, stream};
use axum::http::Method;
use serde_json::json;

use crate::support::{TestApp, pipeline_yaml, stream_yaml};

async fn stream_exists(js: &jetstream::Context, name: &str) -> bool {
    js.get_stream(name).await.is_ok()
}

#[tokio::test]
async fn declared_streams_are_created_and_deleted_on_nats() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    let (_, acme) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, editor) = t.user_with_key(&acme, "ed@acme.test", "editor").await;

    // Applied: on NATS at once, not only at the next deploy.
    t.yaml(
        Method::PUT,
        "/api/v1/streams/SENSORS",
        &editor,
        &stream_yaml("SENSORS", "sensors.>"),
    )
    .await
    .ok();
    let mut s = js.get_stream("SENSORS").await.expect("created on NATS");
    assert_eq!(
        s.info().await.unwrap().config.subjects,
        ["sensors.>".to_string()]
    );
    // A stream NATS refuses (its subjects overlap SENSORS'): 409, and nothing is recorded.
    t.yaml(
        Method::PUT,
        "/api/v1/streams/OVERLAP",
        &acme,
        &stream_yaml("OVERLAP", "sensors.a"),
    )
    .await
    .problem(409, "conflict");
    t.get("/api/v1/streams/OVERLAP", &acme)
        .await
        .problem(404, "not_found");
    // A stream reserving more storage than the server has (max_bytes is reserved up front):
    // 409 saying what to change, and nothing is recorded.
    let huge = format!("{}  max_bytes: 4096TiB\n", stream_yaml("HUGE", "huge.>"));
    let p = t
        .yaml(Method::PUT, "/api/v1/streams/HUGE", &acme, &huge)
        .await
        .problem(409, "conflict");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("insufficient storage")
            && detail.contains(&format!("spec.max_bytes = {}", 4096u64 << 40))
            && detail.contains("lower spec.max_bytes"),
        "{detail}"
    );
    t.get("/api/v1/streams/HUGE", &acme)
        .await
        .problem(404, "not_found");

    js.publish("sensors.a", "21.5".into())
        .await
        .unwrap()
        .await
        .unwrap();
    // The editor may not delete streams; another tenant does not see it.
    t.delete("/api/v1/streams/SENSORS", &editor)
        .await
        .problem(403, "forbidden");
    t.delete("/api/v1/streams/SENSORS?force=true", &beta)
        .await
        .problem(404, "not_found");
    // It holds a message: deleting it needs a confirmation.
    let p = t
        .delete("/api/v1/streams/SENSORS", &acme)
        .await
        .problem(409, "conflict");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("holds 1 message") && detail.contains("force=true"),
        "{detail}"
    );
    assert!(stream_exists(&js, "SENSORS").await);
    t.delete("/api/v1/streams/SENSORS?force=true", &acme)
        .await
        .ok();
    assert!(!stream_exists(&js, "SENSORS").await, "gone from NATS");
    t.get("/api/v1/streams/SENSORS", &acme)
        .await
        .problem(404, "not_found");

    // An empty stream is deleted without `force`.
    t.yaml(
        Method::PUT,
        "/api/v1/streams/EMPTY",
        &acme,
        &stream_yaml("EMPTY", "empty.>"),
    )
    .await
    .ok();
    assert!(stream_exists(&js, "EMPTY").await);
    t.delete("/api/v1/streams/EMPTY", &acme).await.ok();
    assert!(!stream_exists(&js, "EMPTY").await);
}

#[tokio::test]
async fn deleting_a_pipeline_removes_its_consumer_and_keeps_its_dead_letters_reachable() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    for (name, subject) in [("ORDERS", "orders.>"), ("DLQ", "dlq.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (_, acme) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, operator) = t.user_with_key(&acme, "op@acme.test", "operator").await;
    let orders = js.get_stream("ORDERS").await.unwrap();
    let durable = |name: &str| format!("weir_acme_{name}");
    for name in ["orders", "kept"] {
        t.yaml(
            Method::POST,
            "/api/v1/pipelines",
            &acme,
            &pipeline_yaml(name, "true", 1),
        )
        .await
        .ok();
        // What a worker creates when it runs the pipeline.
        orders
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable(name)),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // What a worker keeps for a partitioned stateful pipeline: checkpoints, leases and its
    // partition stream; `kept`'s must stay.
    let checkpoints = js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "weir_checkpoints".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for name in ["weir_acme_orders", "weir_acme_orders_p3", "weir_acme_kept"] {
        checkpoints.put(name, &mut &b"state"[..]).await.unwrap();
    }
    let leases = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "weir_leases".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for key in ["weir_acme_orders_p3", "weir_acme_kept"] {
        leases.put(key, "w1".into()).await.unwrap();
    }
    js.create_stream(stream::Config {
        name: "WEIR_PART_weir_acme_orders".into(),
        subjects: vec!["_weir.partition.weir_acme_orders.*".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut h = async_nats::HeaderMap::new();
    h.insert("Weir-Pipeline", "orders");
    h.insert("Weir-Tenant", "acme");
    h.insert("Weir-Error-Kind", "decode");
    h.insert("Weir-Error", "not JSON");
    h.insert("Weir-Source-Subject", "orders.created.eu");
    let seq = js
        .publish_with_headers("dlq.orders", h, "{oops".into())
        .await
        .unwrap()
        .await
        .unwrap()
        .sequence;

    // The operator may not delete it; beta does not see it.
    t.delete("/api/v1/pipelines/orders", &operator)
        .await
        .problem(403, "forbidden");
    t.delete("/api/v1/pipelines/orders", &beta)
        .await
        .problem(404, "not_found");
    t.delete("/api/v1/pipelines/orders", &acme).await.ok();
    assert!(
        orders
            .get_consumer::<consumer::pull::Config>(&durable("orders"))
            .await
            .is_err(),
        "the consumer went with the pipeline"
    );
    assert!(
        js.get_stream("WEIR_PART_weir_acme_orders").await.is_err(),
        "the partition stream went with it"
    );
    for (name, kept) in [
        ("weir_acme_orders", false),
        ("weir_acme_orders_p3", false),
        ("weir_acme_kept", true),
    ] {
        let held = checkpoints.info(name).await.is_ok_and(|i| !i.deleted);
        assert_eq!(held, kept, "checkpoint {name}");
    }
    assert!(leases.get("weir_acme_orders_p3").await.unwrap().is_none());
    assert!(leases.get("weir_acme_kept").await.unwrap().is_some());
    // Its dead letters: still listed, shown and redriven by its name; not to beta.
    let l = t.get("/api/v1/pipelines/orders/dlq", &acme).await.ok();
    assert_eq!(l["total"], 1, "{l}");
    assert_eq!(l["entries"][0]["seq"], seq);
    t.get(&format!("/api/v1/pipelines/orders/dlq/{seq}"), &acme)
        .await
        .ok();
    t.get("/api/v1/pipelines/orders/dlq", &beta)
        .await
        .problem(404, "not_found");
    // The pipeline itself is gone.
    t.get("/api/v1/pipelines/orders", &acme)
        .await
        .problem(404, "not_found");

    // `keep_position` keeps the consumer for a pipeline re-created under the name.
    t.delete("/api/v1/pipelines/kept?keep_position=true", &acme)
        .await
        .ok();
    assert!(
        orders
            .get_consumer::<consumer::pull::Config>(&durable("kept"))
            .await
            .is_ok(),
        "kept"
    );
}

#[tokio::test]
async fn redrive_by_kind_links_the_redriven_message_to_its_entry() {
    let t = TestApp::sqlite_nats().await;
    let js = t.nats().js().clone();
    for (name, subject) in [("ORDERS", "orders.>"), ("DLQ", "dlq.>")] {
        js.create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (_, acme) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, viewer) = t.user_with_key(&acme, "v@acme.test", "viewer").await;
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &acme,
        &pipeline_yaml("orders", "true", 1),
    )
    .await
    .ok();
    let mut seqs = Vec::new();
    for kind in ["decode", "expression", "decode"] {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Weir-Pipeline", "orders");
        h.insert("Weir-Tenant", "acme");
        h.insert("Weir-Error-Kind", kind);
        h.insert("Weir-Error", "failed");
        h.insert("Weir-Source-Subject", "orders.created.eu");
        seqs.push(
            js.publish_with_headers("dlq.orders", h, "{}".into())
                .await
                .unwrap()
                .await
                .unwrap()
                .sequence,
        );
    }
    let body = json!({"all": true, "kind": "expression"});
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/dlq/redrive",
        &viewer,
        body.clone(),
    )
    .await
    .problem(403, "forbidden");
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/dlq/redrive",
        &beta,
        body.clone(),
    )
    .await
    .problem(404, "not_found");
    t.json(
        Method::POST,
        "/api/v1/pipelines/orders/dlq/redrive",
        &acme,
        json!({"seqs": [seqs[0]], "kind": "decode"}),
    )
    .await
    .problem(422, "invalid_value");
    let r = t
        .json(
            Method::POST,
            "/api/v1/pipelines/orders/dlq/redrive",
            &acme,
            body,
        )
        .await
        .ok();
    let redriven: Vec<u64> = r["redriven"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(redriven, [seqs[1]], "only the expression entry: {r}");
    let back = js
        .get_stream("ORDERS")
        .await
        .unwrap()
        .get_last_raw_message_by_subject("orders.created.eu")
        .await
        .unwrap();
    assert_eq!(
        back.headers.get("Weir-Redrive-Of").map(|v| v.as_str()),
        Some(seqs[1].to_string().as_str()),
        "the redriven message names its entry"
    );
    // A dead letter that carries the header (it failed again) shows the link.
    let mut h = async_nats::HeaderMap::new();
    h.insert("Weir-Pipeline", "orders");
    h.insert("Weir-Tenant", "acme");
    h.insert("Weir-Error-Kind", "expression");
    h.insert("Weir-Error", "failed again");
    h.insert("Weir-Redrive-Of", seqs[1].to_string().as_str());
    js.publish_with_headers("dlq.orders", h, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let l = t
        .get("/api/v1/pipelines/orders/dlq?kind=expression", &acme)
        .await
        .ok();
    assert_eq!(l["entries"][0]["redrive_of"], seqs[1], "{l}");
    let l = t
        .get("/api/v1/pipelines/orders/dlq?kind=decode", &acme)
        .await
        .ok();
    assert_eq!(
        l["entries"].as_array().unwrap().len(),
        2,
        "decode entries stay: {l}"
    );
}

#[tokio::test]
async fn validate_and_apply_check_pipelines_against_the_tenants_declared_streams() {
    let t = TestApp::sqlite_nats().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, viewer) = t.user_with_key(&acme, "v@acme.test", "viewer").await;
    t.yaml(
        Method::PUT,
        "/api/v1/streams/READINGS",
        &acme,
        &stream_yaml("READINGS", "sensors.>"),
    )
    .await
    .ok();
    // `sensor.>` on a stream of `sensors.>`: it would never receive a message.
    let outside = pipeline_yaml("iot", "true", 1)
        .replace("stream: ORDERS", "stream: READINGS")
        .replace("orders.created.>", "sensor.>");
    for (method, path) in [
        (Method::POST, "/api/v1/pipelines:validate"),
        (Method::POST, "/api/v1/pipelines"),
    ] {
        let p = t
            .yaml(method, path, &acme, &outside)
            .await
            .problem(422, "invalid_spec");
        assert_eq!(p["diagnostics"][0]["code"], "subject-outside-stream", "{p}");
        assert_eq!(
            p["diagnostics"][0]["path"], "/spec/source/subjects/0",
            "{p}"
        );
    }
    // The viewer may validate (and gets the same answer), not apply.
    t.yaml(
        Method::POST,
        "/api/v1/pipelines:validate",
        &viewer,
        &outside,
    )
    .await
    .problem(422, "invalid_spec");
    t.yaml(Method::POST, "/api/v1/pipelines", &viewer, &outside)
        .await
        .problem(403, "forbidden");
    // Publishing into its own source: every output would come back.
    let looping = pipeline_yaml("loop", "true", 1)
        .replace("stream: ORDERS", "stream: READINGS")
        .replace("orders.created.>", "sensors.>")
        .replace("subject: orders.big", "subject: sensors.clean");
    let p = t
        .yaml(Method::POST, "/api/v1/pipelines:validate", &acme, &looping)
        .await
        .problem(422, "invalid_spec");
    assert_eq!(p["diagnostics"][0]["code"], "publish-loop", "{p}");
    // Beta declared no such stream: its own streams are what it is checked against.
    t.yaml(Method::POST, "/api/v1/pipelines:validate", &beta, &outside)
        .await
        .ok();
}

#[tokio::test]
async fn a_pipeline_with_one_owner_deploys_with_no_more_loops_than_it_runs() {
    let t = TestApp::sqlite_nats().await;
    let (_, acme) = t.tenant("acme").await;
    t.yaml(
        Method::PUT,
        "/api/v1/streams/ORDERS",
        &acme,
        &crate::support::stream_yaml("ORDERS", "orders.>"),
    )
    .await
    .ok();
    let yaml = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: once }\nspec:\n  source: { stream: ORDERS, subjects: [\"orders.in\"] }\n  nodes:\n    - { id: d, dedup: { key: data.id, within: 1m }, next: out }\n    - { id: out, publish: { subject: orders.once } }\n";
    t.yaml(Method::POST, "/api/v1/pipelines", &acme, yaml)
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/once/deploy",
            &acme,
            serde_json::json!({"parallelism": 3}),
        )
        .await
        .problem(422, "invalid_value");
    assert!(
        p["detail"].as_str().unwrap().contains("`dedup` node"),
        "{p}"
    );
    t.json(
        Method::POST,
        "/api/v1/pipelines/once/deploy",
        &acme,
        serde_json::json!({}),
    )
    .await
    .ok();
    // Keyed partitions: as many routing loops as partitions, not more.
    let split = yaml
        .replace("name: once", "name: split")
        .replace("orders.once", "orders.split")
        + "  execution: { partitions: 4 }\n";
    t.yaml(Method::POST, "/api/v1/pipelines", &acme, &split)
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/split/deploy",
            &acme,
            serde_json::json!({"parallelism": 5}),
        )
        .await
        .problem(422, "invalid_value");
    assert!(
        p["detail"].as_str().unwrap().contains("4 partition(s)"),
        "{p}"
    );
    t.json(
        Method::POST,
        "/api/v1/pipelines/split/deploy",
        &acme,
        serde_json::json!({"parallelism": 4}),
    )
    .await
    .ok();
    // A stateless pipeline with one reader at a time: one loop.
    let alone = "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: { name: alone }\nspec:\n  source: { stream: ORDERS, subjects: [\"orders.in\"] }\n  nodes:\n    - { id: out, publish: { subject: orders.alone } }\n  execution: { delivery: exclusive }\n";
    t.yaml(Method::POST, "/api/v1/pipelines", &acme, alone)
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/pipelines/alone/deploy",
            &acme,
            serde_json::json!({"parallelism": 2}),
        )
        .await
        .problem(422, "invalid_value");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("delivery: exclusive"),
        "{p}"
    );
    t.json(
        Method::POST,
        "/api/v1/pipelines/alone/deploy",
        &acme,
        serde_json::json!({}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_version_that_cannot_take_the_state_over_deploys_only_with_reset_state() {
    let t = TestApp::sqlite_nats().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, beta) = t.tenant("beta").await;
    let (_, viewer) = t.user_with_key(&acme, "view@acme.test", "viewer").await;
    t.yaml(
        Method::PUT,
        "/api/v1/streams/ORDERS",
        &acme,
        &crate::support::stream_yaml("ORDERS", "orders.>"),
    )
    .await
    .ok();
    let windowed = |size: &str, subject: &str| {
        format!(
            "apiVersion: weir.dev/v1\nkind: Pipeline\nmetadata: {{ name: m }}\nspec:\n  source: {{ stream: ORDERS, subjects: [\"orders.in\"] }}\n  nodes:\n    - id: w\n      window: {{ kind: tumbling, size: {size}, group_by: [data.k], aggregates: {{ n: count(*) }}, late: out }}\n      next: out\n    - {{ id: out, publish: {{ subject: {subject} }} }}\n"
        )
    };
    let put = |yaml: String| {
        let t = &t;
        let acme = &acme;
        async move {
            t.yaml(Method::PUT, "/api/v1/pipelines/m", acme, &yaml)
                .await
                .ok();
        }
    };
    let deploy = |key: String, body: serde_json::Value| {
        let t = &t;
        async move {
            t.json(Method::POST, "/api/v1/pipelines/m/deploy", &key, body)
                .await
        }
    };
    put(windowed("1m", "orders.m1")).await;
    deploy(acme.clone(), serde_json::json!({})).await.ok();

    // v2 changes only the publish node: it takes the state over.
    put(windowed("1m", "orders.m2")).await;
    deploy(acme.clone(), serde_json::json!({})).await.ok();

    // v3 changes the window: refused, saying which node and how to go on.
    put(windowed("5m", "orders.m2")).await;
    let p = deploy(acme.clone(), serde_json::json!({}))
        .await
        .problem(409, "state_incompatible");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.contains("node `w`") && detail.contains("reset_state"),
        "{p}"
    );
    // The weakest role and another tenant cannot reset it.
    deploy(viewer.clone(), serde_json::json!({"reset_state": true}))
        .await
        .problem(403, "forbidden");
    deploy(beta.clone(), serde_json::json!({"reset_state": true}))
        .await
        .problem(404, "not_found");
    let d = deploy(acme.clone(), serde_json::json!({"reset_state": true}))
        .await
        .ok();
    assert_eq!(d["version"], 3, "{d}");
    // Rolling back to v2 is the same change the other way.
    t.json(
        Method::POST,
        "/api/v1/pipelines/m/rollback",
        &acme,
        serde_json::json!({"version": 2}),
    )
    .await
    .problem(409, "state_incompatible");
    t.json(
        Method::POST,
        "/api/v1/pipelines/m/rollback",
        &acme,
        serde_json::json!({"version": 2, "reset_state": true}),
    )
    .await
    .ok();
}
