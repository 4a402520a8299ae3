//! Deployments: deploy a pipeline version with a parallelism, pause, resume, roll back and
//! undeploy it. Each change is written to the store's `deployments` table and, as the fleet's
//! [`Deployment`] record, to the `weir_deployments` KV bucket that workers watch.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use weir_pipelines::fleet::{DataPlaneQuota, Deployment, DesiredState, deployment_key};

use crate::audit::AuditNote;
use crate::body::JsonBody;
use crate::caller::Caller;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::pipelines::{StoredPipeline, find, version_text};
use crate::quotas;
use crate::rbac::{Action, ApiResource};
use crate::resource_file::unified_diff;
use crate::state::AppState;
use crate::store;

/// Most batch loops a deployment may ask each worker for.
pub const MAX_PARALLELISM: i64 = 1024;

/// A pipeline's deployment.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct DeploymentInfo {
    /// Pipeline name.
    pub pipeline: String,
    /// Deployed version.
    pub version: i64,
    /// Batch loops each worker runs.
    pub parallelism: i64,
    /// `running` or `paused`.
    pub state: String,
    /// Who made the last change.
    pub updated_by: String,
    /// When (RFC 3339).
    pub updated_at: String,
    /// The KV key of the record in `weir_deployments`.
    pub key: String,
}

/// Body of `POST /pipelines/{name}/deploy`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Version to deploy (default: the current version).
    pub version: Option<i64>,
    /// Batch loops per worker (default: the version's `spec.execution.parallelism`).
    pub parallelism: Option<i64>,
    /// Deploy even when the version cannot take over the `window`/`dedup` state of the
    /// deployed one (its state then starts empty); without it such a deploy is refused (409
    /// `state_incompatible`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_state: bool,
}

/// Body of `POST /pipelines/{name}/rollback`.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to run instead.
    pub version: i64,
    /// As for deploy: run it even when it cannot take over the deployed version's state.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reset_state: bool,
}

/// Refuses to run `version` in place of the deployed one when it cannot take over the
/// deployed version's `window`/`dedup` state (stateful nodes or partitioning changed), unless
/// the caller asked to reset the state.
async fn check_state_takeover(
    state: &AppState,
    p: &StoredPipeline,
    before: Option<&DeploymentInfo>,
    version: i64,
    reset_state: bool,
) -> ApiResult<()> {
    let Some(before) = before.filter(|b| b.version != version && !reset_state) else {
        return Ok(());
    };
    let name = &p.summary.name;
    let spec_of = |json: &str| match serde_json::from_str::<weir_pipelines::Resource>(json) {
        Ok(weir_pipelines::Resource::Pipeline(p)) => Some(p.spec),
        _ => None,
    };
    let (old, _) = version_text(state, &p.id, before.version, name).await?;
    let (new, _) = version_text(state, &p.id, version, name).await?;
    let (Some(old), Some(new)) = (spec_of(&old), spec_of(&new)) else {
        return Ok(());
    };
    let changes = weir_pipelines::state::state_changes(&old, &new);
    if changes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Guarded {
        code: "state_incompatible",
        detail: format!(
            "version {version} cannot take over the window/dedup state of the deployed version {}: {} changed, so its state would start empty. Deploy it with `reset_state: true` (`weir deploy --reset-state`) to start it empty",
            before.version,
            changes.join(" and ")
        ),
    })
}

fn state_name(s: DesiredState) -> &'static str {
    match s {
        DesiredState::Running => "running",
        DesiredState::Paused => "paused",
    }
}

/// The deployment of a pipeline (by id), when it has one.
pub(crate) async fn load(state: &AppState, pipeline_id: &str) -> ApiResult<Option<DeploymentInfo>> {
    let row = store::deployments::find(state.db().pool(), pipeline_id).await?;
    Ok(row.map(|r| DeploymentInfo {
        key: deployment_key(&r.tenant_name, &r.pipeline),
        pipeline: r.pipeline,
        version: r.version,
        parallelism: r.parallelism,
        state: r.state,
        updated_by: r.updated_by,
        updated_at: rfc3339(r.updated_at),
    }))
}

