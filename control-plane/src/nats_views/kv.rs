//! Key-value buckets of a tenant: those whose name starts with its slug and `_`.

use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

use super::nats_time;

/// Most keys or history entries one call lists.
pub const KV_LIST_LIMIT: usize = 10_000;
/// How long one listing of keys or history may take.
const KV_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A key-value bucket of yours.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct KvBucketView {
    /// Bucket name (`<tenant>_…`).
    pub name: String,
    /// Values stored (all revisions kept).
    pub values: u64,
    /// Revisions kept per key.
    pub history: i64,
    /// Bytes stored.
    pub bytes: u64,
    /// Most bytes the bucket may hold (-1: unlimited).
    pub max_bytes: i64,
    /// Entries expire after this many seconds (0: never).
    pub ttl_seconds: u64,
    /// When created (RFC 3339).
    pub created: String,
}

/// Body of `POST /nats/kv`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct KvCreateRequest {
    /// Bucket name: must start with your tenant's name and `_` (`acme_sessions` for tenant
    /// `acme`), then letters, digits, `_` or `-`.
    pub name: String,
    /// Revisions kept per key, 1-64 (default 1).
    #[schema(minimum = 1, maximum = 64)]
    pub history: Option<i64>,
    /// Most bytes the bucket may hold: positive, or -1 for unlimited (default), at most 1 TiB.
    #[schema(minimum = -1, maximum = 1099511627776_i64)]
    pub max_bytes: Option<i64>,
    /// Entries expire after this many seconds, at most 10 years (default 0: never).
    #[schema(minimum = 0, maximum = 315360000)]
    pub ttl_seconds: Option<u64>,
    /// Description (at most 1024 characters).
    #[schema(
        max_length = 1024,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub description: Option<String>,
}

/// One revision of a key.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct KvEntryView {
    /// Key.
    pub key: String,
    /// Revision (the bucket stream's sequence).
    pub revision: u64,
    /// When written (RFC 3339).
    pub created: String,
    /// `put`, `delete` or `purge`.
    pub operation: String,
    /// Value, base64.
    pub value_base64: String,
    /// Value as text, when UTF-8.
    pub value_utf8: Option<String>,
}

/// Body of `PUT /nats/kv/{bucket}/keys/{key}`: JSON, the value as text in `value` or as base64
/// in `value_base64` (one of the two).
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct KvPutRequest {
    /// Value as text.
    pub value: Option<String>,
    /// Value as base64 (instead of `value`).
    pub value_base64: Option<String>,
}

/// Where a value was written.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct KvPutResult {
    /// Key.
    pub key: String,
    /// Its new revision.
    pub revision: u64,
}

/// The prefix of the buckets a tenant owns.
pub fn kv_prefix(tenant: &str) -> String {
    format!("{tenant}_")
}

/// Whether tenant `tenant` owns bucket `bucket` (the scoping rule of the module doc).
pub fn owns_bucket(tenant: &str, bucket: &str) -> bool {
    let prefix = kv_prefix(tenant);
    !bucket.starts_with("weir_") && bucket.len() > prefix.len() && bucket.starts_with(&prefix)
}

fn bucket_name_ok(bucket: &str) -> bool {
    !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The tenant's bucket `bucket`, else 404.
async fn open_bucket(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
) -> ApiResult<async_nats::jetstream::kv::Store> {
    let nats = state.tenant_nats(caller).await?;
    if !owns_bucket(&caller.tenant_name, bucket) || !bucket_name_ok(bucket) {
        return Err(ApiError::NotFound(format!("key-value bucket `{bucket}`")));
    }
    if let Err(e) = nats.js().get_stream(format!("KV_{bucket}")).await {
        return match e.kind() {
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(ApiError::NotFound(format!("key-value bucket `{bucket}`")))
            }
            _ => Err(failed(&format!("open bucket `{bucket}`"), e)),
        };
    }
    nats.js()
        .get_key_value(bucket)
        .await
        .map_err(|e| match e.kind() {
            // A stream named KV_… that is not a bucket.
            async_nats::jetstream::context::KeyValueErrorKind::InvalidStoreName => {
                ApiError::NotFound(format!("key-value bucket `{bucket}`"))
            }
            _ => failed(&format!("open bucket `{bucket}`"), e),
        })
}

async fn bucket_view(
    store: &async_nats::jetstream::kv::Store,
    bucket: &str,
) -> ApiResult<KvBucketView> {
    let status = store
        .status()
        .await
        .map_err(|e| failed(&format!("read bucket `{bucket}`"), e))?;
    Ok(KvBucketView {
        name: bucket.to_string(),
        values: status.values(),
        history: status.history(),
        bytes: status.info.state.bytes,
        max_bytes: status.info.config.max_bytes,
        ttl_seconds: status.max_age().as_secs(),
        created: nats_time(&status.info.created),
    })
}

