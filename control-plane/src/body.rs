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
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .or_else(|e| {
                // JSON (and JSON Schema) count `2.0` as the integer 2; serde does not. Retry with
                // integral floats made integers before refusing.
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .map(integral_floats_as_integers)
                    .and_then(|v| serde_json::from_value(v).ok())
                    .map(JsonBody)
                    .ok_or(e)
            })
            .map_err(|e| {
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

/// `v` with every float that has no fractional part (and fits) turned into an integer.
fn integral_floats_as_integers(v: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                Value::from(f as i64)
            } else if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
                Value::from(f as u64)
            } else {
                Value::Number(n)
            }
        }
        Value::Array(items) => {
            Value::Array(items.into_iter().map(integral_floats_as_integers).collect())
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, integral_floats_as_integers(v)))
                .collect(),
        ),
        other => other,
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
