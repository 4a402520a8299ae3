//! Tenants: the isolation boundary of every resource. Platform admins (admins of the system
//! tenant `default`) create, list, delete tenants and set their quotas. A fresh store is
//! bootstrapped with the system tenant and one admin with an API key.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::auth::{Caller, hash_password, random_token};
use crate::body::JsonBody;
use crate::db::{Db, StoreError, new_id, now_ms, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::quotas::{self, Quotas};
use crate::rbac::Action;
use crate::state::AppState;
use crate::store;
use crate::store::tenants::TenantRow;

pub use crate::caller::SYSTEM_TENANT;
pub use crate::text::check_name;
/// Email of the bootstrap admin.
pub const BOOTSTRAP_ADMIN: &str = "admin@weir.local";

/// A tenant.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TenantInfo {
    /// Id.
    pub id: String,
    /// Name (DNS label), unique.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// The system tenant of platform admins.
    pub system: bool,
    /// When created.
    pub created_at: String,
    /// Its quotas.
    pub quotas: Quotas,
}

/// Body of `POST /tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Name: lowercase letters, digits and `-`, at most 63.
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    )]
    pub name: String,
    /// Display name (default: the name; at most 128 characters, no control characters).
    #[schema(
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub display_name: Option<String>,
    /// Quotas (default: the standard tenant quotas).
    pub quotas: Option<Quotas>,
    /// First admin of the tenant.
    pub admin: Option<NewTenantAdmin>,
}

/// The first admin of a new tenant.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantAdmin {
    /// Email (stored lowercase, Unicode NFKC); unique within the tenant.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    /// Password for login (optional: the response carries an API key; 12 characters to 1024
    /// bytes).
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
}

/// Result of `POST /tenants`.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TenantCreated {
    /// The tenant.
    pub tenant: TenantInfo,
    /// The first admin's user id.
    pub admin_user_id: Option<String>,
    /// An API key of the first admin. Shown once.
    pub admin_api_key: Option<String>,
}

/// Checks a bootstrap API key against the rules of generated keys: `weir_` followed by at
/// least 43 characters of the URL-safe base64 alphabet, carrying at least 128 bits by the
/// empirical (Shannon) estimate of its characters. Returns what is wrong, to print at startup.
pub fn check_bootstrap_key(key: &str) -> Result<(), String> {
    const HINT: &str = "use a key like the generated ones: `weir_` + 43 random URL-safe base64 \
                        characters, e.g. from `echo \"weir_$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')\"`";
    let Some(body) = key.strip_prefix("weir_") else {
        return Err(format!(
            "the bootstrap API key must start with `weir_`; {HINT}"
        ));
    };
    if body.chars().count() < 43 {
        return Err(format!(
            "the bootstrap API key is too short ({} characters after `weir_`, at least 43); {HINT}",
            body.chars().count()
        ));
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "the bootstrap API key may only hold letters, digits, `-` and `_`; {HINT}"
        ));
    }
    let mut counts = std::collections::HashMap::new();
    for c in body.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = body.chars().count() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    let bits = per_char * n;
    if bits < 128.0 {
        return Err(format!(
            "the bootstrap API key is too predictable (about {bits:.0} bits, at least 128); {HINT}"
        ));
    }
    Ok(())
}

