//! Tenant isolation: two tenants, every endpoint; nothing crosses, and foreign ids are 404.

use axum::http::Method;
use serde_json::json;

use crate::support::{TestApp, pipeline_yaml, stream_yaml};

#[tokio::test]
async fn nothing_crosses_between_tenants() {
    let t = TestApp::sqlite().await;
    let (_a_id, a) = t.tenant("tenant-a").await;
    let (b_id, b) = t.tenant("tenant-b").await;

    // B owns one of everything.
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &b,
        &pipeline_yaml("shared-name", "true", 1),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/streams/B_ONLY",
        &b,
        &stream_yaml("B_ONLY", "b.>"),
    )
    .await
    .ok();
    t.json(
        Method::PUT,
        "/api/v1/secrets/b-secret",
        &b,
        json!({"kind": "webhook-token", "secret": {"token": "b-token"}}),
    )
    .await
    .ok();
    t.json(
        Method::POST,
        "/api/v1/roles",
        &b,
        json!({"name": "b-role", "permissions": ["pipelines:read"]}),
    )
    .await
    .ok();
    let (b_user, _) = t.user_with_key(&b, "someone@b.test", "viewer").await;
    let b_key_id = t.get("/api/v1/api-keys", &b).await.ok()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // A sees none of it in lists.
    let lists = [
        "/api/v1/pipelines",
        "/api/v1/streams",
        "/api/v1/secrets",
        "/api/v1/users",
        "/api/v1/api-keys",
        "/api/v1/roles",
        "/api/v1/audit",
    ];
    for path in lists {
        let r = t.get(path, &a).await;
        assert!(r.status.is_success(), "{path}: {}", r.text);
        for needle in [
            "shared-name",
            "B_ONLY",
            "b-secret",
            "b-role",
            "someone@b.test",
            "tenant-b",
            &b_key_id,
        ] {
            assert!(
                !r.text.contains(needle),
                "{path} leaks {needle}: {}",
                r.text
            );
        }
    }
    let usage = t.get("/api/v1/quotas/usage", &a).await.ok();
    assert_eq!(usage["quotas"][0]["usage"], 0);

    // Every id or name of B is 404 for A: reads, writes and deletes.
    let not_found = [
        (Method::GET, "/api/v1/pipelines/shared-name".to_string()),
        (Method::GET, "/api/v1/pipelines/shared-name/versions".into()),
        (
            Method::GET,
            "/api/v1/pipelines/shared-name/versions/1".into(),
        ),
        (
            Method::GET,
            "/api/v1/pipelines/shared-name/diff?from=1".into(),
        ),
        (Method::DELETE, "/api/v1/pipelines/shared-name".into()),
        (Method::GET, "/api/v1/streams/B_ONLY".into()),
        (Method::DELETE, "/api/v1/streams/B_ONLY".into()),
        (Method::GET, "/api/v1/secrets/b-secret".into()),
        (Method::DELETE, "/api/v1/secrets/b-secret".into()),
        (Method::GET, format!("/api/v1/users/{b_user}")),
        (Method::DELETE, format!("/api/v1/users/{b_user}")),
        (Method::DELETE, "/api/v1/roles/b-role".into()),
        (Method::DELETE, format!("/api/v1/api-keys/{b_key_id}")),
        (Method::POST, format!("/api/v1/api-keys/{b_key_id}/rotate")),
    ];
    for (method, path) in not_found {
        let r = t.call(method.clone(), &path, Some(&a), None).await;
        r.problem(404, "not_found");
        assert!(!r.text.contains("tenant-b"), "{method} {path}: {}", r.text);
    }
    t.json(
        Method::PATCH,
        &format!("/api/v1/users/{b_user}"),
        &a,
        json!({"role": "admin"}),
    )
    .await
    .problem(404, "not_found");
    // An API key for B's user cannot be made from A.
    t.json(
        Method::POST,
        "/api/v1/api-keys",
        &a,
        json!({"name": "steal", "user_id": b_user}),
    )
    .await
    .problem(404, "not_found");
    // A tenant admin cannot reach tenants at all (platform admins only).
    t.get(&format!("/api/v1/tenants/{b_id}"), &a)
        .await
        .problem(403, "forbidden");
    // A file naming B as its tenant is refused without touching B.
    let foreign =
        pipeline_yaml("x", "true", 1).replace("  labels:", "  tenant: tenant-b\n  labels:");
    t.yaml(Method::POST, "/api/v1/pipelines", &a, &foreign)
        .await
        .problem(422, "invalid_value");

    // The same names in A are A's own: B's versions are untouched.
    t.yaml(
        Method::PUT,
        "/api/v1/pipelines/shared-name",
        &a,
        &pipeline_yaml("shared-name", "false", 1),
    )
    .await
    .ok();
    let b_view = t.get("/api/v1/pipelines/shared-name?format=yaml", &b).await;
    assert!(
        b_view.text.contains("filter: 'true'") || b_view.text.contains("filter: \"true\""),
        "{}",
        b_view.text
    );
    assert!(b_view.text.contains("tenant: tenant-b"));
    let a_view = t.get("/api/v1/pipelines/shared-name", &a).await.ok();
    assert_eq!(a_view["resource"]["metadata"]["tenant"], "tenant-a");
    assert_eq!(a_view["version"], 1);

    // B still has everything.
    for path in [
        "/api/v1/pipelines/shared-name",
        "/api/v1/streams/B_ONLY",
        "/api/v1/secrets/b-secret",
    ] {
        t.get(path, &b).await.ok();
    }
    t.get(&format!("/api/v1/users/{b_user}"), &b).await.ok();
    // B's audit log holds B's events only, A's holds A's.
    let b_audit = t.get("/api/v1/audit", &b).await.ok();
    assert!(
        b_audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "admin@tenant-b.test")
    );
}
