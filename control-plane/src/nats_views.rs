//! NATS resource views, scoped to the streams a tenant declared (`kind: Stream`): stream info,
//! consumers, single messages (by sequence or last by subject), purge with subject/sequence
//! filters, and publishing to a subject one of the tenant's streams captures. A stream the
//! tenant did not declare is 404, as if it did not exist.

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

use crate::auth::Caller;
use crate::body::{JsonBody, QueryArgs};
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
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
    /// The JetStream configuration as NATS returns it.
    #[schema(value_type = Object)]
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

/// Query of `GET /nats/streams/{name}/messages`.
#[derive(Deserialize, IntoParams, Debug)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LastBySubject {
    /// The subject whose last message to read.
    pub last_by_subject: String,
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

/// Whether NATS subject `subject` is matched by `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

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

/// The stream `name` if the tenant declared it and it exists on NATS, else 404.
async fn open(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Stream> {
    let nats = state.nats()?;
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
    caller.require("streams", "read")?;
    let nats = state.nats()?;
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
    caller.require("streams", "read")?;
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
    caller.require("consumers", "read")?;
    let s = open(&state, &caller, &name).await?;
    let mut list = s.consumers();
    let mut out = Vec::new();
    while let Some(c) = list.next().await {
        let c = c.map_err(|e| failed(&format!("list consumers of `{name}`"), e))?;
        out.push(ConsumerView {
            num_pending: c.num_pending,
            num_ack_pending: c.num_ack_pending,
            num_redelivered: c.num_redelivered,
            num_waiting: c.num_waiting,
            delivered_stream_seq: c.delivered.stream_sequence,
            ack_floor_stream_seq: c.ack_floor.stream_sequence,
            created: rfc3339((c.created.unix_timestamp_nanos() / 1_000_000) as i64),
            config: serde_json::to_value(&c.config).unwrap_or_default(),
            name: c.name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(out))
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
    caller.require("messages", "read")?;
    let s = open(&state, &caller, &name).await?;
    match s.get_raw_message(seq).await {
        Ok(m) => Ok(Json(message_view(&m))),
        Err(e) if no_message(&e) => Err(ApiError::NotFound(format!(
            "message {seq} of stream `{name}`"
        ))),
        Err(e) => Err(failed(&format!("read stream `{name}`"), e)),
    }
}

/// The last message on a subject of one of your streams (`?last_by_subject=`).
#[utoipa::path(get, path = "/api/v1/nats/streams/{name}/messages", tag = "nats",
    params(("name" = String, Path, description = "Stream name"), LastBySubject),
    responses((status = 200, body = MessageView), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn last_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<LastBySubject>,
) -> ApiResult<Json<MessageView>> {
    caller.require("messages", "read")?;
    let s = open(&state, &caller, &name).await?;
    match s.get_last_raw_message_by_subject(&q.last_by_subject).await {
        Ok(m) => Ok(Json(message_view(&m))),
        Err(e) if no_message(&e) => Err(ApiError::NotFound(format!(
            "a message on `{}` in stream `{name}`",
            q.last_by_subject
        ))),
        Err(e) => Err(failed(&format!("read stream `{name}`"), e)),
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
    caller.require("streams", "purge")?;
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
    caller.require("messages", "publish")?;
    let nats = state.nats()?;
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
