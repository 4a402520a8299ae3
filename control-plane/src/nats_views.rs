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

use std::collections::BTreeMap;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::{IntoParams, ToSchema};

use crate::body::{JsonBody, QueryArgs};
use crate::caller::Caller;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

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

/// One stored message.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct MessageView {
    /// Stream sequence.
    pub seq: u64,
    /// Subject.
    pub subject: String,
    /// When stored (RFC 3339).
    pub time: String,
    /// Headers.
    pub headers: BTreeMap<String, Vec<String>>,
    /// Payload, base64.
    pub payload_base64: String,
    /// Payload as text, when UTF-8.
    pub payload_utf8: Option<String>,
    /// Payload bytes.
    pub size: usize,
}

/// Query of `GET /nats/streams/{name}/messages`: exactly one of the two.
#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// The subject whose last message to read.
    pub last_by_subject: Option<String>,
    /// Read the first message stored at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub start_time: Option<String>,
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

/// Body of `POST /nats/publish`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// Subject; one of your streams must capture it.
    pub subject: String,
    /// Payload as text.
    pub payload: Option<String>,
    /// Payload as base64 (instead of `payload`).
    pub payload_base64: Option<String>,
    /// Headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Where a published message was stored.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct PublishResult {
    /// Stream.
    pub stream: String,
    /// Its sequence there.
    pub seq: u64,
    /// True when JetStream dropped it as a duplicate `Nats-Msg-Id`.
    pub duplicate: bool,
}

pub use weir_pipelines::subject::subject_matches;

/// The tenant's declared streams: (name, subjects).
async fn declared(state: &AppState, caller: &Caller) -> ApiResult<Vec<(String, Vec<String>)>> {
    let rows =
        sqlx::query("SELECT name, spec_json FROM streams WHERE tenant_id = $1 ORDER BY name")
            .bind(&caller.tenant_id)
            .fetch_all(state.db().pool())
            .await?;
    rows.iter()
        .map(|r| {
            let json: String = r.try_get(1)?;
            let v: serde_json::Value =
                serde_json::from_str(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
            let subjects = v
                .pointer("/spec/subjects")
                .and_then(|s| s.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Ok((r.try_get(0)?, subjects))
        })
        .collect()
}

/// The stream `name` if the caller's tenant declared it and it exists on NATS, else 404.
pub(crate) async fn open_declared_stream(
    state: &AppState,
    caller: &Caller,
    name: &str,
) -> ApiResult<Stream> {
    open(state, caller, name).await
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

fn message_view(m: &StreamMessage) -> MessageView {
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, values) in m.headers.iter() {
        headers
            .entry(n.to_string())
            .or_default()
            .extend(values.iter().map(|v| v.to_string()));
    }
    MessageView {
        seq: m.sequence,
        subject: m.subject.to_string(),
        time: rfc3339((m.time.unix_timestamp_nanos() / 1_000_000) as i64),
        headers,
        payload_base64: base64::engine::general_purpose::STANDARD.encode(&m.payload),
        payload_utf8: std::str::from_utf8(&m.payload).ok().map(str::to_string),
        size: m.payload.len(),
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

fn nats_time(t: &async_nats::datetime::DateTime) -> String {
    rfc3339((t.unix_timestamp_nanos() / 1_000_000) as i64)
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

fn parse_time(name: &str, value: &str) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            ApiError::Unprocessable(format!(
                "`{name}` must be an RFC 3339 time such as 2026-01-31T12:00:00Z: {e}"
            ))
        })
}

fn no_message(e: &async_nats::jetstream::stream::LastRawMessageError) -> bool {
    matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound)
}

/// One message of one of your streams, by sequence (works on any retention).
#[utoipa::path(get, path = "/api/v1/nats/streams/{name}/messages/{seq}", tag = "nats",
    params(("name" = String, Path, description = "Stream name"),
           ("seq" = u64, Path, description = "Stream sequence")),
    responses((status = 200, body = MessageView), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn message(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, seq)): Path<(String, u64)>,
) -> ApiResult<Json<MessageView>> {
    caller.require(ApiResource::Messages, Action::Read)?;
    let s = open(&state, &caller, &name).await?;
    match s.get_raw_message(seq).await {
        Ok(m) => Ok(Json(message_view(&m))),
        Err(e) if no_message(&e) => Err(ApiError::NotFound(format!(
            "message {seq} of stream `{name}`"
        ))),
        Err(e) => Err(failed(&format!("read stream `{name}`"), e)),
    }
}

