//! Request extractors whose failures are problem+json: JSON bodies (unknown fields refused),
//! pipeline-file bodies (YAML or JSON text), and query strings. Bodies over the limit are 413.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body deserialized into `T`.
pub struct JsonBody<T>(pub T);

fn content_type(req: &Request) -> Option<String> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

fn body_error(rejection: BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::bad_request(
            "bad_body",
            format!("cannot read the request body: {rejection}"),
        )
    }
}

async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings().body_limit;
    Bytes::from_request(req, state)
        .await
        .map_err(|r| body_error(r, limit))
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match content_type(&req).as_deref() {
            Some("application/json") | None => {}
            Some(other) if other.ends_with("+json") => {}
            Some(other) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "this endpoint reads application/json, not {other}"
                )));
            }
        }
        let bytes = read_body(req, state).await?;
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(
                "malformed_json",
                format!(
                    "invalid JSON body at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })
    }
}

/// The text of a resource file sent as the body (`application/yaml` or `application/json`).
pub struct SpecBody {
    /// The text.
    pub text: String,
    /// A file name for diagnostics: `request.yaml` or `request.json`.
    pub file_name: &'static str,
}

impl FromRequest<AppState> for SpecBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let file_name = match content_type(&req).as_deref() {
            Some("application/json") => "request.json",
            Some("application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml")
            | None => "request.yaml",
            Some(other) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "send the resource as application/yaml or application/json, not {other}"
                )));
            }
        };
        let bytes = read_body(req, state).await?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|e| {
            ApiError::bad_request(
                "malformed_body",
                format!(
                    "the body is not UTF-8 (byte {})",
                    e.utf8_error().valid_up_to()
                ),
            )
        })?;
        Ok(SpecBody { text, file_name })
    }
}

/// A query string deserialized into `T`.
pub struct QueryArgs<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryArgs<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| QueryArgs(q))
            .map_err(|e| ApiError::bad_request("bad_query", e.body_text()))
    }
}
