//! The `tenants` table, and the removal of everything a tenant owns in the store.

/// One stored tenant.
#[derive(sqlx::FromRow)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub display_name: String,
    /// 1 for the system tenant (its admins are platform admins).
    pub is_system: i64,
    pub created_at: i64,
}

const SELECT: &str = "SELECT id, name, display_name, is_system, created_at FROM tenants";

/// Tenant `id`.
pub async fn find(pool: &sqlx::AnyPool, id: &str) -> Result<Option<TenantRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// Every tenant by name.
pub async fn list(pool: &sqlx::AnyPool) -> Result<Vec<TenantRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY name"))
        .fetch_all(pool)
        .await
}

/// The system tenant's id, once it exists.
pub async fn system_id(conn: &mut sqlx::AnyConnection) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE is_system = 1")
        .fetch_optional(conn)
        .await
}

/// Stores a tenant.
pub async fn insert(conn: &mut sqlx::AnyConnection, t: &TenantRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tenants (id, name, display_name, is_system, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.id)
    .bind(&t.name)
    .bind(&t.display_name)
    .bind(t.is_system)
    .bind(t.created_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes tenant `id` and every row it owns. Foreign keys cascade on both stores; the explicit
/// order keeps a SQLite file without them safe too.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM deployments WHERE tenant_id = $1",
        "DELETE FROM pipeline_labels WHERE pipeline_id IN (SELECT id FROM pipelines WHERE tenant_id = $1)",
        "DELETE FROM pipeline_versions WHERE pipeline_id IN (SELECT id FROM pipelines WHERE tenant_id = $1)",
        "DELETE FROM pipelines WHERE tenant_id = $1",
        "DELETE FROM deleted_pipelines WHERE tenant_id = $1",
        "DELETE FROM streams WHERE tenant_id = $1",
        "DELETE FROM secrets WHERE tenant_id = $1",
        "DELETE FROM registry_configs WHERE tenant_id = $1",
        "DELETE FROM registry_versions WHERE tenant_id = $1",
        "DELETE FROM registry_schemas WHERE tenant_id = $1",
        "DELETE FROM sessions WHERE tenant_id = $1",
        "DELETE FROM api_keys WHERE tenant_id = $1",
        "DELETE FROM users WHERE tenant_id = $1",
        "DELETE FROM roles WHERE tenant_id = $1",
        "DELETE FROM quotas WHERE tenant_id = $1",
        "DELETE FROM tenants WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(())
}
