//! Consumers of a declared stream: list, pause and resume (NATS 2.11+).

use async_nats::jetstream::stream::Stream;
use axum::Json;
use axum::extract::{Path, State};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::body::JsonBody;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

use super::{nats_time, open, parse_time};

/// A consumer of a stream.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct ConsumerView {
    /// Consumer name.
    pub name: String,
    /// Messages not yet delivered (lag).
    pub num_pending: u64,
    /// Delivered, not yet acknowledged.
    pub num_ack_pending: usize,
    /// Redelivered messages.
    pub num_redelivered: usize,
    /// Pull requests waiting.
    pub num_waiting: usize,
    /// Last delivered stream sequence.
    pub delivered_stream_seq: u64,
    /// Acknowledged floor (stream sequence).
    pub ack_floor_stream_seq: u64,
    /// When created (RFC 3339).
    pub created: String,
    /// Paused (NATS 2.11+): delivers nothing until `pause_until`.
    pub paused: bool,
    /// While paused: when delivery resumes (RFC 3339).
    pub pause_until: Option<String>,
    /// The consumer configuration as NATS returns it.
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

/// The consumers of one of your streams.
#[utoipa::path(get, path = "/api/v1/nats/streams/{name}/consumers", tag = "nats",
    params(("name" = String, Path, description = "Stream name")),
    responses((status = 200, body = Vec<ConsumerView>), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn consumers(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<ConsumerView>>> {
    caller.require(ApiResource::Consumers, Action::Read)?;
    let s = open(&state, &caller, &name).await?;
    let mut list = s.consumers();
    let mut out = Vec::new();
    while let Some(c) = list.next().await {
        let c = c.map_err(|e| failed(&format!("list consumers of `{name}`"), e))?;
        out.push(consumer_view(c));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
}

fn consumer_view(c: async_nats::jetstream::consumer::Info) -> ConsumerView {
    let pause_until = if c.paused {
        c.config.pause_until.as_ref().map(nats_time)
    } else {
        None
    };
    ConsumerView {
        num_pending: c.num_pending,
        num_ack_pending: c.num_ack_pending,
        num_redelivered: c.num_redelivered,
        num_waiting: c.num_waiting,
        delivered_stream_seq: c.delivered.stream_sequence,
        ack_floor_stream_seq: c.ack_floor.stream_sequence,
        created: nats_time(&c.created),
        paused: c.paused,
        pause_until,
        config: serde_json::to_value(&c.config).unwrap_or_default(),
        name: c.name,
    }
}

/// The consumer `consumer` of the tenant's stream `name`, else 404.
async fn open_consumer(
    state: &AppState,
    caller: &Caller,
    name: &str,
    consumer: &str,
) -> ApiResult<(Stream, async_nats::jetstream::consumer::Info)> {
    let s = open(state, caller, name).await?;
    match s.consumer_info(consumer).await {
        Ok(info) => Ok((s, info)),
        Err(e) => match e.kind() {
            async_nats::jetstream::context::ConsumerInfoErrorKind::NotFound
            | async_nats::jetstream::context::ConsumerInfoErrorKind::InvalidName => Err(
                ApiError::NotFound(format!("consumer `{consumer}` of stream `{name}`")),
            ),
            async_nats::jetstream::context::ConsumerInfoErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::CONSUMER_NOT_FOUND =>
            {
                Err(ApiError::NotFound(format!(
                    "consumer `{consumer}` of stream `{name}`"
                )))
            }
            _ => Err(failed(&format!("read consumer `{consumer}`"), e)),
        },
    }
}

/// Body of `POST /nats/streams/{name}/consumers/{consumer}/pause`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Deliver nothing until this time (RFC 3339, in the future); default 24 hours from now.
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// Pause a consumer of one of your streams (NATS 2.11+): it delivers nothing until `until`
/// (default: 24 hours from now). Send `{}` for the default. Answers the consumer.
#[utoipa::path(post, path = "/api/v1/nats/streams/{name}/consumers/{consumer}/pause", tag = "nats",
    operation_id = "pause_consumer",
    params(("name" = String, Path, description = "Stream name"),
           ("consumer" = String, Path, description = "Consumer name")),
    request_body = PauseRequest,
    responses((status = 200, body = ConsumerView), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn pause_consumer(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, consumer)): Path<(String, String)>,
    JsonBody(body): JsonBody<PauseRequest>,
) -> ApiResult<Json<ConsumerView>> {
    caller.require(ApiResource::Consumers, Action::Pause)?;
    let until_ms = match &body.until {
        Some(text) => {
            let t = parse_time("until", text)?;
            if t <= chrono::Utc::now() {
                return Err(ApiError::Unprocessable(format!(
                    "`until` ({text}) must be in the future"
                )));
            }
            t
        }
        None => chrono::Utc::now() + chrono::Duration::hours(24),
    };
    let until = async_nats::datetime::from_nanos(
        until_ms.timestamp_nanos_opt().unwrap_or(i64::MAX) as i128,
    )
    .map_err(|e| ApiError::Unprocessable(format!("`until` is out of range: {e}")))?;
    let (s, _) = open_consumer(&state, &caller, &name, &consumer).await?;
    s.pause_consumer(&consumer, until)
        .await
        .map_err(|e| failed(&format!("pause consumer `{consumer}`"), e))?;
    let (_, info) = open_consumer(&state, &caller, &name, &consumer).await?;
    Ok(Json(consumer_view(info)))
}

/// Resume a paused consumer of one of your streams. Answers the consumer.
#[utoipa::path(post, path = "/api/v1/nats/streams/{name}/consumers/{consumer}/resume", tag = "nats",
    operation_id = "resume_consumer",
    params(("name" = String, Path, description = "Stream name"),
           ("consumer" = String, Path, description = "Consumer name")),
    responses((status = 200, body = ConsumerView), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn resume_consumer(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, consumer)): Path<(String, String)>,
) -> ApiResult<Json<ConsumerView>> {
    caller.require(ApiResource::Consumers, Action::Pause)?;
    let (s, _) = open_consumer(&state, &caller, &name, &consumer).await?;
    s.resume_consumer(&consumer)
        .await
        .map_err(|e| failed(&format!("resume consumer `{consumer}`"), e))?;
    let (_, info) = open_consumer(&state, &caller, &name, &consumer).await?;
    Ok(Json(consumer_view(info)))
}