/// Every deployment of a tenant: (pipeline, state).
pub(crate) async fn of_tenant(state: &AppState, tenant_id: &str) -> ApiResult<Vec<DeploymentInfo>> {
    let mut out = Vec::new();
    for id in store::deployments::pipeline_ids(state.db().pool(), tenant_id).await? {
        if let Some(d) = load(state, &id).await? {
            out.push(d);
        }
    }
    Ok(out)
}

fn describe(d: Option<&DeploymentInfo>) -> String {
    match d {
        None => String::new(),
        Some(d) => format!(
            "version: {}\nparallelism: {}\nstate: {}\n",
            d.version, d.parallelism, d.state
        ),
    }
}

fn not_deployed(name: &str) -> ApiError {
    ApiError::Conflict(format!(
        "pipeline `{name}` is not deployed; deploy it with POST /api/v1/pipelines/{name}/deploy \
         (weir deploy {name})"
    ))
}

/// Whether the pipeline spec (JSON) has a `window` or `dedup` node.
fn has_stateful_node(spec: &serde_json::Value) -> bool {
    spec.pointer("/spec/nodes")
        .and_then(|n| n.as_array())
        .is_some_and(|nodes| {
            nodes
                .iter()
                .any(|n| n.get("window").is_some() || n.get("dedup").is_some())
        })
}

/// Whether a version runs with one owner at a time (`spec.execution.delivery: exclusive`).
fn is_exclusive(spec: &serde_json::Value) -> bool {
    spec.pointer("/spec/execution/delivery")
        .is_some_and(|d| d == "exclusive")
}

/// The keyed partitions of a version: its `spec.execution.partitions`, 1 when absent.
fn spec_partitions(spec: &serde_json::Value) -> i64 {
    spec.pointer("/spec/execution/partitions")
        .and_then(|n| n.as_i64())
        .unwrap_or(1)
        .max(1)
}

/// The parallelism a version asks for: its `spec.execution.parallelism`, 1 when absent.
fn spec_parallelism(spec: &serde_json::Value) -> i64 {
    spec.pointer("/spec/execution/parallelism")
        .and_then(|v| v.as_i64())
        .unwrap_or(1)
}

