//! The audit log's table, `audit_events`: one row per API request that passed the gate.

use crate::db::{new_id, now_ms};

/// An event to record.
pub struct NewEvent {
    /// The tenant acted in (none for anonymous requests).
    pub tenant_id: Option<String>,
    /// Who acted (an email, or `anonymous`).
    pub actor: String,
    /// What was done (`pipelines.update`).
    pub action: String,
    /// The request path.
    pub resource: String,
    /// `success`, `denied` or `failed`.
    pub outcome: &'static str,
    /// The HTTP status answered.
    pub status: i64,
    /// The change made, when the handler described it.
    pub diff: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// Client address.
    pub source: Option<String>,
}

/// One stored event.
#[derive(sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub status: i64,
    pub diff: Option<String>,
    pub request_id: Option<String>,
    pub source: Option<String>,
}

/// Which events of a tenant to read; every set field must match.
#[derive(Default)]
pub struct EventFilter {
    /// At or after this time (epoch ms).
    pub from: Option<i64>,
    /// Before this time (epoch ms).
    pub to: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub outcome: Option<String>,
    /// Ids after this one (a page cursor).
    pub after_id: Option<String>,
}

/// Records `e` through `conn` (the writer, or the caller's transaction).
pub async fn insert(conn: &mut sqlx::AnyConnection, e: NewEvent) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (id, at, tenant_id, actor, action, resource, outcome, status, \
         diff, request_id, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(new_id())
    .bind(now_ms())
    .bind(e.tenant_id)
    .bind(e.actor)
    .bind(e.action)
    .bind(e.resource)
    .bind(e.outcome)
    .bind(e.status)
    .bind(e.diff)
    .bind(e.request_id)
    .bind(e.source)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The tenant's events matching `filter`, oldest first, at most `limit` of them (all without).
pub async fn events(
    pool: &sqlx::AnyPool,
    tenant_id: &str,
    filter: EventFilter,
    limit: Option<i64>,
) -> Result<Vec<EventRow>, sqlx::Error> {
    enum Bind {
        Text(String),
        Int(i64),
    }
    let mut sql = String::from(
        "SELECT id, at, actor, action, resource, outcome, status, diff, request_id, source \
         FROM audit_events WHERE tenant_id = $1",
    );
    let mut binds = vec![Bind::Text(tenant_id.to_string())];
    let conditions = [
        ("at >=", filter.from.map(Bind::Int)),
        ("at <", filter.to.map(Bind::Int)),
        ("actor =", filter.actor.map(Bind::Text)),
        ("action =", filter.action.map(Bind::Text)),
        ("outcome =", filter.outcome.map(Bind::Text)),
        ("id >", filter.after_id.map(Bind::Text)),
    ];
    for (clause, value) in conditions {
        if let Some(value) = value {
            binds.push(value);
            sql.push_str(&format!(" AND {clause} ${}", binds.len()));
        }
    }
    sql.push_str(" ORDER BY id");
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut query = sqlx::query_as::<_, EventRow>(&sql);
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s),
            Bind::Int(i) => query.bind(i),
        };
    }
    query.fetch_all(pool).await
}