/// One message of one of your streams: the last on a subject (`?last_by_subject=`), or the
/// first stored at or after a time (`?start_time=` RFC 3339; read with the stream's message-get
/// API, not a consumer, so it works on work-queue streams too). Give exactly one.
#[utoipa::path(get, path = "/api/v1/nats/streams/{name}/messages", tag = "nats",
    params(("name" = String, Path, description = "Stream name"), MessageQuery),
    responses((status = 200, body = MessageView), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn last_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<MessageQuery>,
) -> ApiResult<Json<MessageView>> {
    caller.require(ApiResource::Messages, Action::Read)?;
    let subject = match (q.last_by_subject, q.start_time) {
        (Some(subject), None) => subject,
        (None, Some(start)) => {
            let start = parse_time("start_time", &start)
                .map_err(|e| ApiError::bad_request("bad_query", e.to_string()))?;
            open(&state, &caller, &name).await?;
            return first_at_or_after(&state, &caller, &name, start)
                .await
                .map(Json);
        }
        _ => {
            return Err(ApiError::Unprocessable(
                "give exactly one of `last_by_subject` and `start_time`".into(),
            ));
        }
    };
    let s = open(&state, &caller, &name).await?;
    match s.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => Ok(Json(message_view(&m))),
        Err(e) if no_message(&e) => Err(ApiError::NotFound(format!(
            "a message on `{subject}` in stream `{name}`"
        ))),
        Err(e) => Err(failed(&format!("read stream `{name}`"), e)),
    }
}

#[derive(Deserialize)]
struct MsgGetResponse {
    message: async_nats::jetstream::stream::RawMessage,
}

