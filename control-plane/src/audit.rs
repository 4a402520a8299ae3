//! The gate every API route passes, and the audit log it writes. The gate authenticates the
//! bearer credential (the handler then authorizes), runs the handler, and records every
//! mutating call — successful, denied or failed — with actor, tenant, action, resource,
//! before/after diff, request id and source address. The log is queryable and exportable as
//! JSON, JSON lines and CSV.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub use crate::audit_budget::AnonymousAudit;
use crate::auth::{self, Caller};
use crate::body::QueryArgs;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;
use crate::store;
use crate::store::audit::{EventFilter, NewEvent, insert};

/// What a handler adds to its response for the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditNote {
    /// Actor, when not the authenticated caller (login).
    pub actor: Option<String>,
    /// Tenant, when not the authenticated caller's (a login attempt on a user of that tenant).
    pub tenant_id: Option<String>,
    /// The resource, when more precise than the request path.
    pub resource: Option<String>,
    /// Unified diff of the resource before and after.
    pub diff: Option<String>,
    /// The handler already wrote the event in its own transaction (see [`AuditContext`]).
    pub recorded: bool,
}

/// What the audit event of the current request says before its outcome is known. The gate
/// puts it in the request's extensions; a handler that writes takes it and records the event
/// in the same transaction as its write ([`AuditContext::record_in`]), so that no successful
/// write is ever left unaudited.
#[derive(Clone, Debug)]
pub struct AuditContext {
    tenant_id: Option<String>,
    actor: String,
    action: String,
    resource: String,
    request_id: Option<String>,
    source: String,
}

impl AuditContext {
    /// Writes the success event of this request through `conn` (the handler's transaction).
    pub async fn record_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        status: u16,
        resource: Option<String>,
        diff: Option<String>,
    ) -> Result<(), sqlx::Error> {
        insert(
            conn,
            NewEvent {
                tenant_id: self.tenant_id.clone(),
                actor: self.actor.clone(),
                action: self.action.clone(),
                resource: resource.unwrap_or_else(|| self.resource.clone()),
                outcome: "success",
                status: i64::from(status),
                diff,
                request_id: self.request_id.clone(),
                source: Some(self.source.clone()),
            },
        )
        .await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuditContext>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("no audit context on this route".into()))
    }
}

/// Longest `x-request-id` stored in the log; longer ones are cut.
pub const MAX_REQUEST_ID: usize = 128;

impl AuditNote {
    /// A note carrying a diff.
    pub fn diff(diff: impl Into<String>) -> Self {
        AuditNote {
            diff: Some(diff.into()),
            ..Default::default()
        }
    }

    /// Attaches the note to a response.
    pub fn attach(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The client's address (from the connection; `unknown` when served without one, as in tests).
pub struct SourceAddr(pub String);

fn source_of(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl<S: Send + Sync> FromRequestParts<S> for SourceAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SourceAddr(source_of(&parts.extensions)))
    }
}

/// `pipelines.create`, `api-keys.rotate`, `tenants.quotas.update`: derived from the route.
pub fn action_name(method: &Method, route: &str) -> String {
    let route = route.trim_start_matches("/api/v1/").trim_start_matches('/');
    let mut words: Vec<String> = Vec::new();
    for segment in route.split('/') {
        if segment.starts_with('{') {
            continue;
        }
        for word in segment.split(':') {
            words.push(word.to_string());
        }
    }
    let verb_in_path = matches!(
        words.last().map(String::as_str),
        Some(
            "rotate"
                | "login"
                | "logout"
                | "refresh"
                | "validate"
                | "deploy"
                | "pause"
                | "resume"
                | "rollback"
                | "redrive"
                | "purge"
                | "publish"
        )
    );
    if !verb_in_path {
        let verb = match *method {
            Method::POST => "create",
            Method::PUT | Method::PATCH => "update",
            Method::DELETE => "delete",
            _ => "read",
        };
        words.push(verb.to_string());
    }
    words.join(".")
}

fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Route middleware: authentication, then the handler, then the audit record.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let path = req.uri().path().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(MAX_REQUEST_ID).collect::<String>());
    let source = source_of(req.extensions());

    let credential = req.headers().get(header::AUTHORIZATION).map(|v| {
        match v.to_str().ok().and_then(|s| s.strip_prefix("Bearer ")) {
            Some(token) if !token.trim().is_empty() => Ok(token.trim().to_string()),
            _ => Err(ApiError::Unauthenticated(
                "malformed Authorization header: expected `Bearer <api key or access token>`"
                    .into(),
            )),
        }
    });
    let caller = match credential {
        None => Ok(None),
        Some(Ok(token)) => auth::authenticate(&state, &token).await.map(Some),
        Some(Err(e)) => Err(e),
    };
    let (caller, response) = match caller {
        Ok(caller) => {
            if let Some(c) = &caller {
                req.extensions_mut().insert(c.clone());
                req.extensions_mut().insert(AuditContext {
                    tenant_id: Some(c.tenant_id.clone()),
                    actor: c.email.clone(),
                    action: action_name(&method, &route),
                    resource: path.clone(),
                    request_id: request_id.clone(),
                    source: source.clone(),
                });
            }
            (caller, next.run(req).await)
        }
        Err(err) => (None, err.into_response()),
    };

    if is_mutating(&method) {
        let note = response
            .extensions()
            .get::<AuditNote>()
            .cloned()
            .unwrap_or_default();
        if note.recorded {
            return response;
        }
        let status = response.status().as_u16();
        let outcome = match status {
            200..=399 => "success",
            401 | 403 => "denied",
            _ => "failed",
        };
        // Failures nobody is accountable for (no credential, or one that did not resolve)
        // are recorded at a bounded rate per source address, so that they cannot flood the
        // store; the ones left out are counted in the log.
        if caller.is_none()
            && outcome != "success"
            && note.tenant_id.is_none()
            && !state.anonymous_audit().admit(&source)
        {
            return response;
        }
        let event = NewEvent {
            tenant_id: caller
                .as_ref()
                .map(|c| c.tenant_id.clone())
                .or(note.tenant_id),
            actor: crate::text::bounded(
                &note
                    .actor
                    .or_else(|| caller.as_ref().map(|c| c.email.clone()))
                    .unwrap_or_else(|| "anonymous".into()),
                MAX_ACTOR,
            ),
            action: action_name(&method, &route),
            resource: crate::text::bounded(&note.resource.unwrap_or(path), MAX_RESOURCE),
            outcome,
            status: status as i64,
            diff: note.diff,
            request_id,
            source: Some(source),
        };
        if let Err(err) = record(&state, event).await {
            tracing::error!(error = %err, "cannot write the audit event");
        }
    }
    response
}

/// Longest actor stored in an audit event (an email is at most 254 characters).
const MAX_ACTOR: usize = 256;
/// Longest resource path stored in an audit event.
const MAX_RESOURCE: usize = 512;

async fn record(state: &AppState, e: NewEvent) -> Result<(), sqlx::Error> {
    let mut conn = state.db().writer().acquire().await?;
    insert(&mut conn, e).await
}

/// One audit event.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct AuditEvent {
    /// Event id (time-ordered).
    pub id: String,
    /// When (RFC 3339).
    pub at: String,
    /// Who: the user's email, or `anonymous`.
    pub actor: String,
    /// What: `pipelines.create`, `auth.login`, ...
    pub action: String,
    /// On what: the request path.
    pub resource: String,
    /// `success`, `denied` or `failed`.
    pub outcome: String,
    /// HTTP status of the response.
    pub status: i64,
    /// Unified diff of the resource before and after, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The request's `x-request-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Filters of `GET /audit`.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Events at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Events before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Only this actor (email).
    pub actor: Option<String>,
    /// Only this action (`pipelines.update`).
    pub action: Option<String>,
    /// Only this outcome (`success`, `denied`, `failed`).
    pub outcome: Option<String>,
    /// Page size (default 100, max 1000; exports ignore it).
    pub limit: Option<i64>,
    /// Events with ids after this one (the previous page's `next_cursor`).
    pub cursor: Option<String>,
    /// `json` (default), `jsonl` or `csv`.
    #[param(pattern = "^(json|jsonl|csv)$")]
    pub format: Option<String>,
}

/// A page of audit events.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    /// The events, oldest first.
    pub items: Vec<AuditEvent>,
    /// Cursor of the next page, when there is one.
    pub next_cursor: Option<String>,
}