/// Creates the system tenant and its admin on a fresh store, with `api_key` as the admin's key
/// (or a generated one, returned so that it can be printed once). On a store that has them,
/// only adds `api_key` when it is new: to the bootstrap admin, or when that user was deleted,
/// to the oldest admin of the system tenant, or (none left) to a re-created bootstrap admin.
/// A restart never depends on the bootstrap admin still existing.
pub async fn bootstrap(db: &Db, api_key: Option<&str>) -> Result<Option<String>, StoreError> {
    let mut tx = db.begin().await?;
    let now = now_ms();
    let system = store::tenants::system_id(&mut tx).await?;
    let fresh = system.is_none();
    let tenant_id = match system {
        Some(id) => id,
        None => {
            let tenant = TenantRow {
                id: new_id(),
                name: SYSTEM_TENANT.into(),
                display_name: "System".into(),
                is_system: 1,
                created_at: now,
            };
            store::tenants::insert(&mut tx, &tenant).await?;
            tenant.id
        }
    };
    let (key, generated) = match api_key {
        Some(k) => (k.to_string(), false),
        None if fresh => (random_token("weir_"), true),
        None => {
            tx.commit().await?;
            return Ok(None);
        }
    };
    if store::keys::known(&mut tx, &key).await? {
        tx.commit().await?;
        return Ok(None);
    }
    let admin = store::users::oldest_admin(&mut tx, &tenant_id, BOOTSTRAP_ADMIN).await?;
    let user_id = match admin {
        Some(id) => id,
        None => {
            let user_id = new_id();
            let user = store::users::NewUser {
                id: &user_id,
                tenant_id: &tenant_id,
                email: BOOTSTRAP_ADMIN,
                password_hash: None,
                role: "admin",
            };
            store::users::insert(&mut *tx, user).await?;
            user_id
        }
    };
    insert_key(&mut *tx, &tenant_id, &user_id, "bootstrap", &key, None).await?;
    tx.commit().await?;
    Ok(generated.then_some(key))
}

pub use crate::store::keys::insert as insert_key;

async fn tenant_info(state: &AppState, row: TenantRow) -> ApiResult<TenantInfo> {
    Ok(TenantInfo {
        quotas: quotas::load(state.db().pool(), &row.id).await?,
        id: row.id,
        name: row.name,
        display_name: row.display_name,
        system: row.is_system != 0,
        created_at: rfc3339(row.created_at),
    })
}

async fn find(state: &AppState, id: &str) -> ApiResult<TenantInfo> {
    let row = store::tenants::find(state.db().pool(), id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("tenant `{id}`")))?;
    tenant_info(state, row).await
}

/// List tenants (platform admins).
#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants",
    responses((status = 200, body = Vec<TenantInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TenantInfo>>> {
    caller.require_platform_admin(Action::Read)?;
    let mut out = Vec::new();
    for row in store::tenants::list(state.db().pool()).await? {
        out.push(tenant_info(&state, row).await?);
    }
    Ok(Json(out))
}

/// Create a tenant, optionally with its first admin (platform admins).
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = TenantCreated), (status = 409, body = crate::error::Problem),
              (status = 403, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewTenant>,
) -> ApiResult<Response> {
    caller.require_platform_admin(Action::Create)?;
    check_name("tenant name", &body.name)?;
    if let Some(display) = &body.display_name {
        crate::text::check_text("the display name", display, crate::text::MAX_NAME, false)?;
    }
    if let Ok(nats) = state.nats()
        && !nats.isolated()
        && !state.settings().allow_shared_nats
    {
        return Err(ApiError::Conflict(
            "NATS runs without accounts, so a second tenant would share the first one's \
             streams and subjects: run NATS in operator mode (weir serve --nats-keys), or \
             accept sharing with weir serve --allow-shared-nats"
                .into(),
        ));
    }
    let q = body.quotas.unwrap_or_else(Quotas::tenant_default);
    q.check()?;
    let admin_email = match &body.admin {
        Some(admin) => {
            let email = crate::users::normalize_email(&admin.email);
            crate::users::check_email(&email)?;
            Some(email)
        }
        None => None,
    };
    let password_hash = match body.admin.as_ref().and_then(|a| a.password.clone()) {
        Some(p) => {
            crate::users::check_password(&p)?;
            Some(hash_password(&state, p).await?)
        }
        None => None,
    };
    let id = new_id();
    let now = now_ms();
    let mut tx = state.db().begin().await?;
    let tenant = TenantRow {
        id: id.clone(),
        name: body.name.clone(),
        display_name: body
            .display_name
            .clone()
            .unwrap_or_else(|| body.name.clone()),
        is_system: 0,
        created_at: now,
    };
    store::tenants::insert(&mut tx, &tenant)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("tenant `{}` already exists", body.name))
            }
            other => other,
        })?;
    quotas::save(&mut *tx, &id, &q).await?;
    let (mut admin_user_id, mut admin_api_key) = (None, None);
    if let Some(email) = &admin_email {
        let user_id = new_id();
        let user = store::users::NewUser {
            id: &user_id,
            tenant_id: &id,
            email,
            password_hash,
            role: "admin",
        };
        store::users::insert(&mut *tx, user)
            .await
            .map_err(|e| match ApiError::from(e) {
                ApiError::Conflict(_) => crate::users::email_taken(email),
                other => other,
            })?;
        let key = random_token("weir_");
        insert_key(&mut *tx, &id, &user_id, "tenant-admin", &key, None).await?;
        admin_user_id = Some(user_id);
        admin_api_key = Some(key);
    }
    tx.commit().await?;
    // Its NATS account (operator mode) exists from the start, with the quota's limits.
    if let Ok(nats) = state.nats()
        && nats.isolated()
    {
        nats.set_tenant_limits(&id, &body.name, account_limits(&q))
            .await?;
    }
    let tenant = find(&state, &id).await?;
    Ok(AuditNote {
        resource: Some(format!("/api/v1/tenants/{id}")),
        ..Default::default()
    }
    .attach((
        StatusCode::CREATED,
        Json(TenantCreated {
            tenant,
            admin_user_id,
            admin_api_key,
        }),
    )))
}