/// The first message stored at or after `start` (`STREAM.MSG.GET` with `start_time`, NATS 2.11+).
async fn first_at_or_after(
    state: &AppState,
    caller: &Caller,
    name: &str,
    start: chrono::DateTime<chrono::Utc>,
) -> ApiResult<MessageView> {
    let nats = state.tenant_nats(caller).await?;
    let request = serde_json::json!({
        "start_time": start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    });
    let response: async_nats::jetstream::response::Response<MsgGetResponse> = nats
        .js()
        .request(format!("STREAM.MSG.GET.{name}"), &request)
        .await
        .map_err(|e| failed(&format!("read stream `{name}`"), e))?;
    match response {
        async_nats::jetstream::response::Response::Ok(r) => {
            let m = StreamMessage::try_from(r.message)
                .map_err(|e| failed(&format!("read stream `{name}`"), e))?;
            Ok(message_view(&m))
        }
        async_nats::jetstream::response::Response::Err { error }
            if error.error_code() == async_nats::jetstream::ErrorCode::NO_MESSAGE_FOUND =>
        {
            Err(ApiError::NotFound(format!(
                "a message at or after {} in stream `{name}`",
                start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )))
        }
        async_nats::jetstream::response::Response::Err { error } => {
            Err(failed(&format!("read stream `{name}`"), error))
        }
    }
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

/// Publish a message to a subject one of your streams captures; answers where it was stored.
#[utoipa::path(post, path = "/api/v1/nats/publish", tag = "nats",
    request_body = PublishRequest,
    responses((status = 200, body = PublishResult), (status = 403, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<PublishRequest>,
) -> ApiResult<Json<PublishResult>> {
    caller.require(ApiResource::Messages, Action::Publish)?;
    crate::subjects::check_subject("subject", &body.subject, false)?;
    let nats = state.tenant_nats(&caller).await?;
    let streams = declared(&state, &caller).await?;
    if !streams
        .iter()
        .any(|(_, subjects)| subjects.iter().any(|f| subject_matches(f, &body.subject)))
    {
        return Err(ApiError::Unprocessable(format!(
            "subject `{}` is not captured by any of your streams ({})",
            body.subject,
            if streams.is_empty() {
                "you have declared none".to_string()
            } else {
                streams
                    .iter()
                    .map(|(n, s)| format!("{n}: {}", s.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        )));
    }
    let payload: bytes::Bytes = match (&body.payload, &body.payload_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable(
                "give `payload` or `payload_base64`, not both".into(),
            ));
        }
        (Some(t), None) => t.clone().into(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| ApiError::Unprocessable(format!("payload_base64 is not base64: {e}")))?
            .into(),
        (None, None) => bytes::Bytes::new(),
    };
    let mut headers = async_nats::HeaderMap::new();
    for (k, v) in &body.headers {
        let name: async_nats::HeaderName = k
            .parse()
            .map_err(|_| ApiError::Unprocessable(format!("header name `{k}` is not valid")))?;
        let value: async_nats::HeaderValue = v
            .parse()
            .map_err(|_| ApiError::Unprocessable(format!("header `{k}` has an invalid value")))?;
        headers.insert(name, value);
    }
    let ack = nats
        .js()
        .publish_with_headers(body.subject.clone(), headers, payload)
        .await
        .map_err(|e| failed(&format!("publish to `{}`", body.subject), e))?
        .await
        .map_err(|e| failed(&format!("publish to `{}`", body.subject), e))?;
    Ok(Json(PublishResult {
        stream: ack.stream,
        seq: ack.sequence,
        duplicate: ack.duplicate,
    }))
}

// ---- Key-value buckets ------------------------------------------------------------------------

/// Most keys or history entries one call lists.
pub const KV_LIST_LIMIT: usize = 10_000;
/// How long one listing of keys or history may take.
const KV_LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A key-value bucket of yours.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct KvBucketView {
    /// Bucket name (`<tenant>_…`).
    pub name: String,
    /// Values stored (all revisions kept).
    pub values: u64,
    /// Revisions kept per key.
    pub history: i64,
    /// Bytes stored.
    pub bytes: u64,
    /// Most bytes the bucket may hold (-1: unlimited).
    pub max_bytes: i64,
    /// Entries expire after this many seconds (0: never).
    pub ttl_seconds: u64,
    /// When created (RFC 3339).
    pub created: String,
}

/// Body of `POST /nats/kv`.
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct KvCreateRequest {
    /// Bucket name: must start with your tenant's name and `_` (`acme_sessions` for tenant
    /// `acme`), then letters, digits, `_` or `-`.
    pub name: String,
    /// Revisions kept per key, 1-64 (default 1).
    #[schema(minimum = 1, maximum = 64)]
    pub history: Option<i64>,
    /// Most bytes the bucket may hold: positive, or -1 for unlimited (default), at most 1 TiB.
    #[schema(minimum = -1, maximum = 1099511627776_i64)]
    pub max_bytes: Option<i64>,
    /// Entries expire after this many seconds, at most 10 years (default 0: never).
    #[schema(minimum = 0, maximum = 315360000)]
    pub ttl_seconds: Option<u64>,
    /// Description (at most 1024 characters).
    #[schema(
        max_length = 1024,
        pattern = "^[^\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069\\ufeff]*$"
    )]
    pub description: Option<String>,
}

/// One revision of a key.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct KvEntryView {
    /// Key.
    pub key: String,
    /// Revision (the bucket stream's sequence).
    pub revision: u64,
    /// When written (RFC 3339).
    pub created: String,
    /// `put`, `delete` or `purge`.
    pub operation: String,
    /// Value, base64.
    pub value_base64: String,
    /// Value as text, when UTF-8.
    pub value_utf8: Option<String>,
}

/// Body of `PUT /nats/kv/{bucket}/keys/{key}`: JSON, the value as text in `value` or as base64
/// in `value_base64` (one of the two).
#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct KvPutRequest {
    /// Value as text.
    pub value: Option<String>,
    /// Value as base64 (instead of `value`).
    pub value_base64: Option<String>,
}

/// Where a value was written.
#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct KvPutResult {
    /// Key.
    pub key: String,
    /// Its new revision.
    pub revision: u64,
}

/// The prefix of the buckets a tenant owns.
pub fn kv_prefix(tenant: &str) -> String {
    format!("{tenant}_")
}

