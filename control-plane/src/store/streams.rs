//! The `streams` table: a tenant's stream declarations (`kind: Stream`), as canonical JSON and
//! YAML.

use sqlx::{Any, Executor};

use crate::db::new_id;

/// One stored declaration.
#[derive(sqlx::FromRow)]
pub struct StreamRow {
    pub id: String,
    pub name: String,
    /// The `Stream` resource, canonical JSON.
    pub spec_json: String,
    /// The same, YAML.
    pub spec_yaml: String,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

impl StreamRow {
    /// The subjects the declaration captures.
    pub fn subjects(&self) -> Result<Vec<String>, serde_json::Error> {
        let v: serde_json::Value = serde_json::from_str(&self.spec_json)?;
        Ok(v.pointer("/spec/subjects")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

const SELECT: &str = "SELECT id, name, spec_json, spec_yaml, created_at, created_by, updated_at, \
                      updated_by FROM streams";

/// The tenant's declaration `name`.
pub async fn find<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
    name: &str,
) -> Result<Option<StreamRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = $1 AND name = $2"))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(db)
        .await
}

/// The tenant's declarations by name.
pub async fn list(pool: &sqlx::AnyPool, tenant_id: &str) -> Result<Vec<StreamRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE tenant_id = $1 ORDER BY name"))
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// How many streams the tenant declared.
pub async fn count(conn: &mut sqlx::AnyConnection, tenant_id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM streams WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(conn)
        .await
}

/// Stores a new declaration by `by` at `now`.
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    name: &str,
    (json, yaml): (&str, &str),
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO streams (id, tenant_id, name, spec_json, spec_yaml, created_at, \
         created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id())
    .bind(tenant_id)
    .bind(name)
    .bind(json)
    .bind(yaml)
    .bind(now)
    .bind(by)
    .bind(now)
    .bind(by)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Replaces declaration `id` by `by` at `now`.
pub async fn update(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    (json, yaml): (&str, &str),
    by: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE streams SET spec_json = $1, spec_yaml = $2, updated_at = $3, updated_by = $4 \
         WHERE id = $5",
    )
    .bind(json)
    .bind(yaml)
    .bind(now)
    .bind(by)
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes declaration `id`.
pub async fn delete(writer: &sqlx::AnyPool, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM streams WHERE id = $1")
        .bind(id)
        .execute(writer)
        .await
        .map(|_| ())
}
