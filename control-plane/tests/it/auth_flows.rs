//! Logins, refresh-token rotation and reuse refusal, access-token expiry, login rate limiting,
//! and API key expiry, revocation and rotation.

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use serde_json::json;

use crate::support::{ADMIN_KEY, TestApp};

async fn login(t: &TestApp, email: &str, password: &str, from: [u8; 4]) -> crate::support::Reply {
    let mut req = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((from, 5555))));
    t.send(req).await
}

#[tokio::test]
async fn login_refresh_rotation_and_reuse() {
    let t = TestApp::sqlite().await;
    t.user_with_key(ADMIN_KEY, "ed@weir.test", "editor").await;
    let pair = login(&t, "ed@weir.test", "correct horse battery", [10, 0, 0, 1])
        .await
        .ok();
    let access = pair["access_token"].as_str().unwrap().to_string();
    let refresh1 = pair["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(pair["expires_in"], 900);
    let me = t.get("/api/v1/auth/me", &access).await.ok();
    assert_eq!(me["email"], "ed@weir.test");
    assert_eq!(me["role"], "editor");

    // Rotation: the refresh gives a new pair; the old refresh token is spent.
    let pair2 = t
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": refresh1}),
        )
        .await
        .ok();
    let access2 = pair2["access_token"].as_str().unwrap().to_string();
    t.get("/api/v1/auth/me", &access2).await.ok();
    t.get("/api/v1/auth/me", &access)
        .await
        .problem(401, "unauthenticated");
    // Reuse of the spent token is refused and revokes the whole session.
    let p = t
        .json(
            Method::POST,
            "/api/v1/auth/refresh",
            "",
            json!({"refresh_token": refresh1}),
        )
        .await
        .problem(401, "unauthenticated");
    assert!(p["detail"].as_str().unwrap().contains("already used"));
    t.get("/api/v1/auth/me", &access2)
        .await
        .problem(401, "unauthenticated");
    let refresh2 = pair2["refresh_token"].as_str().unwrap();
    t.json(
        Method::POST,
        "/api/v1/auth/refresh",
        "",
        json!({"refresh_token": refresh2}),
    )
    .await
    .problem(401, "unauthenticated");

    // Logout ends the session.
    let pair3 = login(&t, "ed@weir.test", "correct horse battery", [10, 0, 0, 1])
        .await
        .ok();
    let access3 = pair3["access_token"].as_str().unwrap();
    t.call(Method::POST, "/api/v1/auth/logout", Some(access3), None)
        .await
        .ok();
    t.get("/api/v1/auth/me", access3)
        .await
        .problem(401, "unauthenticated");
    let refresh3 = pair3["refresh_token"].as_str().unwrap();
    t.json(
        Method::POST,
        "/api/v1/auth/refresh",
        "",
        json!({"refresh_token": refresh3}),
    )
    .await
    .problem(401, "unauthenticated");

    // Wrong password.
    login(&t, "ed@weir.test", "wrong password!", [10, 0, 0, 1])
        .await
        .problem(401, "unauthenticated");
    login(&t, "nobody@weir.test", "wrong password!", [10, 0, 0, 1])
        .await
        .problem(401, "unauthenticated");
}

