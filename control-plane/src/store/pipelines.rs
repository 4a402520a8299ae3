//! The pipeline tables: `pipelines` (one row per pipeline, its current version), the immutable
//! `pipeline_versions`, the current version's `pipeline_labels`, and `deleted_pipelines` (the
//! last spec of a deleted pipeline, so that its dead letters stay reachable by name).

use std::collections::BTreeMap;

use sqlx::{Any, Executor};

/// One pipeline.
#[derive(sqlx::FromRow)]
pub struct PipelineRow {
    pub id: String,
    pub name: String,
    pub current_version: i64,
    /// `spec.execution.parallelism` of the current version.
    pub parallelism: i64,
    pub created_at: i64,
    pub created_by: String,
    pub updated_at: i64,
    pub updated_by: String,
}

/// One version's text.
#[derive(sqlx::FromRow)]
pub struct VersionText {
    pub spec_json: String,
    pub spec_yaml: String,
}

/// One version as listed.
#[derive(sqlx::FromRow)]
pub struct VersionRow {
    pub version: i64,
    pub created_at: i64,
    pub created_by: String,
}

/// What the tenant's other pipelines use of the quotas.
#[derive(sqlx::FromRow)]
pub struct OthersRow {
    pub parallelism: i64,
    pub pipelines: i64,
}

#[derive(sqlx::FromRow)]
struct LabelRow {
    key: String,
    value: String,
}

/// Which of a tenant's pipelines to list: names after `after`, starting with `prefix`, with
/// the label `key=value`; at most `limit`, by name.
pub struct ListFilter<'a> {
    pub after: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub label: Option<(&'a str, &'a str)>,
    pub limit: i64,
}

const SELECT: &str = "SELECT p.id AS id, p.name AS name, p.current_version AS current_version, \
                      p.parallelism AS parallelism, p.created_at AS created_at, \
                      p.created_by AS created_by, p.updated_at AS updated_at, \
                      p.updated_by AS updated_by FROM pipelines p";

/// The tenant's pipeline `name`.
pub async fn find<'e, E: Executor<'e, Database = Any>>(
    db: E,
    tenant_id: &str,
    name: &str,
) -> Result<Option<PipelineRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE p.tenant_id = $1 AND p.name = $2"))
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(db)
        .await
}

/// The tenant's pipelines matching `filter`.
pub async fn list(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    filter: ListFilter<'_>,
) -> Result<Vec<PipelineRow>, sqlx::Error> {
    let mut sql = format!("{SELECT} WHERE p.tenant_id = $1");
    let mut binds = vec![tenant_id.to_string()];
    if let Some(after) = filter.after {
        binds.push(after.to_string());
        sql.push_str(&format!(" AND p.name > ${}", binds.len()));
    }
    if let Some(prefix) = filter.prefix.filter(|p| !p.is_empty()) {
        binds.push(prefix.to_string());
        sql.push_str(&format!(
            " AND substr(p.name, 1, {}) = ${}",
            prefix.chars().count(),
            binds.len()
        ));
    }
    if let Some((key, value)) = filter.label {
        binds.push(key.to_string());
        binds.push(value.to_string());
        sql.push_str(&format!(
            " AND EXISTS (SELECT 1 FROM pipeline_labels l WHERE l.pipeline_id = p.id \
             AND l.key = ${} AND l.value = ${})",
            binds.len() - 1,
            binds.len()
        ));
    }
    sql.push_str(&format!(" ORDER BY p.name LIMIT {}", filter.limit));
    let mut query = sqlx::query_as(&sql);
    for b in binds {
        query = query.bind(b);
    }
    query.fetch_all(pool).await
}

/// The labels of pipeline `id`'s current version.
pub async fn labels(
    pool: &sqlx::AnyPool,
    id: &str,
) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows: Vec<LabelRow> =
        sqlx::query_as("SELECT key, value FROM pipeline_labels WHERE pipeline_id = $1")
            .bind(id)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|r| (r.key, r.value)).collect())
}

