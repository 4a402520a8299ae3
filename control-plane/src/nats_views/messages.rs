//! Messages of a declared stream (by sequence, last by subject, first at or after a time), and
//! publishing to a subject one of the tenant's streams captures.

use std::collections::BTreeMap;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use axum::Json;
use axum::extract::{Path, State};
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::body::{JsonBody, QueryArgs};
use crate::caller::Caller;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

use super::{declared, open, parse_time, subject_matches};

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
