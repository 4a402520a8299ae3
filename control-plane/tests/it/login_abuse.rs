//! Login abuse: spraying one address across accounts and one account across addresses both
//! back off (and the account is never locked for good); unknown emails answer as slowly as
//! wrong passwords; emails are normalised (case, NFKC) and unique per tenant, so no tenant
//! learns or blocks another's users; failed logins reach the tenant of the account.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use serde_json::json;
use weir_control_plane::login_limit::LoginLimits;

use crate::support::{ADMIN_KEY, Reply, TestApp};

const PASSWORD: &str = "correct horse battery";

async fn login(t: &TestApp, email: &str, password: &str, from: [u8; 4]) -> Reply {
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
async fn spraying_many_accounts_from_one_address_backs_off() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    for i in 0..5 {
        t.user_with_key(&acme, &format!("u{i}@acme.test"), "viewer")
            .await;
    }
    let attacker = [198, 51, 100, 7];
    // 20 free failures across accounts (known and unknown emails alike), then backoff.
    for i in 0..20 {
        login(
            &t,
            &format!("u{}@acme.test", i % 8),
            "Summer2026!!!",
            attacker,
        )
        .await
        .problem(401, "unauthenticated");
    }
    let p = login(&t, "u0@acme.test", PASSWORD, attacker)
        .await
        .problem(429, "rate_limited");
    assert!(p["detail"].as_str().unwrap().contains("retry"), "{p}");
    // The users themselves, from their own addresses, log in.
    login(&t, "u0@acme.test", PASSWORD, [203, 0, 113, 1])
        .await
        .ok();
}

#[tokio::test]
async fn one_account_from_many_addresses_backs_off_but_is_not_locked() {
    let t = TestApp::sqlite_with(|s| {
        s.login_limits = LoginLimits {
            backoff_base: Duration::from_millis(300),
            backoff_cap: Duration::from_millis(600),
            ..LoginLimits::default()
        }
    })
    .await;
    let (_, acme) = t.tenant("acme").await;
    t.user_with_key(&acme, "victim@acme.test", "viewer").await;
    // 10 addresses, one guess each: before, 20 addresses gave 100 guesses a minute.
    for i in 0..10 {
        login(&t, "victim@acme.test", "guess guess guess", [10, 0, 0, i])
            .await
            .problem(401, "unauthenticated");
    }
    let r = login(&t, "victim@acme.test", "guess guess guess", [10, 0, 0, 99]).await;
    r.problem(429, "rate_limited");
    // Spelling the email differently does not start a new count.
    login(&t, " VICTIM@acme.TEST", "guess guess guess", [10, 0, 0, 98])
        .await
        .problem(429, "rate_limited");
    // Backoff, not a lock: once it has passed, the right password works.
    tokio::time::sleep(Duration::from_millis(700)).await;
    login(&t, "victim@acme.test", PASSWORD, [10, 0, 1, 1])
        .await
        .ok();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn unknown_emails_take_as_long_as_wrong_passwords() {
    // Cheaper argon2 than in production (1 MiB, 1 pass) so that a debug build on a busy
    // machine measures the code paths, not scheduling noise: the unknown-email path must do
    // the same hash work as a wrong password.
    let t = TestApp::sqlite_with(|s| {
        s.login_limits = LoginLimits {
            account_free: 1000,
            address_free: 1000,
            ..LoginLimits::default()
        };
        s.argon2_memory_kib = 4096;
        s.argon2_iterations = 1;
    })
    .await;
    let (_, acme) = t.tenant("acme").await;
    t.user_with_key(&acme, "known@acme.test", "viewer").await;
    // Warm up both paths (the dummy hash is made on first use).
    login(&t, "nobody@acme.test", "x", [10, 9, 9, 9]).await;
    login(&t, "known@acme.test", "wrong password!", [10, 9, 9, 8]).await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..41u8 {
        for (email, into) in [
            ("known@acme.test", &mut known),
            (&*format!("nobody{i}@acme.test"), &mut unknown),
        ] {
            let start = Instant::now();
            login(&t, email, "wrong password!", [10, 1, i, into.len() as u8])
                .await
                .problem(401, "unauthenticated");
            into.push(start.elapsed());
        }
    }
    let (k, u) = (median(known), median(unknown));
    let diff = k.abs_diff(u);
    println!("login median: known email {k:?}, unknown email {u:?}, difference {diff:?}");
    // Close in absolute terms, or (on a loaded machine, where every login is slower) within
    // a third of each other: skipping the hash for unknown emails would make them several
    // times faster, which either test catches.
    let close = diff < Duration::from_millis(5) || diff * 3 < k.min(u);
    assert!(close, "known {k:?} vs unknown {u:?}");
}

async fn login_to(t: &TestApp, email: &str, password: &str, tenant: Option<&str>) -> Reply {
    let mut body = json!({"email": email, "password": password});
    if let Some(tenant) = tenant {
        body["tenant"] = json!(tenant);
    }
    let mut req = Request::post("/api/v1/auth/login")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [10, 3, 0, 1],
            5555,
        ))));
    t.send(req).await
}

