//! A pipeline's dead-letter queue: list its entries grouped by error kind, show one (payload,
//! original headers, `Weir-*` headers), redrive entries to the subject they came from
//! (optionally with an edited payload) and purge them. The DLQ is the stream and subject of the
//! pipeline's current version (`spec.errors.dlq`, default subject `dlq.<pipeline>` on `DLQ`);
//! only entries whose `Weir-Pipeline` header names the pipeline and whose `Weir-Tenant` names
//! the caller's tenant are shown or touched. Everything goes through the tenant's own NATS
//! account, and a redrive publishes only to a subject of the pipeline's source.

use std::collections::BTreeMap;

use async_nats::jetstream::message::StreamMessage;
use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use weir_connectors::DlqTarget;
use weir_connectors::dead_letter::headers as wh;
use weir_pipelines::Resource;

use crate::body::{JsonBody, QueryArgs};
use crate::caller::Caller;
use crate::db::rfc3339;
use crate::error::{ApiError, ApiResult};
use crate::nats::failed;
use crate::pipelines::{find, version_text};
use crate::rbac::{Action, ApiResource};
use crate::state::AppState;

/// Most DLQ messages one call reads (listing, `all` redrive, purge by sequence).
pub const SCAN_LIMIT: usize = 10_000;
/// Header workers stamp on the dead letters of fleet deployments: the owning tenant's slug.
pub const TENANT_HEADER: &str = wh::TENANT;

/// Count of entries of one error kind.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct DlqGroup {
    /// `Weir-Error-Kind`.
    pub kind: String,
    /// Entries of that kind.
    pub count: u64,
    /// The newest entry's error.
    pub last_error: String,
    /// The newest entry's sequence.
    pub last_seq: u64,
}

/// One dead letter, as listed.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone, PartialEq)]
pub struct DlqEntry {
    /// Sequence in the DLQ stream.
    pub seq: u64,
    /// When the DLQ stored it (RFC 3339).
    pub time: String,
    /// `Weir-Failed-At`.
    pub failed_at: Option<String>,
    /// `Weir-Error-Kind`.
    pub kind: String,
    /// `Weir-Error`.
    pub error: String,
    /// `Weir-Node`.
    pub node: Option<String>,
    /// `Weir-Source-Subject`: where a redrive publishes it.
    pub source_subject: Option<String>,
    /// `Weir-Source-Seq`.
    pub source_seq: Option<u64>,
    /// `Weir-Attempts`.
    pub attempts: Option<u64>,
    /// Payload bytes.
    pub size: usize,
    /// `Weir-Redrive-Of`: the DLQ sequence of the earlier entry this one was redriven from,
    /// when it failed again after a redrive.
    pub redrive_of: Option<u64>,
}

/// The DLQ of a pipeline: groups over every entry, and a page of entries.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DlqList {
    /// DLQ stream.
    pub stream: String,
    /// DLQ subject of the pipeline.
    pub subject: String,
    /// Entries of the pipeline (up to the scan limit).
    pub total: u64,
    /// True when the DLQ holds more than the scan limit and the counts are partial.
    pub truncated: bool,
    /// Counts by error kind, largest first.
    pub groups: Vec<DlqGroup>,
    /// The page of entries, oldest first.
    pub entries: Vec<DlqEntry>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<u64>,
}

/// One dead letter in full.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct DlqMessage {
    /// The summary fields.
    #[serde(flatten)]
    pub entry: DlqEntry,
    /// The DLQ subject it is stored under.
    pub subject: String,
    /// Payload, base64.
    pub payload_base64: String,
    /// Payload as text, when it is UTF-8.
    pub payload_utf8: Option<String>,
    /// The input's own headers (redriven with it).
    pub headers: BTreeMap<String, Vec<String>>,
    /// The `Weir-*` headers (dropped on redrive).
    pub weir_headers: BTreeMap<String, String>,
}

/// Query of `GET /pipelines/{name}/dlq`.
#[derive(Deserialize, IntoParams, Debug, Default)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DlqQuery {
    /// Only entries of this error kind.
    pub kind: Option<String>,
    /// Page size (default 50, max 500).
    pub limit: Option<i64>,
    /// Entries after this sequence (the previous page's `next_cursor`).
    pub cursor: Option<u64>,
}

