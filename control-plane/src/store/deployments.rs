//! The `deployments` table: which version of a pipeline runs, how wide and in which state. The
//! workers read the deployment record in NATS KV; this row is the control plane's copy, changed
//! in the same step (see `deployments::write`).

/// One deployment, with its tenant's name.
#[derive(sqlx::FromRow)]
pub struct DeploymentRow {
    pub pipeline: String,
    pub version: i64,
    pub parallelism: i64,
    /// `running` or `paused`.
    pub state: String,
    pub updated_by: String,
    pub updated_at: i64,
    pub tenant_name: String,
}

/// A deployment to store.
pub struct DeploymentWrite<'a> {
    pub pipeline_id: &'a str,
    pub tenant_id: &'a str,
    pub pipeline: &'a str,
    pub version: i64,
    pub parallelism: i64,
    pub state: &'a str,
    pub updated_by: &'a str,
    pub updated_at: i64,
}

/// The deployment of pipeline `pipeline_id`.
pub async fn find(
    pool: &sqlx::AnyPool,
    pipeline_id: &str,
) -> Result<Option<DeploymentRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT d.pipeline AS pipeline, d.version AS version, d.parallelism AS parallelism, \
         d.state AS state, d.updated_by AS updated_by, d.updated_at AS updated_at, \
         t.name AS tenant_name \
         FROM deployments d JOIN tenants t ON t.id = d.tenant_id WHERE d.pipeline_id = $1",
    )
    .bind(pipeline_id)
    .fetch_optional(pool)
    .await
}

/// The ids of the tenant's deployed pipelines, by pipeline name.
pub async fn pipeline_ids(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT pipeline_id FROM deployments WHERE tenant_id = $1 ORDER BY pipeline")
        .bind(tenant_id)
        .fetch_all(pool)
        .await
}

/// The parallelism the tenant's deployments other than `pipeline_id`'s run with.
pub async fn others_parallelism(
    conn: &mut sqlx::AnyConnection,
    tenant_id: &str,
    pipeline_id: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(parallelism), 0) AS BIGINT) FROM deployments \
         WHERE tenant_id = $1 AND pipeline_id <> $2",
    )
    .bind(tenant_id)
    .bind(pipeline_id)
    .fetch_one(conn)
    .await
}

/// Stores (inserts or replaces) a deployment.
pub async fn upsert(
    conn: &mut sqlx::AnyConnection,
    d: DeploymentWrite<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deployments (pipeline_id, tenant_id, pipeline, version, parallelism, state, \
         updated_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (pipeline_id) DO UPDATE SET version = excluded.version, \
         parallelism = excluded.parallelism, state = excluded.state, \
         updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(d.pipeline_id)
    .bind(d.tenant_id)
    .bind(d.pipeline)
    .bind(d.version)
    .bind(d.parallelism)
    .bind(d.state)
    .bind(d.updated_by)
    .bind(d.updated_at)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Removes the deployment of pipeline `pipeline_id`.
pub async fn delete(conn: &mut sqlx::AnyConnection, pipeline_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM deployments WHERE pipeline_id = $1")
        .bind(pipeline_id)
        .execute(conn)
        .await
        .map(|_| ())
}