/// Writes the deployment of `p` to the store and to KV; answers with the new deployment.
async fn write(
    state: &AppState,
    caller: &Caller,
    p: &StoredPipeline,
    version: i64,
    parallelism: Option<i64>,
    desired: DesiredState,
    before: Option<DeploymentInfo>,
) -> ApiResult<Response> {
    let nats = state.nats()?;
    let name = &p.summary.name;
    let (json, _) = version_text(state, &p.id, version, name).await?;
    let mut spec: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
    crate::schemas::pipeline_refs::resolve(state, &caller.tenant_id, &mut spec).await?;
    crate::modules::pin_versions(state, &caller.tenant_id, &mut spec).await?;
    let parallelism = parallelism.unwrap_or_else(|| spec_parallelism(&spec));
    if !(1..=MAX_PARALLELISM).contains(&parallelism) {
        return Err(ApiError::Unprocessable(format!(
            "parallelism must be between 1 and {MAX_PARALLELISM}, not {parallelism}"
        )));
    }
    let partitions = spec_partitions(&spec);
    if has_stateful_node(&spec) && parallelism > partitions {
        return Err(ApiError::Unprocessable(format!(
            "parallelism {parallelism} is not possible: the pipeline has a `window` or `dedup` node and {partitions} partition(s), and each partition's state runs on one batch loop of one worker at a time; deploy it with parallelism {partitions} at most, or set `execution.partitions`"
        )));
    }
    if is_exclusive(&spec) && parallelism > 1 {
        return Err(ApiError::Unprocessable(format!(
            "parallelism {parallelism} is not possible: the pipeline has `execution.delivery: exclusive`, which runs one batch loop on one worker at a time; deploy it with parallelism 1, or set `delivery: shared`"
        )));
    }
    let limits = quotas::load(state.db().pool(), &caller.tenant_id).await?;
    let now = now_ms();
    let record = Deployment {
        tenant: caller.tenant_name.clone(),
        pipeline: name.clone(),
        version,
        parallelism: parallelism as u32,
        state: desired,
        spec,
        quota: DataPlaneQuota {
            max_message_bytes: limits.max_message_bytes.map(|v| v as u64),
            max_ingest_rate: limits.max_ingest_rate.map(|v| v as u64),
        },
        updated_at_ms: now as u64,
        updated_by: caller.email.clone(),
        // Fresh credentials on every write (operator mode); the previous ones are revoked
        // once the new record is in place.
        credentials: nats
            .deployment_credentials(&caller.tenant_id, &caller.tenant_name, name)
            .await?,
    };
    let key = deployment_key(&caller.tenant_name, name);
    let bytes = serde_json::to_vec(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
    ensure_declared_streams(state, caller).await?;
    // Pausing a pipeline is always allowed; running one needs a source it can read.
    if matches!(desired, DesiredState::Running) {
        check_source_on_nats(state, caller, &record.spec).await?;
    }

    // The row and the KV record change together: the transaction commits only once KV took
    // the record.
    let mut tx = state.db().begin().await?;
    // The tenant locked: concurrent deploys of its pipelines see each other's parallelism.
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    let others = store::deployments::others_parallelism(&mut tx, &caller.tenant_id, &p.id).await?;
    let current = before.as_ref().map_or(0, |b| b.parallelism);
    quotas::enforce(
        "max_parallelism",
        limits.max_parallelism,
        others + current,
        others + parallelism,
    )?;

    let row = store::deployments::DeploymentWrite {
        pipeline_id: &p.id,
        tenant_id: &caller.tenant_id,
        pipeline: name,
        version,
        parallelism,
        state: state_name(desired),
        updated_by: &caller.email,
        updated_at: now,
    };
    store::deployments::upsert(&mut tx, row).await?;
    let previous = swap_record(nats, &key, Some(bytes.into())).await?;
    tx.commit().await?;
    if let Some(old) = previous {
        nats.revoke_credentials(&caller.tenant_id, &caller.tenant_name, &old)
            .await?;
    }

    let after = DeploymentInfo {
        pipeline: name.clone(),
        version,
        parallelism,
        state: state_name(desired).into(),
        updated_by: caller.email.clone(),
        updated_at: rfc3339(now),
        key,
    };
    Ok(answer(before, after))
}

/// The response to a deployment change: 201 for a first deployment, with its diff for the audit.
fn answer(before: Option<DeploymentInfo>, after: DeploymentInfo) -> Response {
    let name = &after.pipeline;
    let diff = unified_diff(
        &describe(before.as_ref()),
        &describe(Some(&after)),
        &format!("deployment of {name} (before)"),
        &format!("deployment of {name} (after)"),
    );
    let status = if before.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    AuditNote::diff(diff).attach((status, Json(after)))
}

/// How often [`swap_record`] re-reads a record that changed under it before giving up.
const SWAP_ATTEMPTS: usize = 16;

/// Replaces the deployment record `key` with `bytes` (deletes it with `None`) and returns the
/// credentials of the record it replaced. Compare-and-set on the record's revision, retried:
/// with concurrent writes of one pipeline each writer learns exactly the credentials it
/// replaced, so every replaced credential is revoked once and none stays alive (a read, then a
/// plain put, let two deploys both revoke the first record's credentials and neither the
/// other's).
async fn swap_record(
    nats: &crate::nats::Nats,
    key: &str,
    bytes: Option<bytes::Bytes>,
) -> ApiResult<Option<String>> {
    use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
    let kv = nats.deployments();
    let what = || format!("write the deployment record `{key}`");
    for _ in 0..SWAP_ATTEMPTS {
        let entry = kv.entry(key).await.map_err(|e| failed(&what(), e))?;
        let revision = entry.as_ref().map(|e| e.revision);
        let previous = entry
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<Deployment>(&e.value).ok())
            .and_then(|d| d.credentials);
        // Err((lost the race, error)).
        let swapped = match (&bytes, revision) {
            (Some(b), Some(rev)) => kv.update(key, b.clone(), rev).await.map(drop).map_err(|e| {
                (
                    e.kind() == UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                )
            }),
            (Some(b), None) => kv
                .create(key, b.clone())
                .await
                .map(drop)
                .map_err(|e| (e.kind() == CreateErrorKind::AlreadyExists, e.to_string())),
            // The server's text for a failed expected-revision check (JetStream error 10071);
            // the client has no error kind for it on deletes.
            (None, Some(rev)) => kv
                .delete_expect_revision(key, Some(rev))
                .await
                .map_err(|e| (e.to_string().contains("wrong last sequence"), e.to_string())),
            (None, None) => return Ok(None),
        };
        match swapped {
            Ok(()) => return Ok(previous),
            Err((true, _)) => continue,
            Err((false, e)) => return Err(failed(&what(), e)),
        }
    }
    Err(ApiError::Conflict(format!(
        "the deployment record `{key}` kept changing while this request wrote it; try again"
    )))
}