fn entry_view(e: &async_nats::jetstream::kv::Entry) -> KvEntryView {
    use async_nats::jetstream::kv::Operation;
    KvEntryView {
        key: e.key.clone(),
        revision: e.revision,
        created: nats_time(&e.created),
        operation: match e.operation {
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::Purge => "purge",
        }
        .into(),
        value_base64: base64::engine::general_purpose::STANDARD.encode(&e.value),
        value_utf8: std::str::from_utf8(&e.value).ok().map(str::to_string),
    }
}

fn key_ok(key: &str) -> ApiResult<()> {
    let valid = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "key `{key}` is not valid: letters, digits and `-/_=.`, no empty `.`-separated token"
        )))
    }
}

/// Your key-value buckets: those named `<tenant>_…` (Weir's own `weir_*` are never listed).
#[utoipa::path(get, path = "/api/v1/nats/kv", tag = "nats",
    description = "Lists the key-value buckets you own: a tenant owns the buckets whose name \
                   starts with its name and `_` (`acme_…` for tenant `acme`). Weir's own \
                   buckets (`weir_*`) are never shown.",
    responses((status = 200, body = Vec<KvBucketView>), (status = 403, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn list_buckets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KvBucketView>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let nats = state.tenant_nats(&caller).await?;
    let mut names = nats.js().stream_names();
    let mut buckets = Vec::new();
    while let Some(n) = names.next().await {
        let n = n.map_err(|e| failed("list key-value buckets", e))?;
        if let Some(bucket) = n.strip_prefix("KV_")
            && owns_bucket(&caller.tenant_name, bucket)
        {
            buckets.push(bucket.to_string());
        }
    }
    buckets.sort();
    let mut out = Vec::new();
    for bucket in buckets {
        // Deleted meanwhile, or not a bucket: skipped.
        if let Ok(store) = nats.js().get_key_value(&bucket).await {
            out.push(bucket_view(&store, &bucket).await?);
        }
    }
    Ok(Json(out))
}

/// Create a key-value bucket; its name must start with your tenant's name and `_`.
#[utoipa::path(post, path = "/api/v1/nats/kv", tag = "nats",
    description = "Creates a key-value bucket. A tenant owns the buckets whose name starts with \
                   its name and `_` (`acme_sessions` for tenant `acme`); any other name is 422.",
    request_body = KvCreateRequest,
    responses((status = 201, body = KvBucketView), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn create_bucket(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<KvCreateRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<KvBucketView>)> {
    caller.require(ApiResource::Kv, Action::Create)?;
    let prefix = kv_prefix(&caller.tenant_name);
    let name = body.name.clone();
    if !owns_bucket(&caller.tenant_name, &name) || !bucket_name_ok(&name) {
        return Err(ApiError::Unprocessable(format!(
            "bucket name `{name}` must start with `{prefix}` (a tenant owns the buckets named \
             after it) followed by letters, digits, `_` or `-`"
        )));
    }
    let history = body.history.unwrap_or(1);
    if !(1..=64).contains(&history) {
        return Err(ApiError::Unprocessable(format!(
            "`history` must be 1-64, not {history}"
        )));
    }
    let max_bytes = body.max_bytes.unwrap_or(-1);
    if max_bytes == 0 || !(-1..=MAX_BUCKET_BYTES).contains(&max_bytes) {
        return Err(ApiError::Unprocessable(format!(
            "`max_bytes` must be positive, at most {MAX_BUCKET_BYTES} (1 TiB), or -1 for unlimited"
        )));
    }
    let ttl = body.ttl_seconds.unwrap_or(0);
    if ttl > MAX_TTL_SECONDS {
        return Err(ApiError::Unprocessable(format!(
            "`ttl_seconds` must be at most {MAX_TTL_SECONDS} (10 years), not {ttl}; 0 keeps entries forever"
        )));
    }
    if let Some(description) = &body.description {
        crate::text::check_text(
            "the bucket description",
            description,
            crate::text::MAX_DESCRIPTION,
            true,
        )?;
    }
    let nats = state.tenant_nats(&caller).await?;
    if nats.js().get_stream(format!("KV_{name}")).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "key-value bucket `{name}` already exists"
        )));
    }
    let store = nats
        .js()
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: name.clone(),
            description: body.description.clone().unwrap_or_default(),
            history,
            max_bytes,
            max_age: std::time::Duration::from_secs(ttl),
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&format!("create bucket `{name}`"), e))?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(bucket_view(&store, &name).await?),
    ))
}