/// Body of `POST /pipelines/{name}/dlq/redrive`: `seqs` or `all`.
#[derive(Serialize, Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RedriveRequest {
    /// DLQ sequences to redrive.
    #[serde(default)]
    pub seqs: Vec<u64>,
    /// Redrive every entry of the pipeline.
    #[serde(default)]
    pub all: bool,
    /// With `all`: only the entries of this error kind (`decode`, `expression`, …).
    pub kind: Option<String>,
    /// A replacement payload (text), only with exactly one sequence.
    pub payload: Option<String>,
    /// A replacement payload (base64), only with exactly one sequence.
    pub payload_base64: Option<String>,
}

/// One redriven entry.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct Redriven {
    /// DLQ sequence it had.
    pub seq: u64,
    /// Subject it was published to.
    pub subject: String,
    /// Stream that stored it.
    pub stream: String,
    /// Its sequence there.
    pub stream_seq: u64,
}

/// An entry that could not be redriven (it stays in the DLQ).
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RedriveFailure {
    /// DLQ sequence.
    pub seq: u64,
    /// Why.
    pub error: String,
}

/// What a redrive did.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct RedriveResult {
    /// Published again and removed from the DLQ.
    pub redriven: Vec<Redriven>,
    /// Left in the DLQ.
    pub failed: Vec<RedriveFailure>,
}

/// What a purge did.
#[derive(Serialize, Deserialize, ToSchema, Debug, Clone)]
pub struct PurgeResult {
    /// Entries removed.
    pub purged: u64,
}

/// The DLQ of a pipeline of the caller's tenant.
struct Dlq {
    pipeline: String,
    tenant: String,
    target: DlqTarget,
    /// `None` when the stream does not exist yet (nothing was dead-lettered).
    stream: Option<Stream>,
    /// The tenant's JetStream (its own account in operator mode).
    js: async_nats::jetstream::Context,
    /// Subjects a redrive may publish to: the source's filters, else its stream's subjects.
    redrive_subjects: Vec<String>,
}

impl Dlq {
    fn belongs(&self, m: &StreamMessage) -> bool {
        m.subject.as_str() == self.target.subject
            && header(m, wh::PIPELINE).as_deref() == Some(self.pipeline.as_str())
            && header(m, TENANT_HEADER).as_deref() == Some(self.tenant.as_str())
    }

    /// The pipeline's entries after `after`, up to the scan limit; `(entries, truncated)`.
    async fn scan(&self, after: u64) -> ApiResult<(Vec<StreamMessage>, bool)> {
        let Some(stream) = &self.stream else {
            return Ok((Vec::new(), false));
        };
        let mut out = Vec::new();
        let mut seq = after + 1;
        loop {
            if out.len() >= SCAN_LIMIT {
                return Ok((out, true));
            }
            let next = stream
                .raw_message_builder()
                .sequence(seq)
                .next_by_subject(self.target.subject.clone())
                .send()
                .await;
            match next {
                Ok(m) => {
                    seq = m.sequence + 1;
                    if self.belongs(&m) {
                        out.push(m);
                    }
                }
                Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                    return Ok((out, false));
                }
                Err(e) => return Err(failed("read the DLQ", e)),
            }
        }
    }

    /// One entry of the pipeline, or 404.
    async fn get(&self, seq: u64) -> ApiResult<StreamMessage> {
        let missing = || {
            ApiError::NotFound(format!(
                "DLQ entry {seq} of pipeline `{}` (stream {}, subject {})",
                self.pipeline, self.target.stream, self.target.subject
            ))
        };
        let stream = self.stream.as_ref().ok_or_else(missing)?;
        match stream.get_raw_message(seq).await {
            Ok(m) if self.belongs(&m) => Ok(m),
            Ok(_) => Err(missing()),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Err(missing()),
            Err(e) => Err(failed("read the DLQ", e)),
        }
    }
}

fn header(m: &StreamMessage, name: &str) -> Option<String> {
    m.headers.get(name).map(|v| v.as_str().to_string())
}

fn is_weir_header(name: &str) -> bool {
    name.len() >= 5 && name[..5].eq_ignore_ascii_case("weir-")
}

