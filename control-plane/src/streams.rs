//! Stream declarations (`kind: Stream`) of a tenant: recorded here so that `weir apply` of a
//! file with streams works and quotas count them, and reconciled on NATS in the tenant's
//! account: applying creates or updates the stream, deleting removes it (a stream holding
//! messages only with `force`). Deploying a pipeline also makes sure its declared streams exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_pipelines::Resource;

use crate::audit::AuditNote;
use crate::body::{QueryArgs, SpecBody};
use crate::caller::Caller;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::pipelines::{ApplyResult, FormatQuery, WriteQuery};
use crate::quotas;
use crate::rbac::{Action, ApiResource};
use crate::resource_file::{canonical, claim_tenant, parse_one, unified_diff};
use crate::state::AppState;
use crate::store;
use crate::store::streams::StreamRow;

/// A stream declaration.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct StreamInfo {
    /// Stream name.
    pub name: String,
    /// When declared.
    pub created_at: String,
    /// By whom.
    pub created_by: String,
    /// Last change.
    pub updated_at: String,
    /// By whom.
    pub updated_by: String,
    /// The `Stream` resource.
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
}

fn info_of(r: StreamRow) -> ApiResult<StreamInfo> {
    Ok(StreamInfo {
        resource: serde_json::from_str(&r.spec_json)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        name: r.name,
        created_at: rfc3339(r.created_at),
        created_by: r.created_by,
        updated_at: rfc3339(r.updated_at),
        updated_by: r.updated_by,
    })
}

/// Creates or updates a stream declaration of the caller's tenant.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    mut resource: Resource,
    dry_run: bool,
) -> ApiResult<ApplyResult> {
    claim_tenant(&mut resource, &caller.tenant_name)?;
    let name = resource.metadata().name.clone();
    check_declaration(&name, &resource)?;
    let (json, yaml) = canonical(&resource)?;
    // One transaction, the tenant locked: the quota count, the NATS stream and the row agree
    // under concurrent applies, and a stream over quota is never created on NATS.
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    let existing = store::streams::find(&mut *tx, &caller.tenant_id, &name).await?;
    if existing.is_none() {
        let limits = quotas::load(&mut *tx, &caller.tenant_id).await?;
        let streams = store::streams::count(&mut tx, &caller.tenant_id).await?;
        quotas::enforce("max_streams", limits.max_streams, streams, streams + 1)?;
    }
    if !dry_run && let Resource::Stream(stream) = &resource {
        reconcile_on_nats(state, caller, stream).await?;
    }
    let (result, diff) = match &existing {
        Some(row) if row.spec_json == json => ("unchanged", String::new()),
        Some(row) => (
            "configured",
            unified_diff(&row.spec_yaml, &yaml, &name, &name),
        ),
        None => ("created", unified_diff("", &yaml, "/dev/null", &name)),
    };
    if !dry_run {
        let spec = (json.as_str(), yaml.as_str());
        let (by, now) = (caller.email.as_str(), now_ms());
        match &existing {
            Some(row) if row.spec_json == json => {}
            Some(row) => store::streams::update(&mut tx, &row.id, spec, by, now).await?,
            None => {
                store::streams::insert(&mut tx, &caller.tenant_id, &name, spec, by, now).await?
            }
        }
    }
    tx.commit().await?;
    Ok(ApplyResult {
        kind: "Stream".into(),
        name,
        result: result.into(),
        version: None,
        diff,
        dry_run,
    })
}

/// The name and subjects of a declaration are valid.
fn check_declaration(name: &str, resource: &Resource) -> ApiResult<()> {
    crate::subjects::check_stream_name(name)?;
    if let Resource::Stream(stream) = resource {
        for subject in &stream.spec.subjects {
            crate::subjects::check_subject(&format!("subject of stream `{name}`"), subject, true)?;
        }
    }
    Ok(())
}

/// Creates or updates the declared stream on NATS, in the tenant's account (nothing to do when
/// the control plane runs without NATS). A stream NATS refuses (its subjects overlap another
/// stream's, a limit it cannot change) is a 409 with NATS's reason.
async fn reconcile_on_nats(
    state: &AppState,
    caller: &Caller,
    stream: &weir_pipelines::StreamResource,
) -> ApiResult<()> {
    if state.nats().is_err() {
        return Ok(());
    }
    let nats = state.tenant_nats(caller).await?;
    let name = &stream.metadata.name;
    match weir_connectors::ensure_stream(nats.js(), stream).await {
        Ok(_) => Ok(()),
        Err(weir_connectors::ConnectorError::Stream { reason, .. }) => {
            Err(ApiError::Conflict(format!(
                "NATS refused stream `{name}`: {reason}; change the declaration (subjects that \
                 no other stream captures, limits the server allows) and apply it again"
            )))
        }
        Err(e) => Err(ApiError::Unprocessable(format!("stream `{name}`: {e}"))),
    }
}

