//! API errors and their one mapping to HTTP: every failure leaves the server as an
//! `application/problem+json` body (RFC 9457) with a stable `code`. Internal details are logged,
//! never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

impl From<crate::text::TextError> for ApiError {
    fn from(e: crate::text::TextError) -> Self {
        ApiError::Unprocessable(e.0)
    }
}

/// A problem detail as sent to clients.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type (`https://weir.dev/problems/<code>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong in this request, and what to do about it.
    pub detail: String,
    /// Stable machine-readable code (`not_found`, `invalid_spec`, `quota_exceeded`, ...).
    pub code: String,
    /// Validation diagnostics (`file`, `line`, `column`, `path`, `code`, `message`), for `invalid_spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub diagnostics: Option<serde_json::Value>,
    /// For `quota_exceeded`: the quota's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// For `quota_exceeded`: the tenant's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// For `quota_exceeded`: the usage now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<i64>,
    /// For `quota_exceeded`: the usage the refused request would have led to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<i64>,
}

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No, unknown, expired or revoked credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but the caller's role lacks a permission.
    #[error("your role `{role}` lacks the permission `{permission}`")]
    Forbidden {
        /// The caller's role.
        role: String,
        /// The missing `resource:action`.
        permission: String,
    },
    /// The caller would grant, or act on a holder of, rights it does not hold itself.
    #[error("{0}")]
    Escalation(String),
    /// The request would break a guarded invariant (the last platform admin, its last key);
    /// the code names which.
    #[error("{detail}")]
    Guarded {
        /// Stable code.
        code: &'static str,
        /// What was refused and what to do instead.
        detail: String,
    },
    /// The resource does not exist in the caller's tenant.
    #[error("{0} not found")]
    NotFound(String),
    /// The request conflicts with existing state (duplicate name, resource in use).
    #[error("{0}")]
    Conflict(String),
    /// The resource changed since the version the caller read (`If-Match`): a lost update.
    #[error("{0}")]
    VersionConflict(String),
    /// A pipeline or stream file that fails validation.
    #[error("{detail}")]
    InvalidSpec {
        /// Summary.
        detail: String,
        /// The checker's diagnostics, serialized.
        diagnostics: serde_json::Value,
    },
    /// A malformed request (bad JSON, unknown field, bad query parameter).
    #[error("{detail}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A well-formed request with a semantically invalid value.
    #[error("{0}")]
    Unprocessable(String),
    /// The body exceeds the server's limit.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A body media type this endpoint does not read.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A response format this endpoint cannot produce.
    #[error("{0}")]
    NotAcceptable(String),
    /// The request would exceed a tenant quota.
    #[error(
        "quota `{quota}` exceeded: limit {limit}, current usage {usage}, this request needs {requested}"
    )]
    QuotaExceeded {
        /// Quota name.
        quota: &'static str,
        /// The limit.
        limit: i64,
        /// Usage now.
        usage: i64,
        /// Usage after the request.
        requested: i64,
    },
    /// Too many attempts; retry later.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after_secs: u64,
    },
    /// Route does not exist.
    #[error("no route for {0}")]
    NoRoute(String),
    /// Route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The server runs without NATS, so fleet and data-plane endpoints cannot work.
    #[error(
        "this control plane is not connected to NATS; start it with `weir serve --nats nats://HOST:4222` (or WEIR_NATS_URL) to deploy pipelines and see their status, DLQs and streams"
    )]
    NatsUnavailable,
    /// NATS refused or failed a request (the detail names what failed).
    #[error("NATS request failed: {0}")]
    Nats(String),
    /// A bug or an outage of the store; details are logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Shorthand for a 400 with a code.
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } | ApiError::Escalation(_) => StatusCode::FORBIDDEN,
            ApiError::Guarded { .. } => StatusCode::CONFLICT,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) | ApiError::VersionConflict(_) => StatusCode::CONFLICT,
            ApiError::InvalidSpec { .. } | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::QuotaExceeded { .. } | ApiError::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NatsUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Nats(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Forbidden { .. } => "forbidden",
            ApiError::Escalation(_) => "privilege_escalation",
            ApiError::Guarded { code, .. } => code,
            ApiError::NotFound(_) | ApiError::NoRoute(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::VersionConflict(_) => "version_conflict",
            ApiError::InvalidSpec { .. } => "invalid_spec",
            ApiError::Unprocessable(_) => "invalid_value",
            ApiError::BadRequest { code, .. } => code,
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotAcceptable(_) => "not_acceptable",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::NatsUnavailable => "nats_unavailable",
            ApiError::Nats(_) => "nats_error",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The problem body of this error.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            ApiError::Internal(_) => {
                "the server failed to handle the request; the error is in its log".to_string()
            }
            other => other.to_string(),
        };
        let mut problem = Problem {
            kind: format!("https://weir.dev/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            code: self.code().to_string(),
            diagnostics: None,
            quota: None,
            limit: None,
            usage: None,
            requested: None,
        };
        match self {
            ApiError::InvalidSpec { diagnostics, .. } => {
                problem.diagnostics = Some(diagnostics.clone())
            }
            ApiError::QuotaExceeded {
                quota,
                limit,
                usage,
                requested,
            } => {
                problem.quota = Some(quota.to_string());
                problem.limit = Some(*limit);
                problem.usage = Some(*usage);
                problem.requested = Some(*requested);
            }
            _ => {}
        }
        problem
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::RateLimited { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if matches!(self, ApiError::Unauthenticated(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"weir\""),
            );
        }
        response
    }
}

/// Rejections of axum's own extractors (a path segment that is not a number, …) leave as
/// `text/plain`; this turns every error response that is not already a problem into one, so
/// that no error leaves the server in another shape.
pub async fn plain_errors_as_problems(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(|t| t.starts_with("text/plain")));
    if !(status.is_client_error() || status.is_server_error()) || is_problem || !is_plain {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let code = match status.as_u16() {
        400 => "bad_request",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "invalid_value",
        _ => "error",
    };
    let problem = Problem {
        kind: format!("https://weir.dev/problems/{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: if text.trim().is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            crate::text::bounded(text.trim(), 500)
        },
        code: code.to_string(),
        diagnostics: None,
        quota: None,
        limit: None,
        usage: None,
        requested: None,
    };
    let mut out = (status, serde_json::to_vec(&problem).unwrap_or_default()).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    out
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return ApiError::Conflict(
                "a resource with this name already exists in your tenant".into(),
            );
        }
        ApiError::Internal(format!("store: {err}"))
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
