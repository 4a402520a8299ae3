//! `wasm`: calls a function of a tenant's WebAssembly module once per frame with every message
//! in it (the batch ABI, `docs/wasm-abi.md`). A message the function passes through unchanged
//! keeps its row and columns; changed outputs are decoded again. When the whole-batch call
//! fails (trap, deadline, malformed result), the messages are retried one by one, so that only
//! the ones that fail alone go to the DLQ (kind `wasm`, with the trap text).

use super::{Operator, PlanContext};
use crate::frame::{BatchContext, Frame, Row, RowMeta};
use crate::message::FailureKind;
use crate::wasm::codec::{self, GuestInput, GuestOutput, GuestResult};
use crate::wasm::host::{CallError, Limits, Runner};
use arrow::array::BooleanArray;
use bytes::Bytes;
use std::sync::Arc;
use weir_pipelines::plan::WasmPlan;

/// A compiled `wasm` node.
pub(crate) struct Wasm {
    id: Arc<str>,
    runner: Runner,
}

/// What the guest saw of one row: its current payload.
struct Prepared {
    row: usize,
    payload: Bytes,
}

impl Wasm {
    /// Calls the function on `items` (rows of `frame`).
    fn call(
        &self,
        frame: &Frame,
        items: &[Prepared],
        ctx: &BatchContext<'_>,
    ) -> Result<Vec<GuestResult>, CallError> {
        let inputs: Vec<GuestInput<'_>> = items
            .iter()
            .map(|p| {
                let row = &frame.rows[p.row];
                GuestInput {
                    subject: row.subject(ctx.inputs),
                    headers: row.headers(ctx.inputs),
                    payload: &p.payload,
                }
            })
            .collect();
        self.runner.call(
            codec::batch_len(&inputs),
            |buf| codec::encode_batch(&inputs, buf),
            |out| codec::decode_results(out, inputs.len()),
        )
    }

    /// The results of every item: from one call, or, when it fails, from one call per item
    /// (`Err` = that item failed alone, with the text).
    fn results(
        &self,
        frame: &Frame,
        items: &[Prepared],
        ctx: &BatchContext<'_>,
    ) -> Result<Vec<Result<GuestResult, String>>, String> {
        match self.call(frame, items, ctx) {
            Ok(results) => Ok(results.into_iter().map(Ok).collect()),
            Err(CallError::Instance(e)) => Err(e),
            Err(CallError::Guest(_)) => items
                .iter()
                .map(|p| match self.call(frame, std::slice::from_ref(p), ctx) {
                    Ok(mut r) => Ok(Ok(r.pop().expect("one result per message"))),
                    Err(CallError::Guest(e)) => Ok(Err(e)),
                    Err(CallError::Instance(e)) => Err(e),
                })
                .collect(),
        }
    }
}

/// The row an output becomes.
fn output_row(row: &Row, payload: &Bytes, out: GuestOutput, ctx: &BatchContext<'_>) -> Row {
    let meta = if out.subject.is_none() && out.headers.is_empty() {
        row.meta.clone()
    } else {
        let mut headers = row.headers(ctx.inputs).to_vec();
        for (k, v) in out.headers {
            headers.retain(|(h, _)| !h.eq_ignore_ascii_case(&k));
            headers.push((k, v));
        }
        Some(Arc::new(RowMeta {
            subject: out
                .subject
                .unwrap_or_else(|| row.subject(ctx.inputs).to_string()),
            headers,
        }))
    };
    Row {
        input: row.input,
        base: Some(out.payload.unwrap_or_else(|| payload.clone())),
        edits: Vec::new(),
        edited_by: None,
        is_object: false,
        fields: None,
        meta,
    }
}

/// A `wasm` node checked without its module (see [`PlanContext::checking`]); never runs
/// batches for real, but fails them plainly if it does.
struct Unresolved {
    id: Arc<str>,
    why: String,
}

impl Operator for Unresolved {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        for row in &frame.rows {
            ctx.fail(row, &self.id, FailureKind::Internal, self.why.clone());
        }
        Vec::new()
    }
}

impl Operator for Wasm {
    fn counters(&self) -> std::collections::BTreeMap<String, i64> {
        self.runner.counters().snapshot()
    }

    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        let mut items = Vec::with_capacity(frame.rows.len());
        for (i, row) in frame.rows.iter().enumerate() {
            if ctx.failed(row) {
                continue;
            }
            match row.encode(ctx.inputs, &ctx.spans) {
                Ok(payload) => items.push(Prepared { row: i, payload }),
                Err(e) => ctx.fail_with(row, e),
            }
        }
        let results = match self.results(&frame, &items, ctx) {
            Ok(r) => r,
            Err(e) => {
                for p in &items {
                    ctx.fail(&frame.rows[p.row], node, FailureKind::Internal, e.clone());
                }
                return Vec::new();
            }
        };
        let mut keep = vec![false; frame.rows.len()];
        let mut changed = Vec::new();
        for (p, result) in items.iter().zip(results) {
            let row = &frame.rows[p.row];
            match result {
                Err(e) => ctx.fail(row, node, FailureKind::Wasm, e),
                Ok(GuestResult::Error(e)) => ctx.fail(row, node, FailureKind::Wasm, e),
                Ok(GuestResult::Filtered) => {}
                Ok(GuestResult::Outputs(outs)) => {
                    if let [only] = outs.as_slice()
                        && only.is_passthrough()
                    {
                        keep[p.row] = true;
                        continue;
                    }
                    changed.extend(
                        outs.into_iter()
                            .map(|o| output_row(row, &p.payload, o, ctx)),
                    );
                }
            }
        }
        let mut out = Vec::with_capacity(2);
        if keep.iter().any(|&k| k) {
            let kept = frame.split(&[BooleanArray::from(keep)]);
            out.extend(kept.into_iter().map(|f| (0, f)));
        }
        if !changed.is_empty() {
            out.extend(ctx.decode(changed, node).into_iter().map(|f| (0, f)));
        }
        out
    }
}

/// Builds a `wasm` node: resolves the tenant's module, compiles it (or takes it from the cache)
/// and checks that it instantiates with the node's config.
pub(crate) fn build(plan: &WasmPlan, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let spec = &plan.spec;
    let module = match crate::wasm::resolve_module(cx.tenant, &spec.module, spec.version) {
        Ok(m) => m,
        Err(e) if cx.checking => {
            return Some(Box::new(Unresolved {
                id: cx.id.clone(),
                why: e,
            }));
        }
        Err(e) => {
            cx.problem("/wasm/module", e);
            return None;
        }
    };
    let compiled =
        match crate::wasm::host::compile(&module.sha256, &module.bytes, spec.fuel.is_some()) {
            Ok(c) => c,
            Err(e) => {
                cx.problem("/wasm/module", format!("module `{}`: {e}", spec.module));
                return None;
            }
        };
    let config = serde_json::to_vec(&spec.config).unwrap_or_else(|_| b"null".to_vec());
    let limits = Limits {
        timeout: plan.timeout,
        max_memory: plan.max_memory,
        fuel: spec.fuel,
    };
    let runner = Runner::new(compiled, &spec.function, config, limits, cx.id.clone());
    if let Err(e) = runner.warm_up() {
        cx.problem(
            "/wasm/function",
            format!("module `{}` version {}: {e}", spec.module, module.version),
        );
        return None;
    }
    Some(Box::new(Wasm {
        id: cx.id.clone(),
        runner,
    }))
}