/// List the tenant's stream declarations.
#[utoipa::path(get, path = "/api/v1/streams", tag = "streams",
    responses((status = 200, body = Vec<StreamInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<StreamInfo>>> {
    caller.require(ApiResource::Streams, Action::Read)?;
    let rows = store::streams::list(state.db().pool(), &caller.tenant_id).await?;
    Ok(Json(
        rows.into_iter()
            .map(info_of)
            .collect::<ApiResult<Vec<_>>>()?,
    ))
}

async fn find(state: &AppState, caller: &Caller, name: &str) -> ApiResult<StreamRow> {
    store::streams::find(state.db().pool(), &caller.tenant_id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("stream `{name}`")))
}

/// Get a stream declaration (JSON, or YAML with `?format=yaml` / `Accept: application/yaml`).
#[utoipa::path(get, path = "/api/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name"), FormatQuery),
    responses((status = 200, body = StreamInfo), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<FormatQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(ApiResource::Streams, Action::Read)?;
    let row = find(&state, &caller, &name).await?;
    let yaml = q.format.as_deref() == Some("yaml")
        || (q.format.is_none()
            && headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("yaml")));
    if yaml {
        let mut r = row.spec_yaml.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml"),
        );
        return Ok(r);
    }
    Ok(Json(info_of(row)?).into_response())
}

/// Declare or update a stream from a `kind: Stream` file.
#[utoipa::path(put, path = "/api/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name"), WriteQuery),
    request_body(content = String, description = "A Stream resource", content_type = "application/yaml"),
    responses((status = 200, body = ApplyResult), (status = 201, body = ApplyResult),
              (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<WriteQuery>,
    body: SpecBody,
) -> ApiResult<Response> {
    caller.require(ApiResource::Streams, Action::Update)?;
    let resource = parse_one(&body.text, body.file_name, "Stream")?;
    if resource.metadata().name != name {
        return Err(ApiError::Unprocessable(format!(
            "metadata.name is `{}` but the URL names `{name}`",
            resource.metadata().name
        )));
    }
    if find(&state, &caller, &name).await.is_err() {
        caller.require(ApiResource::Streams, Action::Create)?;
    }
    let result = apply(&state, &caller, resource, q.dry_run).await?;
    let status = if result.result == "created" && !result.dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let note = if result.dry_run || result.diff.is_empty() {
        AuditNote::default()
    } else {
        AuditNote::diff(result.diff.clone())
    };
    Ok(note.attach((status, Json(result))))
}

/// Query of `DELETE /streams/{name}`.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteStreamQuery {
    /// Also delete the NATS stream when it holds messages (they are lost). Without it, a
    /// stream holding messages is refused with 409.
    #[serde(default)]
    pub force: bool,
}

/// Remove a stream declaration and the NATS stream. A NATS stream holding messages is removed
/// only with `force=true` (409 otherwise).
#[utoipa::path(delete, path = "/api/v1/streams/{name}", tag = "streams",
    params(("name" = String, Path, description = "Stream name"), DeleteStreamQuery),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<DeleteStreamQuery>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Streams, Action::Delete)?;
    let row = find(&state, &caller, &name).await?;
    let yaml = &row.spec_yaml;
    if state.nats().is_ok() {
        let nats = state.tenant_nats(&caller).await?;
        match nats.js().get_stream(&name).await {
            Ok(mut stream) => {
                let info = stream
                    .info()
                    .await
                    .map_err(|e| failed(&format!("look up the stream `{name}`"), e))?;
                let held = info.state.messages;
                if held > 0 && !q.force {
                    return Err(ApiError::Conflict(format!(
                        "stream `{name}` holds {held} message{} on NATS; deleting it deletes \
                         them: confirm with DELETE /api/v1/streams/{name}?force=true \
                         (`weir delete stream {name} --force`)",
                        if held == 1 { "" } else { "s" }
                    )));
                }
                nats.js()
                    .delete_stream(&name)
                    .await
                    .map_err(|e| failed(&format!("delete the stream `{name}`"), e))?;
            }
            Err(e) => match e.kind() {
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND => {}
                _ => return Err(failed(&format!("look up the stream `{name}`"), e)),
            },
        }
    }
    store::streams::delete(state.db().writer(), &row.id).await?;
    Ok(AuditNote::diff(unified_diff(yaml, "", &name, "/dev/null")).attach(StatusCode::NO_CONTENT))
}
