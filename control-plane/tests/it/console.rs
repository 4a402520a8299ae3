//! The web console is served at `/` with an SPA fallback, a CSP and cache headers, while
//! unknown API paths stay problem+json 404s.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use tower::ServiceExt;
use weir_control_plane::console;

use crate::support::TestApp;

async fn get(t: &TestApp, method: Method, path: &str) -> (StatusCode, header::HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let res = t.app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn root_and_client_routes_answer_the_console_page() {
    let t = TestApp::sqlite().await;
    let (status, headers, root) = get(&t, Method::GET, "/").await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers[header::CONTENT_SECURITY_POLICY], console::CSP);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
    if console::is_built() {
        assert!(root.contains("<div id=\"root\">"), "{root}");
    } else {
        assert!(root.contains("npm run build"), "{root}");
    }
    // A client-side route (deep link) answers the same page.
    let (status, _, deep) = get(&t, Method::GET, "/pipelines/order-routing").await;
    assert_eq!(status, 200);
    assert_eq!(deep, root);
}

#[tokio::test]
async fn api_paths_stay_problems_and_missing_assets_are_404() {
    let t = TestApp::sqlite().await;
    let (status, headers, body) = get(&t, Method::GET, "/api/v1/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert!(body.contains("/api/v1/no-such-thing"));
    let (status, _, _) = get(&t, Method::GET, "/assets/index-gone.js").await;
    assert_eq!(status, 404);
    let (status, _, _) = get(&t, Method::POST, "/somewhere").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn hashed_assets_are_immutable() {
    if !console::is_built() {
        eprintln!("console not built (control-plane/console/dist): skipping the asset check");
        return;
    }
    let t = TestApp::sqlite().await;
    let (_, _, root) = get(&t, Method::GET, "/").await;
    let script = root
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("index.html loads a script");
    let (status, headers, _) = get(&t, Method::GET, script).await;
    assert_eq!(status, 200, "{script}");
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
}