/// Get a tenant (platform admins).
#[utoipa::path(get, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 200, body = TenantInfo), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<TenantInfo>> {
    caller.require_platform_admin(Action::Read)?;
    Ok(Json(find(&state, &id).await?))
}

/// Delete a tenant and everything in it (platform admins; not the system tenant).
#[utoipa::path(delete, path = "/api/v1/tenants/{id}", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_platform_admin(Action::Delete)?;
    let t = find(&state, &id).await?;
    if t.system {
        return Err(ApiError::Conflict(
            "the system tenant cannot be deleted".into(),
        ));
    }
    // Its deployments stop first: workers watch the KV records, not the store.
    let deployed = crate::deployments::of_tenant(&state, &id).await?;
    if !deployed.is_empty() {
        let nats = state.nats()?;
        for d in &deployed {
            nats.deployments().delete(&d.key).await.map_err(|e| {
                crate::nats::failed(&format!("delete the deployment record `{}`", d.key), e)
            })?;
        }
    }
    let mut tx = state.db().begin().await?;
    store::tenants::delete(&mut tx, &id).await?;
    tx.commit().await?;
    // Then its NATS data and account go (operator mode): a tenant re-created under the same
    // name starts empty, in a new account.
    if let Ok(nats) = state.nats() {
        nats.remove_tenant(&id, &t.name).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The NATS account limits of a tenant's quotas: its streams (plus room for its DLQ streams and
/// key-value buckets, which are streams too), its JetStream storage (file and memory) and its
/// client connections.
pub fn account_limits(q: &Quotas) -> weir_connectors::accounts::AccountLimits {
    weir_connectors::accounts::AccountLimits {
        streams: q.max_streams.map_or(-1, |n| n + STREAM_ALLOWANCE),
        disk_storage: q.max_storage_bytes.unwrap_or(-1),
        mem_storage: q.max_storage_bytes.unwrap_or(-1),
        connections: q.max_connections.unwrap_or(-1),
        ..Default::default()
    }
}

/// Streams an account holds beyond the declared ones: DLQ streams and KV buckets.
pub const STREAM_ALLOWANCE: i64 = 16;

/// Set a tenant's quotas (platform admins). Absent fields mean no limit.
#[utoipa::path(put, path = "/api/v1/tenants/{id}/quotas", tag = "tenants",
    params(("id" = String, Path, description = "Tenant id")), request_body = Quotas,
    responses((status = 200, body = Quotas), (status = 404, body = crate::error::Problem)))]
pub async fn put_quotas(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Quotas>,
) -> ApiResult<Response> {
    caller.require_platform_admin(Action::Update)?;
    body.check()?;
    let tenant = find(&state, &id).await?;
    let before = tenant.quotas;
    quotas::save(state.db().writer(), &id, &body).await?;
    if let Ok(nats) = state.nats()
        && nats.isolated()
    {
        nats.set_tenant_limits(&id, &tenant.name, account_limits(&body))
            .await?;
    }
    let diff = crate::resource_file::unified_diff(
        &serde_yaml::to_string(&before).unwrap_or_default(),
        &serde_yaml::to_string(&body).unwrap_or_default(),
        "quotas (before)",
        "quotas (after)",
    );
    Ok(AuditNote::diff(diff).attach(Json(body)))
}
