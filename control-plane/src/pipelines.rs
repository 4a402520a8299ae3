//! Pipelines: create, update (each change is a new immutable version), validate, list, get as
//! YAML or JSON, versions, diff between versions, delete. Bodies are pipeline files checked by
//! the format's own checker.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_pipelines::Resource;

use crate::audit::{AuditContext, AuditNote};
use crate::body::{QueryArgs, SpecBody};
use crate::caller::Caller;
use crate::db::{new_id, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::quotas;
use crate::rbac::{Action, ApiResource};
use crate::resource_file::{canonical, claim_tenant, located, parse_all, parse_one, unified_diff};
use crate::state::AppState;
use crate::store;
use crate::store::pipelines::{PipelineRow, VersionText};

/// What an apply did.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ApplyResult {
    /// `Pipeline` or `Stream`.
    pub kind: String,
    /// The resource name.
    pub name: String,
    /// `created`, `configured` (changed; a new version) or `unchanged`.
    pub result: String,
    /// The version now current (pipelines).
    pub version: Option<i64>,
    /// Unified diff of the stored YAML before and after (empty when unchanged).
    pub diff: String,
    /// True when nothing was saved (`?dry_run=true`).
    pub dry_run: bool,
}

/// A pipeline as listed.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct PipelineSummary {
    /// Name, unique in the tenant.
    pub name: String,
    /// Labels of the current version.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Current version.
    pub version: i64,
    /// Sum of `spec.execution.parallelism`.
    pub parallelism: i64,
    /// When created (RFC 3339).
    pub created_at: String,
    /// Who created it.
    pub created_by: String,
    /// When the current version was made.
    pub updated_at: String,
    /// Who made the current version.
    pub updated_by: String,
}

/// A pipeline with its current spec.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PipelineDetail {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: PipelineSummary,
    /// The pipeline resource (`apiVersion`, `kind`, `metadata`, `spec`).
    #[schema(value_type = Object)]
    pub resource: serde_json::Value,
}

/// A page of pipelines.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PipelinePage {
    /// Pipelines ordered by name.
    pub items: Vec<PipelineSummary>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

/// One version.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct VersionInfo {
    /// Version number, from 1.
    pub version: i64,
    /// When made.
    pub created_at: String,
    /// By whom.
    pub created_by: String,
}

/// A diff between two versions.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct VersionDiff {
    /// Older version.
    pub from: i64,
    /// Newer version.
    pub to: i64,
    /// Unified diff of the YAML.
    pub diff: String,
}

/// Result of validation.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct ValidationResult {
    /// Always true (invalid files get a 422 problem with diagnostics).
    pub valid: bool,
    /// `Kind/name` of each resource in the file.
    pub resources: Vec<String>,
}

/// Query of `GET /pipelines`.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Only pipelines with this label, `key=value`.
    #[param(pattern = "^[^=]+=")]
    pub label: Option<String>,
    /// Page size (default 50, max 500).
    pub limit: Option<i64>,
    /// Names after this one (the previous page's `next_cursor`).
    pub cursor: Option<String>,
}

/// Query of writes.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WriteQuery {
    /// Check and report what would change, save nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Query of `DELETE /pipelines/{name}`.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Keep the pipeline's durable consumer (its position in the source stream), so that a
    /// pipeline re-created under this name resumes where this one stopped. By default the
    /// consumer is removed and a re-created pipeline starts by its `deliver` policy.
    #[serde(default)]
    pub keep_position: bool,
}

/// Query of reads that return a spec.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FormatQuery {
    /// `json` (default) or `yaml`; `Accept: application/yaml` also gives YAML.
    #[param(pattern = "^(json|yaml)$")]
    pub format: Option<String>,
}

/// Query of the version diff.
#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// Older version.
    pub from: i64,
    /// Newer version (default: current).
    pub to: Option<i64>,
}

/// A stored pipeline: its id and summary.
pub(crate) struct StoredPipeline {
    pub(crate) id: String,
    pub(crate) summary: PipelineSummary,
}

