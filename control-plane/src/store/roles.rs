//! The `roles` table: a tenant's custom roles, each a JSON array of `resource:action` grants.

use crate::db::{new_id, now_ms};

/// One custom role.
#[derive(sqlx::FromRow)]
pub struct RoleRow {
    pub name: String,
    pub description: String,
    /// A JSON array of `resource:action` strings.
    pub permissions: String,
}

/// Whether the tenant has a custom role `name`.
pub async fn exists(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    Ok(grants(pool, tenant_id, name).await?.is_some())
}

/// The grants (a JSON array) of the tenant's custom role `name`.
pub async fn grants(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT permissions FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// The tenant's custom roles by name.
pub async fn list(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<Vec<RoleRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, description, permissions FROM roles WHERE tenant_id = $1 ORDER BY name",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Stores a custom role.
pub async fn insert(
    writer: &sqlx::AnyPool,
    tenant_id: &str,
    role: &RoleRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO roles (id, tenant_id, name, description, permissions, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(&role.name)
    .bind(&role.description)
    .bind(&role.permissions)
    .bind(now_ms())
    .execute(writer)
    .await
    .map(|_| ())
}

/// Removes the tenant's custom role `name`; whether there was one.
pub async fn delete(
    writer: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .execute(writer)
        .await?;
    Ok(done.rows_affected() > 0)
}
