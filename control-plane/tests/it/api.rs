//! Endpoint behaviour: pipelines (versions, diff, formats, filters, paging), streams, secrets,
//! validation, and bad bodies that must change nothing.

use axum::http::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, TestApp, pipeline_yaml, stream_yaml};

pub async fn pipeline_lifecycle(t: &TestApp) {
    let k = ADMIN_KEY;
    let v1 = pipeline_yaml("order-routing", "data.amount > 100", 2);
    let r = t.yaml(Method::POST, "/api/v1/pipelines", k, &v1).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    assert_eq!(created["result"], "created");
    assert_eq!(created["version"], 1);

    // Creating again is a conflict; PUT of the same spec changes nothing.
    t.yaml(Method::POST, "/api/v1/pipelines", k, &v1)
        .await
        .problem(409, "conflict");
    let r = t
        .yaml(Method::PUT, "/api/v1/pipelines/order-routing", k, &v1)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["result"], "unchanged");
    assert_eq!(r.json()["version"], 1);

    // The same spec as JSON is also unchanged.
    let as_json = t.get("/api/v1/pipelines/order-routing", k).await.ok()["resource"].clone();
    let r = t
        .json(Method::PUT, "/api/v1/pipelines/order-routing", k, as_json)
        .await;
    assert_eq!(r.json()["result"], "unchanged", "{}", r.text);

    // A change is version 2, with a diff.
    let v2 = pipeline_yaml("order-routing", "data.amount > 500", 2);
    let dry = t
        .yaml(
            Method::PUT,
            "/api/v1/pipelines/order-routing?dry_run=true",
            k,
            &v2,
        )
        .await
        .ok();
    assert_eq!(dry["result"], "configured");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        t.get("/api/v1/pipelines/order-routing", k).await.ok()["version"],
        1
    );
    let r = t
        .yaml(Method::PUT, "/api/v1/pipelines/order-routing", k, &v2)
        .await
        .ok();
    assert_eq!(r["result"], "configured");
    assert_eq!(r["version"], 2);
    let diff = r["diff"].as_str().unwrap();
    assert!(
        diff.contains("\n-    filter: data.amount > 100\n"),
        "{diff}"
    );
    assert!(
        diff.contains("\n+    filter: data.amount > 500\n"),
        "{diff}"
    );
    assert!(diff.starts_with("--- order-routing (version 1)\n+++ order-routing (version 2)\n"));

    let versions = t
        .get("/api/v1/pipelines/order-routing/versions", k)
        .await
        .ok();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["created_by"], "admin@weir.local");
    let d = t
        .get("/api/v1/pipelines/order-routing/diff?from=1&to=2", k)
        .await
        .ok();
    assert_eq!(d["diff"].as_str().unwrap(), diff);
    let old = t
        .get("/api/v1/pipelines/order-routing/versions/1?format=yaml", k)
        .await;
    assert_eq!(old.content_type, "application/yaml");
    assert!(old.text.contains("data.amount > 100"));
    t.get("/api/v1/pipelines/order-routing/versions/9", k)
        .await
        .problem(404, "not_found");

    // YAML via Accept or ?format, JSON by default.
    let got = t
        .get("/api/v1/pipelines/order-routing?format=yaml", k)
        .await;
    assert!(got.text.contains("kind: Pipeline") && got.text.contains("data.amount > 500"));
    let mut req = axum::http::Request::get("/api/v1/pipelines/order-routing")
        .header("authorization", format!("Bearer {k}"))
        .header("accept", "application/yaml")
        .body(axum::body::Body::empty())
        .unwrap();
    req.headers_mut();
    let got = t.send(req).await;
    assert_eq!(got.content_type, "application/yaml");
    let got = t.get("/api/v1/pipelines/order-routing", k).await.ok();
    assert_eq!(got["resource"]["metadata"]["tenant"], "default");
    assert_eq!(got["labels"]["team"], "payments");
    assert_eq!(got["parallelism"], 2);

    // Filters and paging.
    for name in ["alpha-one", "alpha-two", "beta"] {
        t.yaml(
            Method::POST,
            "/api/v1/pipelines",
            k,
            &pipeline_yaml(name, "true", 1),
        )
        .await
        .ok();
    }
    let other = pipeline_yaml("gamma", "true", 1).replace("team: payments", "team: search");
    t.yaml(Method::POST, "/api/v1/pipelines", k, &other)
        .await
        .ok();
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    let page = t.get("/api/v1/pipelines?prefix=alpha", k).await.ok();
    assert_eq!(names(&page), ["alpha-one", "alpha-two"]);
    let page = t.get("/api/v1/pipelines?label=team=search", k).await.ok();
    assert_eq!(names(&page), ["gamma"]);
    let page1 = t.get("/api/v1/pipelines?limit=2", k).await.ok();
    assert_eq!(names(&page1), ["alpha-one", "alpha-two"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = t
        .get(&format!("/api/v1/pipelines?limit=2&cursor={cursor}"), k)
        .await
        .ok();
    assert_eq!(names(&page2), ["beta", "gamma"]);
    let page3 = t
        .get("/api/v1/pipelines?limit=2&cursor=gamma", k)
        .await
        .ok();
    assert_eq!(names(&page3), ["order-routing"]);
    assert!(page3["next_cursor"].is_null());

    // Delete.
    t.delete("/api/v1/pipelines/beta", k).await.ok();
    t.get("/api/v1/pipelines/beta", k)
        .await
        .problem(404, "not_found");
    t.delete("/api/v1/pipelines/beta", k)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn pipelines_are_versioned_listed_and_deleted() {
    let t = TestApp::sqlite().await;
    pipeline_lifecycle(&t).await;
}

#[tokio::test]
async fn validation_reports_the_checkers_positions_and_saves_nothing() {
    let t = TestApp::sqlite().await;
    let ok = t
        .yaml(
            Method::POST,
            "/api/v1/pipelines:validate",
            ADMIN_KEY,
            &pipeline_yaml("p", "true", 1),
        )
        .await
        .ok();
    assert_eq!(ok["resources"], json!(["Pipeline/p"]));

    let bad = pipeline_yaml("p", "true", 1).replace("next: out", "next: nowhere");
    let expected = weir_pipelines::load_str(&bad, "request.yaml").unwrap_err();
    let p = t
        .yaml(Method::POST, "/api/v1/pipelines:validate", ADMIN_KEY, &bad)
        .await
        .problem(422, "invalid_spec");
    assert_eq!(p["diagnostics"], serde_json::to_value(&expected).unwrap());
    let first = &p["diagnostics"][0];
    assert!(first["line"].as_u64().unwrap() > 0 && first["column"].as_u64().unwrap() > 0);

    // The same errors from create, and nothing saved.
    let p2 = t
        .yaml(Method::POST, "/api/v1/pipelines", ADMIN_KEY, &bad)
        .await
        .problem(422, "invalid_spec");
    assert_eq!(p2["diagnostics"], p["diagnostics"]);
    let unknown = pipeline_yaml("p", "true", 1).replace("  labels:", "  colour: red\n  labels:");
    let p3 = t
        .yaml(Method::POST, "/api/v1/pipelines", ADMIN_KEY, &unknown)
        .await
        .problem(422, "invalid_spec");
    assert!(p3["diagnostics"].to_string().contains("colour"), "{p3}");
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        ADMIN_KEY,
        "kind: [unclosed",
    )
    .await
    .problem(422, "invalid_spec");
    let list = t.get("/api/v1/pipelines", ADMIN_KEY).await.ok();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn bad_bodies_get_problems_and_change_nothing() {
    let t = TestApp::sqlite().await;
    let k = ADMIN_KEY;
    // Malformed JSON, unknown field, wrong media type, oversized body.
    t.call(
        Method::POST,
        "/api/v1/users",
        Some(k),
        Some(("application/json", "{\"email\": ".into())),
    )
    .await
    .problem(400, "malformed_json");
    let p = t
        .json(
            Method::POST,
            "/api/v1/users",
            k,
            json!({"email": "a@b.test", "role": "viewer", "is_god": true}),
        )
        .await
        .problem(400, "malformed_json");
    assert!(p["detail"].as_str().unwrap().contains("is_god"));
    t.call(
        Method::POST,
        "/api/v1/users",
        Some(k),
        Some(("text/plain", "hello".into())),
    )
    .await
    .problem(415, "unsupported_media_type");
    let huge = format!(
        "{}\n# {}\n",
        pipeline_yaml("huge", "true", 1),
        "x".repeat(70 * 1024)
    );
    t.yaml(Method::POST, "/api/v1/pipelines", k, &huge)
        .await
        .problem(413, "payload_too_large");
    t.json(
        Method::PUT,
        "/api/v1/tenants/x/quotas",
        k,
        json!({"max_pipelines": "ten"}),
    )
    .await
    .problem(400, "malformed_json");
    t.get("/api/v1/pipelines?limit=many", k)
        .await
        .problem(400, "bad_query");
    // The URL names another pipeline than the body.
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/other",
        k,
        &pipeline_yaml("p", "true", 1),
    )
    .await
    .problem(422, "invalid_value");
    // A Stream sent to the pipelines endpoint.
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        k,
        &stream_yaml("S", "s.>"),
    )
    .await
    .problem(422, "invalid_value");

    let users = t.get("/api/v1/users", k).await.ok();
    assert_eq!(users.as_array().unwrap().len(), 1);
    let list = t.get("/api/v1/pipelines", k).await.ok();
    assert_eq!(list["items"], json!([]));

    // Unknown routes and methods are problems too.
    t.get("/api/v1/nothing-here", k)
        .await
        .problem(404, "not_found");
    t.call(Method::PATCH, "/api/v1/pipelines", Some(k), None)
        .await
        .problem(405, "method_not_allowed");
}