fn entry_of(m: &StreamMessage) -> DlqEntry {
    let ms = (m.time.unix_timestamp_nanos() / 1_000_000) as i64;
    DlqEntry {
        seq: m.sequence,
        time: rfc3339(ms),
        failed_at: header(m, wh::FAILED_AT),
        kind: header(m, wh::ERROR_KIND).unwrap_or_else(|| "unknown".into()),
        error: header(m, wh::ERROR).unwrap_or_default(),
        node: header(m, wh::NODE),
        source_subject: header(m, wh::SOURCE_SUBJECT),
        source_seq: header(m, wh::SOURCE_SEQ).and_then(|v| v.parse().ok()),
        attempts: header(m, wh::ATTEMPTS).and_then(|v| v.parse().ok()),
        size: m.payload.len(),
        redrive_of: header(m, wh::REDRIVE_OF).and_then(|v| v.parse().ok()),
    }
}

/// Finds the pipeline (404 for another tenant's) and opens its DLQ stream.
async fn open(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Dlq> {
    let nats = state.tenant_nats(caller).await?;
    let json = match find(state, &caller.tenant_id, name).await {
        Ok(p) => version_text(state, &p.id, p.summary.version, name).await?.0,
        // A deleted pipeline: its dead letters stay reachable by its last spec.
        Err(ApiError::NotFound(what)) => deleted_spec(state, &caller.tenant_id, name)
            .await?
            .ok_or(ApiError::NotFound(what))?,
        Err(e) => return Err(e),
    };
    let resource: Resource =
        serde_json::from_str(&json).map_err(|e| ApiError::Internal(e.to_string()))?;
    let Resource::Pipeline(pipeline) = resource else {
        return Err(ApiError::Internal(format!("`{name}` is not a pipeline")));
    };
    let mut target = DlqTarget::for_pipeline(&pipeline);
    if !target.named {
        // Dead letters go to whichever stream captures their subject.
        if let Ok(Some(capturing)) =
            weir_connectors::stream_capturing(nats.js(), &target.subject).await
        {
            target.stream = capturing;
        }
    }
    let stream = match nats.js().get_stream(&target.stream).await {
        Ok(s) => Some(s),
        Err(e) => match e.kind() {
            async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                None
            }
            _ => {
                return Err(failed(
                    &format!("open the DLQ stream `{}`", target.stream),
                    e,
                ));
            }
        },
    };
    let mut redrive_subjects = pipeline.spec.source.subjects.clone();
    if redrive_subjects.is_empty() {
        redrive_subjects = crate::subjects::declared_subjects(
            state,
            &caller.tenant_id,
            &pipeline.spec.source.stream,
        )
        .await?;
    }
    Ok(Dlq {
        pipeline: name.to_string(),
        tenant: caller.tenant_name.clone(),
        target,
        stream,
        js: nats.js.clone(),
        redrive_subjects,
    })
}

/// The last spec of a deleted pipeline of the tenant, if one of that name was deleted.
async fn deleted_spec(state: &AppState, tenant_id: &str, name: &str) -> ApiResult<Option<String>> {
    Ok(crate::store::pipelines::deleted_spec(state.db().pool(), tenant_id, name).await?)
}

/// List a pipeline's dead letters: counts by error kind over the whole DLQ, and a page of
/// entries (filtered by `kind`).
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/dlq", tag = "dlq",
    params(("name" = String, Path, description = "Pipeline name"), DlqQuery),
    responses((status = 200, body = DlqList), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    QueryArgs(q): QueryArgs<DlqQuery>,
) -> ApiResult<Json<DlqList>> {
    caller.require(ApiResource::Dlq, Action::Read)?;
    let dlq = open(&state, &caller, &name).await?;
    let limit = q.limit.unwrap_or(50).clamp(1, 500) as usize;
    let (all, truncated) = dlq.scan(0).await?;
    let mut groups: BTreeMap<String, DlqGroup> = BTreeMap::new();
    let mut entries = Vec::new();
    let mut next_cursor = None;
    for m in &all {
        let e = entry_of(m);
        let g = groups.entry(e.kind.clone()).or_insert_with(|| DlqGroup {
            kind: e.kind.clone(),
            count: 0,
            last_error: String::new(),
            last_seq: 0,
        });
        g.count += 1;
        g.last_error = e.error.clone();
        g.last_seq = e.seq;
        if e.seq > q.cursor.unwrap_or(0) && q.kind.as_ref().is_none_or(|k| *k == e.kind) {
            if entries.len() == limit {
                next_cursor = entries.last().map(|l: &DlqEntry| l.seq);
            } else {
                entries.push(e);
            }
        }
    }
    let mut groups: Vec<DlqGroup> = groups.into_values().collect();
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.kind.cmp(&b.kind)));
    Ok(Json(DlqList {
        stream: dlq.target.stream.clone(),
        subject: dlq.target.subject.clone(),
        total: all.len() as u64,
        truncated,
        groups,
        entries,
        next_cursor,
    }))
}