/// The pipeline `name` of a tenant, or 404.
pub(crate) async fn find(
    state: &AppState,
    tenant_id: &str,
    name: &str,
) -> ApiResult<StoredPipeline> {
    let row = store::pipelines::find(state.db().pool(), tenant_id, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("pipeline `{name}`")))?;
    let labels = store::pipelines::labels(state.db().pool(), &row.id).await?;
    Ok(StoredPipeline {
        id: row.id.clone(),
        summary: summary_of(row, labels),
    })
}

fn summary_of(row: PipelineRow, labels: BTreeMap<String, String>) -> PipelineSummary {
    PipelineSummary {
        name: row.name,
        labels,
        version: row.current_version,
        parallelism: row.parallelism,
        created_at: rfc3339(row.created_at),
        created_by: row.created_by,
        updated_at: rfc3339(row.updated_at),
        updated_by: row.updated_by,
    }
}

/// The (JSON, YAML) text of one version, or 404.
pub(crate) async fn version_text(
    state: &AppState,
    pipeline_id: &str,
    version: i64,
    name: &str,
) -> ApiResult<(String, String)> {
    let text = store::pipelines::version_text(state.db().pool(), pipeline_id, version)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("version {version} of pipeline `{name}`")))?;
    Ok((text.spec_json, text.spec_yaml))
}

/// How an apply treats an existing or missing pipeline.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ApplyMode {
    /// Refuse when it exists (POST).
    CreateOnly,
    /// Create or update (PUT).
    Upsert,
}

/// What a write of a pipeline may require besides the spec.
#[derive(Clone, Debug, Default)]
pub struct WriteGuard<'a> {
    /// The version the caller last read (`If-Match`): refuse with 409 `version_conflict` when
    /// the pipeline is at another version (a lost update), or does not exist.
    pub expect_version: Option<i64>,
    /// When given, the success event is written in the write's own transaction.
    pub audit: Option<&'a AuditContext>,
}

/// Creates or updates a pipeline of the caller's tenant; a changed spec is a new version.
///
/// One transaction on the writer does every read and write (quotas, current version, the new
/// version, the audit event): concurrent writers of one tenant are serialised, so versions stay
/// contiguous and quota counts true.
pub async fn apply(
    state: &AppState,
    caller: &Caller,
    mut resource: Resource,
    mode: ApplyMode,
    dry_run: bool,
    guard: WriteGuard<'_>,
) -> ApiResult<ApplyResult> {
    claim_tenant(&mut resource, &caller.tenant_name)?;
    let Resource::Pipeline(pipeline) = &resource else {
        return Err(ApiError::Unprocessable("expected a Pipeline".into()));
    };
    crate::subjects::check_pipeline(pipeline)?;
    check_with_declared_streams(state, &caller.tenant_id, &[pipeline]).await?;
    let (json, yaml) = canonical(&resource)?;
    let new = NewVersion {
        name: pipeline.metadata.name.clone(),
        parallelism: i64::from(pipeline.spec.execution.parallelism),
        labels: pipeline
            .metadata
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        json,
        yaml,
    };
    let answer = |result: &str, version: i64, diff: String| ApplyResult {
        kind: "Pipeline".into(),
        name: new.name.clone(),
        result: result.into(),
        version: Some(version),
        diff,
        dry_run,
    };

    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    let change = match plan_change(&mut tx, caller, &new, mode, guard.expect_version).await? {
        Planned::Unchanged(version) => return Ok(answer("unchanged", version, String::new())),
        Planned::Change(change) if dry_run => {
            return Ok(answer(change.result, change.version, change.diff));
        }
        Planned::Change(change) => change,
    };
    store_change(&mut tx, caller, &new, &change).await?;
    if let Some(audit) = guard.audit {
        let status = if change.version == 1 { 201 } else { 200 };
        audit
            .record_in(&mut tx, status, None, Some(change.diff.clone()))
            .await?;
    }
    tx.commit().await?;
    Ok(answer(change.result, change.version, change.diff))
}

