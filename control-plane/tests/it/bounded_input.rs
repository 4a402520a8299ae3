//! Bounded input: stored names, emails and descriptions have length and character rules
//! (control characters and bidirectional overrides refused), documented in the OpenAPI
//! document; the secret key file is created readable by its owner only.

use axum::http::Method;
use serde_json::json;

use crate::support::{ADMIN_KEY, TestApp};

#[tokio::test]
async fn overlong_or_unsafe_names_and_descriptions_are_refused() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    let long_email = format!("{}@acme.test", "x".repeat(300));
    for (path, body) in [
        (
            "/api/v1/users",
            json!({"email": long_email, "role": "viewer"}),
        ),
        (
            "/api/v1/users",
            json!({"email": "a\u{0}b@acme.test", "role": "viewer"}),
        ),
        ("/api/v1/api-keys", json!({"name": "k".repeat(129)})),
        ("/api/v1/api-keys", json!({"name": "ci\u{0}deploy"})),
        ("/api/v1/api-keys", json!({"name": "evil\u{202E}gpj.exe"})),
        ("/api/v1/api-keys", json!({"name": "bell\u{7}"})),
        (
            "/api/v1/roles",
            json!({"name": "r1", "description": "d".repeat(1025), "permissions": []}),
        ),
        (
            "/api/v1/roles",
            json!({"name": "r2", "description": "x\u{2066}y", "permissions": []}),
        ),
    ] {
        let p = t
            .json(Method::POST, path, &acme, body.clone())
            .await
            .problem(422, "invalid_value");
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.len() < 600, "the answer echoes the input: {detail}");
        assert!(
            !detail.contains('\u{202E}') && !detail.contains('\u{0}'),
            "{detail}"
        );
    }
    t.json(
        Method::POST,
        "/api/v1/tenants",
        ADMIN_KEY,
        json!({"name": "globex", "display_name": "Globex\u{202E}"}),
    )
    .await
    .problem(422, "invalid_value");
    for kind in ["k".repeat(129), "db\u{0}".to_string(), String::new()] {
        t.json(
            Method::PUT,
            "/api/v1/secrets/db",
            &acme,
            json!({"kind": kind, "secret": {"password": "x"}}),
        )
        .await
        .problem(422, "invalid_value");
    }
    // Nothing of it was stored.
    let keys = t.get("/api/v1/api-keys", &acme).await.ok();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    let roles = t.get("/api/v1/roles", &acme).await.ok();
    assert_eq!(roles.as_array().unwrap().len(), 4);
    // Multi-line descriptions and ordinary Unicode names are fine.
    t.json(
        Method::POST,
        "/api/v1/roles",
        &acme,
        json!({"name": "r3", "description": "line one\n\tline two", "permissions": []}),
    )
    .await
    .ok();
    t.json(
        Method::POST,
        "/api/v1/api-keys",
        &acme,
        json!({"name": "déploiement CI ✓"}),
    )
    .await
    .ok();
}

#[tokio::test]
async fn the_openapi_document_states_the_bounds() {
    let t = TestApp::sqlite().await;
    let doc = t
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    let prop = |schema: &str, field: &str| {
        doc["components"]["schemas"][schema]["properties"][field].clone()
    };
    assert_eq!(prop("NewApiKey", "name")["maxLength"], 128);
    assert_eq!(prop("NewApiKey", "name")["minLength"], 1);
    assert_eq!(prop("NewUser", "email")["maxLength"], 254);
    assert_eq!(prop("NewRole", "description")["maxLength"], 1024);
    assert_eq!(prop("NewRole", "name")["maxLength"], 63);
    assert!(prop("NewTenant", "name")["pattern"].is_string());
    assert_eq!(prop("LoginRequest", "email")["maxLength"], 254);
}

#[cfg(unix)]
#[tokio::test]
async fn the_secret_key_and_store_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = weir_control_plane::ServeConfig {
        data_dir: dir.path().to_path_buf(),
        ..weir_control_plane::ServeConfig::new()
    };
    let (_state, generated) = weir_control_plane::prepare(&config).await.unwrap();
    assert!(generated.is_some());
    for file in ["secret.key", "weir.db"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
    }
    // The generated bootstrap key meets the rules a given one must meet.
    weir_control_plane::tenants::check_bootstrap_key(&generated.unwrap()).unwrap();
}

#[tokio::test]
async fn out_of_range_bucket_settings_are_422_not_502() {
    let t = TestApp::sqlite_nats().await;
    for body in [
        json!({"name": "default_b1", "ttl_seconds": 18446744073709551615u64}),
        json!({"name": "default_b1", "ttl_seconds": 315360001u64}),
        json!({"name": "default_b1", "max_bytes": 9223372036854775807i64}),
        json!({"name": "default_b1", "description": "x\u{202E}"}),
    ] {
        t.json(Method::POST, "/api/v1/nats/kv", ADMIN_KEY, body)
            .await
            .problem(422, "invalid_value");
    }
    let r = t
        .json(
            Method::POST,
            "/api/v1/nats/kv",
            ADMIN_KEY,
            json!({"name": "default_b1", "ttl_seconds": 3600, "max_bytes": 1048576}),
        )
        .await;
    assert_eq!(r.status.as_u16(), 201, "{}", r.text);
    assert_eq!(r.json()["ttl_seconds"], 3600);
}

#[tokio::test]
async fn the_audit_csv_export_neutralises_formulas() {
    let t = TestApp::sqlite().await;
    let (_, acme) = t.tenant("acme").await;
    t.json(
        Method::POST,
        "/api/v1/api-keys",
        &acme,
        json!({"name": "=HYPERLINK(\"http://evil.test\",\"open\")"}),
    )
    .await
    .ok();
    let csv = t.get("/api/v1/audit?format=csv", &acme).await;
    assert_eq!(csv.content_type, "text/csv");
    for field_start in [",=", ",\"=", ",+", ",\"+", ",@", ",\"@"] {
        assert!(
            !csv.text.contains(field_start),
            "{field_start} in {}",
            csv.text
        );
    }
    assert!(csv.text.contains("'+ api key =HYPERLINK"), "{}", csv.text);
}