/// Creates (or updates) on NATS every stream the tenant declared with `kind: Stream`, so that a
/// deployed pipeline finds its source and output streams: the fleet's workers create only the
/// DLQ stream.
async fn ensure_declared_streams(state: &AppState, caller: &Caller) -> ApiResult<()> {
    let nats = state.tenant_nats(caller).await?;
    for row in store::streams::list(state.db().pool(), &caller.tenant_id).await? {
        let name = row.name;
        let resource: weir_pipelines::Resource =
            serde_json::from_str(&row.spec_json).map_err(|e| ApiError::Internal(e.to_string()))?;
        let weir_pipelines::Resource::Stream(stream) = resource else {
            return Err(ApiError::Internal(format!("`{name}` is not a stream")));
        };
        weir_connectors::ensure_stream(nats.js(), &stream)
            .await
            .map_err(|e| failed(&format!("create the declared stream `{name}`"), e))?;
    }
    Ok(())
}

/// Refuses a deployment whose source stream does not exist on NATS (after the declared
/// streams were created), or whose source subjects lie outside that stream's: the workers could
/// never run it, so answering "deployed" would be a lie. 422 with what to do.
async fn check_source_on_nats(
    state: &AppState,
    caller: &Caller,
    spec: &serde_json::Value,
) -> ApiResult<()> {
    let Ok(weir_pipelines::Resource::Pipeline(pipeline)) =
        serde_json::from_value::<weir_pipelines::Resource>(spec.clone())
    else {
        return Ok(());
    };
    let stream_name = &pipeline.spec.source.stream;
    let nats = state.tenant_nats(caller).await?;
    let mut stream = match nats.js().get_stream(stream_name).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            return Err(ApiError::InvalidSpec {
                detail: format!(
                    "the source stream `{stream_name}` of pipeline `{}` does not exist: declare it \
                     (`kind: Stream`, `weir apply -f`) or create it on NATS, then deploy again",
                    pipeline.metadata.name
                ),
                diagnostics: serde_json::json!([{
                    "pipeline": pipeline.metadata.name,
                    "path": "/spec/source/stream",
                    "code": "source-stream-missing",
                    "message": format!("stream `{stream_name}` does not exist"),
                }]),
            });
        }
        Err(e) => return Err(failed(&format!("look up the stream `{stream_name}`"), e)),
    };
    let info = stream
        .info()
        .await
        .map_err(|e| failed(&format!("look up the stream `{stream_name}`"), e))?;
    let subjects = info.config.subjects.clone();
    let known = [weir_pipelines::context::KnownStream {
        name: stream_name,
        subjects: &subjects,
    }];
    let problems = weir_pipelines::context::check_against_streams(&pipeline, &known);
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::InvalidSpec {
        detail: format!(
            "pipeline `{}` does not fit its source stream `{stream_name}` as it exists on NATS \
             (see `diagnostics`)",
            pipeline.metadata.name
        ),
        diagnostics: serde_json::Value::Array(
            problems
                .into_iter()
                .map(|p| {
                    serde_json::json!({
                        "pipeline": pipeline.metadata.name,
                        "path": p.path,
                        "code": p.code,
                        "message": p.message,
                    })
                })
                .collect(),
        ),
    })
}