#[tokio::test]
async fn access_tokens_expire() {
    let t = TestApp::sqlite_with(|s| s.access_ttl = Duration::from_millis(300)).await;
    t.user_with_key(ADMIN_KEY, "op@weir.test", "operator").await;
    let pair = login(&t, "op@weir.test", "correct horse battery", [10, 0, 0, 2])
        .await
        .ok();
    let access = pair["access_token"].as_str().unwrap();
    t.get("/api/v1/auth/me", access).await.ok();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let p = t
        .get("/api/v1/auth/me", access)
        .await
        .problem(401, "unauthenticated");
    assert!(p["detail"].as_str().unwrap().contains("expired"));
    // The refresh token still works.
    let refresh = pair["refresh_token"].as_str().unwrap();
    t.json(
        Method::POST,
        "/api/v1/auth/refresh",
        "",
        json!({"refresh_token": refresh}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_email_and_source() {
    let t = TestApp::sqlite().await;
    t.user_with_key(ADMIN_KEY, "v@weir.test", "viewer").await;
    let attacker = [192, 0, 2, 1];
    for _ in 0..5 {
        login(&t, "v@weir.test", "guess guess guess", attacker)
            .await
            .problem(401, "unauthenticated");
    }
    // Even the right password is refused from that address now.
    let p = login(&t, "v@weir.test", "correct horse battery", attacker)
        .await
        .problem(429, "rate_limited");
    assert!(p["detail"].as_str().unwrap().contains("retry"));
    // Another address is not affected.
    login(&t, "v@weir.test", "correct horse battery", [192, 0, 2, 2])
        .await
        .ok();
    // The refusals are audited with the email as actor.
    let failed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'auth.login' AND actor = 'v@weir.test' AND outcome <> 'success'",
    )
    .fetch_one(t.state.db().pool())
    .await
    .unwrap();
    assert_eq!(failed, 6);
}

#[tokio::test]
async fn api_keys_expire_are_revoked_and_rotate() {
    let t = TestApp::sqlite().await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(600)).to_rfc3339();
    let k = t
        .json(
            Method::POST,
            "/api/v1/api-keys",
            ADMIN_KEY,
            json!({"name": "short", "expires_at": soon}),
        )
        .await
        .ok();
    let key = k["key"].as_str().unwrap();
    assert!(key.starts_with(k["info"]["prefix"].as_str().unwrap()));
    t.get("/api/v1/auth/me", key).await.ok();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let p = t
        .get("/api/v1/auth/me", key)
        .await
        .problem(401, "unauthenticated");
    assert!(p["detail"].as_str().unwrap().contains("expired"));

    t.json(
        Method::POST,
        "/api/v1/api-keys",
        ADMIN_KEY,
        json!({"name": "old", "expires_at": "2001-01-01T00:00:00Z"}),
    )
    .await
    .problem(422, "invalid_value");

    // Listing never shows secrets; revocation is immediate.
    let k2 = t
        .json(
            Method::POST,
            "/api/v1/api-keys",
            ADMIN_KEY,
            json!({"name": "ci"}),
        )
        .await
        .ok();
    let key2 = k2["key"].as_str().unwrap().to_string();
    let id2 = k2["info"]["id"].as_str().unwrap().to_string();
    let listed = t.get("/api/v1/api-keys", ADMIN_KEY).await;
    assert!(!listed.text.contains(&key2));
    assert!(listed.text.contains(k2["info"]["prefix"].as_str().unwrap()));
    let stored: Vec<String> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
        .fetch_all(t.state.db().pool())
        .await
        .unwrap();
    assert!(stored.iter().all(|h| h.len() == 64 && !h.contains(&key2)));

    // Rotation: a new key works, the old one stops.
    let rotated = t
        .call(
            Method::POST,
            &format!("/api/v1/api-keys/{id2}/rotate"),
            Some(ADMIN_KEY),
            None,
        )
        .await
        .ok();
    let key3 = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(key3, key2);
    assert_eq!(rotated["info"]["name"], "ci");
    t.get("/api/v1/auth/me", &key2)
        .await
        .problem(401, "unauthenticated");
    t.get("/api/v1/auth/me", &key3).await.ok();
    t.call(
        Method::POST,
        &format!("/api/v1/api-keys/{id2}/rotate"),
        Some(ADMIN_KEY),
        None,
    )
    .await
    .problem(409, "conflict");
    let id3 = rotated["info"]["id"].as_str().unwrap();
    t.delete(&format!("/api/v1/api-keys/{id3}"), ADMIN_KEY)
        .await
        .ok();
    let p = t
        .get("/api/v1/auth/me", &key3)
        .await
        .problem(401, "unauthenticated");
    assert!(p["detail"].as_str().unwrap().contains("revoked"));
}
