//! Login abuse: spraying one address across accounts and one account across addresses both
//! back off (and the account is never locked for good); unknown emails answer as slowly as
//! wrong passwords; emails are normalised (case, NFKC) for uniqueness and login, and a taken
//! email does not say which tenant holds it; failed logins reach the tenant of the account.

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
    assert!(
        diff < Duration::from_millis(5),
        "known {k:?} vs unknown {u:?}"
    );
}

#[tokio::test]
async fn emails_are_one_login_name_whatever_their_case_or_width() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    let u = t
        .json(
            Method::POST,
            "/api/v1/users",
            &acme,
            json!({"email": "NewHire@Acme.test", "role": "viewer", "password": PASSWORD}),
        )
        .await
        .ok();
    assert_eq!(u["email"], "newhire@acme.test");
    // Another tenant cannot squat the same login name under another spelling, and the
    // answer is the same as inside the tenant: it never says where the email is.
    let mut details = Vec::new();
    for (key, email) in [
        (&globex, "NEWHIRE@acme.test"),
        (&globex, "ｎｅｗｈｉｒｅ@acme.test"),
        (&acme, "newhire@acme.test"),
    ] {
        let p = t
            .json(
                Method::POST,
                "/api/v1/users",
                key,
                json!({"email": email, "role": "viewer"}),
            )
            .await
            .problem(409, "email_taken");
        assert!(!p["detail"].as_str().unwrap().contains("acme\u{20}"), "{p}");
        details.push(p["detail"].as_str().unwrap().to_string());
    }
    assert_eq!(
        details[0], details[2],
        "same answer in and outside the tenant"
    );
    let p = t
        .json(
            Method::POST,
            "/api/v1/tenants",
            ADMIN_KEY,
            json!({"name": "initech", "admin": {"email": "NewHire@ACME.test"}}),
        )
        .await
        .problem(409, "email_taken");
    assert_eq!(p["detail"], details[0].as_str());
    // Login works with any spelling.
    for email in [
        "NEWHIRE@ACME.TEST",
        "ｎｅｗｈｉｒｅ@acme.test",
        " newhire@acme.test ",
    ] {
        login(&t, email, PASSWORD, [10, 2, 0, 1]).await.ok();
    }
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
