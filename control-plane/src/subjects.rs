//! Subjects and stream names that enter from tenants, checked where they enter (a second line
//! behind NATS accounts): no root wildcard, nothing under `$JS.`, `$KV.`, `$O.`, `$SYS.` (any
//! `$` subject) or `_INBOX.`, and no stream named like a KV bucket or object store.

use weir_pipelines::PipelineResource as Pipeline;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Checks one subject (a filter when `wildcards`): its first token must be a literal that is
/// not a NATS or Weir internal namespace.
pub fn check_subject(what: &str, subject: &str, wildcards: bool) -> ApiResult<()> {
    let refuse = |why: &str| {
        Err(ApiError::Unprocessable(format!(
            "{what} `{subject}` {why}; use a subject of your own such as `orders.created`"
        )))
    };
    if subject.is_empty() || subject.chars().any(char::is_whitespace) {
        return refuse("must be non-empty without spaces");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    if tokens.iter().any(|t| t.is_empty()) {
        return refuse("has an empty token");
    }
    let first = tokens[0];
    if first == ">" || first == "*" {
        return refuse(
            "starts with a wildcard, which would reach every subject, NATS internals included",
        );
    }
    if first.starts_with('$') {
        return refuse("is in a NATS internal namespace (`$JS`, `$KV`, `$O`, `$SYS`, …)");
    }
    if first.starts_with("_INBOX") || first.starts_with("_R_") {
        return refuse("is in the reply-inbox namespace");
    }
    if !wildcards && tokens.iter().any(|t| *t == "*" || *t == ">") {
        return refuse("may not hold wildcards here");
    }
    Ok(())
}

/// Checks a subject template (`orders.vip.{data.region}`): the first token must be literal
/// and pass [`check_subject`], so that no value can steer it into another namespace.
pub fn check_template(what: &str, template: &str) -> ApiResult<()> {
    let first = template.split('.').next().unwrap_or_default();
    if first.contains('{') {
        return Err(ApiError::Unprocessable(format!(
            "{what} `{template}` must start with a literal token (not a template), so that no \
             message can steer it into another namespace"
        )));
    }
    check_subject(what, first, false)
}

/// Checks a stream name a tenant declares: not `KV_…` or `OBJ_…` (those are KV buckets and
/// object stores, reached through their own views).
pub fn check_stream_name(name: &str) -> ApiResult<()> {
    if name.starts_with("KV_") || name.starts_with("OBJ_") {
        return Err(ApiError::Unprocessable(format!(
            "stream name `{name}` is reserved: `KV_` and `OBJ_` streams back key-value buckets \
             and object stores; use /api/v1/nats/kv for buckets"
        )));
    }
    Ok(())
}

/// Checks every subject a pipeline names: source filters, publish templates, DLQ subject and
/// stream names.
pub fn check_pipeline(p: &Pipeline) -> ApiResult<()> {
    check_stream_name(&p.spec.source.stream)?;
    for s in &p.spec.source.subjects {
        check_subject("source subject", s, true)?;
    }
    for node in &p.spec.nodes {
        if let Some(publish) = &node.publish {
            check_template(
                &format!("publish subject of node `{}`", node.id),
                &publish.subject,
            )?;
        }
    }
    if let Some(dlq) = &p.spec.errors.dlq {
        check_subject("DLQ subject", &dlq.subject, false)?;
        if let Some(stream) = &dlq.stream {
            check_stream_name(stream)?;
        }
    }
    Ok(())
}

/// The subjects the tenant declared for its stream `stream` (empty when not declared).
pub async fn declared_subjects(
    state: &AppState,
    tenant_id: &str,
    stream: &str,
) -> ApiResult<Vec<String>> {
    let row = crate::store::streams::find(state.db().pool(), tenant_id, stream).await?;
    let subjects = row.map(|r| r.subjects()).transpose();
    Ok(subjects
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_root_subjects_are_refused() {
        for bad in [
            "",
            ">",
            "*.>",
            "$KV.b.k",
            "$JS.API.STREAM.DELETE.X",
            "$SYS.x",
            "_INBOX.a",
            "a..b",
        ] {
            assert!(check_subject("s", bad, true).is_err(), "{bad}");
        }
        for good in ["orders.>", "orders.*.eu", "dlq.p"] {
            assert!(check_subject("s", good, true).is_ok(), "{good}");
        }
        assert!(check_subject("s", "orders.>", false).is_err());
        assert!(check_template("t", "{data.ns}.x").is_err());
        assert!(check_template("t", "$KV.{data.k}").is_err());
        assert!(check_template("t", "orders.vip.{data.region}").is_ok());
        assert!(check_stream_name("KV_weir_deployments").is_err());
        assert!(check_stream_name("OBJ_x").is_err());
        assert!(check_stream_name("ORDERS").is_ok());
    }
}
