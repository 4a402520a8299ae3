//! The OpenAPI document parses as OpenAPI 3, and every operation it lists is served (routes are
//! declared once, from the handlers' annotations, so the two cannot drift).

use axum::http::Method;
use utoipa::openapi::OpenApi;
use weir_control_plane::routes::{api_routes, public_routes};

use crate::support::TestApp;

/// The operations served without credentials.
const PUBLIC: [&str; 5] = [
    "/healthz",
    "/metrics",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
    "/api/v1/auth/refresh",
];

#[tokio::test]
async fn document_lists_every_route() {
    let t = TestApp::sqlite().await;
    let r = t
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, 200);
    let raw = r.json();
    assert!(raw["openapi"].as_str().unwrap().starts_with("3."));
    let doc: OpenApi = serde_json::from_value(raw.clone()).expect("a valid OpenAPI document");
    assert!(!doc.info.title.is_empty());
    let routes: Vec<(Method, String)> = api_routes()
        .routes()
        .into_iter()
        .chain(public_routes().routes())
        .collect();
    assert!(routes.len() >= 40);
    // Every documented operation is served: without credentials the gate answers 401, which
    // only a registered route reaches (an unrouted one is 404 or 405).
    for (method, path) in &routes {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let r = t.call(method.clone(), &concrete, None, None).await;
        // The document says which operations need no credentials (`security: [{}]`), as the
        // server treats them: a client, or a fuzzer, must not send a token to log in.
        let documented_public =
            raw["paths"][path.as_str()][method.as_str().to_lowercase()]["security"]
                .as_array()
                .is_some_and(|s| {
                    s.iter()
                        .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                });
        assert_eq!(
            documented_public,
            PUBLIC.contains(&path.as_str()),
            "{method} {path}: the document's security disagrees with the server"
        );
        if !PUBLIC.contains(&path.as_str()) {
            assert_eq!(
                r.status, 401,
                "{method} {path} is documented but not routed to the gate"
            );
        } else {
            assert!(
                ![404, 405].contains(&r.status.as_u16()),
                "{method} {path} is documented but not served"
            );
        }
    }
    for (method, path) in &routes {
        let item = doc
            .paths
            .paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not in the OpenAPI document"));
        let op = match *method {
            Method::GET => &item.get,
            Method::POST => &item.post,
            Method::PUT => &item.put,
            Method::PATCH => &item.patch,
            Method::DELETE => &item.delete,
            _ => panic!("unexpected method {method}"),
        };
        assert!(
            op.is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    // And nothing documented that is not served.
    let documented: usize = doc
        .paths
        .paths
        .values()
        .map(|i| {
            [&i.get, &i.post, &i.put, &i.patch, &i.delete]
                .iter()
                .filter(|o| o.is_some())
                .count()
        })
        .sum();
    assert_eq!(documented, routes.len());
    // Every operationId is unique (OpenAPI requires it; generated clients name methods by it).
    let mut ids: Vec<String> = doc
        .paths
        .paths
        .values()
        .flat_map(|i| [&i.get, &i.post, &i.put, &i.patch, &i.delete])
        .filter_map(|o| o.as_ref().and_then(|o| o.operation_id.clone()))
        .collect();
    assert_eq!(
        ids.len(),
        routes.len(),
        "every operation has an operationId"
    );
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "operationIds are not unique");
    // Problems are a documented schema.
    assert!(raw["components"]["schemas"]["Problem"].is_object());
    validate_with_openapi_spec_validator(&raw);
}

/// Checks the document with `openapi-spec-validator` (PyPI), which `deploy/setup.sh` installs
/// into `.tools/bin`: a validator written by others, not our own reading of the spec.
fn validate_with_openapi_spec_validator(doc: &serde_json::Value) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let validator = std::env::var_os("WEIR_OPENAPI_VALIDATOR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/bin/openapi-spec-validator"));
    assert!(
        validator.exists(),
        "{} not found: run `bash deploy/setup.sh` (or set WEIR_OPENAPI_VALIDATOR)",
        validator.display()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .expect("run openapi-spec-validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The console's copy of this document (`control-plane/console/src/api/openapi.json`, from which
/// its TypeScript types are generated) is the document the server serves. After changing a
/// handler, refresh it with `WEIR_UPDATE_OPENAPI=1 cargo test -p weir-control-plane --test it
/// openapi` and then `npm run gen:api` in `control-plane/console/`.
#[tokio::test]
async fn console_copy_of_the_document_is_current() {
    let t = TestApp::sqlite().await;
    let r = t
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let served = serde_json::to_string_pretty(&r.json()).unwrap() + "\n";
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/src/api/openapi.json");
    if std::env::var_os("WEIR_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "{} differs from the served OpenAPI document: run \
         `WEIR_UPDATE_OPENAPI=1 cargo test -p weir-control-plane --test it openapi` and then \
         `npm run gen:api` in control-plane/console/, and commit both files",
        path.display()
    );
}

/// Every operation states its errors as `application/problem+json`: 400, 401 and 403 where
/// credentials are needed, and a `default` problem; no error is documented as plain JSON.
#[tokio::test]
async fn every_operation_documents_its_problems() {
    let t = TestApp::sqlite().await;
    let doc = t
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .json();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let public = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().all(|r| r.as_object().unwrap().is_empty()));
            let mut needed = vec!["400", "default"];
            if !public {
                needed.extend(["401", "403"]);
            }
            for status in needed {
                assert!(
                    responses[status]["content"]["application/problem+json"].is_object(),
                    "{method} {path}: no problem+json {status}"
                );
            }
            for (status, r) in responses {
                let json = &r["content"]["application/json"]["schema"]["$ref"];
                assert!(
                    !json.as_str().is_some_and(|s| s.ends_with("/Problem")),
                    "{method} {path}: {status} documented as application/json"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 60, "{checked} operations");
}
