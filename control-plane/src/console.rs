//! Serves the web console: the Vite build of `control-plane/console/` (`dist/`), embedded into
//! the binary by `rust-embed` (release builds embed it; debug builds read `dist/` from disk), at
//! `/` with an SPA fallback, cache headers and a Content-Security-Policy.
//! Without a build, `/` answers a page that says how to build the console.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::ApiError;

/// The console's built assets (`control-plane/console/dist`); empty when it was never built.
#[derive(RustEmbed)]
#[folder = "console/dist"]
#[allow_missing = true]
struct Assets;

/// The policy every console response carries: scripts only from this origin, API calls only
/// to this origin, no framing. Inline styles are allowed (the canvas positions nodes with them).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Cache policy of content-hashed files under `assets/` (their name changes with their content).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy of everything else (`index.html` must be revalidated to pick up a new build).
const REVALIDATE: &str = "no-cache";

/// The page served at `/` when the console was not built.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Weir console not built</title></head><body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">\
<h1>The Weir console is not built</h1>\
<p>The API is up at <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a>, but this binary \
was built without the console's assets.</p>\
<p>Build them with <code>bash deploy/setup.sh</code> (or <code>cd control-plane/console &amp;&amp; \
npm ci &amp;&amp; npm run build</code>), then rebuild <code>weir</code> (release builds embed \
<code>control-plane/console/dist/</code>; debug builds read it from disk at run time).</p>\
</body></html>";

/// Whether the console's assets are present in this binary.
pub fn is_built() -> bool {
    Assets::get("index.html").is_some()
}

/// The router's fallback: API paths that matched no route stay problem+json 404s; any other
/// GET or HEAD is a console file, or `index.html` for a client-side route (SPA fallback).
pub async fn fallback(method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") || path == "/healthz" || path == "/metrics" {
        return ApiError::NoRoute(path.to_string()).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed.into_response();
    }
    let file = path.trim_start_matches('/');
    if !file.is_empty()
        && let Some(asset) = Assets::get(file)
    {
        let cache = if file.starts_with("assets/") {
            IMMUTABLE
        } else {
            REVALIDATE
        };
        return respond(
            StatusCode::OK,
            asset.metadata.mimetype(),
            cache,
            asset.data.into_owned(),
        );
    }
    // A missing hashed asset is a real 404 (an old tab asking for a replaced build), not a page.
    if file.starts_with("assets/") {
        return ApiError::NoRoute(path.to_string()).into_response();
    }
    match Assets::get("index.html") {
        Some(index) => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            REVALIDATE,
            index.data.into_owned(),
        ),
        None => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            REVALIDATE,
            NOT_BUILT.as_bytes().to_vec(),
        ),
    }
}

fn respond(status: StatusCode, mime: &str, cache: &'static str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}
