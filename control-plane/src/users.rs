//! Users of a tenant and its custom roles. Users log in with email and password (argon2id) and
//! hold one role: a built-in one (`admin`, `editor`, `operator`, `viewer`) or a custom role of
//! the tenant, which is a list of `resource:action` permissions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::auth::{Caller, hash_password};
use crate::body::JsonBody;
use crate::db::{new_id, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::rbac::{self, Action, ApiResource, PermissionSet};
use crate::state::AppState;
use crate::store;
use crate::store::users::UserRow;

/// A user.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct UserInfo {
    /// Id.
    pub id: String,
    /// Email (login name), unique within the tenant.
    pub email: String,
    /// Role name.
    pub role: String,
    /// Whether a password is set (login possible).
    pub has_password: bool,
    /// When created.
    pub created_at: String,
    /// Last successful login.
    pub last_login_at: Option<String>,
}

/// Body of `POST /users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Email (stored lowercase, Unicode NFKC); unique within the tenant.
    #[schema(min_length = 3, max_length = 254)]
    pub email: String,
    /// Password (12 characters to 1024 bytes); without one the user can only use API keys.
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
    /// Role name.
    pub role: String,
}

/// Body of `PATCH /users/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New role.
    pub role: Option<String>,
    /// New password (12 characters to 1024 bytes).
    #[schema(min_length = 12, max_length = 1024)]
    pub password: Option<String>,
}

/// A role.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct RoleInfo {
    /// Name.
    pub name: String,
    /// Built in (cannot be changed).
    pub builtin: bool,
    /// Description.
    pub description: String,
    /// `resource:action` grants.
    pub permissions: Vec<String>,
}

/// Body of `POST /roles`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Name (lowercase letters, digits, `-`; 1-63).
    #[schema(
        min_length = 1,
        max_length = 63,
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    )]
    pub name: String,
    /// Description (at most 1024 characters, no control characters but newline and tab).
    #[serde(default)]
    #[schema(
        max_length = 1024,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub description: String,
    /// `resource:action` grants; `*` allowed on either side.
    pub permissions: Vec<String>,
}

/// Longest password in bytes (hashing is deliberately slow; longer input is refused).
pub const MAX_PASSWORD: usize = 1024;

/// Refuses short and overlong passwords.
pub fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < 12 {
        return Err(ApiError::Unprocessable(
            "passwords must have at least 12 characters".into(),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(ApiError::Unprocessable(format!(
            "passwords must have at most {MAX_PASSWORD} bytes"
        )));
    }
    Ok(())
}

/// The form an email is stored and compared in: trimmed, Unicode NFKC, lowercase. `NEWHIRE@X`,
/// `newhire@x` and `ｎｅｗｈｉｒｅ@x` are one login name.
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let lower = email.trim().nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

/// Longest email (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Checks a (normalized) email: `local@domain.tld`, at most 254 characters, no whitespace,
/// control or bidirectional-override characters.
pub fn check_email(email: &str) -> ApiResult<()> {
    let ok = email.chars().count() <= MAX_EMAIL
        && !email
            .chars()
            .any(|c| c.is_whitespace() || crate::text::is_unsafe_char(c))
        && email
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.') && !b.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "`{}` is not an email address (local@domain.tld, at most {MAX_EMAIL} characters, no spaces or control characters)",
            crate::text::excerpt(email)
        )))
    }
}

/// The answer for an email that is already a user of the caller's tenant. Emails are unique
/// per tenant only, so this says nothing about other tenants.
pub(crate) fn email_taken(email: &str) -> ApiError {
    ApiError::Guarded {
        code: "email_taken",
        detail: format!(
            "`{}` is already a user of this tenant; change that user's role instead, or use \
             another address",
            crate::text::excerpt(email)
        ),
    }
}

/// Fails with [`email_taken`] when a user of `tenant_id` has this normalized email.
pub(crate) async fn require_email_free(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    email: &str,
) -> ApiResult<()> {
    if store::users::email_taken(conn, tenant_id, email).await? {
        return Err(email_taken(email));
    }
    Ok(())
}

async fn check_role(state: &AppState, tenant_id: &str, role: &str) -> ApiResult<()> {
    if rbac::builtin(role).is_some() {
        return Ok(());
    }
    if !store::roles::exists(state.db().pool(), tenant_id, role).await? {
        return Err(ApiError::Unprocessable(format!(
            "unknown role `{role}`: use admin, editor, operator, viewer or a role from GET /api/v1/roles"
        )));
    }
    Ok(())
}

