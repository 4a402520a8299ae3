//! `split`: one message per element of an array field. The element replaces the payload (so
//! `data.sku` reads an element's field); subject, headers and metadata stay the input's. An
//! element's bytes are a zero-copy slice of the payload. An empty array yields no message; a
//! missing field or one that is not an array is a `shape` error.

use super::{Operator, PlanContext};
use crate::columns::{path_display, split_path};
use crate::frame::{BatchContext, Frame, Row};
use crate::message::FailureKind;
use crate::payload::find_raw;
use serde_json::value::RawValue;
use std::sync::Arc;
use weir_pipelines::SplitSpec;

/// A compiled `split` node.
pub(crate) struct Split {
    pub(crate) id: Arc<str>,
    pub(crate) field: Vec<String>,
}

impl Operator for Split {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        let name = path_display(&self.field);
        let mut rows = Vec::with_capacity(frame.rows.len() * 2);
        for row in &frame.rows {
            let base = match row.encode(ctx.inputs, &ctx.spans) {
                Ok(b) => b,
                Err(e) => {
                    ctx.fail_with(row, e);
                    continue;
                }
            };
            let Ok(text) = std::str::from_utf8(&base) else {
                ctx.fail(
                    row,
                    node,
                    FailureKind::Decode,
                    "payload is not valid UTF-8".into(),
                );
                continue;
            };
            let elements: Result<Vec<&RawValue>, String> = match find_raw(text, &self.field) {
                Ok(Some(raw)) if raw.get().starts_with('[') => {
                    serde_json::from_str(raw.get()).map_err(|e| e.to_string())
                }
                Ok(Some(raw)) => Err(format!(
                    "split: {name} is not an array (found `{}`)",
                    truncate(raw.get(), 60)
                )),
                Ok(None) => Err(format!("split: {name} is missing")),
                Err(e) => Err(e),
            };
            match elements {
                Ok(elements) => {
                    for el in elements {
                        rows.push(Row {
                            input: row.input,
                            base: Some(base.slice_ref(el.get().as_bytes())),
                            edits: Vec::new(),
                            edited_by: None,
                            is_object: el.get().starts_with('{'),
                            fields: None,
                            meta: row.meta.clone(),
                        });
                    }
                }
                Err(e) => ctx.fail(row, node, FailureKind::Shape, e),
            }
        }
        if rows.is_empty() {
            return Vec::new();
        }
        ctx.decode(rows, node)
            .into_iter()
            .map(|frame| (0, frame))
            .collect()
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Builds a `split` node.
pub(crate) fn build(spec: &SplitSpec, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    Some(Box::new(Split {
        id: cx.id.clone(),
        field: split_path(&spec.field),
    }))
}