#[tokio::test]
async fn streams_are_recorded() {
    let t = TestApp::sqlite().await;
    let k = ADMIN_KEY;
    let r = t
        .yaml(
            Method::PUT,
            "/api/v1/streams/ORDERS",
            k,
            &stream_yaml("ORDERS", "orders.>"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let again = t
        .yaml(
            Method::PUT,
            "/api/v1/streams/ORDERS",
            k,
            &stream_yaml("ORDERS", "orders.>"),
        )
        .await
        .ok();
    assert_eq!(again["result"], "unchanged");
    let changed = t
        .yaml(
            Method::PUT,
            "/api/v1/streams/ORDERS",
            k,
            &stream_yaml("ORDERS", "order.>"),
        )
        .await
        .ok();
    assert_eq!(changed["result"], "configured");
    let list = t.get("/api/v1/streams", k).await.ok();
    assert_eq!(list[0]["name"], "ORDERS");
    assert_eq!(list[0]["resource"]["spec"]["subjects"], json!(["order.>"]));
    assert!(
        t.get("/api/v1/streams/ORDERS?format=yaml", k)
            .await
            .text
            .contains("order.>")
    );
    t.delete("/api/v1/streams/ORDERS", k).await.ok();
    t.get("/api/v1/streams/ORDERS", k)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn secrets_are_encrypted_and_never_returned() {
    let t = TestApp::sqlite().await;
    let k = ADMIN_KEY;
    let r = t
        .json(
            Method::PUT,
            "/api/v1/secrets/prod-nats",
            k,
            json!({"kind": "nats-credentials", "config": {"url": "nats://prod:4222"},
                   "secret": {"password": "hunter2-very-secret"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!r.text.contains("hunter2"));
    for path in ["/api/v1/secrets/prod-nats", "/api/v1/secrets"] {
        let got = t.get(path, k).await;
        assert!(got.status.is_success());
        assert!(!got.text.contains("hunter2"), "{}", got.text);
        assert!(got.text.contains("password") && got.text.contains("nats://prod:4222"));
    }
    // At rest: only ciphertext.
    let stored: String = sqlx::query_scalar("SELECT ciphertext FROM secrets")
        .fetch_one(t.state.db().pool())
        .await
        .unwrap();
    assert!(!stored.contains("hunter2"));
    let tenant_id: String = sqlx::query_scalar("SELECT tenant_id FROM secrets")
        .fetch_one(t.state.db().pool())
        .await
        .unwrap();
    let revealed = weir_control_plane::secrets::reveal(&t.state, &tenant_id, "prod-nats")
        .await
        .unwrap();
    assert_eq!(revealed["password"], "hunter2-very-secret");
    // Audit shows the change without the value.
    let audit = t.get("/api/v1/audit?action=secrets.update", k).await;
    assert!(audit.text.contains("prod-nats") && !audit.text.contains("hunter2"));
    t.delete("/api/v1/secrets/prod-nats", k).await.ok();
    t.get("/api/v1/secrets/prod-nats", k)
        .await
        .problem(404, "not_found");
}

#[tokio::test]
async fn health_and_roles() {
    let t = TestApp::sqlite().await;
    let h = t.call(Method::GET, "/healthz", None, None).await.ok();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["store"], "sqlite");
    let r = t
        .json(
            Method::POST,
            "/api/v1/roles",
            ADMIN_KEY,
            json!({"name": "deployer", "permissions": ["pipelines:*", "streams:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    t.json(
        Method::POST,
        "/api/v1/roles",
        ADMIN_KEY,
        json!({"name": "broken", "permissions": ["pipelines:fly"]}),
    )
    .await
    .problem(422, "invalid_value");
    let roles = t.get("/api/v1/roles", ADMIN_KEY).await.ok();
    assert_eq!(roles.as_array().unwrap().len(), 5);
    let (_, key) = t.user_with_key(ADMIN_KEY, "dep@x.test", "deployer").await;
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &key,
        &pipeline_yaml("p", "true", 1),
    )
    .await
    .ok();
    t.delete("/api/v1/pipelines/p", &key).await.ok();
    t.get("/api/v1/streams", &key).await.ok();
    t.yaml(
        Method::PUT,
        "/api/v1/streams/S",
        &key,
        &stream_yaml("S", "s.>"),
    )
    .await
    .problem(403, "forbidden");
    t.delete("/api/v1/roles/deployer", ADMIN_KEY)
        .await
        .problem(409, "conflict");
}