/// Whether tenant `tenant` owns bucket `bucket` (the scoping rule of the module doc).
pub fn owns_bucket(tenant: &str, bucket: &str) -> bool {
    let prefix = kv_prefix(tenant);
    !bucket.starts_with("weir_") && bucket.len() > prefix.len() && bucket.starts_with(&prefix)
}

fn bucket_name_ok(bucket: &str) -> bool {
    !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The tenant's bucket `bucket`, else 404.
async fn open_bucket(
    state: &AppState,
    caller: &Caller,
    bucket: &str,
) -> ApiResult<async_nats::jetstream::kv::Store> {
    let nats = state.tenant_nats(caller).await?;
    if !owns_bucket(&caller.tenant_name, bucket) || !bucket_name_ok(bucket) {
        return Err(ApiError::NotFound(format!("key-value bucket `{bucket}`")));
    }
    if let Err(e) = nats.js().get_stream(format!("KV_{bucket}")).await {
        return match e.kind() {
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Err(ApiError::NotFound(format!("key-value bucket `{bucket}`")))
            }
            _ => Err(failed(&format!("open bucket `{bucket}`"), e)),
        };
    }
    nats.js()
        .get_key_value(bucket)
        .await
        .map_err(|e| match e.kind() {
            // A stream named KV_… that is not a bucket.
            async_nats::jetstream::context::KeyValueErrorKind::InvalidStoreName => {
                ApiError::NotFound(format!("key-value bucket `{bucket}`"))
            }
            _ => failed(&format!("open bucket `{bucket}`"), e),
        })
}

async fn bucket_view(
    store: &async_nats::jetstream::kv::Store,
    bucket: &str,
) -> ApiResult<KvBucketView> {
    let status = store
        .status()
        .await
        .map_err(|e| failed(&format!("read bucket `{bucket}`"), e))?;
    Ok(KvBucketView {
        name: bucket.to_string(),
        values: status.values(),
        history: status.history(),
        bytes: status.info.state.bytes,
        max_bytes: status.info.config.max_bytes,
        ttl_seconds: status.max_age().as_secs(),
        created: nats_time(&status.info.created),
    })
}

fn entry_view(e: &async_nats::jetstream::kv::Entry) -> KvEntryView {
    use async_nats::jetstream::kv::Operation;
    KvEntryView {
        key: e.key.clone(),
        revision: e.revision,
        created: nats_time(&e.created),
        operation: match e.operation {
            Operation::Put => "put",
            Operation::Delete => "delete",
            Operation::Purge => "purge",
        }
        .into(),
        value_base64: base64::engine::general_purpose::STANDARD.encode(&e.value),
        value_utf8: std::str::from_utf8(&e.value).ok().map(str::to_string),
    }
}

fn key_ok(key: &str) -> ApiResult<()> {
    let valid = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!(
            "key `{key}` is not valid: letters, digits and `-/_=.`, no empty `.`-separated token"
        )))
    }
}

