//! No escalation: a caller never grants a role or permission it does not hold, never acts on a
//! user with more rights, never mints keys for another user unless admin; rotations are
//! atomic; revocation ends open status streams; the platform keeps an admin with a key; the
//! bootstrap key follows the generated keys' rules; restarts survive a deleted bootstrap admin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, header};
use futures::StreamExt;
use serde_json::json;
use tower::ServiceExt;
use weir_control_plane::{ServeConfig, ServeError, tenants};

use crate::support::{ADMIN_KEY, TestApp};

/// Creates a custom role in the admin key's tenant.
async fn role(t: &TestApp, admin: &str, name: &str, permissions: &[&str]) {
    t.json(
        Method::POST,
        "/api/v1/roles",
        admin,
        json!({"name": name, "permissions": permissions}),
    )
    .await
    .ok();
}

async fn me(t: &TestApp, key: &str) -> serde_json::Value {
    t.get("/api/v1/auth/me", key).await.ok()
}

#[tokio::test]
async fn a_user_manager_cannot_make_anyone_admin_or_act_above_itself() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    role(&t, &acme, "user-admin", &["users:read", "users:update"]).await;
    let (me_id, key) = t.user_with_key(&acme, "ua@acme.test", "user-admin").await;
    let (viewer_id, _) = t.user_with_key(&acme, "v@acme.test", "viewer").await;
    let admin_id = me(&t, &acme).await["user_id"].as_str().unwrap().to_string();

    // Itself to admin, another user to admin or editor: refused, nothing changes.
    for (id, new_role) in [
        (&me_id, "admin"),
        (&viewer_id, "admin"),
        (&viewer_id, "editor"),
        (&me_id, "viewer"),
    ] {
        t.json(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            &key,
            json!({"role": new_role}),
        )
        .await
        .problem(403, "privilege_escalation");
    }
    assert_eq!(me(&t, &key).await["role"], "user-admin");
    // The admin's password (a way into the admin account) or role: refused.
    t.json(
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        &key,
        json!({"password": "a new password for the admin"}),
    )
    .await
    .problem(403, "privilege_escalation");
    t.json(
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        &key,
        json!({"role": "user-admin"}),
    )
    .await
    .problem(403, "privilege_escalation");
    assert_eq!(me(&t, &acme).await["role"], "admin");
    // Another tenant's admin cannot reach acme's users at all.
    t.json(
        Method::PATCH,
        &format!("/api/v1/users/{viewer_id}"),
        &globex,
        json!({"role": "admin"}),
    )
    .await
    .problem(404, "not_found");

    // A role that holds everything a viewer holds may hand out viewer, not editor.
    role(
        &t,
        &acme,
        "helpdesk",
        &["*:read", "users:update", "users:create"],
    )
    .await;
    let (_, help) = t.user_with_key(&acme, "h@acme.test", "helpdesk").await;
    let r = t
        .json(
            Method::PATCH,
            &format!("/api/v1/users/{me_id}"),
            &help,
            json!({"role": "viewer"}),
        )
        .await;
    // `user-admin` grants users:update, which helpdesk holds, so it may act on that user.
    assert_eq!(r.ok()["role"], "viewer");
    t.json(
        Method::POST,
        "/api/v1/users",
        &help,
        json!({"email": "new@acme.test", "role": "editor"}),
    )
    .await
    .problem(403, "privilege_escalation");
    t.json(
        Method::POST,
        "/api/v1/users",
        &help,
        json!({"email": "new@acme.test", "role": "viewer"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_user_manager_cannot_delete_a_user_above_itself() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    role(&t, &acme, "remover", &["users:read", "users:delete"]).await;
    let (_, key) = t.user_with_key(&acme, "rm@acme.test", "remover").await;
    let (editor_id, _) = t.user_with_key(&acme, "e@acme.test", "editor").await;
    t.delete(&format!("/api/v1/users/{editor_id}"), &key)
        .await
        .problem(403, "privilege_escalation");
    t.get(&format!("/api/v1/users/{editor_id}"), &acme)
        .await
        .ok();
}

#[tokio::test]
async fn a_role_creator_cannot_define_a_role_above_its_own() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    role(&t, &acme, "role-maker", &["roles:read", "roles:create"]).await;
    let (_, key) = t.user_with_key(&acme, "rm@acme.test", "role-maker").await;
    for permissions in [json!(["*:*"]), json!(["users:update"]), json!(["roles:*"])] {
        t.json(
            Method::POST,
            "/api/v1/roles",
            &key,
            json!({"name": "boss", "permissions": permissions}),
        )
        .await
        .problem(403, "privilege_escalation");
    }
    let r = t
        .json(
            Method::POST,
            "/api/v1/roles",
            &key,
            json!({"name": "reader", "permissions": ["roles:read"]}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
}

#[tokio::test]
async fn only_admins_mint_or_rotate_keys_for_another_user() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let (_, globex) = t.tenant("globex").await;
    role(
        &t,
        &acme,
        "key-maker",
        &["keys:read", "keys:create", "keys:update", "users:read"],
    )
    .await;
    let (km_id, key) = t.user_with_key(&acme, "km@acme.test", "key-maker").await;
    let admin_id = me(&t, &acme).await["user_id"].as_str().unwrap().to_string();
    let (viewer_id, _) = t.user_with_key(&acme, "v@acme.test", "viewer").await;
    for target in [&admin_id, &viewer_id] {
        t.json(
            Method::POST,
            "/api/v1/api-keys",
            &key,
            json!({"name": "stolen", "user_id": target}),
        )
        .await
        .problem(403, "privilege_escalation");
    }
    // For itself: fine.
    let own = t
        .json(
            Method::POST,
            "/api/v1/api-keys",
            &key,
            json!({"name": "mine"}),
        )
        .await
        .ok();
    assert_eq!(own["info"]["user_id"], km_id.as_str());
    // Rotating the admin's key would hand its successor to the caller: refused.
    let keys = t.get("/api/v1/api-keys", &acme).await.ok();
    let admin_key_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user_id"] == admin_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.call(
        Method::POST,
        &format!("/api/v1/api-keys/{admin_key_id}/rotate"),
        Some(&key),
        None,
    )
    .await
    .problem(403, "privilege_escalation");
    // Another tenant's admin cannot mint a key for an acme user.
    t.json(
        Method::POST,
        "/api/v1/api-keys",
        &globex,
        json!({"name": "x", "user_id": viewer_id}),
    )
    .await
    .problem(404, "not_found");
    // The tenant admin may.
    let r = t
        .json(
            Method::POST,
            "/api/v1/api-keys",
            &acme,
            json!({"name": "for-viewer", "user_id": viewer_id}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
}

#[tokio::test]
async fn parallel_rotations_leave_exactly_one_successor() {
    let t = Arc::new(TestApp::sqlite().await);
    let (_, acme) = t.tenant("acme").await;
    let (_, old) = t.user_with_key(&acme, "ci@acme.test", "editor").await;
    let keys = t.get("/api/v1/api-keys", &acme).await.ok();
    let id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "editor-key")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (t, id, acme) = (t.clone(), id.clone(), acme.clone());
        tasks.push(tokio::spawn(async move {
            t.call(
                Method::POST,
                &format!("/api/v1/api-keys/{id}/rotate"),
                Some(&acme),
                None,
            )
            .await
        }));
    }
    let mut successors = Vec::new();
    for task in tasks {
        let r = task.await.unwrap();
        match r.status.as_u16() {
            201 => successors.push(r.json()["key"].as_str().unwrap().to_string()),
            409 => {
                r.problem(409, "conflict");
            }
            other => panic!("rotation answered {other}: {}", r.text),
        }
    }
    assert_eq!(successors.len(), 1, "exactly one rotation wins");
    assert_eq!(me(&t, &successors[0]).await["email"], "ci@acme.test");
    t.get("/api/v1/auth/me", &old)
        .await
        .problem(401, "unauthenticated");
    let working = t
        .get("/api/v1/api-keys", &acme)
        .await
        .ok()
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "editor-key" && k["revoked_at"].is_null())
        .count();
    assert_eq!(working, 1);
}

