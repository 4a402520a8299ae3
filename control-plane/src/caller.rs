//! The authenticated caller of a request (tenant, user, role and its grants), as the gate
//! resolved it, with the permission checks handlers make. Below every handler and the state,
//! so that any module may name it without depending on authentication itself.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::error::{ApiError, ApiResult};
use crate::rbac::{Action, ApiResource, PermissionSet};

/// Name of the system tenant, whose admins are the platform admins.
pub const SYSTEM_TENANT: &str = "default";

/// An authenticated caller, resolved once per request by the gate middleware.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's tenant id.
    pub tenant_id: String,
    /// The caller's tenant name.
    pub tenant_name: String,
    /// The user id.
    pub user_id: String,
    /// The user's email (the actor in audit events).
    pub email: String,
    /// The role name.
    pub role: String,
    /// The role's grants.
    pub permissions: PermissionSet,
    /// An admin of the system tenant: may manage tenants.
    pub platform_admin: bool,
    /// The login session, when authenticated by access token.
    pub session_id: Option<String>,
    /// The API key, when authenticated by one.
    pub key_id: Option<String>,
}

impl Caller {
    /// Fails with 403 unless the caller's role grants `resource:action`.
    pub fn require(&self, resource: ApiResource, action: Action) -> ApiResult<()> {
        if self.permissions.allows(resource, action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.role.clone(),
                permission: format!("{resource}:{action}"),
            })
        }
    }

    /// Fails with 403 unless the caller is a platform admin (admin of the system tenant).
    pub fn require_platform_admin(&self, action: Action) -> ApiResult<()> {
        self.require(ApiResource::Tenants, action)?;
        if self.platform_admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.role.clone(),
                permission: format!("tenants:{action} (platform admins only)"),
            })
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::Unauthenticated(
                "missing credentials: send `Authorization: Bearer <api key or access token>`"
                    .into(),
            )
        })
    }
}
