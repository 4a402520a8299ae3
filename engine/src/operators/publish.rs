//! `publish`: the JetStream sink. Renders the subject and header templates per message and
//! emits one output each: headers are the input's plus the rendered ones (a rendered header
//! replaces an input header of the same name), payload the original bytes unless edited.
//! With a registry `schema`, the payload is checked against it or encoded with it (Avro,
//! Protobuf) and named in `Weir-Schema-Id`; an output that does not fit is that message's
//! `validation` failure.

use super::{Operator, PlanContext, escape_pointer};
use crate::binary::encode::{OutputEncoder, SCHEMA_ID_HEADER};
use crate::frame::{BatchContext, Frame};
use crate::message::{FailureKind, OutputMessage};
use crate::template::Template;
use arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;
use std::sync::Arc;
use weir_pipelines::PublishSpec;
use weir_pipelines::subject::check_subject;

/// A compiled `publish` node.
pub(crate) struct Publish {
    pub(crate) id: Arc<str>,
    pub(crate) subject: Template,
    pub(crate) headers: Vec<(String, Template)>,
    /// The registry schema outputs are written with (`None`: JSON as it is), or why it cannot
    /// be used (not resolved: every message fails with that reason).
    pub(crate) encoder: Option<Result<OutputEncoder, String>>,
}

/// A template's values for a frame: the same text for every row, or one rendering per row.
enum Rendered<'t> {
    Constant(&'t str),
    PerRow(Vec<Result<String, String>>),
}

impl<'t> Rendered<'t> {
    /// Renders `t` for every row of `batch` (built when some template has holes).
    fn of(t: &'t Template, state: &SessionState, batch: Option<&RecordBatch>) -> Rendered<'t> {
        match (t.constant(), batch) {
            (Some(c), _) => Rendered::Constant(c),
            (None, Some(b)) => Rendered::PerRow(t.render(state, b)),
            (None, None) => unreachable!("batch built when a template has holes"),
        }
    }

    /// Row `i`'s text, moved out of a per-row rendering (each row is read once).
    fn take(&mut self, i: usize) -> Result<String, String> {
        match self {
            Rendered::Constant(c) => Ok(c.to_string()),
            Rendered::PerRow(v) => std::mem::replace(&mut v[i], Ok(String::new())),
        }
    }
}

impl Publish {
    /// `payload` written with the node's registry schema, and the header naming the schema
    /// added to `headers`; or why it does not fit (or the schema cannot be used).
    fn encode(
        &self,
        payload: bytes::Bytes,
        headers: &mut Vec<(String, String)>,
    ) -> Result<bytes::Bytes, String> {
        let encoder = match &self.encoder {
            None => return Ok(payload),
            Some(Err(reason)) => return Err(reason.clone()),
            Some(Ok(encoder)) => encoder,
        };
        let encoded = encoder.encode(payload)?;
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(SCHEMA_ID_HEADER));
        headers.push((SCHEMA_ID_HEADER.to_string(), encoder.id.to_string()));
        Ok(encoded)
    }
}

impl Operator for Publish {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        let needs_batch = self.subject.constant().is_none()
            || self.headers.iter().any(|(_, t)| t.constant().is_none());
        let batch = needs_batch.then(|| frame.batch(ctx.catalog));
        let render = |t| Rendered::of(t, ctx.state, batch.as_ref());
        let mut subjects = render(&self.subject);
        // A constant subject was checked when the pipeline compiled.
        let check = matches!(subjects, Rendered::PerRow(_));
        let mut headers: Vec<(&str, Rendered<'_>)> = self
            .headers
            .iter()
            .map(|(k, t)| (k.as_str(), render(t)))
            .collect();
        for (i, row) in frame.rows.iter().enumerate() {
            if ctx.failed(row) {
                continue;
            }
            let subject = match subjects.take(i) {
                Ok(s) => s,
                Err(e) => {
                    ctx.fail(row, node, FailureKind::Template, format!("subject: {e}"));
                    continue;
                }
            };
            if check && let Err(e) = check_subject(&subject) {
                ctx.fail(row, node, FailureKind::Template, e);
                continue;
            }
            let input_headers = row.headers(ctx.inputs);
            let mut out_headers = Vec::with_capacity(input_headers.len() + headers.len());
            out_headers.extend(input_headers.iter().cloned());
            if let Some(tags) = ctx.tags.get(row.input as usize) {
                for (name, value) in tags {
                    out_headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                    out_headers.push((name.clone(), value.clone()));
                }
            }
            let mut error = None;
            for (name, values) in &mut headers {
                match values.take(i) {
                    Ok(v) if v.contains(['\r', '\n']) => {
                        error = Some(format!("header {name}: the value contains a line break"));
                        break;
                    }
                    Ok(v) => {
                        out_headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                        out_headers.push((name.to_string(), v));
                    }
                    Err(e) => {
                        error = Some(format!("header {name}: {e}"));
                        break;
                    }
                }
            }
            if let Some(e) = error {
                ctx.fail(row, node, FailureKind::Template, e);
                continue;
            }
            let mut payload = match row.encode(ctx.inputs, &ctx.spans) {
                Ok(p) => p,
                Err(e) => {
                    ctx.fail_with(row, e);
                    continue;
                }
            };
            if self.encoder.is_some() {
                match self.encode(payload, &mut out_headers) {
                    Ok(p) => payload = p,
                    Err(reason) => {
                        ctx.fail(row, node, FailureKind::Validation, reason);
                        continue;
                    }
                }
            }
            ctx.emitted += 1;
            ctx.outputs[row.input as usize].push(OutputMessage {
                node: Arc::clone(&self.id),
                subject,
                headers: out_headers,
                payload,
            });
        }
        vec![(0, frame)]
    }
}

/// Builds a `publish` node: its subject and header templates, a constant subject checked now.
pub(crate) fn build(spec: &PublishSpec, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let mut ok = true;
    cx.reading("/publish/subject");
    let subject = match Template::compile(&spec.subject, cx.state, cx.catalog) {
        Ok(t) => {
            let t = t.subject();
            if let Some(c) = t.constant()
                && let Err(e) = check_subject(c)
            {
                ok = false;
                cx.problem("/publish/subject", e);
            }
            Some(t)
        }
        Err(es) => {
            for e in es {
                cx.problem("/publish/subject", format!("subject: {e}"));
            }
            None
        }
    };
    let mut headers = Vec::with_capacity(spec.headers.len());
    for (k, v) in &spec.headers {
        let field = format!("/publish/headers/{}", escape_pointer(k));
        cx.reading(&field);
        match Template::compile(v, cx.state, cx.catalog) {
            Ok(t) => headers.push((k.clone(), t)),
            Err(es) => {
                ok = false;
                for e in es {
                    cx.problem(field.clone(), format!("header {k}: {e}"));
                }
            }
        }
    }
    let encoder = match OutputEncoder::build(spec) {
        Ok(e) => e.map(Ok),
        // Checked without the registry: the schema is resolved at deploy.
        Err(_) if cx.checking && spec.schema.as_ref().is_some_and(|s| s.writer.is_none()) => None,
        Err(e) if spec.schema.as_ref().is_some_and(|s| s.writer.is_none()) => Some(Err(e)),
        Err(e) => {
            cx.problem("/publish/schema", e);
            return None;
        }
    };
    let subject = subject.filter(|_| ok)?;
    Some(Box::new(Publish {
        id: cx.id.clone(),
        subject,
        headers,
        encoder,
    }))
}