#[tokio::test]
async fn revoking_a_key_ends_its_open_status_stream() {
    let t = TestApp::sqlite_nats().await;
    let (viewer_id, viewer) = t.user_with_key(ADMIN_KEY, "v@weir.local", "viewer").await;
    let req = Request::builder()
        .uri("/api/v1/status/stream")
        .header(header::AUTHORIZATION, format!("Bearer {viewer}"))
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.into_body().into_data_stream();
    // The stream stays open while the key works.
    assert!(
        tokio::time::timeout(Duration::from_millis(2500), body.next())
            .await
            .is_err(),
        "no events and no end while nothing happens"
    );
    let keys = t.get("/api/v1/api-keys", ADMIN_KEY).await.ok();
    let key_id = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["user_id"] == viewer_id.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        t.delete(&format!("/api/v1/api-keys/{key_id}"), ADMIN_KEY)
            .await
            .status
            .as_u16(),
        204
    );
    let revoked = Instant::now();
    let mut text = String::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("the stream ends within 5 s of the revocation");
        match next {
            Some(Ok(bytes)) => text.push_str(&String::from_utf8_lossy(&bytes)),
            Some(Err(e)) => panic!("stream error: {e}"),
            None => break,
        }
    }
    assert!(revoked.elapsed() < Duration::from_secs(5));
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("revoked"), "{text}");
}

