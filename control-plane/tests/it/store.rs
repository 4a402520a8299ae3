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

/// The migration that made emails unique per tenant rebuilds `users`, `api_keys` and
/// `sessions`: a store made before it keeps its keys and sessions (dropping `users` with
/// foreign keys on would have cascaded into both), and the keys still authenticate.
async fn keys_survive_the_per_tenant_email_migration(url: &str) {
    use sqlx::any::AnyPoolOptions;
    const KEY: &str = "weir_made-before-the-email-migration-0123456789";
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap();
    let mut before = sqlx::migrate!("./migrations");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 20261205000002)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    for (sql, binds) in [
        (
            "INSERT INTO tenants (id, name, display_name, is_system, created_at) VALUES ($1, $2, $3, 0, 1)",
            vec!["t1", "acme", "Acme"],
        ),
        (
            "INSERT INTO users (id, tenant_id, email, role, created_at) VALUES ($1, $2, $3, 'admin', 1)",
            vec!["u1", "t1", "ops@acme.test"],
        ),
        (
            "INSERT INTO api_keys (id, tenant_id, user_id, name, prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, 'ci', 'weir_mad', $4, 1)",
            vec![
                "k1",
                "t1",
                "u1",
                &weir_control_plane::auth::hash_secret(KEY),
            ],
        ),
        (
            "INSERT INTO sessions (id, family_id, tenant_id, user_id, access_hash, refresh_hash, \
             access_expires_at, refresh_expires_at, created_at) VALUES ($1, $1, $2, $3, 'a', 'r', 1, 1, 1)",
            vec!["s1", "t1", "u1"],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b.to_string());
        }
        q.execute(&pool).await.unwrap();
    }
    pool.close().await;

    let db = weir_control_plane::Db::connect(url).await.unwrap();
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(sessions, 1);
    let t = TestApp::over(weir_control_plane::AppState::new(
        db,
        weir_control_plane::Settings::new([42u8; 32]),
    ));
    let me = t.get("/api/v1/auth/me", KEY).await.ok();
    assert_eq!(me["tenant"], "acme");
    assert_eq!(me["email"], "ops@acme.test");
}

#[tokio::test]
async fn keys_survive_the_per_tenant_email_migration_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = weir_control_plane::Db::sqlite_url(&dir.path().join("old.db")) + "?mode=rwc";
    keys_survive_the_per_tenant_email_migration(&url).await;
}

#[tokio::test]
async fn keys_survive_the_per_tenant_email_migration_on_postgres() {
    let pg = weir_testkit::postgres::PostgresServer::start().unwrap();
    let url = pg.create_database("old").unwrap();
    keys_survive_the_per_tenant_email_migration(&url).await;
}