/// Your key-value buckets: those named `<tenant>_…` (Weir's own `weir_*` are never listed).
#[utoipa::path(get, path = "/api/v1/nats/kv", tag = "nats",
    description = "Lists the key-value buckets you own: a tenant owns the buckets whose name \
                   starts with its name and `_` (`acme_…` for tenant `acme`). Weir's own \
                   buckets (`weir_*`) are never shown.",
    responses((status = 200, body = Vec<KvBucketView>), (status = 403, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn list_buckets(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<KvBucketView>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let nats = state.tenant_nats(&caller).await?;
    let mut names = nats.js().stream_names();
    let mut buckets = Vec::new();
    while let Some(n) = names.next().await {
        let n = n.map_err(|e| failed("list key-value buckets", e))?;
        if let Some(bucket) = n.strip_prefix("KV_")
            && owns_bucket(&caller.tenant_name, bucket)
        {
            buckets.push(bucket.to_string());
        }
    }
    buckets.sort();
    let mut out = Vec::new();
    for bucket in buckets {
        // Deleted meanwhile, or not a bucket: skipped.
        if let Ok(store) = nats.js().get_key_value(&bucket).await {
            out.push(bucket_view(&store, &bucket).await?);
        }
    }
    Ok(Json(out))
}

/// Create a key-value bucket; its name must start with your tenant's name and `_`.
#[utoipa::path(post, path = "/api/v1/nats/kv", tag = "nats",
    description = "Creates a key-value bucket. A tenant owns the buckets whose name starts with \
                   its name and `_` (`acme_sessions` for tenant `acme`); any other name is 422.",
    request_body = KvCreateRequest,
    responses((status = 201, body = KvBucketView), (status = 403, body = crate::error::Problem),
              (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn create_bucket(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<KvCreateRequest>,
) -> ApiResult<(axum::http::StatusCode, Json<KvBucketView>)> {
    caller.require(ApiResource::Kv, Action::Create)?;
    let prefix = kv_prefix(&caller.tenant_name);
    let name = body.name.clone();
    if !owns_bucket(&caller.tenant_name, &name) || !bucket_name_ok(&name) {
        return Err(ApiError::Unprocessable(format!(
            "bucket name `{name}` must start with `{prefix}` (a tenant owns the buckets named \
             after it) followed by letters, digits, `_` or `-`"
        )));
    }
    let history = body.history.unwrap_or(1);
    if !(1..=64).contains(&history) {
        return Err(ApiError::Unprocessable(format!(
            "`history` must be 1-64, not {history}"
        )));
    }
    let max_bytes = body.max_bytes.unwrap_or(-1);
    if max_bytes == 0 || !(-1..=MAX_BUCKET_BYTES).contains(&max_bytes) {
        return Err(ApiError::Unprocessable(format!(
            "`max_bytes` must be positive, at most {MAX_BUCKET_BYTES} (1 TiB), or -1 for unlimited"
        )));
    }
    let ttl = body.ttl_seconds.unwrap_or(0);
    if ttl > MAX_TTL_SECONDS {
        return Err(ApiError::Unprocessable(format!(
            "`ttl_seconds` must be at most {MAX_TTL_SECONDS} (10 years), not {ttl}; 0 keeps entries forever"
        )));
    }
    if let Some(description) = &body.description {
        crate::text::check_text(
            "the bucket description",
            description,
            crate::text::MAX_DESCRIPTION,
            true,
        )?;
    }
    let nats = state.tenant_nats(&caller).await?;
    if nats.js().get_stream(format!("KV_{name}")).await.is_ok() {
        return Err(ApiError::Conflict(format!(
            "key-value bucket `{name}` already exists"
        )));
    }
    let store = nats
        .js()
        .create_key_value(async_nats::jetstream::kv::Config {
            bucket: name.clone(),
            description: body.description.clone().unwrap_or_default(),
            history,
            max_bytes,
            max_age: std::time::Duration::from_secs(ttl),
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&format!("create bucket `{name}`"), e))?;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(bucket_view(&store, &name).await?),
    ))
}

/// Largest `max_bytes` of a bucket (1 TiB).
const MAX_BUCKET_BYTES: i64 = 1 << 40;
/// Longest `ttl_seconds` of a bucket (10 years).
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// Delete one of your key-value buckets, with all its keys.
#[utoipa::path(delete, path = "/api/v1/nats/kv/{bucket}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)")),
    responses((status = 204, description = "Deleted"), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn delete_bucket(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(ApiResource::Kv, Action::Delete)?;
    open_bucket(&state, &caller, &bucket).await?;
    state
        .tenant_nats(&caller)
        .await?
        .js()
        .delete_key_value(&bucket)
        .await
        .map_err(|e| failed(&format!("delete bucket `{bucket}`"), e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn collect_within<S, T, E>(what: &str, stream: S) -> ApiResult<Vec<T>>
where
    S: futures::Stream<Item = Result<T, E>>,
    E: std::fmt::Display,
{
    let collect = async {
        let mut out = Vec::new();
        futures::pin_mut!(stream);
        while let Some(item) = stream.next().await {
            out.push(item.map_err(|e| failed(what, e))?);
            if out.len() >= KV_LIST_LIMIT {
                break;
            }
        }
        Ok::<_, ApiError>(out)
    };
    tokio::time::timeout(KV_LIST_TIMEOUT, collect)
        .await
        .map_err(|_| failed(what, "timed out"))?
}

/// The keys of one of your buckets (deleted keys are not listed; at most 10 000).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)")),
    responses((status = 200, body = Vec<String>), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn keys(
    State(state): State<AppState>,
    caller: Caller,
    Path(bucket): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    let what = format!("list keys of `{bucket}`");
    let keys = store.keys().await.map_err(|e| failed(&what, e))?;
    let mut out = collect_within(&what, keys).await?;
    out.sort();
    Ok(Json(out))
}

/// The current value of a key of one of your buckets (404 when absent or deleted).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 200, body = KvEntryView), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<Json<KvEntryView>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    match store
        .entry(key.clone())
        .await
        .map_err(|e| failed(&format!("read `{key}` of `{bucket}`"), e))?
    {
        Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
            Ok(Json(entry_view(&e)))
        }
        _ => Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        ))),
    }
}

/// Every kept revision of a key of one of your buckets, oldest first (deletes included).
#[utoipa::path(get, path = "/api/v1/nats/kv/{bucket}/keys/{key}/history", tag = "nats",
    operation_id = "key_history",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 200, body = Vec<KvEntryView>), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn key_history(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<Json<Vec<KvEntryView>>> {
    caller.require(ApiResource::Kv, Action::Read)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let what = format!("read the history of `{key}` in `{bucket}`");
    let history = store.history(&key).await.map_err(|e| failed(&what, e))?;
    let entries = collect_within(&what, history).await?;
    if entries.is_empty() {
        return Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        )));
    }
    Ok(Json(entries.iter().map(entry_view).collect()))
}

