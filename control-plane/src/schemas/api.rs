//! The schema registry in Weir's own API style (`/api/v1/schemas`, problem+json errors, in the
//! OpenAPI document): the same store and checks as the Confluent-compatible API.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::compat::Level;
use super::error::RegistryError;
use super::formats::SchemaType;
use super::store::{Registry, SchemaInput, SchemaReference, SchemaVersion, VersionRef};
use crate::body::{JsonBody, QueryArgs};
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        use RegistryError::*;
        let text = e.to_string();
        match e {
            Unauthenticated(m) => ApiError::Unauthenticated(m),
            Forbidden { role, permission } => ApiError::Forbidden { role, permission },
            SubjectNotFound(s) => ApiError::NotFound(format!("schema subject `{s}`")),
            VersionNotFound { subject, version } => {
                ApiError::NotFound(format!("version {version} of schema subject `{subject}`"))
            }
            SchemaNotFound(id) => ApiError::NotFound(format!("schema {id}")),
            SchemaNotFoundInSubject => ApiError::NotFound("this schema in the subject".into()),
            Incompatible(_) => ApiError::Guarded {
                code: "incompatible_schema",
                detail: text,
            },
            SubjectSoftDeleted(_)
            | SubjectNotSoftDeleted(_)
            | VersionNotSoftDeleted { .. }
            | ReferenceExists(_) => ApiError::Conflict(text),
            SubjectLevelNotFound(s) => {
                ApiError::NotFound(format!("compatibility level of subject `{s}`"))
            }
            InvalidSchema(_) | InvalidVersion(_) | InvalidLevel(_) | InvalidSubject(_) => {
                ApiError::Unprocessable(text)
            }
            BadRequest(m) => ApiError::bad_request("bad_request", m),
            Internal(m) => ApiError::Internal(m),
        }
    }
}

/// A schema to register or check.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaWrite {
    /// The schema text (Avro JSON, a JSON Schema document, or `.proto` text).
    pub schema: String,
    /// Its format.
    pub schema_type: SchemaType,
    /// Versions of other subjects it uses.
    #[serde(default)]
    pub references: Vec<SchemaReference>,
}

impl SchemaWrite {
    fn input(self) -> SchemaInput {
        SchemaInput {
            kind: self.schema_type,
            text: self.schema,
            references: self.references,
        }
    }
}

/// A subject and its latest version.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SubjectSummary {
    /// The subject.
    pub subject: String,
    /// Its newest live version.
    pub latest: SchemaVersion,
    /// Its compatibility level (its own, or the tenant's default).
    pub compatibility: Level,
}

/// The verdict of a compatibility check.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CheckResult {
    /// Whether the schema could be registered now.
    pub compatible: bool,
    /// The level checked.
    pub compatibility: Level,
    /// Each incompatibility, explained.
    pub messages: Vec<String>,
}

/// Options of a delete.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteQuery {
    /// Only this version (else the whole subject).
    pub version: Option<i64>,
    /// Remove for good (the subject or version must be soft-deleted first).
    #[serde(default)]
    pub permanent: bool,
}

/// The version numbers deleted.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Deleted {
    /// The versions.
    pub versions: Vec<i64>,
}

fn registry(state: &AppState) -> Registry {
    Registry::new(state.db().clone())
}