/// Deploy a pipeline: run a version (default: the current one) with a parallelism (default:
/// the version's). Replaces an existing deployment (an upgrade) and sets it running.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/deploy", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    request_body = DeployRequest,
    responses((status = 201, body = DeploymentInfo), (status = 200, body = DeploymentInfo),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 429, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn deploy(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<DeployRequest>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Deployments, Action::Update)?;
    state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let before = load(&state, &p.id).await?;
    let version = body.version.unwrap_or(p.summary.version);
    check_state_takeover(&state, &p, before.as_ref(), version, body.reset_state).await?;
    write(
        &state,
        &caller,
        &p,
        version,
        body.parallelism,
        DesiredState::Running,
        before,
    )
    .await
}

async fn set_state(
    state: AppState,
    caller: Caller,
    name: String,
    desired: DesiredState,
) -> ApiResult<Response> {
    caller.require(ApiResource::Deployments, Action::Update)?;
    state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let before = load(&state, &p.id)
        .await?
        .ok_or_else(|| not_deployed(&name))?;
    let (version, parallelism) = (before.version, before.parallelism);
    write(
        &state,
        &caller,
        &p,
        version,
        Some(parallelism),
        desired,
        Some(before),
    )
    .await
}

/// Pause a deployed pipeline: workers stop consuming; its consumer keeps its position.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/pause", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn pause(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    set_state(state, caller, name, DesiredState::Paused).await
}

/// Resume a paused pipeline.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/resume", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    set_state(state, caller, name, DesiredState::Running).await
}

/// Run another (usually earlier) version of a deployed pipeline; parallelism and
/// running/paused state stay as they are.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/rollback", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    request_body = RollbackRequest,
    responses((status = 200, body = DeploymentInfo), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RollbackRequest>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Deployments, Action::Update)?;
    state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let before = load(&state, &p.id)
        .await?
        .ok_or_else(|| not_deployed(&name))?;
    let desired = if before.state == "paused" {
        DesiredState::Paused
    } else {
        DesiredState::Running
    };
    let parallelism = before.parallelism;
    check_state_takeover(&state, &p, Some(&before), body.version, body.reset_state).await?;
    write(
        &state,
        &caller,
        &p,
        body.version,
        Some(parallelism),
        desired,
        Some(before),
    )
    .await
}

/// Undeploy a pipeline: workers stop it and the deployment record is deleted.
#[utoipa::path(delete, path = "/api/v1/pipelines/{name}/deployment", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn undeploy(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Deployments, Action::Delete)?;
    let nats = state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let before = load(&state, &p.id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("deployment of pipeline `{name}`")))?;
    let mut tx = state.db().begin().await?;
    store::deployments::delete(&mut tx, &p.id).await?;
    let previous = swap_record(nats, &before.key, None).await?;
    tx.commit().await?;
    if let Some(old) = previous {
        nats.revoke_credentials(&caller.tenant_id, &caller.tenant_name, &old)
            .await?;
    }
    let diff = unified_diff(
        &describe(Some(&before)),
        "",
        &format!("deployment of {name} (before)"),
        "/dev/null",
    );
    Ok(AuditNote::diff(diff).attach(StatusCode::NO_CONTENT))
}

/// The deployment of a pipeline (404 when it is not deployed).
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/deployment", tag = "deployments",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = DeploymentInfo), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<DeploymentInfo>> {
    caller.require(ApiResource::Deployments, Action::Read)?;
    state.nats()?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    load(&state, &p.id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("deployment of pipeline `{name}`")))
}