/// One dead letter: payload, the input's headers and the `Weir-*` headers. Read with a
/// stream message get, so it works on any retention policy.
#[utoipa::path(get, path = "/api/v1/pipelines/{name}/dlq/{seq}", tag = "dlq",
    params(("name" = String, Path, description = "Pipeline name"),
           ("seq" = u64, Path, description = "DLQ stream sequence")),
    responses((status = 200, body = DlqMessage), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path((name, seq)): Path<(String, u64)>,
) -> ApiResult<Json<DlqMessage>> {
    caller.require(ApiResource::Dlq, Action::Read)?;
    let dlq = open(&state, &caller, &name).await?;
    let m = dlq.get(seq).await?;
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut weir_headers = BTreeMap::new();
    for (n, values) in m.headers.iter() {
        let n = n.to_string();
        if is_weir_header(&n) {
            if let Some(v) = values.last() {
                weir_headers.insert(n, v.to_string());
            }
        } else {
            headers
                .entry(n)
                .or_default()
                .extend(values.iter().map(|v| v.to_string()));
        }
    }
    Ok(Json(DlqMessage {
        entry: entry_of(&m),
        subject: m.subject.to_string(),
        payload_base64: base64::engine::general_purpose::STANDARD.encode(&m.payload),
        payload_utf8: std::str::from_utf8(&m.payload).ok().map(str::to_string),
        headers,
        weir_headers,
    }))
}

/// Publishes one dead letter again to its `Weir-Source-Subject` with its own headers (not the
/// `Weir-*` ones), then deletes it from the DLQ.
async fn redrive_one(
    state: &AppState,
    dlq: &Dlq,
    m: &StreamMessage,
    payload: Option<bytes::Bytes>,
) -> Result<Redriven, String> {
    let _ = state;
    let subject = header(m, wh::SOURCE_SUBJECT).ok_or_else(|| {
        format!(
            "it has no {} header, so there is nowhere to send it",
            wh::SOURCE_SUBJECT
        )
    })?;
    // The header is data: it is sent to only when it is a subject of the pipeline's source.
    crate::subjects::check_subject("Weir-Source-Subject", &subject, false)
        .map_err(|e| e.to_string())?;
    if !dlq
        .redrive_subjects
        .iter()
        .any(|f| crate::nats_views::subject_matches(f, &subject))
    {
        return Err(format!(
            "its {} `{subject}` is not a subject of the pipeline's source ({}); \
             a redrive only goes back to the source",
            wh::SOURCE_SUBJECT,
            dlq.redrive_subjects.join(", ")
        ));
    }
    let mut headers = async_nats::HeaderMap::new();
    for (n, values) in m.headers.iter() {
        let text = n.to_string();
        if is_weir_header(&text) || weir_connectors::sink::is_server_header(&text) {
            continue;
        }
        for v in values {
            headers.append(n.clone(), v.clone());
        }
    }
    let stream_name = &dlq.target.stream;
    // Lineage: if it fails again, its new dead letter names this entry.
    headers.insert(wh::REDRIVE_OF, m.sequence.to_string().as_str());
    // A retried redrive of the same entry is deduplicated by JetStream.
    headers.insert(
        "Nats-Msg-Id",
        format!("weir-redrive:{stream_name}:{}", m.sequence).as_str(),
    );
    let ack = dlq
        .js
        .publish_with_headers(
            subject.clone(),
            headers,
            payload.unwrap_or_else(|| m.payload.clone()),
        )
        .await
        .map_err(|e| format!("publish to `{subject}`: {e}"))?
        .await
        .map_err(|e| format!("publish to `{subject}` (is a stream capturing it?): {e}"))?;
    if let Some(stream) = &dlq.stream {
        stream
            .delete_message(m.sequence)
            .await
            .map_err(|e| format!("published, but removing it from the DLQ failed: {e}"))?;
    }
    Ok(Redriven {
        seq: m.sequence,
        subject,
        stream: ack.stream,
        stream_seq: ack.sequence,
    })
}