/// The text of version `version` of pipeline `id`.
pub async fn version_text<'e, E: Executor<'e, Database = Any>>(
    db: E,
    id: &str,
    version: i64,
) -> Result<Option<VersionText>, sqlx::Error> {
    sqlx::query_as(
        "SELECT spec_json, spec_yaml FROM pipeline_versions WHERE pipeline_id = $1 AND version = $2",
    )
    .bind(id)
    .bind(version)
    .fetch_optional(db)
    .await
}

/// The versions of pipeline `id`, newest first.
pub async fn versions(pool: &sqlx::AnyPool, id: &str) -> Result<Vec<VersionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT version, created_at, created_by FROM pipeline_versions WHERE pipeline_id = $1 \
         ORDER BY version DESC",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

/// What the tenant's pipelines other than `name` use.
pub async fn others(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    name: &str,
) -> Result<OthersRow, sqlx::Error> {
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(parallelism), 0) AS BIGINT) AS parallelism, \
         COUNT(*) AS pipelines FROM pipelines WHERE tenant_id = $1 AND name <> $2",
    )
    .bind(tenant_id)
    .bind(name)
    .fetch_one(conn)
    .await
}

/// A new pipeline at version 1.
pub async fn insert(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    p: &PipelineRow,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pipelines (id, tenant_id, name, current_version, parallelism, created_at, \
         created_by, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&p.id)
    .bind(tenant_id)
    .bind(&p.name)
    .bind(p.current_version)
    .bind(p.parallelism)
    .bind(p.created_at)
    .bind(&p.created_by)
    .bind(p.updated_at)
    .bind(&p.updated_by)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Moves pipeline `id` from version `version - 1` to `version`; false when it is no longer
/// at `version - 1` (a writer that lost a race changes nothing).
pub async fn advance(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    parallelism: i64,
    (by, now): (&str, i64),
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE pipelines SET current_version = $1, parallelism = $2, updated_at = $3, \
         updated_by = $4 WHERE id = $5 AND current_version = $6",
    )
    .bind(version)
    .bind(parallelism)
    .bind(now)
    .bind(by)
    .bind(id)
    .bind(version - 1)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores version `version` of pipeline `id` and makes `labels` its labels.
pub async fn insert_version(
    conn: &mut sqlx::AnyConnection,
    id: &str,
    version: i64,
    text: &VersionText,
    labels: &[(&str, &str)],
    (by, now): (&str, i64),
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO pipeline_versions (pipeline_id, version, spec_json, spec_yaml, created_at, \
         created_by) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(version)
    .bind(&text.spec_json)
    .bind(&text.spec_yaml)
    .bind(now)
    .bind(by)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM pipeline_labels WHERE pipeline_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (k, v) in labels {
        sqlx::query("INSERT INTO pipeline_labels (pipeline_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Removes pipeline `id` with its versions and labels; false when it was already gone.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: &str) -> Result<bool, sqlx::Error> {
    let mut gone = 0;
    for sql in [
        "DELETE FROM pipeline_labels WHERE pipeline_id = $1",
        "DELETE FROM pipeline_versions WHERE pipeline_id = $1",
        "DELETE FROM pipelines WHERE id = $1",
    ] {
        gone = sqlx::query(sql)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(gone > 0)
}

/// Keeps the last spec of the tenant's deleted pipeline `name`.
pub async fn remember_deleted(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    name: &str,
    spec_json: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deleted_pipelines (tenant_id, name, spec_json, deleted_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, name) DO UPDATE SET \
         spec_json = excluded.spec_json, deleted_at = excluded.deleted_at",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(spec_json)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The last spec of the tenant's deleted pipeline `name`, if one was deleted.
pub async fn deleted_spec(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    name: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT spec_json FROM deleted_pipelines WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(pool)
        .await
}

/// Whether pipeline `id` is deployed.
pub async fn is_deployed(pool: &sqlx::AnyPool, id: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deployments WHERE pipeline_id = $1")
        .bind(id)
        .fetch_one(pool)
        .await?;
    Ok(n > 0)
}
