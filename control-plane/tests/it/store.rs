//! The store on both databases: the same scenario (pipelines with versions, labels, paging,
//! users, keys, quotas, audit) runs against SQLite and a real PostgreSQL server.

use axum::http::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, TestApp, stream_yaml};

async fn scenario(t: TestApp) {
    crate::api::pipeline_lifecycle(&t).await;
    let (id, k) = t.tenant("store-check").await;
    t.json(
        Method::PUT,
        &format!("/api/v1/tenants/{id}/quotas"),
        ADMIN_KEY,
        json!({"max_streams": 1}),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/streams/S",
        &k,
        &stream_yaml("S", "s.>"),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/streams/T",
        &k,
        &stream_yaml("T", "t.>"),
    )
    .await
    .problem(429, "quota_exceeded");
    // Unique names per tenant are enforced by the store.
    t.json(
        Method::POST,
        "/api/v1/tenants",
        ADMIN_KEY,
        json!({"name": "store-check"}),
    )
    .await
    .problem(409, "conflict");
    let audit = t.get("/api/v1/audit?format=csv", ADMIN_KEY).await;
    assert!(audit.text.contains("pipelines.update"));
    let tenants = t.get("/api/v1/tenants", ADMIN_KEY).await.ok();
    assert_eq!(tenants.as_array().unwrap().len(), 2);
    t.delete(&format!("/api/v1/tenants/{id}"), ADMIN_KEY)
        .await
        .ok();
    t.get("/api/v1/auth/me", &k)
        .await
        .problem(401, "unauthenticated");
    let h = t.call(Method::GET, "/healthz", None, None).await.ok();
    assert_eq!(h["status"], "ok");
}

#[tokio::test]
async fn store_on_sqlite() {
    scenario(TestApp::sqlite().await).await;
}

#[tokio::test]
async fn store_on_postgres() {
    scenario(TestApp::postgres().await).await;
}

#[tokio::test]
async fn bootstrap_is_idempotent_and_generates_a_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = weir_control_plane::Db::sqlite_url(&dir.path().join("b.db"));
    let db = weir_control_plane::Db::connect(&url).await.unwrap();
    let key = weir_control_plane::tenants::bootstrap(&db, None)
        .await
        .unwrap();
    assert!(key.as_deref().is_some_and(|k| k.starts_with("weir_")));
    assert_eq!(
        weir_control_plane::tenants::bootstrap(&db, None)
            .await
            .unwrap(),
        None
    );
    let db2 = weir_control_plane::Db::connect(&url).await.unwrap();
    assert_eq!(
        weir_control_plane::tenants::bootstrap(&db2, None)
            .await
            .unwrap(),
        None
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(db2.pool())
        .await
        .unwrap();
    assert_eq!(n, 1);
}