/// Largest `max_bytes` of a bucket (1 TiB).
const MAX_BUCKET_BYTES: i64 = 1 << 40;
/// Longest `ttl_seconds` of a bucket (10 years).
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Delete one of your key-value buckets, with all its keys.
#[utoipa::path(delete, path = "/api/v1/nats/kv/{bucket}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)")),
    responses((status = 204, description = "Deleted"), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn delete_bucket(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(ApiResource::Kv, Action::Delete)?;
    open_bucket(&state, &caller, &bucket).await?;
    state
        .tenant_nats(&caller)
        .await?
        .js()
        .delete_key_value(&bucket)
        .await
        .map_err(|e| failed(&format!("delete bucket `{bucket}`"), e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn collect_within<S, T, E>(what: &str, stream: S) -> ApiResult<Vec<T>>
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    let collect = async {
        let mut out = Vec::new();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            out.push(item.map_err(|e| failed(what, e))?);
            if out.len() >= KV_LIST_LIMIT {
                break;
            }
        }
        Ok::<_, ApiError>(out)
    };
    tokio::time::timeout(KV_LIST_TIMEOUT, collect)
        .await
        .map_err(|_| failed(what, "timed out"))?
}

/// The keys of one of your buckets (deleted keys are not listed; at most 10 000).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)")),
    responses((status = 200, body = Vec<String>), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    let what = format!("list keys of `{bucket}`");
    let keys = store.keys().await.map_err(|e| failed(&what, e))?;
    let mut out = collect_within(&what, keys).await?;
    out.sort();
    Ok(Json(out))
}

/// The current value of a key of one of your buckets (404 when absent or deleted).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 200, body = KvEntryView), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<Json<KvEntryView>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    match store
        .entry(key.clone())
        .await
        .map_err(|e| failed(&format!("read `{key}` of `{bucket}`"), e))?
    {
        Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
            Ok(Json(entry_view(&e)))
        }
        _ => Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        ))),
    }
}

/// Every kept revision of a key of one of your buckets, oldest first (deletes included).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys/{key}/history", tag = "nats",
    operation_id = "key_history",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 200, body = Vec<KvEntryView>), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn key_history(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<Json<Vec<KvEntryView>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let what = format!("read the history of `{key}` in `{bucket}`");
    let history = store.history(&key).await.map_err(|e| failed(&what, e))?;
    let entries = collect_within(&what, history).await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        )));
    }
    Ok(Json(entries.iter().map(entry_view).collect()))
}

/// Write a key of one of your buckets. The body is JSON: `{"value": "text"}` or
/// `{"value_base64": "…"}`.
#[utoipa::path(put, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    request_body = KvPutRequest,
    responses((status = 200, body = KvPutResult), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn put_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<KvPutRequest>,
) -> ApiResult<Json<KvPutResult>> {
    caller.require(ApiResource::Kv, Action::Update)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let value: bytes::Bytes = match (body.value, body.value_base64) {
        (Some(t), None) => t.into(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| ApiError::Unprocessable(format!("value_base64 is not base64: {e}")))?
            .into(),
        _ => {
            return Err(ApiError::Unprocessable(
                "give `value` or `value_base64` (exactly one)".into(),
            ));
        }
    };
    let revision = store
        .put(&key, value)
        .await
        .map_err(|e| failed(&format!("write `{key}` of `{bucket}`"), e))?;
    Ok(Json(KvPutResult { key, revision }))
}

/// Delete a key of one of your buckets (a delete marker; history is kept).
#[utoipa::path(delete, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    operation_id = "delete_key",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 204, description = "Deleted"), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(ApiResource::Kv, Action::Delete)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let current = store
        .entry(key.clone())
        .await
        .map_err(|e| failed(&format!("read `{key}` of `{bucket}`"), e))?;
    if !matches!(&current, Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put) {
        return Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        )));
    }
    store
        .delete(&key)
        .await
        .map_err(|e| failed(&format!("delete `{key}` of `{bucket}`"), e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tenants_own_buckets_by_prefix() {
        use super::owns_bucket;
        assert!(owns_bucket("acme", "acme_sessions"));
        assert!(!owns_bucket("acme", "acme_"));
        assert!(!owns_bucket("acme", "acme-eu_sessions"));
        assert!(!owns_bucket("acme", "beta_sessions"));
        assert!(!owns_bucket("acme", "sessions"));
        assert!(!owns_bucket("weir", "weir_deployments"));
    }
}