/// The tenant's schema subjects, each with its latest version.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas",
    responses((status = 200, body = Vec<SubjectSummary>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<SubjectSummary>>> {
    caller.require(ApiResource::Schemas, Action::Read)?;
    let reg = registry(&state);
    let mut out = Vec::new();
    for subject in reg.subjects(&caller.tenant_id, false).await? {
        let latest = reg
            .version(&caller.tenant_id, &subject, VersionRef::Latest, false)
            .await?;
        let compatibility = reg
            .level(&caller.tenant_id, Some(&subject), true)
            .await?
            .unwrap_or_default();
        out.push(SubjectSummary {
            subject,
            latest,
            compatibility,
        });
    }
    Ok(Json(out))
}

/// Registers a schema under a subject: its existing version when the subject already has it,
/// else a new version, refused (409 `incompatible_schema`) when it breaks the subject's level.
#[utoipa::path(post, path = "/api/v1/schemas/{subject}/versions", tag = "schemas",
    params(("subject" = String, Path, description = "Subject")), request_body = SchemaWrite,
    responses((status = 200, body = SchemaVersion), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<SchemaWrite>,
) -> ApiResult<Json<SchemaVersion>> {
    caller.require(ApiResource::Schemas, Action::Create)?;
    let v = registry(&state)
        .register(&caller.tenant_id, &subject, &body.input(), &caller.email)
        .await?;
    Ok(Json(v))
}

/// Every live version of a subject, oldest first.
#[utoipa::path(get, path = "/api/v1/schemas/{subject}/versions", tag = "schemas",
    params(("subject" = String, Path, description = "Subject")),
    responses((status = 200, body = Vec<SchemaVersion>), (status = 404, body = crate::error::Problem)))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
) -> ApiResult<Json<Vec<SchemaVersion>>> {
    caller.require(ApiResource::Schemas, Action::Read)?;
    Ok(Json(
        registry(&state)
            .versions(&caller.tenant_id, &subject, false)
            .await?,
    ))
}

/// One version of a subject (`latest` or a number).
#[utoipa::path(get, path = "/api/v1/schemas/{subject}/versions/{version}", tag = "schemas",
    params(("subject" = String, Path, description = "Subject"),
           ("version" = String, Path, description = "`latest` or a version number")),
    responses((status = 200, body = SchemaVersion), (status = 404, body = crate::error::Problem)))]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult<Json<SchemaVersion>> {
    caller.require(ApiResource::Schemas, Action::Read)?;
    let which = VersionRef::parse(&version)?;
    Ok(Json(
        registry(&state)
            .version(&caller.tenant_id, &subject, which, false)
            .await?,
    ))
}

/// Checks a schema against a subject's compatibility level without registering it.
#[utoipa::path(post, path = "/api/v1/schemas/{subject}/check", tag = "schemas",
    params(("subject" = String, Path, description = "Subject")), request_body = SchemaWrite,
    responses((status = 200, body = CheckResult), (status = 422, body = crate::error::Problem)))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    JsonBody(body): JsonBody<SchemaWrite>,
) -> ApiResult<Json<CheckResult>> {
    caller.require(ApiResource::Schemas, Action::Read)?;
    let reg = registry(&state);
    let messages = reg
        .incompatibilities(&caller.tenant_id, &subject, &body.input(), None)
        .await?;
    let compatibility = reg
        .level(&caller.tenant_id, Some(&subject), true)
        .await?
        .unwrap_or_default();
    Ok(Json(CheckResult {
        compatible: messages.is_empty(),
        compatibility,
        messages,
    }))
}

/// Deletes a subject or one version: soft (hidden, numbers kept) or, after that, permanent.
#[utoipa::path(delete, path = "/api/v1/schemas/{subject}", tag = "schemas",
    params(("subject" = String, Path, description = "Subject"), DeleteQuery),
    responses((status = 200, body = Deleted), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(subject): Path<String>,
    QueryArgs(q): QueryArgs<DeleteQuery>,
) -> ApiResult<Json<Deleted>> {
    caller.require(ApiResource::Schemas, Action::Delete)?;
    let reg = registry(&state);
    let versions = match q.version {
        Some(v) => vec![
            reg.delete_version(
                &caller.tenant_id,
                &subject,
                VersionRef::Number(v),
                q.permanent,
            )
            .await?,
        ],
        None => {
            reg.delete_subject(&caller.tenant_id, &subject, q.permanent)
                .await?
        }
    };
    Ok(Json(Deleted { versions }))
}
