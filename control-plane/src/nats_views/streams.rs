//! The tenant's declared streams as NATS sees them: list, info and purge.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

use super::{declared, open};

/// A stream as NATS reports it.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct StreamView {
    /// Stream name.
    pub name: String,
    /// False when declared but not (yet) created on NATS.
    pub exists: bool,
    /// Subjects it captures.
    pub subjects: Vec<String>,
    /// Messages stored.
    pub messages: u64,
    /// Bytes stored.
    pub bytes: u64,
    /// First sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Consumers.
    pub consumer_count: usize,
    /// When created (RFC 3339).
    pub created: Option<String>,
    /// The JetStream configuration as NATS returns it (null when NATS did not return one).
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
}

/// Body of `POST /nats/streams/{name}/purge`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Only messages on this subject (wildcards allowed).
    pub subject: Option<String>,
    /// Only messages below this sequence.
    pub sequence: Option<u64>,
    /// Keep this many newest messages.
    pub keep: Option<u64>,
}

/// What a purge did.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PurgeResult {
    /// Messages removed.
    pub purged: u64,
}

fn time_ms(t: &async_nats::jetstream::stream::Info) -> String {
    rfc3339((t.created.unix_timestamp_nanos() / 1_000_000) as i64)
}

fn view(name: &str, info: Option<&async_nats::jetstream::stream::Info>) -> StreamView {
    match info {
        None => StreamView {
            name: name.to_string(),
            exists: false,
            subjects: Vec::new(),
            messages: 0,
            bytes: 0,
            first_seq: 0,
            last_seq: 0,
            consumer_count: 0,
            created: None,
            config: None,
        },
        Some(i) => StreamView {
            name: name.to_string(),
            exists: true,
            subjects: i.config.subjects.clone(),
            messages: i.state.messages,
            bytes: i.state.bytes,
            first_seq: i.state.first_sequence,
            last_seq: i.state.last_sequence,
            consumer_count: i.state.consumer_count,
            created: Some(time_ms(i)),
            config: serde_json::to_value(&i.config).ok(),
        },
    }
}

/// Your declared streams as NATS sees them.
#[utoipa::path(get, path = "/api/v1/nats/streams", tag = "nats",
    responses((status = 200, body = Vec<StreamView>), (status = 503, body = crate::error::Problem)))]
pub async fn list_streams(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<StreamView>>> {
    caller.require(ApiResource::Streams, Action::Read)?;
    let nats = state.tenant_nats(&caller).await?;
    let mut out = Vec::new();
    for (name, _) in declared(&state, &caller).await? {
        let info = match nats.js().get_stream(&name).await {
            Ok(s) => Some(s.cached_info().clone()),
            Err(_) => None,
        };
        out.push(view(&name, info.as_ref()));
    }
    Ok(Json(out))
}

/// One of your streams: configuration and state.
#[utoipa::path(get, path = "/api/v1/nats/streams/{name}", tag = "nats",
    params(("name" = String, Path, description = "Stream name")),
    responses((status = 200, body = StreamView), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<StreamView>> {
    caller.require(ApiResource::Streams, Action::Read)?;
    let mut s = open(&state, &caller, &name).await?;
    let info = s
        .info()
        .await
        .map_err(|e| failed(&format!("read stream `{name}`"), e))?
        .clone();
    Ok(Json(view(&name, Some(&info))))
}

/// Purge one of your streams: everything, or only a subject, only below a sequence, or all
/// but the newest `keep`.
#[utoipa::path(post, path = "/api/v1/nats/streams/{name}/purge", tag = "nats",
    params(("name" = String, Path, description = "Stream name")),
    request_body = PurgeRequest,
    responses((status = 200, body = PurgeResult), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PurgeRequest>,
) -> ApiResult<Json<PurgeResult>> {
    caller.require(ApiResource::Streams, Action::Purge)?;
    if body.sequence.is_some() && body.keep.is_some() {
        return Err(ApiError::Unprocessable(
            "give `sequence` or `keep`, not both".into(),
        ));
    }
    let s = open(&state, &caller, &name).await?;
    let fail = |e| failed(&format!("purge stream `{name}`"), e);
    let subject = body.subject.clone();
    let response = match (body.sequence, body.keep) {
        (Some(seq), _) => {
            let p = s.purge().sequence(seq);
            match subject {
                Some(f) => p.filter(f).await,
                None => p.await,
            }
        }
        (None, Some(keep)) => {
            let p = s.purge().keep(keep);
            match subject {
                Some(f) => p.filter(f).await,
                None => p.await,
            }
        }
        (None, None) => match subject {
            Some(f) => s.purge().filter(f).await,
            None => s.purge().await,
        },
    }
    .map_err(fail)?;
    Ok(Json(PurgeResult {
        purged: response.purged,
    }))
}