/// Refuses unless the caller's grants cover everything `role` grants: nobody hands out, or acts
/// on a holder of, rights it does not hold itself. The system tenant's `admin` role makes its
/// holders platform admins, so only platform admins may give it or act on its holders.
pub(crate) async fn require_covers(
    state: &AppState,
    caller: &Caller,
    role: &str,
    what: &str,
) -> ApiResult<()> {
    if role == "admin"
        && caller.tenant_name == crate::caller::SYSTEM_TENANT
        && !caller.platform_admin
    {
        return Err(ApiError::Escalation(format!(
            "{what}: role `admin` of the system tenant makes its holders platform admins, \
             which your role `{}` is not; ask a platform admin",
            caller.role
        )));
    }
    let set = crate::auth::role_permissions(state, &caller.tenant_id, role).await?;
    if let Some(missing) = caller.permissions.first_missing(&set) {
        return Err(ApiError::Escalation(format!(
            "{what}: role `{role}` grants `{missing}`, which your role `{}` does not hold; \
             ask a user who holds every permission of `{role}`",
            caller.role
        )));
    }
    Ok(())
}

/// Inside a write transaction: fails with 409 `code` (and the caller rolls back) when the
/// change just made leaves no admin of the system tenant with a working API key, so that the
/// platform can never lock itself out.
pub(crate) async fn ensure_platform_admin_remains(
    tx: &mut sqlx::AnyConnection,
    code: &'static str,
    detail: &str,
) -> ApiResult<()> {
    let left = store::users::platform_admins_with_keys(tx).await?;
    if left == 0 {
        return Err(ApiError::Guarded {
            code,
            detail: detail.to_string(),
        });
    }
    Ok(())
}

fn in_system_tenant(caller: &Caller) -> bool {
    caller.tenant_name == crate::caller::SYSTEM_TENANT
}

const LAST_ADMIN: &str = "this is the last platform admin with a working API key: give another \
                          user of the system tenant the `admin` role and an API key first";

impl From<UserRow> for UserInfo {
    fn from(r: UserRow) -> Self {
        UserInfo {
            id: r.id,
            email: r.email,
            role: r.role,
            has_password: r.password_hash.is_some(),
            created_at: rfc3339(r.created_at),
            last_login_at: r.last_login_at.map(rfc3339),
        }
    }
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> ApiResult<UserInfo> {
    let row = store::users::find(state.db().pool(), &caller.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user `{id}`")))?;
    Ok(row.into())
}

/// List the tenant's users.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = Vec<UserInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<UserInfo>>> {
    caller.require(ApiResource::Users, Action::Read)?;
    let rows = store::users::list(state.db().pool(), &caller.tenant_id).await?;
    Ok(Json(rows.into_iter().map(UserInfo::from).collect()))
}

/// Add a user to the tenant.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserInfo), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewUser>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Users, Action::Create)?;
    let email = normalize_email(&body.email);
    check_email(&email)?;
    check_role(&state, &caller.tenant_id, &body.role).await?;
    require_covers(
        &state,
        &caller,
        &body.role,
        "you cannot create a user with more rights than yours",
    )
    .await?;
    let hash = match body.password {
        Some(p) => {
            check_password(&p)?;
            Some(hash_password(&state, p).await?)
        }
        None => None,
    };
    let id = new_id();
    let mut tx = state.db().begin().await?;
    require_email_free(&mut tx, &caller.tenant_id, &email).await?;
    let user = store::users::NewUser {
        id: &id,
        tenant_id: &caller.tenant_id,
        email: &email,
        password_hash: hash,
        role: &body.role,
    };
    store::users::insert(&mut *tx, user)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => email_taken(&email),
            other => other,
        })?;
    tx.commit().await?;
    let user = find(&state, &caller, &id).await?;
    Ok(AuditNote {
        resource: Some(format!("/api/v1/users/{id}")),
        diff: Some(format!("+ user {} role {}", user.email, user.role)),
        ..Default::default()
    }
    .attach((StatusCode::CREATED, Json(user))))
}

/// Get a user of the tenant.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = UserInfo), (status = 404, body = crate::error::Problem)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<UserInfo>> {
    caller.require(ApiResource::Users, Action::Read)?;
    Ok(Json(find(&state, &caller, &id).await?))
}

