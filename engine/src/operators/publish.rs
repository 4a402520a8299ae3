//! `publish`: the JetStream sink. Renders the subject and header templates per message and
//! emits one output each: headers are the input's plus the rendered ones (a rendered header
//! replaces an input header of the same name), payload the original bytes unless edited.

use super::Operator;
use crate::frame::{BatchContext, Frame};
use crate::message::{ErrorKind, OutputMessage};
use crate::template::{Template, check_subject};
use std::sync::Arc;

/// A compiled `publish` node.
pub(crate) struct Publish {
    pub(crate) id: Arc<str>,
    pub(crate) subject: Template,
    pub(crate) headers: Vec<(String, Template)>,
}

impl Operator for Publish {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        let n = frame.rows.len();
        let needs_batch = self.subject.constant().is_none()
            || self.headers.iter().any(|(_, t)| t.constant().is_none());
        let batch = needs_batch.then(|| frame.batch(ctx.catalog));
        let render = |t: &Template| -> Vec<Result<String, String>> {
            match (t.constant(), &batch) {
                (Some(c), _) => vec![Ok(c.to_string()); n],
                (None, Some(b)) => t.render(ctx.state, b),
                (None, None) => unreachable!("batch built when a template has holes"),
            }
        };
        let subjects = render(&self.subject);
        let headers: Vec<(&str, Vec<Result<String, String>>)> = self
            .headers
            .iter()
            .map(|(k, t)| (k.as_str(), render(t)))
            .collect();
        for (i, row) in frame.rows.iter().enumerate() {
            if ctx.failed(row) {
                continue;
            }
            let subject = match &subjects[i] {
                Ok(s) => s,
                Err(e) => {
                    ctx.fail(row, node, ErrorKind::Template, format!("subject: {e}"));
                    continue;
                }
            };
            if let Err(e) = check_subject(subject) {
                ctx.fail(row, node, ErrorKind::Template, e);
                continue;
            }
            let input = &ctx.inputs[row.input as usize];
            let mut out_headers = input.headers.clone();
            let mut error = None;
            for (name, values) in &headers {
                match &values[i] {
                    Ok(v) if v.contains(['\r', '\n']) => {
                        error = Some(format!("header {name}: the value contains a line break"));
                        break;
                    }
                    Ok(v) => {
                        out_headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                        out_headers.push((name.to_string(), v.clone()));
                    }
                    Err(e) => {
                        error = Some(format!("header {name}: {e}"));
                        break;
                    }
                }
            }
            if let Some(e) = error {
                ctx.fail(row, node, ErrorKind::Template, e);
                continue;
            }
            let payload = match row.encode(ctx.inputs) {
                Ok(p) => p,
                Err(e) => {
                    ctx.fail_with(row, e);
                    continue;
                }
            };
            ctx.outputs[row.input as usize].push(OutputMessage {
                node: node.to_string(),
                subject: subject.clone(),
                headers: out_headers,
                payload,
            });
        }
        vec![(0, frame)]
    }
}