/// The version an apply would store.
struct NewVersion<'a> {
    name: String,
    parallelism: i64,
    labels: Vec<(&'a str, &'a str)>,
    json: String,
    yaml: String,
}

/// A change an apply makes: a new pipeline (version 1) or a new version of one.
struct Change {
    /// `created` or `configured`.
    result: &'static str,
    version: i64,
    diff: String,
    pipeline_id: String,
}

/// What an apply will do, decided inside its transaction.
enum Planned {
    /// The spec is the current version's: nothing to store.
    Unchanged(i64),
    Change(Change),
}

/// Reads the pipeline's current version, checks `If-Match` and the quotas, and says what the
/// apply will store.
async fn plan_change(
    tx: &mut sqlx::AnyConnection,
    caller: &Caller,
    new: &NewVersion<'_>,
    mode: ApplyMode,
    expect_version: Option<i64>,
) -> ApiResult<Planned> {
    let name = &new.name;
    let quotas = quotas::load(&mut *tx, &caller.tenant_id).await?;
    let existing = store::pipelines::find(&mut *tx, &caller.tenant_id, name).await?;
    let current = existing.as_ref().map(|row| row.current_version);
    check_expected_version(name, current, expect_version)?;
    let others = store::pipelines::others(&mut *tx, &caller.tenant_id, name).await?;
    let (count, others) = (others.pipelines, others.parallelism);
    let Some(row) = existing else {
        quotas::enforce("max_pipelines", quotas.max_pipelines, count, count + 1)?;
        quotas::enforce(
            "max_parallelism",
            quotas.max_parallelism,
            others,
            others + new.parallelism,
        )?;
        let diff = unified_diff("", &new.yaml, "/dev/null", &format!("{name} (version 1)"));
        return Ok(Planned::Change(Change {
            result: "created",
            version: 1,
            diff,
            pipeline_id: new_id(),
        }));
    };
    if mode == ApplyMode::CreateOnly {
        return Err(ApiError::Conflict(format!(
            "pipeline `{name}` already exists; update it with PUT /api/v1/pipelines/{name}"
        )));
    }
    let (id, current) = (row.id, row.current_version);
    let old = store::pipelines::version_text(&mut *tx, &id, current)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("version {current} of `{name}` is missing")))?;
    if old.spec_json == new.json {
        return Ok(Planned::Unchanged(current));
    }
    quotas::enforce(
        "max_parallelism",
        quotas.max_parallelism,
        others + row.parallelism,
        others + new.parallelism,
    )?;
    let version = current + 1;
    let diff = unified_diff(
        &old.spec_yaml,
        &new.yaml,
        &format!("{name} (version {current})"),
        &format!("{name} (version {version})"),
    );
    Ok(Planned::Change(Change {
        result: "configured",
        version,
        diff,
        pipeline_id: id,
    }))
}

/// Fails with a version conflict when `If-Match` named another version than the current one.
fn check_expected_version(
    name: &str,
    current: Option<i64>,
    expected: Option<i64>,
) -> ApiResult<()> {
    let Some(expected) = expected else {
        return Ok(());
    };
    if current == Some(expected) {
        return Ok(());
    }
    Err(ApiError::VersionConflict(match current {
        Some(current) => format!(
            "pipeline `{name}` is at version {current}, not {expected} (If-Match): someone \
             changed it since you read it; GET it again, reapply your change and retry"
        ),
        None => format!(
            "pipeline `{name}` does not exist, so it is not at version {expected} (If-Match)"
        ),
    }))
}

