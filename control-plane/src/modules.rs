//! WebAssembly modules as tenant resources (`docs/wasm-abi.md`): versioned uploads of raw
//! `.wasm`, checked against the batch ABI before they are stored (exports the functions it
//! claims, imports only Weir's host functions), metadata in the store, bytes in the
//! `weir_modules` object bucket where workers fetch them. Deploying a pipeline pins each
//! `wasm` node to a version of the deploying tenant's module.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditNote;
use crate::body::QueryArgs;
use crate::caller::Caller;
use crate::db::{now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

/// The largest module the API accepts.
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// A module version as the API shows it.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct ModuleInfo {
    /// Name, unique in the tenant.
    pub name: String,
    /// Version, from 1, one more per upload.
    pub version: u32,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The batch functions it exports (what a `wasm` node's `function` may name).
    pub functions: Vec<String>,
    /// When uploaded (RFC 3339).
    pub created_at: String,
    /// Who uploaded it.
    pub created_by: String,
}

/// The raw bytes of a `.wasm` file (the body of an upload).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ModuleBytes(pub Vec<u8>);

/// Query of an upload.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadArgs {
    /// Comma-separated functions the module must export (checked on upload).
    #[serde(default)]
    pub functions: Option<String>,
}

/// Query of a delete.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteArgs {
    /// Delete only this version (all versions when absent).
    #[serde(default)]
    pub version: Option<u32>,
}

const COLUMNS: &str = "name, version, sha256, size, functions, created_at, created_by";

fn info_of(r: &sqlx::any::AnyRow) -> ApiResult<ModuleInfo> {
    Ok(ModuleInfo {
        name: r.try_get("name")?,
        version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or_default(),
        sha256: r.try_get("sha256")?,
        size: u64::try_from(r.try_get::<i64, _>("size")?).unwrap_or_default(),
        functions: serde_json::from_str(&r.try_get::<String, _>("functions")?)
            .map_err(|e| ApiError::Internal(e.to_string()))?,
        created_at: rfc3339(r.try_get("created_at")?),
        created_by: r.try_get("created_by")?,
    })
}

async fn versions(state: &AppState, tenant_id: &str, name: &str) -> ApiResult<Vec<ModuleInfo>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM wasm_modules WHERE tenant_id = $1 AND name = $2 ORDER BY version"
    ))
    .bind(tenant_id)
    .bind(name)
    .fetch_all(state.db().pool())
    .await?;
    rows.iter().map(info_of).collect()
}

/// The version of `tenant_id`'s module `name` a deployment uses: `version`, or the newest.
pub async fn resolve(
    state: &AppState,
    tenant_id: &str,
    name: &str,
    version: Option<u32>,
) -> ApiResult<ModuleInfo> {
    let all = versions(state, tenant_id, name).await?;
    let found = match version {
        Some(v) => all.into_iter().find(|m| m.version == v),
        None => all.into_iter().next_back(),
    };
    found.ok_or_else(|| {
        ApiError::Unprocessable(match version {
            Some(v) => format!("`wasm` node: your tenant has no module `{name}` version {v}"),
            None => format!("`wasm` node: your tenant has no module `{name}`; upload it first (POST /api/v1/modules/{name})"),
        })
    })
}

/// Pins every `wasm` node of a pipeline spec (JSON) to a version of the tenant's module, and
/// checks that the version exports the function the node names. 422 when it does not exist.
pub async fn pin_versions(
    state: &AppState,
    tenant_id: &str,
    spec: &mut serde_json::Value,
) -> ApiResult<()> {
    let Some(nodes) = spec
        .pointer_mut("/spec/nodes")
        .and_then(|n| n.as_array_mut())
    else {
        return Ok(());
    };
    for node in nodes {
        let Some(wasm) = node.get_mut("wasm").and_then(|w| w.as_object_mut()) else {
            continue;
        };
        let name = wasm
            .get("module")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        let version = wasm
            .get("version")
            .and_then(|v| v.as_u64())
            .map(|v| v as u32);
        let module = resolve(state, tenant_id, &name, version).await?;
        let function = wasm
            .get("function")
            .and_then(|f| f.as_str())
            .unwrap_or_default();
        if !module.functions.iter().any(|f| f == function) {
            return Err(ApiError::Unprocessable(format!(
                "`wasm` node: module `{name}` version {} exports no batch function `{function}` (it has: {})",
                module.version,
                module.functions.join(", ")
            )));
        }
        wasm.insert("version".into(), module.version.into());
    }
    Ok(())
}