async fn new_user(t: &TestApp, key: &str, email: &str, password: &str) -> Reply {
    t.json(
        Method::POST,
        "/api/v1/users",
        key,
        json!({"email": email, "role": "viewer", "password": password}),
    )
    .await
}

/// The tenant a bearer token belongs to.
async fn tenant_of(t: &TestApp, token: &str) -> String {
    t.get("/api/v1/auth/me", token).await.ok()["tenant"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn emails_are_one_login_name_whatever_their_case_or_width() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let u = new_user(&t, &acme, "NewHire@Acme.test", PASSWORD)
        .await
        .ok();
    assert_eq!(u["email"], "newhire@acme.test");
    // Inside the tenant, every spelling is the same user.
    for email in ["NEWHIRE@acme.test", "ｎｅｗｈｉｒｅ@acme.test"] {
        let p = new_user(&t, &acme, email, PASSWORD)
            .await
            .problem(409, "email_taken");
        assert!(p["detail"].as_str().unwrap().contains("this tenant"), "{p}");
    }
    // Login works with any spelling.
    for email in [
        "NEWHIRE@ACME.TEST",
        "ｎｅｗｈｉｒｅ@acme.test",
        " newhire@acme.test ",
    ] {
        login(&t, email, PASSWORD, [10, 2, 0, 1]).await.ok();
    }
}

/// Emails are unique per tenant: another tenant neither learns that an address is a user
/// elsewhere nor can take it first; each account logs in to its own tenant.
async fn emails_are_per_tenant(t: TestApp) {
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    // globex "squats" the address first; acme can still use it, and neither answer says
    // anything about the other tenant.
    new_user(&t, &globex, "pat@example.test", "globex password 1")
        .await
        .ok();
    new_user(&t, &acme, "Pat@Example.test", "acme password 111")
        .await
        .ok();
    let p = t
        .json(
            Method::POST,
            "/api/v1/tenants",
            ADMIN_KEY,
            json!({"name": "initech", "admin": {"email": "PAT@example.test", "password": "acme password 111"}}),
        )
        .await
        .ok();
    assert_eq!(p["tenant"]["name"], "initech");
    // Each password logs in to its own tenant.
    let token = login_to(&t, "pat@example.test", "globex password 1", None)
        .await
        .ok();
    let token = token["access_token"].as_str().unwrap();
    assert_eq!(tenant_of(&t, token).await, "globex");
    // One password in two tenants (acme and initech): the login asks which one, naming only
    // the tenants where that password is right.
    let p = login_to(&t, "pat@example.test", "acme password 111", None)
        .await
        .problem(409, "tenant_required");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("acme") && detail.contains("initech"), "{p}");
    assert!(!detail.contains("globex"), "{p}");
    for tenant in ["acme", "initech"] {
        let token = login_to(&t, "pat@example.test", "acme password 111", Some(tenant))
            .await
            .ok();
        let token = token["access_token"].as_str().unwrap();
        assert_eq!(tenant_of(&t, token).await, tenant);
    }
    // A tenant named where the password is wrong, or unknown: 401 like any wrong password.
    for tenant in ["globex", "nosuch"] {
        login_to(&t, "pat@example.test", "acme password 111", Some(tenant))
            .await
            .problem(401, "unauthenticated");
    }
    login_to(&t, "pat@example.test", "wrong password!!", None)
        .await
        .problem(401, "unauthenticated");
    // Users of one tenant do not show in the other's list.
    let users = t.get("/api/v1/users", &globex).await.ok();
    let count = users
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["email"] == "pat@example.test")
        .count();
    assert_eq!(count, 1, "{users}");
}