/// Stores a planned change: the pipeline row, the version and the labels.
async fn store_change(
    tx: &mut sqlx::AnyConnection,
    caller: &Caller,
    new: &NewVersion<'_>,
    change: &Change,
) -> ApiResult<()> {
    let now = now_ms();
    let by = (caller.email.as_str(), now);
    let (id, version) = (&change.pipeline_id, change.version);
    if version == 1 {
        let row = PipelineRow {
            id: id.clone(),
            name: new.name.clone(),
            current_version: 1,
            parallelism: new.parallelism,
            created_at: now,
            created_by: caller.email.clone(),
            updated_at: now,
            updated_by: caller.email.clone(),
        };
        store::pipelines::insert(tx, &caller.tenant_id, &row).await?;
    } else if !store::pipelines::advance(tx, id, version, new.parallelism, by).await? {
        return Err(ApiError::VersionConflict(format!(
            "pipeline `{}` changed while this update ran; GET it again and retry",
            new.name
        )));
    }
    let text = VersionText {
        spec_json: new.json.clone(),
        spec_yaml: new.yaml.clone(),
    };
    store::pipelines::insert_version(tx, id, version, &text, &new.labels, by).await?;
    Ok(())
}

/// The version named by an `If-Match` header (`"3"`, `3` or `W/"3"`), if one was sent.
pub(crate) fn if_match(headers: &HeaderMap) -> ApiResult<Option<i64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let bare = text.trim_start_matches("W/").trim_matches('"');
    bare.parse::<i64>().map(Some).map_err(|_| {
        ApiError::bad_request(
            "bad_if_match",
            format!(
                "If-Match `{text}` is not a pipeline version: send the ETag of GET /api/v1/pipelines/{{name}}, such as \"3\""
            ),
        )
    })
}

fn apply_response(result: ApplyResult) -> Response {
    let status = if result.result == "created" && !result.dry_run {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut note = if result.dry_run || result.diff.is_empty() {
        AuditNote::default()
    } else {
        AuditNote::diff(result.diff.clone())
    };
    // A saved change was audited in its own transaction.
    note.recorded = !result.dry_run && result.result != "unchanged";
    let etag = result.version.map(etag);
    let mut response = note.attach((status, Json(result)));
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// List pipelines, filtered by name prefix and label, paged by name.
#[utoipa::path(get, path = "/api/v1/pipelines", tag = "pipelines", params(ListQuery),
    responses((status = 200, body = PipelinePage), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryArgs(q): QueryArgs<ListQuery>,
) -> ApiResult<Json<PipelinePage>> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let label = match &q.label {
        Some(label) => Some(label.split_once('=').ok_or_else(|| {
            ApiError::bad_request("bad_query", format!("label `{label}` must be key=value"))
        })?),
        None => None,
    };
    let filter = store::pipelines::ListFilter {
        after: q.cursor.as_deref(),
        prefix: q.prefix.as_deref(),
        label,
        limit: limit + 1,
    };
    let pool = state.db().pool();
    let rows = store::pipelines::list(pool, &caller.tenant_id, filter).await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::new();
    for row in rows.into_iter().take(limit as usize) {
        let labels = store::pipelines::labels(pool, &row.id).await?;
        items.push(summary_of(row, labels));
    }
    let next_cursor = if more {
        items.last().map(|p| p.name.clone())
    } else {
        None
    };
    Ok(Json(PipelinePage { items, next_cursor }))
}

/// Create a pipeline from a YAML or JSON pipeline file (409 when it exists).
#[utoipa::path(post, path = "/api/v1/pipelines", tag = "pipelines", params(WriteQuery),
    request_body(content = String, description = "A pipeline file", content_type = "application/yaml"),
    responses((status = 201, body = ApplyResult), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    QueryArgs(q): QueryArgs<WriteQuery>,
    body: SpecBody,
) -> ApiResult<Response> {
    caller.require(ApiResource::Pipelines, Action::Create)?;
    let resource = parse_one(&body.text, body.file_name, "Pipeline")?;
    let name = resource.metadata().name.clone();
    let guard = WriteGuard {
        audit: Some(&audit),
        ..Default::default()
    };
    let result = apply(
        &state,
        &caller,
        resource,
        ApplyMode::CreateOnly,
        q.dry_run,
        guard,
    )
    .await
    .map_err(|e| located(e, &body.text, body.file_name, &[Some(name.as_str())]))?;
    Ok(apply_response(result))
}

/// Create or update a pipeline. A changed spec becomes a new version; an identical one changes
/// nothing and says `unchanged`. With `If-Match: "<version>"` (the ETag of a GET) the update is
/// refused with 409 `version_conflict` when the pipeline moved on since that version.
#[utoipa::path(put, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"), WriteQuery,
           ("If-Match" = Option<String>, Header, nullable = false, pattern = "^(W/)?\"?[0-9]+\"?$", description = "The version the change is based on, as the ETag of GET (`\"3\"`)")),
    request_body(content = String, description = "A pipeline file", content_type = "application/yaml"),
    responses((status = 200, body = ApplyResult), (status = 201, body = ApplyResult),
              (status = 409, body = crate::error::Problem, description = "`version_conflict`: the pipeline is not at the If-Match version"),
              (status = 422, body = crate::error::Problem), (status = 429, body = crate::error::Problem)))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<WriteQuery>,
    headers: HeaderMap,
    body: SpecBody,
) -> ApiResult<Response> {
    caller.require(ApiResource::Pipelines, Action::Update)?;
    let expect_version = if_match(&headers)?;
    let resource = parse_one(&body.text, body.file_name, "Pipeline")?;
    if resource.metadata().name != name {
        return Err(ApiError::Unprocessable(format!(
            "metadata.name is `{}` but the URL names `{name}`",
            resource.metadata().name
        )));
    }
    let exists = find(&state, &caller.tenant_id, &name).await.is_ok();
    if !exists {
        caller.require(ApiResource::Pipelines, Action::Create)?;
    }
    let guard = WriteGuard {
        expect_version,
        audit: Some(&audit),
    };
    let result = apply(
        &state,
        &caller,
        resource,
        ApplyMode::Upsert,
        q.dry_run,
        guard,
    )
    .await
    .map_err(|e| located(e, &body.text, body.file_name, &[Some(name.as_str())]))?;
    Ok(apply_response(result))
}