/// Write a key of one of your buckets. The body is JSON: `{"value": "text"}` or
/// `{"value_base64": "…"}`.
#[utoipa::path(put, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    request_body = KvPutRequest,
    responses((status = 200, body = KvPutResult), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn put_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
    JsonBody(body): JsonBody<KvPutRequest>,
) -> ApiResult<Json<KvPutResult>> {
    caller.require(ApiResource::Kv, Action::Update)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let value: bytes::Bytes = match (body.value, body.value_base64) {
        (Some(t), None) => t.into(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|e| ApiError::Unprocessable(format!("value_base64 is not base64: {e}")))?
            .into(),
        _ => {
            return Err(ApiError::Unprocessable(
                "give `value` or `value_base64` (exactly one)".into(),
            ));
        }
    };
    let revision = store
        .put(&key, value)
        .await
        .map_err(|e| failed(&format!("write `{key}` of `{bucket}`"), e))?;
    Ok(Json(KvPutResult { key, revision }))
}

/// Delete a key of one of your buckets (a delete marker; history is kept).
#[utoipa::path(delete, path = "/api/v1/nats/kv/{bucket}/keys/{key}", tag = "nats",
    operation_id = "delete_key",
    params(("bucket" = String, Path, description = "Bucket name (`<tenant>_…`)"),
           ("key" = String, Path, description = "Key")),
    responses((status = 204, description = "Deleted"), (status = 403, body = crate::error::Problem),
              (status = 404, body = crate::error::Problem), (status = 422, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    Path((bucket, key)): Path<(String, String)>,
) -> ApiResult<axum::http::StatusCode> {
    caller.require(ApiResource::Kv, Action::Delete)?;
    let store = open_bucket(&state, &caller, &bucket).await?;
    key_ok(&key)?;
    let current = store
        .entry(key.clone())
        .await
        .map_err(|e| failed(&format!("read `{key}` of `{bucket}`"), e))?;
    if !matches!(&current, Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put) {
        return Err(ApiError::NotFound(format!(
            "key `{key}` in bucket `{bucket}`"
        )));
    }
    store
        .delete(&key)
        .await
        .map_err(|e| failed(&format!("delete `{key}` of `{bucket}`"), e))?;
    Ok(axum::http::StatusCode::NO_CONTENT)
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

    #[test]
    fn tenants_own_buckets_by_prefix() {
        use super::owns_bucket;
        assert!(owns_bucket("acme", "acme_sessions"));
        assert!(!owns_bucket("acme", "acme_"));
        assert!(!owns_bucket("acme", "acme-eu_sessions"));
        assert!(!owns_bucket("acme", "beta_sessions"));
        assert!(!owns_bucket("acme", "sessions"));
        assert!(!owns_bucket("weir", "weir_deployments"));
    }
}
