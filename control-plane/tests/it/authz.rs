//! The authorization matrix: every role against every endpoint, allowed and denied. Allowed
//! calls must not be refused (403/401); denied calls must be 403 problems and change nothing.

use axum::http::Method;
use serde_json::{Value, json};
use weir_control_plane::rbac::{Action, ApiResource, PermissionSet, builtin};
use weir_control_plane::routes::api_routes;

use crate::support::{ADMIN_KEY, TestApp, pipeline_yaml, stream_yaml};

/// What an endpoint needs.
#[derive(Clone, Copy)]
enum Needs {
    /// Any authenticated caller.
    Anyone,
    /// A `resource:action` permission.
    Perm(&'static str, &'static str),
    /// A platform admin.
    Platform,
}

enum Body {
    None,
    Json(Value),
    Yaml(String),
}

struct Endpoint {
    method: Method,
    /// Route template as registered.
    route: &'static str,
    /// Concrete path.
    path: String,
    needs: Needs,
    body: Body,
}

fn table(acme: &str, user: &str, n: usize) -> Vec<Endpoint> {
    use Needs::*;
    let e =
        |method: Method, route: &'static str, path: String, needs: Needs, body: Body| Endpoint {
            method,
            route,
            path,
            needs,
            body,
        };
    let s = |p: &str| p.to_string();
    vec![
        e(
            Method::POST,
            "/api/v1/auth/logout",
            s("/api/v1/auth/logout"),
            Anyone,
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/auth/me",
            s("/api/v1/auth/me"),
            Anyone,
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/tenants",
            s("/api/v1/tenants"),
            Platform,
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/tenants",
            s("/api/v1/tenants"),
            Platform,
            Body::Json(json!({"name": format!("new-{n}")})),
        ),
        e(
            Method::GET,
            "/api/v1/tenants/{id}",
            format!("/api/v1/tenants/{acme}"),
            Platform,
            Body::None,
        ),
        e(
            Method::DELETE,
            "/api/v1/tenants/{id}",
            s("/api/v1/tenants/no-such"),
            Platform,
            Body::None,
        ),
        e(
            Method::PUT,
            "/api/v1/tenants/{id}/quotas",
            s("/api/v1/tenants/no-such/quotas"),
            Platform,
            Body::Json(json!({"max_pipelines": 5})),
        ),
        e(
            Method::GET,
            "/api/v1/quotas/usage",
            s("/api/v1/quotas/usage"),
            Perm("quotas", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/users",
            s("/api/v1/users"),
            Perm("users", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/users",
            s("/api/v1/users"),
            Perm("users", "create"),
            Body::Json(json!({"email": format!("new{n}@acme.test"), "role": "viewer"})),
        ),
        e(
            Method::GET,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{user}"),
            Perm("users", "read"),
            Body::None,
        ),
        e(
            Method::PATCH,
            "/api/v1/users/{id}",
            format!("/api/v1/users/{user}"),
            Perm("users", "update"),
            Body::Json(json!({"role": "viewer"})),
        ),
        e(
            Method::DELETE,
            "/api/v1/users/{id}",
            s("/api/v1/users/no-such"),
            Perm("users", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/roles",
            s("/api/v1/roles"),
            Perm("roles", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/roles",
            s("/api/v1/roles"),
            Perm("roles", "create"),
            Body::Json(json!({"name": format!("role-{n}"), "permissions": ["pipelines:read"]})),
        ),
        e(
            Method::DELETE,
            "/api/v1/roles/{name}",
            s("/api/v1/roles/no-such"),
            Perm("roles", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/api-keys",
            s("/api/v1/api-keys"),
            Perm("keys", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/api-keys",
            s("/api/v1/api-keys"),
            Perm("keys", "create"),
            Body::Json(json!({"name": "k"})),
        ),
        e(
            Method::DELETE,
            "/api/v1/api-keys/{id}",
            s("/api/v1/api-keys/no-such"),
            Perm("keys", "delete"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/api-keys/{id}/rotate",
            s("/api/v1/api-keys/no-such/rotate"),
            Perm("keys", "update"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines",
            s("/api/v1/pipelines"),
            Perm("pipelines", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/pipelines",
            s("/api/v1/pipelines"),
            Perm("pipelines", "create"),
            Body::Yaml(pipeline_yaml(&format!("new-{n}"), "true", 1)),
        ),
        e(
            Method::POST,
            "/api/v1/pipelines:validate",
            s("/api/v1/pipelines:validate"),
            Perm("pipelines", "read"),
            Body::Yaml(pipeline_yaml("v", "true", 1)),
        ),
        // The roles are checked before the samples (an empty list, 422): the sample runner is
        // the engine's, registered by the `weir` binary (cli/tests/it/sample_test_api.rs).
        e(
            Method::POST,
            "/api/v1/pipelines:test",
            s("/api/v1/pipelines:test"),
            Perm("pipelines", "read"),
            Body::Json(json!({"pipeline": pipeline_yaml("v", "true", 1), "messages": []})),
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}",
            s("/api/v1/pipelines/p1"),
            Perm("pipelines", "read"),
            Body::None,
        ),
        e(
            Method::PUT,
            "/api/v1/pipelines/{name}",
            s("/api/v1/pipelines/p1"),
            Perm("pipelines", "update"),
            Body::Yaml(pipeline_yaml("p1", "true", 1)),
        ),
        e(
            Method::DELETE,
            "/api/v1/pipelines/{name}",
            s("/api/v1/pipelines/no-such"),
            Perm("pipelines", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/versions",
            s("/api/v1/pipelines/p1/versions"),
            Perm("pipelines", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/versions/{version}",
            s("/api/v1/pipelines/p1/versions/1"),
            Perm("pipelines", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/diff",
            s("/api/v1/pipelines/p1/diff?from=1"),
            Perm("pipelines", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/pipelines/{name}/deploy",
            s("/api/v1/pipelines/p1/deploy"),
            Perm("deployments", "update"),
            Body::Json(json!({})),
        ),
        e(
            Method::POST,
            "/api/v1/pipelines/{name}/pause",
            s("/api/v1/pipelines/p1/pause"),
            Perm("deployments", "update"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/pipelines/{name}/resume",
            s("/api/v1/pipelines/p1/resume"),
            Perm("deployments", "update"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/pipelines/{name}/rollback",
            s("/api/v1/pipelines/p1/rollback"),
            Perm("deployments", "update"),
            Body::Json(json!({"version": 1})),
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/deployment",
            s("/api/v1/pipelines/p1/deployment"),
            Perm("deployments", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/status",
            s("/api/v1/pipelines/p1/status"),
            Perm("deployments", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/quality",
            s("/api/v1/pipelines/p1/quality"),
            Perm("deployments", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/workers",
            s("/api/v1/workers"),
            Perm("deployments", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/status/stream",
            s("/api/v1/status/stream"),
            Perm("deployments", "read"),
            Body::None,
        ),
        e(
            Method::DELETE,
            "/api/v1/pipelines/{name}/deployment",
            s("/api/v1/pipelines/p1/deployment"),
            Perm("deployments", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/dlq",
            s("/api/v1/pipelines/p1/dlq"),
            Perm("dlq", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/pipelines/{name}/dlq/{seq}",
            s("/api/v1/pipelines/p1/dlq/1"),
            Perm("dlq", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/pipelines/{name}/dlq/redrive",
            s("/api/v1/pipelines/p1/dlq/redrive"),
            Perm("dlq", "redrive"),
            Body::Json(json!({"seqs": [1]})),
        ),
        e(
            Method::DELETE,
            "/api/v1/pipelines/{name}/dlq",
            s("/api/v1/pipelines/p1/dlq"),
            Perm("dlq", "purge"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/streams",
            s("/api/v1/nats/streams"),
            Perm("streams", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/streams/{name}",
            s("/api/v1/nats/streams/S1"),
            Perm("streams", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/streams/{name}/consumers",
            s("/api/v1/nats/streams/S1/consumers"),
            Perm("consumers", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/streams/{name}/messages",
            s("/api/v1/nats/streams/S1/messages?last_by_subject=s1.a"),
            Perm("messages", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/streams/{name}/messages/{seq}",
            s("/api/v1/nats/streams/S1/messages/1"),
            Perm("messages", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/nats/streams/{name}/purge",
            s("/api/v1/nats/streams/S1/purge"),
            Perm("streams", "purge"),
            Body::Json(json!({})),
        ),
        e(
            Method::POST,
            "/api/v1/nats/publish",
            s("/api/v1/nats/publish"),
            Perm("messages", "publish"),
            Body::Json(json!({"subject": "uncaptured.x", "payload": "x"})),
        ),
        e(
            Method::POST,
            "/api/v1/nats/streams/{name}/consumers/{consumer}/pause",
            s("/api/v1/nats/streams/S1/consumers/c1/pause"),
            Perm("consumers", "pause"),
            Body::Json(json!({})),
        ),
        e(
            Method::POST,
            "/api/v1/nats/streams/{name}/consumers/{consumer}/resume",
            s("/api/v1/nats/streams/S1/consumers/c1/resume"),
            Perm("consumers", "pause"),
            Body::Json(json!({})),
        ),
        e(
            Method::GET,
            "/api/v1/nats/kv",
            s("/api/v1/nats/kv"),
            Perm("kv", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/nats/kv",
            s("/api/v1/nats/kv"),
            Perm("kv", "create"),
            Body::Json(json!({"name": format!("acme_new{n}")})),
        ),
        e(
            Method::DELETE,
            "/api/v1/nats/kv/{bucket}",
            s("/api/v1/nats/kv/acme_nope"),
            Perm("kv", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/kv/{bucket}/keys",
            s("/api/v1/nats/kv/acme_b1/keys"),
            Perm("kv", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/kv/{bucket}/keys/{key}",
            s("/api/v1/nats/kv/acme_b1/keys/k"),
            Perm("kv", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/nats/kv/{bucket}/keys/{key}/history",
            s("/api/v1/nats/kv/acme_b1/keys/k/history"),
            Perm("kv", "read"),
            Body::None,
        ),
        e(
            Method::PUT,
            "/api/v1/nats/kv/{bucket}/keys/{key}",
            s("/api/v1/nats/kv/acme_b1/keys/k"),
            Perm("kv", "update"),
            Body::Json(json!({"value": format!("v{n}")})),
        ),
        e(
            Method::DELETE,
            "/api/v1/nats/kv/{bucket}/keys/{key}",
            s(&format!("/api/v1/nats/kv/acme_b1/keys/gone-{n}")),
            Perm("kv", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/streams",
            s("/api/v1/streams"),
            Perm("streams", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/streams/{name}",
            s("/api/v1/streams/S1"),
            Perm("streams", "read"),
            Body::None,
        ),
        e(
            Method::PUT,
            "/api/v1/streams/{name}",
            s("/api/v1/streams/S1"),
            Perm("streams", "update"),
            Body::Yaml(stream_yaml("S1", "s1.>")),
        ),
        e(
            Method::DELETE,
            "/api/v1/streams/{name}",
            s("/api/v1/streams/NOPE"),
            Perm("streams", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/secrets",
            s("/api/v1/secrets"),
            Perm("secrets", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/secrets/{name}",
            s("/api/v1/secrets/s1"),
            Perm("secrets", "read"),
            Body::None,
        ),
        e(
            Method::PUT,
            "/api/v1/secrets/{name}",
            s("/api/v1/secrets/s1"),
            Perm("secrets", "update"),
            Body::Json(json!({"kind": "webhook-token", "secret": {"token": "t"}})),
        ),
        e(
            Method::DELETE,
            "/api/v1/secrets/{name}",
            s("/api/v1/secrets/no-such"),
            Perm("secrets", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/modules",
            s("/api/v1/modules"),
            Perm("modules", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/modules/{name}",
            s("/api/v1/modules/no-such"),
            Perm("modules", "read"),
            Body::None,
        ),
        // Allowed callers get a 422 (a JSON body is not WebAssembly), denied ones a 403 first.
        e(
            Method::POST,
            "/api/v1/modules/{name}",
            format!("/api/v1/modules/m-{n}"),
            Perm("modules", "create"),
            Body::Json(json!({"not": "wasm"})),
        ),
        e(
            Method::DELETE,
            "/api/v1/modules/{name}",
            s("/api/v1/modules/no-such"),
            Perm("modules", "delete"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/audit",
            s("/api/v1/audit"),
            Perm("audit", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/streams/{name}/infer-schema",
            s("/api/v1/streams/NOPE/infer-schema"),
            Perm("messages", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/schemas",
            s("/api/v1/schemas"),
            Perm("schemas", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/schemas/{subject}/versions",
            format!("/api/v1/schemas/subject-{n}/versions"),
            Perm("schemas", "create"),
            Body::Json(json!({"schema": "{\"type\":\"object\"}", "schema_type": "JSON"})),
        ),
        e(
            Method::GET,
            "/api/v1/schemas/{subject}/versions",
            s("/api/v1/schemas/no-such/versions"),
            Perm("schemas", "read"),
            Body::None,
        ),
        e(
            Method::GET,
            "/api/v1/schemas/{subject}/versions/{version}",
            s("/api/v1/schemas/no-such/versions/latest"),
            Perm("schemas", "read"),
            Body::None,
        ),
        e(
            Method::POST,
            "/api/v1/schemas/{subject}/check",
            s("/api/v1/schemas/no-such/check"),
            Perm("schemas", "read"),
            Body::Json(json!({"schema": "{\"type\":\"object\"}", "schema_type": "JSON"})),
        ),
        e(
            Method::DELETE,
            "/api/v1/schemas/{subject}",
            s("/api/v1/schemas/no-such"),
            Perm("schemas", "delete"),
            Body::None,
        ),
    ]
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    // With NATS: the fleet and DLQ endpoints answer for real (without it they are 503).
    let t = TestApp::sqlite_nats().await;
    let (acme, acme_admin) = t.tenant("acme").await;
    // Fixtures the endpoints read.
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        &acme_admin,
        &pipeline_yaml("p1", "true", 1),
    )
    .await
    .ok();
    t.yaml(
        Method::PUT,
        "/api/v1/streams/S1",
        &acme_admin,
        &stream_yaml("S1", "s1.>"),
    )
    .await
    .ok();
    // NATS fixtures: S1 with a consumer to pause, and a bucket of acme's with a key.
    let js = t.nats().js().clone();
    js.get_stream("S1")
        .await
        .unwrap()
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("c1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let kv = js
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: "acme_b1".into(),
            history: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    kv.put("k", "v".into()).await.unwrap();
    t.json(
        Method::PUT,
        "/api/v1/secrets/s1",
        &acme_admin,
        json!({"kind": "webhook-token", "secret": {"token": "t"}}),
    )
    .await
    .ok();
    t.json(
        Method::POST,
        "/api/v1/roles",
        &acme_admin,
        json!({"name": "auditor", "permissions": ["audit:read", "pipelines:read"]}),
    )
    .await
    .ok();
    let (target, _) = t
        .user_with_key(&acme_admin, "target@acme.test", "viewer")
        .await;

    // Every registered route except the public login/refresh is in the table.
    let covered: Vec<(Method, &str)> = table(&acme, &target, 0)
        .iter()
        .map(|e| (e.method.clone(), e.route))
        .collect();
    for (method, route) in api_routes().routes() {
        if route.ends_with("/auth/login") || route.ends_with("/auth/refresh") {
            continue;
        }
        assert!(
            covered.iter().any(|(m, r)| *m == method && *r == route),
            "{method} {route} is missing from the authorization matrix"
        );
    }

    let mut callers: Vec<(String, String, bool, PermissionSet)> = Vec::new();
    for role in ["editor", "operator", "viewer", "auditor"] {
        let (_, key) = t
            .user_with_key(&acme_admin, &format!("{role}@acme.test"), role)
            .await;
        let perms = match builtin(role) {
            Some(list) => PermissionSet::parse(&list).unwrap(),
            None => PermissionSet::parse(&["audit:read", "pipelines:read"]).unwrap(),
        };
        callers.push((role.to_string(), key, false, perms));
    }
    let admin_perms = PermissionSet::parse(&["*:*"]).unwrap();
    callers.push((
        "tenant-admin".into(),
        acme_admin.clone(),
        false,
        admin_perms.clone(),
    ));
    callers.push(("platform-admin".into(), ADMIN_KEY.into(), true, admin_perms));

    let mut checked = 0;
    for (n, (role, key, platform, perms)) in callers.iter().enumerate() {
        for ep in table(&acme, &target, n) {
            let allowed = match ep.needs {
                Needs::Anyone => true,
                Needs::Platform => *platform,
                Needs::Perm(r, a) => perms.allows(
                    ApiResource::parse(r).expect("a resource of the vocabulary"),
                    Action::parse(a).expect("an action of the vocabulary"),
                ),
            };
            if ep.route == "/api/v1/status/stream" {
                // Server-sent events never end: only the status is checked.
                let status = t.status_of(ep.method.clone(), &ep.path, key).await;
                if allowed {
                    assert_eq!(status, 200, "{role}: status stream");
                } else {
                    assert_eq!(status, 403, "{role}: status stream");
                }
                checked += 1;
                continue;
            }
            let reply = match &ep.body {
                Body::None => t.call(ep.method.clone(), &ep.path, Some(key), None).await,
                Body::Json(v) => t.json(ep.method.clone(), &ep.path, key, v.clone()).await,
                Body::Yaml(y) => t.yaml(ep.method.clone(), &ep.path, key, y).await,
            };
            let what = format!(
                "{role}: {} {} -> {} {}",
                ep.method, ep.path, reply.status, reply.text
            );
            if allowed {
                assert!(
                    reply.status != 403 && reply.status != 401 && reply.status.as_u16() < 500,
                    "expected allowed: {what}"
                );
            } else {
                assert_eq!(reply.status, 403, "expected denied: {what}");
                assert_eq!(reply.json()["code"], "forbidden", "{what}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 6 * table(&acme, &target, 0).len());

    // Denied writes changed nothing: only the admins' pipelines exist.
    let names: Vec<String> = t.get("/api/v1/pipelines", &acme_admin).await.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["new-0", "new-4", "p1"],
        "editor (n=0) and tenant-admin (n=4) may create"
    );
    // Denials are audited.
    let denied = t
        .get(
            "/api/v1/audit?outcome=denied&actor=viewer@acme.test",
            &acme_admin,
        )
        .await
        .ok();
    assert!(!denied["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn missing_or_bad_credentials_are_401() {
    let t = TestApp::sqlite().await;
    for route in [
        "/api/v1/pipelines",
        "/api/v1/auth/me",
        "/api/v1/tenants",
        "/api/v1/audit",
    ] {
        t.call(Method::GET, route, None, None)
            .await
            .problem(401, "unauthenticated");
        t.call(Method::GET, route, Some("weir_not-a-key"), None)
            .await
            .problem(401, "unauthenticated");
    }
    let mut req = axum::http::Request::get("/api/v1/pipelines")
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .body(axum::body::Body::empty())
        .unwrap();
    req.headers_mut();
    t.send(req).await.problem(401, "unauthenticated");
    // A refused write is audited as denied.
    t.yaml(
        Method::POST,
        "/api/v1/pipelines",
        "weir_nope",
        &pipeline_yaml("x", "true", 1),
    )
    .await
    .problem(401, "unauthenticated");
    let events = t.get("/api/v1/audit?outcome=denied", ADMIN_KEY).await.ok();
    // Unauthenticated events belong to no tenant, so the system tenant does not see them either.
    assert!(events["items"].as_array().unwrap().is_empty());
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE outcome = 'denied' AND actor = 'anonymous'",
    )
    .fetch_one(t.state.db().pool())
    .await
    .unwrap();
    assert_eq!(n, 1);
}