/// Check a pipeline file without saving it: the same checker and error positions as
/// `weir validate`.
#[utoipa::path(post, path = "/api/v1/pipelines:validate", tag = "pipelines",
    request_body(content = String, description = "A pipeline file", content_type = "application/yaml"),
    responses((status = 200, body = ValidationResult), (status = 422, body = crate::error::Problem)))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    body: SpecBody,
) -> ApiResult<Json<ValidationResult>> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let resources = parse_all(&body.text, body.file_name)?;
    let pipelines: Vec<&weir_pipelines::PipelineResource> = resources
        .iter()
        .filter_map(|r| match r {
            Resource::Pipeline(p) => Some(p),
            _ => None,
        })
        .collect();
    let names: Vec<Option<&str>> = resources
        .iter()
        .map(|r| match r {
            Resource::Pipeline(p) => Some(p.metadata.name.as_str()),
            _ => None,
        })
        .collect();
    check_with_declared_streams(&state, &caller.tenant_id, &pipelines)
        .await
        .map_err(|e| located(e, &body.text, body.file_name, &names))?;
    Ok(Json(ValidationResult {
        valid: true,
        resources: resources
            .iter()
            .map(|r| format!("{}/{}", r.kind(), r.metadata().name))
            .collect(),
    }))
}

/// Checks pipelines against the streams the tenant declared (`kind: Stream`): a source filter
/// outside its stream's subjects, a publish into the pipeline's own source, a named DLQ stream
/// that does not capture the DLQ subject. 422 `invalid_spec` with every problem.
pub(crate) async fn check_with_declared_streams(
    state: &AppState,
    tenant_id: &str,
    pipelines: &[&weir_pipelines::PipelineResource],
) -> ApiResult<()> {
    if pipelines.is_empty() {
        return Ok(());
    }
    let rows = store::streams::list(state.db().pool(), tenant_id).await?;
    let mut declared: Vec<(String, Vec<String>)> = Vec::new();
    for row in rows {
        if let Ok(Resource::Stream(stream)) = serde_json::from_str::<Resource>(&row.spec_json) {
            declared.push((row.name, stream.spec.subjects));
        }
    }
    let known: Vec<weir_pipelines::context::KnownStream> = declared
        .iter()
        .map(|(name, subjects)| weir_pipelines::context::KnownStream { name, subjects })
        .collect();
    let mut diagnostics = Vec::new();
    for p in pipelines {
        for (path, code, message) in
            crate::schemas::pipeline_refs::problems(state, tenant_id, p).await
        {
            diagnostics.push(serde_json::json!({
                "pipeline": p.metadata.name, "path": path, "code": code, "message": message,
            }));
        }
        for problem in weir_pipelines::context::check_against_streams(p, &known) {
            diagnostics.push(serde_json::json!({
                "pipeline": p.metadata.name,
                "path": problem.path,
                "code": problem.code,
                "message": problem.message,
            }));
        }
    }
    if diagnostics.is_empty() {
        return Ok(());
    }
    Err(ApiError::InvalidSpec {
        detail: format!(
            "{} problem{} with the streams you declared (see `diagnostics`)",
            diagnostics.len(),
            if diagnostics.len() == 1 { "" } else { "s" }
        ),
        diagnostics: serde_json::Value::Array(diagnostics),
    })
}