/// Change a user's role or password.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")), request_body = UserPatch,
    responses((status = 200, body = UserInfo), (status = 404, body = crate::error::Problem)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<UserPatch>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Users, Action::Update)?;
    let before = find(&state, &caller, &id).await?;
    require_covers(
        &state,
        &caller,
        &before.role,
        "you cannot change a user with more rights than yours",
    )
    .await?;
    if let Some(role) = &body.role {
        check_role(&state, &caller.tenant_id, role).await?;
        require_covers(
            &state,
            &caller,
            role,
            "you cannot give a role with more rights than yours",
        )
        .await?;
    }
    let hash = match body.password {
        Some(password) => {
            check_password(&password)?;
            Some(hash_password(&state, password).await?)
        }
        None => None,
    };
    let mut changes = Vec::new();
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    if let Some(role) = &body.role {
        store::users::set_role(&mut tx, &id, role).await?;
        changes.push(format!("- role {}\n+ role {role}", before.role));
        if in_system_tenant(&caller) && before.role == "admin" && role != "admin" {
            ensure_platform_admin_remains(&mut tx, "last_platform_admin", LAST_ADMIN).await?;
        }
    }
    if let Some(hash) = hash {
        // A new password ends every login session of the user.
        store::users::set_password(&mut tx, &id, &hash).await?;
        changes.push("~ password changed".into());
    }
    tx.commit().await?;
    let after = find(&state, &caller, &id).await?;
    Ok(AuditNote::diff(changes.join("\n")).attach(Json(after)))
}

/// Remove a user (their keys and sessions go with them).
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiResource::Users, Action::Delete)?;
    let user = find(&state, &caller, &id).await?;
    if user.id == caller.user_id {
        return Err(ApiError::Conflict("you cannot delete yourself".into()));
    }
    require_covers(
        &state,
        &caller,
        &user.role,
        "you cannot delete a user with more rights than yours",
    )
    .await?;
    let mut tx = state.db().begin().await?;
    state.db().lock_tenant(&mut tx, &caller.tenant_id).await?;
    store::users::delete(&mut tx, &id).await?;
    if in_system_tenant(&caller) && user.role == "admin" {
        ensure_platform_admin_remains(&mut tx, "last_platform_admin", LAST_ADMIN).await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List built-in and custom roles.
#[utoipa::path(get, path = "/api/v1/roles", tag = "users",
    responses((status = 200, body = Vec<RoleInfo>), (status = 403, body = crate::error::Problem)))]
pub async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<RoleInfo>>> {
    caller.require(ApiResource::Roles, Action::Read)?;
    let mut out: Vec<RoleInfo> = rbac::BUILTIN_ROLES
        .iter()
        .map(|r| RoleInfo {
            name: r.to_string(),
            builtin: true,
            description: format!("built-in role {r}"),
            permissions: rbac::builtin(r)
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect(),
        })
        .collect();
    for r in store::roles::list(state.db().pool(), &caller.tenant_id).await? {
        out.push(RoleInfo {
            name: r.name,
            builtin: false,
            description: r.description,
            permissions: serde_json::from_str(&r.permissions)
                .map_err(|e| ApiError::Internal(e.to_string()))?,
        });
    }
    Ok(Json(out))
}

/// Define a custom role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "users", request_body = NewRole,
    responses((status = 201, body = RoleInfo), (status = 409, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem)))]
pub async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<NewRole>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Roles, Action::Create)?;
    crate::text::check_name("role name", &body.name)?;
    crate::text::check_text(
        "the role description",
        &body.description,
        crate::text::MAX_DESCRIPTION,
        true,
    )?;
    if rbac::builtin(&body.name).is_some() {
        return Err(ApiError::Conflict(format!(
            "`{}` is a built-in role",
            body.name
        )));
    }
    let set = PermissionSet::parse(&body.permissions).map_err(ApiError::Unprocessable)?;
    if let Some(missing) = caller.permissions.first_missing(&set) {
        return Err(ApiError::Escalation(format!(
            "you cannot define a role with more rights than yours: `{missing}` is not granted \
             by your role `{}`",
            caller.role
        )));
    }
    let permissions = set.to_strings();
    let row = store::roles::RoleRow {
        name: body.name.clone(),
        description: body.description.clone(),
        permissions: serde_json::to_string(&permissions).unwrap_or_default(),
    };
    store::roles::insert(state.db().writer(), &caller.tenant_id, &row)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("role `{}` already exists", body.name))
            }
            other => other,
        })?;
    Ok(
        AuditNote::diff(format!("+ role {} {:?}", body.name, permissions)).attach((
            StatusCode::CREATED,
            Json(RoleInfo {
                name: body.name,
                builtin: false,
                description: body.description,
                permissions,
            }),
        )),
    )
}

/// Delete a custom role that no user holds.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "users",
    params(("name" = String, Path, description = "Role name")),
    responses((status = 204), (status = 404, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem)))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(ApiResource::Roles, Action::Delete)?;
    if rbac::builtin(&name).is_some() {
        return Err(ApiError::Conflict(format!("`{name}` is a built-in role")));
    }
    let holders = store::users::holders_of(state.db().pool(), &caller.tenant_id, &name).await?;
    if holders > 0 {
        return Err(ApiError::Conflict(format!(
            "role `{name}` is held by {holders} user(s); give them another role first"
        )));
    }
    if !store::roles::delete(state.db().writer(), &caller.tenant_id, &name).await? {
        return Err(ApiError::NotFound(format!("role `{name}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}