#[tokio::test]
async fn the_last_platform_admin_and_its_last_key_stay() {
    let t = TestApp::sqlite().await;
    let admin_id = me(&t, ADMIN_KEY).await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let keys = t.get("/api/v1/api-keys", ADMIN_KEY).await.ok();
    let key_id = keys.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = t
        .delete(&format!("/api/v1/api-keys/{key_id}"), ADMIN_KEY)
        .await
        .problem(409, "last_platform_key");
    assert!(p["detail"].as_str().unwrap().contains("another key"), "{p}");
    t.json(
        Method::PATCH,
        &format!("/api/v1/users/{admin_id}"),
        ADMIN_KEY,
        json!({"role": "viewer"}),
    )
    .await
    .problem(409, "last_platform_admin");
    me(&t, ADMIN_KEY).await;
    let (_, acme) = t.tenant("acme").await;
    // A second admin of the system tenant with a key: the first may go.
    let (second_id, second) = t.user_with_key(ADMIN_KEY, "ops@weir.local", "admin").await;
    assert_eq!(
        t.delete(&format!("/api/v1/users/{admin_id}"), &second)
            .await
            .status
            .as_u16(),
        204
    );
    assert!(me(&t, &second).await["platform_admin"].as_bool().unwrap());
    // Now the second is the last one.
    let _ = second_id;
    let keys = t.get("/api/v1/api-keys", &second).await.ok();
    let second_key = keys.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.delete(&format!("/api/v1/api-keys/{second_key}"), &second)
        .await
        .problem(409, "last_platform_key");
    // A tenant admin's own last key is theirs to revoke; the platform keeps its admin.
    let acme_keys = t.get("/api/v1/api-keys", &acme).await.ok();
    let acme_key = acme_keys.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        t.delete(&format!("/api/v1/api-keys/{acme_key}"), &acme)
            .await
            .status
            .as_u16(),
        204
    );
}

#[tokio::test]
async fn a_tenant_admin_cannot_make_platform_admins() {
    // Only platform admins give the system tenant's admin role.
    let t = TestApp::sqlite().await;
    t.json(
        Method::POST,
        "/api/v1/roles",
        ADMIN_KEY,
        json!({"name": "almost-admin", "permissions": ["*:*"]}),
    )
    .await
    .ok();
    let (_, key) = t
        .user_with_key(ADMIN_KEY, "aa@weir.local", "almost-admin")
        .await;
    assert!(!me(&t, &key).await["platform_admin"].as_bool().unwrap());
    t.json(
        Method::POST,
        "/api/v1/users",
        &key,
        json!({"email": "x@weir.local", "role": "admin"}),
    )
    .await
    .problem(403, "privilege_escalation");
}

fn serve_config(dir: &std::path::Path, key: Option<&str>) -> ServeConfig {
    ServeConfig {
        data_dir: dir.to_path_buf(),
        bootstrap_api_key: key.map(String::from),
        ..ServeConfig::new()
    }
}

#[tokio::test]
async fn weak_bootstrap_keys_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    for weak in [
        "a",
        "weir_short",
        "weir_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "weir_abababababababababababababababababababababababab",
        "no-prefix-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "weir_0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGH!",
    ] {
        match weir_control_plane::prepare(&serve_config(dir.path(), Some(weak))).await {
            Err(ServeError::WeakBootstrapKey(why)) => {
                let msg = ServeError::WeakBootstrapKey(why).to_string();
                assert!(msg.contains("WEIR_BOOTSTRAP_API_KEY"), "{msg}");
                assert!(msg.contains("weir_"), "{msg}");
            }
            Err(other) => panic!("`{weak}`: {other}"),
            Ok(_) => panic!("`{weak}` was accepted"),
        }
    }
    // A generated key passes its own rules, and so does the test key.
    tenants::check_bootstrap_key(&weir_control_plane::auth::random_token("weir_")).unwrap();
    tenants::check_bootstrap_key(ADMIN_KEY).unwrap();
}

#[tokio::test]
async fn restart_works_after_the_bootstrap_admin_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = weir_control_plane::prepare(&serve_config(dir.path(), Some(ADMIN_KEY)))
        .await
        .unwrap();
    let t = TestApp::over(state);
    let (_, ops) = t.user_with_key(ADMIN_KEY, "ops@weir.local", "admin").await;
    let boot_id = me(&t, ADMIN_KEY).await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        t.delete(&format!("/api/v1/users/{boot_id}"), &ops)
            .await
            .status
            .as_u16(),
        204
    );
    drop(t);
    // Restart without a key, then with the old key (re-attached as break-glass to the oldest
    // platform admin): both start, and the remaining admin keeps working.
    for key in [None, Some(ADMIN_KEY)] {
        let (state, generated) = weir_control_plane::prepare(&serve_config(dir.path(), key))
            .await
            .unwrap_or_else(|e| panic!("restart with {key:?}: {e}"));
        assert!(generated.is_none());
        let t = TestApp::over(state);
        assert_eq!(me(&t, &ops).await["email"], "ops@weir.local");
        if key.is_some() {
            let who = me(&t, ADMIN_KEY).await;
            assert_eq!(who["email"], "ops@weir.local");
            assert!(who["platform_admin"].as_bool().unwrap());
        }
    }
}