fn wants_yaml(headers: &HeaderMap, format: Option<&str>) -> ApiResult<bool> {
    match format {
        Some("yaml") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) => {
            return Err(ApiError::bad_request(
                "bad_query",
                format!("unknown format `{other}`: use json or yaml"),
            ));
        }
        None => {}
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(accept.contains("yaml"))
}

fn yaml_response(text: String) -> Response {
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/yaml"),
    );
    r
}

/// Get a pipeline's current version, as JSON or (with `Accept: application/yaml` or
/// `?format=yaml`) as the YAML file.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"), FormatQuery),
    responses((status = 200, body = PipelineDetail), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<FormatQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let yaml = wants_yaml(&headers, q.format.as_deref())?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let (json, yaml_text) = version_text(&state, &p.id, p.summary.version, &name).await?;
    if yaml {
        return Ok(yaml_response(yaml_text));
    }
    let resource = serde_json::from_str(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
    let tag = etag(p.summary.version);
    let mut response = Json(PipelineDetail {
        summary: p.summary,
        resource,
    })
    .into_response();
    response.headers_mut().insert(header::ETAG, tag);
    Ok(response)
}

/// Delete a pipeline and all its versions. Its durable consumer is removed from the source
/// stream (unless `keep_position`); its dead letters stay in their stream and stay reachable
/// under its name (`/pipelines/{name}/dlq`) until a pipeline of that name exists again.
#[utoipa::path(delete, path = "/api/v1/pipelines/{name}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"), DeleteQuery),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    audit: AuditContext,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<DeleteQuery>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Pipelines, Action::Delete)?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let deployed = store::pipelines::is_deployed(state.db().pool(), &p.id).await?;
    if deployed {
        return Err(ApiError::Conflict(format!(
            "pipeline `{name}` is deployed; undeploy it first with \
             DELETE /api/v1/pipelines/{name}/deployment (weir undeploy {name})"
        )));
    }
    let (json, yaml) = version_text(&state, &p.id, p.summary.version, &name).await?;
    if !q.keep_position {
        remove_consumer(&state, &caller, &json).await?;
    }
    let diff = unified_diff(
        &yaml,
        "",
        &format!("{name} (version {})", p.summary.version),
        "/dev/null",
    );
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    if !store::pipelines::delete(&mut tx, &p.id).await? {
        // Another request deleted it since it was read.
        return Err(ApiError::NotFound(format!("pipeline `{name}`")));
    }
    // Its last spec, so its dead letters stay reachable by name.
    store::pipelines::remember_deleted(&mut tx, &caller.tenant_id, &name, &json, now_ms()).await?;
    audit.record_in(&mut tx, 204, None, Some(diff)).await?;
    tx.commit().await?;
    let note = AuditNote {
        recorded: true,
        ..Default::default()
    };
    Ok(note.attach(StatusCode::NO_CONTENT))
}