#[tokio::test]
async fn emails_are_per_tenant_on_sqlite() {
    emails_are_per_tenant(TestApp::sqlite().await).await;
}

/// Two tenants each create the same email 8 times at once: each gets exactly one user and
/// seven `409 email_taken`, never a 5xx.
async fn same_email_created_concurrently(t: TestApp) {
    let t = std::sync::Arc::new(t);
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    let mut tasks = Vec::new();
    for key in [&acme, &globex] {
        for _ in 0..8 {
            let (t, key) = (t.clone(), key.clone());
            tasks.push(tokio::spawn(async move {
                let r = t
                    .json(
                        Method::POST,
                        "/api/v1/users",
                        &key,
                        json!({"email": "same@example.test", "role": "viewer"}),
                    )
                    .await;
                (key, r.status.as_u16(), r.text)
            }));
        }
    }
    let mut created = std::collections::HashMap::new();
    for task in tasks {
        let (key, status, text) = task.await.unwrap();
        match status {
            201 => *created.entry(key).or_insert(0) += 1,
            409 => assert!(text.contains("email_taken"), "{text}"),
            other => panic!("{other}: {text}"),
        }
    }
    assert_eq!(created.get(&acme), Some(&1));
    assert_eq!(created.get(&globex), Some(&1));
}

#[tokio::test]
async fn same_email_created_concurrently_on_sqlite() {
    same_email_created_concurrently(TestApp::sqlite().await).await;
}

#[tokio::test]
async fn same_email_created_concurrently_on_postgres() {
    same_email_created_concurrently(TestApp::postgres().await).await;
}

#[tokio::test]
async fn emails_are_per_tenant_on_postgres() {
    emails_are_per_tenant(TestApp::postgres().await).await;
}

#[tokio::test]
async fn failed_logins_reach_the_audit_log_of_the_accounts_tenant() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    t.user_with_key(&acme, "dev@acme.test", "viewer").await;
    login(&t, "dev@acme.test", "not the password", [10, 3, 0, 1])
        .await
        .problem(401, "unauthenticated");
    let seen = |v: serde_json::Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.login" && e["actor"] == "dev@acme.test")
    };
    assert!(seen(
        t.get("/api/v1/audit?outcome=denied", &acme).await.ok()
    ));
    assert!(!seen(
        t.get("/api/v1/audit?outcome=denied", &globex).await.ok()
    ));
}

#[tokio::test]
async fn anonymous_failures_cannot_flood_the_audit_log() {
    let t = TestApp::sqlite().await;
    let huge = "x".repeat(200_000);
    for i in 0..60u8 {
        login(
            &t,
            &format!("{huge}{i}@a.b"),
            "whatever whatever",
            [10, 4, 0, 1],
        )
        .await;
    }
    let (rows, longest): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(MAX(LENGTH(actor)), 0) FROM audit_events WHERE action = 'auth.login'",
    )
    .fetch_one(t.state.db().pool())
    .await
    .unwrap();
    assert!(rows <= 30, "{rows} rows from one address in a minute");
    assert!(longest <= 256, "actor of {longest} characters stored");
}