/// Redrive dead letters: publish each again to the subject it came from with its original
/// payload (or `payload` for a single entry) and headers, then remove it from the DLQ.
#[utoipa::path(post, path = "/api/v1/pipelines/{name}/dlq/redrive", tag = "dlq",
    params(("name" = String, Path, description = "Pipeline name")),
    request_body = RedriveRequest,
    responses((status = 200, body = RedriveResult), (status = 404, body = crate::error::Problem),
              (status = 422, body = crate::error::Problem), (status = 503, body = crate::error::Problem)))]
pub async fn redrive(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<RedriveRequest>,
) -> ApiResult<Json<RedriveResult>> {
    caller.require(ApiResource::Dlq, Action::Redrive)?;
    if body.all != body.seqs.is_empty() {
        return Err(ApiError::Unprocessable(
            "give either `seqs` (a non-empty list of DLQ sequences) or `all: true`".into(),
        ));
    }
    if body.kind.is_some() && !body.all {
        return Err(ApiError::Unprocessable(
            "`kind` selects among all entries: give it with `all: true`, not with `seqs`".into(),
        ));
    }
    let payload = match (&body.payload, &body.payload_base64) {
        (Some(_), Some(_)) => {
            return Err(ApiError::Unprocessable(
                "give `payload` or `payload_base64`, not both".into(),
            ));
        }
        (Some(text), None) => Some(bytes::Bytes::from(text.clone())),
        (None, Some(b64)) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ApiError::Unprocessable(format!("payload_base64 is not base64: {e}")))?
                .into(),
        ),
        (None, None) => None,
    };
    if payload.is_some() && (body.all || body.seqs.len() != 1) {
        return Err(ApiError::Unprocessable(
            "a replacement payload can only be given for exactly one sequence".into(),
        ));
    }
    let dlq = open(&state, &caller, &name).await?;
    let messages = if body.all {
        let mut all = dlq.scan(0).await?.0;
        if let Some(kind) = &body.kind {
            all.retain(|m| header(m, wh::ERROR_KIND).as_deref() == Some(kind.as_str()));
        }
        all
    } else {
        let mut list = Vec::new();
        for seq in &body.seqs {
            list.push(dlq.get(*seq).await?);
        }
        list
    };
    let mut result = RedriveResult {
        redriven: Vec::new(),
        failed: Vec::new(),
    };
    for m in &messages {
        match redrive_one(&state, &dlq, m, payload.clone()).await {
            Ok(r) => result.redriven.push(r),
            Err(error) => result.failed.push(RedriveFailure {
                seq: m.sequence,
                error,
            }),
        }
    }
    Ok(Json(result))
}

/// Purge a pipeline's dead letters (only that pipeline's: by subject when the subject holds
/// nothing else, else entry by entry).
#[utoipa::path(delete, path = "/api/v1/pipelines/{name}/dlq", tag = "dlq",
    params(("name" = String, Path, description = "Pipeline name")),
    responses((status = 200, body = PurgeResult), (status = 404, body = crate::error::Problem),
              (status = 503, body = crate::error::Problem)))]
pub async fn purge(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    caller.require(ApiResource::Dlq, Action::Purge)?;
    let dlq = open(&state, &caller, &name).await?;
    let Some(stream) = &dlq.stream else {
        return Ok((StatusCode::OK, Json(PurgeResult { purged: 0 })).into_response());
    };
    let (mine, truncated) = dlq.scan(0).await?;
    let mut subjects = stream
        .info_with_subjects(&dlq.target.subject)
        .await
        .map_err(|e| failed("read the DLQ stream", e))?;
    let mut on_subject = 0;
    while let Some((subject, count)) = subjects
        .try_next()
        .await
        .map_err(|e| failed("read the DLQ stream's subjects", e))?
    {
        if subject == dlq.target.subject {
            on_subject = count;
        }
    }
    let purged = if !truncated && on_subject as u64 == mine.len() as u64 {
        stream
            .purge()
            .filter(dlq.target.subject.clone())
            .await
            .map_err(|e| failed("purge the DLQ", e))?
            .purged
    } else {
        let mut n = 0;
        for m in &mine {
            if stream
                .delete_message(m.sequence)
                .await
                .map_err(|e| failed("delete a DLQ entry", e))?
            {
                n += 1;
            }
        }
        n
    };
    Ok((StatusCode::OK, Json(PurgeResult { purged })).into_response())
}