/// Removes the durable consumer of a pipeline (given as its stored JSON) from its source
/// stream, and its checkpoints, leases and partition stream, in the tenant's account; nothing to do when the stream or consumer is gone, or when
/// the control plane runs without NATS.
async fn remove_consumer(state: &AppState, caller: &Caller, json: &str) -> ApiResult<()> {
    if state.nats().is_err() {
        return Ok(());
    }
    let Ok(Resource::Pipeline(mut pipeline)) = serde_json::from_str::<Resource>(json) else {
        return Ok(());
    };
    pipeline.metadata.tenant = Some(caller.tenant_name.clone());
    // Deployed pipelines always run on the default durable (see the runtime's fleet deploy).
    let durable = weir_connectors::source::SourceSettings::default_durable(&pipeline);
    let stream_name = &pipeline.spec.source.stream;
    let nats = state.tenant_nats(caller).await?;
    // Its window and dedup state too: a pipeline created again under this name starts empty.
    weir_connectors::checkpoints::forget_state(nats.js(), &durable)
        .await
        .map_err(|e| ApiError::Internal(format!("removing the pipeline's state: {e}")))?;
    let not_found = |code: async_nats::jetstream::ErrorCode| {
        code == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND
            || code == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND
    };
    let stream = match nats.js().get_stream(stream_name).await {
        Ok(s) => s,
        Err(e) => {
            return match e.kind() {
                async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                    if not_found(j.error_code()) =>
                {
                    Ok(())
                }
                _ => Err(crate::nats::failed(
                    &format!("look up the source stream `{stream_name}`"),
                    e,
                )),
            };
        }
    };
    match stream.delete_consumer(&durable).await {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            async_nats::jetstream::stream::ConsumerErrorKind::JetStream(j)
                if not_found(j.error_code()) =>
            {
                Ok(())
            }
            _ => Err(crate::nats::failed(
                &format!("remove the consumer `{durable}` from stream `{stream_name}`"),
                e,
            )),
        },
    }
}

/// List a pipeline's versions, newest first.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/versions", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = Vec<VersionInfo>), (status = 404, body = crate::error::Problem)))]
pub async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<VersionInfo>>> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let list = store::pipelines::versions(state.db().pool(), &p.id)
        .await?
        .into_iter()
        .map(|r| VersionInfo {
            version: r.version,
            created_at: rfc3339(r.created_at),
            created_by: r.created_by,
        })
        .collect();
    Ok(Json(list))
}

/// Get one version of a pipeline (JSON, or YAML like `GET /pipelines/{name}`).
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/versions/{version}", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"),
           ("version" = i64, Path, description = "Version number"), FormatQuery),
    responses((status = 200, body = Object), (status = 404, body = crate::error::Problem)))]
pub async fn version(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, version)): Path<(String, i64)>,
    QueryArgs(q): QueryArgs<FormatQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let yaml = wants_yaml(&headers, q.format.as_deref())?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let (json, yaml_text) = version_text(&state, &p.id, version, &name).await?;
    if yaml {
        return Ok(yaml_response(yaml_text));
    }
    let value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(value).into_response())
}

/// Unified diff of the YAML of two versions.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/diff", tag = "pipelines",
    params(("name" = String, Path, description = "Pipeline name"), DiffQuery),
    responses((status = 200, body = VersionDiff), (status = 404, body = crate::error::Problem)))]
pub async fn diff(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<DiffQuery>,
) -> ApiResult<Json<VersionDiff>> {
    caller.require(ApiResource::Pipelines, Action::Read)?;
    let p = find(&state, &caller.tenant_id, &name).await?;
    let to = q.to.unwrap_or(p.summary.version);
    let (_, old) = version_text(&state, &p.id, q.from, &name).await?;
    let (_, new) = version_text(&state, &p.id, to, &name).await?;
    Ok(Json(VersionDiff {
        from: q.from,
        to,
        diff: unified_diff(
            &old,
            &new,
            &format!("{name} (version {})", q.from),
            &format!("{name} (version {to})"),
        ),
    }))
}
