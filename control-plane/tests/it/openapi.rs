//! The OpenAPI document parses as OpenAPI 3 and lists every registered route with its method.

use axum::http::Method;
use utoipa::openapi::OpenApi;
use weir_control_plane::routes::{api_routes, public_routes};

use crate::support::TestApp;

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
        .iter()
        .chain(public_routes().routes())
        .cloned()
        .collect();
    assert!(routes.len() >= 40);
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
    // Problems are a documented schema.
    assert!(raw["components"]["schemas"]["Problem"].is_object());
}