/// Reads the body up to the module size limit; a larger one is a 422 saying the limit.
async fn read_module(headers: &HeaderMap, body: Body) -> ApiResult<bytes::Bytes> {
    let too_large = |n: Option<usize>| {
        ApiError::Unprocessable(format!(
            "the module is too large{}: the limit is {MAX_MODULE_BYTES} bytes",
            n.map(|n| format!(" ({n} bytes)")).unwrap_or_default()
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MODULE_BYTES) {
        return Err(too_large(declared));
    }
    axum::body::to_bytes(body, MAX_MODULE_BYTES)
        .await
        .map_err(|_| too_large(None))
}

/// List the tenant's modules, every version.
#[utoipa::path(get, path = "/api/v1/modules", tag = "modules",
    responses((status = 200, body = Vec<ModuleInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ModuleInfo>>> {
    caller.require(ApiResource::Modules, Action::Read)?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM wasm_modules WHERE tenant_id = $1 ORDER BY name, version"
    ))
    .bind(&caller.tenant_id)
    .fetch_all(state.db().pool())
    .await?;
    Ok(Json(rows.iter().map(info_of).collect::<ApiResult<_>>()?))
}

/// The versions of a module.
#[utoipa::path(get, path = "/api/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name")),
    responses((status = 200, body = Vec<ModuleInfo>), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ModuleInfo>>> {
    caller.require(ApiResource::Modules, Action::Read)?;
    let all = versions(&state, &caller.tenant_id, &name).await?;
    if all.is_empty() {
        return Err(ApiError::NotFound(format!("module `{name}`")));
    }
    Ok(Json(all))
}

/// Upload a new version of a module: the raw `.wasm` bytes as the body
/// (`Content-Type: application/wasm` or `application/octet-stream`), checked against the batch
/// ABI.
#[utoipa::path(post, path = "/api/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name"), UploadArgs),
    request_body(content = ModuleBytes, content_type = "application/octet-stream", description = "The module's bytes (any content type is accepted, e.g. `application/wasm`)"),
    responses((status = 201, body = ModuleInfo), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(args): QueryArgs<UploadArgs>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    caller.require(ApiResource::Modules, Action::Create)?;
    crate::text::check_name("module name", &name)?;
    let nats = state.nats()?;
    let bytes = read_module(&headers, body).await?;
    let claimed: Vec<String> = args
        .functions
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    let info = weir_pipelines::wasm_abi::inspect(&bytes, &claimed)
        .map_err(|e| ApiError::Unprocessable(format!("module `{name}`: {e}")))?;
    if info.functions.is_empty() {
        return Err(ApiError::Unprocessable(format!(
            "module `{name}` exports no batch function (`(i32, i32) -> i64`); see docs/wasm-abi.md"
        )));
    }
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let functions = serde_json::to_string(&info.functions).unwrap_or_default();
    let version = insert(&state, &caller, &name, &sha256, bytes.len(), &functions).await?;
    if let Err(e) =
        weir_connectors::modules::store(nats.js(), &caller.tenant_name, &name, version, &bytes)
            .await
    {
        let _ = sqlx::query(
            "DELETE FROM wasm_modules WHERE tenant_id = $1 AND name = $2 AND version = $3",
        )
        .bind(&caller.tenant_id)
        .bind(&name)
        .bind(i64::from(version))
        .execute(state.db().writer())
        .await;
        return Err(crate::nats::failed("store the module", e));
    }
    let info = versions(&state, &caller.tenant_id, &name)
        .await?
        .into_iter()
        .find(|m| m.version == version)
        .ok_or_else(|| ApiError::Internal("the module vanished after upload".into()))?;
    Ok(AuditNote::diff(format!(
        "+ module {name} v{version} sha256 {sha256} ({} bytes)",
        info.size
    ))
    .attach((StatusCode::CREATED, Json(info))))
}

/// Records the next version of a module; concurrent uploads get distinct versions.
async fn insert(
    state: &AppState,
    caller: &Caller,
    name: &str,
    sha256: &str,
    size: usize,
    functions: &str,
) -> ApiResult<u32> {
    for _ in 0..8 {
        let next: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM wasm_modules WHERE tenant_id = $1 AND name = $2",
        )
        .bind(&caller.tenant_id)
        .bind(name)
        .fetch_one(state.db().pool())
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO wasm_modules (tenant_id, name, version, sha256, size, functions, \
             created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&caller.tenant_id)
        .bind(name)
        .bind(next)
        .bind(sha256)
        .bind(size as i64)
        .bind(functions)
        .bind(now_ms())
        .bind(&caller.email)
        .execute(state.db().writer())
        .await;
        match inserted {
            Ok(_) => return Ok(u32::try_from(next).unwrap_or(u32::MAX)),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::Conflict(format!(
        "module `{name}`: too many concurrent uploads; try again"
    )))
}

/// Delete a module (every version, or `?version=N`). Deployed pipelines keep running the
/// version they were deployed with until they are redeployed.
#[utoipa::path(delete, path = "/api/v1/modules/{name}", tag = "modules",
    params(("name" = String, Path, description = "Module name"), DeleteArgs),
    responses((status = 204), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(args): QueryArgs<DeleteArgs>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Modules, Action::Delete)?;
    let nats = state.nats()?;
    let gone: Vec<u32> = versions(&state, &caller.tenant_id, &name)
        .await?
        .into_iter()
        .map(|m| m.version)
        .filter(|v| args.version.is_none_or(|want| want == *v))
        .collect();
    if gone.is_empty() {
        return Err(ApiError::NotFound(match args.version {
            Some(v) => format!("module `{name}` version {v}"),
            None => format!("module `{name}`"),
        }));
    }
    for v in &gone {
        sqlx::query("DELETE FROM wasm_modules WHERE tenant_id = $1 AND name = $2 AND version = $3")
            .bind(&caller.tenant_id)
            .bind(&name)
            .bind(i64::from(*v))
            .execute(state.db().writer())
            .await?;
        weir_connectors::modules::remove(nats.js(), &caller.tenant_name, &name, *v)
            .await
            .map_err(|e| crate::nats::failed("remove the module", e))?;
    }
    Ok(
        AuditNote::diff(format!("- module {name} versions {gone:?}"))
            .attach(StatusCode::NO_CONTENT),
    )
}
