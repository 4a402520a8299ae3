//! NATS resource views, scoped to the streams a tenant declared (`kind: Stream`): stream info,
//! consumers (with pause and resume, NATS 2.11+), single messages (by sequence, last by
//! subject, or first at or after a time), purge with subject/sequence filters, and publishing
//! to a subject one of the tenant's streams captures. A stream the tenant did not declare is
//! 404, as if it did not exist; so is a consumer of it that does not exist.
//!
//! Key-value buckets are scoped by name: **a tenant owns the buckets whose name starts with
//! its slug (the tenant name) followed by `_`** — tenant `acme` owns `acme_sessions`, never
//! `beta_sessions` or `sessions`. A bucket is created only with that prefix (else 422), and
//! Weir's own buckets (`weir_*`) are never shown to any tenant. Every other bucket is 404.
//!
//! One module per resource: `streams`, `consumers`, `messages`, `kv`; this one holds the
//! tenant's scope (its declared streams) that they share.

use async_nats::jetstream::stream::Stream;

use crate::caller::Caller;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::state::AppState;

pub mod consumers;
pub mod kv;
pub mod messages;
pub mod streams;

pub use weir_pipelines::subject::subject_matches;

/// The tenant's declared streams: (name, subjects).
async fn declared(state: &AppState, caller: &Caller) -> ApiResult<Vec<(String, Vec<String>)>> {
    let rows = crate::store::streams::list(state.db().pool(), &caller.tenant_id).await?;
    rows.into_iter()
        .map(|r| {
            let subjects = r
                .subjects()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok((r.name, subjects))
        })
        .collect()
}

/// The stream `name` if the tenant declared it and it exists on NATS, else 404.
pub(crate) async fn open(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Stream> {
    let nats = state.tenant_nats(caller).await?;
    if !declared(state, caller)
        .await?
        .iter()
        .any(|(n, _)| n == name)
    {
        return Err(ApiError::NotFound(format!("stream `{name}`")));
    }
    match nats.js().get_stream(name).await {
        Ok(s) => Ok(s),
        Err(e) => match e.kind() {
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(ApiError::NotFound(format!(
                    "stream `{name}` on NATS (it is declared; deploying a pipeline creates it)"
                )))
            }
            _ => Err(failed(&format!("open stream `{name}`"), e)),
        },
    }
}

fn parse_time(name: &str, value: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            ApiError::Unprocessable(format!(
                "`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z: {e}"
            ))
        })
}

fn nats_time(t: &async_nats::datetime::DateTime) -> String {
    rfc3339((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_like_nats() {
        assert!(subject_matches("orders.>", "orders.created.eu"));
        assert!(!subject_matches("orders.>", "orders"));
        assert!(subject_matches("orders.*", "orders.created"));
        assert!(!subject_matches("orders.*", "orders.created.eu"));
        assert!(subject_matches("orders.created", "orders.created"));
        assert!(!subject_matches("orders.created", "orders.updated"));
        assert!(subject_matches("*.created.>", "orders.created.eu.x"));
    }
}