fn parse_time(name: &str, value: &str) -> ApiResult<i64> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            ApiError::bad_request(
                "bad_query",
                format!("`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z: {e}"),
            )
        })
}

/// One CSV field, quoted when needed. A value a spreadsheet would run as a formula (starting
/// with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'` so that it stays text.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

/// Query the audit log of the caller's tenant.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "JSON page; `format=jsonl` gives \
    application/x-ndjson and `format=csv` gives text/csv of every matching event",
    content((AuditPage = "application/json"), (String = "application/x-ndjson"), (String = "text/csv"))),
    (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryArgs(q): QueryArgs<AuditQuery>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Audit, Action::Read)?;
    let format = q.format.as_deref().unwrap_or("json");
    if !matches!(format, "json" | "jsonl" | "csv") {
        return Err(ApiError::bad_request(
            "bad_query",
            format!("unknown format `{format}`: use json, jsonl or csv"),
        ));
    }
    let filter = EventFilter {
        from: q
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: q.to.as_deref().map(|t| parse_time("to", t)).transpose()?,
        actor: q.actor,
        action: q.action,
        outcome: q.outcome,
        after_id: q.cursor,
    };
    // A page reads one event more than it shows, to know whether there is a next page.
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let page = (format == "json").then_some(limit + 1);
    let rows = store::audit::events(state.db().pool(), &caller.tenant_id, filter, page).await?;
    let mut items: Vec<AuditEvent> = rows.into_iter().map(AuditEvent::from).collect();
    match format {
        "jsonl" => Ok(text_response(jsonl(&items)?, "application/x-ndjson")),
        "csv" => Ok(text_response(csv(&items), "text/csv")),
        _ => {
            let next_cursor = if items.len() as i64 > limit {
                items.truncate(limit as usize);
                items.last().map(|e| e.id.clone())
            } else {
                None
            };
            Ok(axum::Json(AuditPage { items, next_cursor }).into_response())
        }
    }
}

impl From<store::audit::EventRow> for AuditEvent {
    fn from(r: store::audit::EventRow) -> Self {
        AuditEvent {
            id: r.id,
            at: rfc3339(r.at),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            outcome: r.outcome,
            status: r.status,
            diff: r.diff,
            request_id: r.request_id,
            source: r.source,
        }
    }
}

/// The events as JSON lines.
fn jsonl(items: &[AuditEvent]) -> ApiResult<String> {
    let mut out = String::new();
    for e in items {
        out.push_str(&serde_json::to_string(e).map_err(|e| ApiError::Internal(e.to_string()))?);
        out.push('\n');
    }
    Ok(out)
}

/// The events as CSV with a header line.
fn csv(items: &[AuditEvent]) -> String {
    let mut out =
        String::from("id,at,actor,action,resource,outcome,status,request_id,source,diff\n");
    for e in items {
        let fields = [
            e.id.as_str(),
            &e.at,
            &e.actor,
            &e.action,
            &e.resource,
            &e.outcome,
            &e.status.to_string(),
            e.request_id.as_deref().unwrap_or_default(),
            e.source.as_deref().unwrap_or_default(),
            e.diff.as_deref().unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

fn text_response(body: String, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_from_routes() {
        assert_eq!(
            action_name(&Method::POST, "/api/v1/pipelines"),
            "pipelines.create"
        );
        assert_eq!(
            action_name(&Method::PUT, "/api/v1/pipelines/{name}"),
            "pipelines.update"
        );
        assert_eq!(
            action_name(&Method::POST, "/api/v1/pipelines:validate"),
            "pipelines.validate"
        );
        assert_eq!(
            action_name(&Method::POST, "/api/v1/api-keys/{id}/rotate"),
            "api-keys.rotate"
        );
        assert_eq!(
            action_name(&Method::PUT, "/api/v1/tenants/{id}/quotas"),
            "tenants.quotas.update"
        );
    }

    #[test]
    fn csv_quotes_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-1"), "'-1");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tx"), "'\tx");
        assert_eq!(csv_field("\rx"), "\"'\rx\"");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\n"), "\"say \"\"hi\"\"\n\"");
    }
}
