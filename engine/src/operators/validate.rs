//! `validate`: checks each payload against a JSON Schema. An invalid message is dead-lettered
//! (kind `validation`, every failing JSON pointer and rule in the reason), dropped, or tagged
//! with a `Weir-Invalid` header and passed on; it never fails its batch.

use super::{Operator, PlanContext};
use crate::frame::{BatchContext, Frame, Row};
use crate::json_check::FastSchema;
use crate::message::FailureKind;
use crate::schema_failures::failures;
use std::sync::Arc;
use weir_pipelines::spec::{NamedSchema, OnInvalid, ValidateSpec};

/// The header `on_invalid: tag` adds.
pub(crate) const INVALID_HEADER: &str = "Weir-Invalid";

/// A compiled `validate` node.
pub(crate) struct Validate {
    id: Arc<str>,
    /// The compiled schema, or why there is none: a registry `schema` that nothing resolved
    /// (the pipeline runs outside the control plane), so every message is dead-lettered with
    /// that reason rather than passed on unchecked.
    validator: Result<jsonschema::Validator, String>,
    /// The fast "certainly valid" check, when the schema is within its subset.
    fast: Option<FastSchema>,
    on_invalid: OnInvalid,
}

impl Validate {
    /// The fast path's answer for `row` without re-encoding it (`true`: certainly valid),
    /// when it has one: an unedited payload whose top-level fields the decoder recorded.
    fn vouched(&self, row: &Row, ctx: &BatchContext<'_>) -> Option<bool> {
        let fast = self.fast.as_ref()?;
        if !row.edits.is_empty() {
            return None;
        }
        let fields = row
            .fields
            .and_then(|(a, b)| ctx.spans.get(a as usize..b as usize))?;
        // Recorded spans mean the decoder's scanner took this text: valid JSON in UTF-8.
        Some(fast.valid_object(row.base(ctx.inputs), fields))
    }
}

impl Operator for Validate {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let mut leave = Vec::new();
        let validator = match &self.validator {
            Ok(v) => v,
            Err(reason) => {
                for row in &frame.rows {
                    ctx.fail(row, &self.id, FailureKind::Validation, reason.clone());
                }
                return Vec::new();
            }
        };
        for (i, row) in frame.rows.iter().enumerate() {
            let vouched = self.vouched(row, ctx);
            if vouched == Some(true) {
                continue;
            }
            let payload = match row.encode(ctx.inputs, &ctx.spans) {
                Ok(p) => p,
                Err(e) => {
                    ctx.fail_with(row, e);
                    leave.push(i);
                    continue;
                }
            };
            // Not asked yet (an edited payload, or one the decoder did not record): ask now.
            if let (None, Some(fast)) = (vouched, &self.fast)
                && std::str::from_utf8(&payload).is_ok_and(|t| fast.valid(t))
            {
                continue;
            }
            let reasons = match serde_json::from_slice::<serde_json::Value>(&payload) {
                Ok(value) if validator.is_valid(&value) => continue,
                Ok(value) => failures(validator, &value),
                Err(e) => format!("/: the payload is not JSON: {e}"),
            };
            match self.on_invalid {
                OnInvalid::Dlq => {
                    let message = format!("invalid against the node's JSON Schema: {reasons}");
                    ctx.fail(row, &self.id, FailureKind::Validation, message);
                    leave.push(i);
                }
                OnInvalid::Drop => leave.push(i),
                OnInvalid::Tag => ctx.tag(row, INVALID_HEADER, reasons),
            }
        }
        vec![(0, frame.without(&leave))]
    }
}

/// Builds a `validate` node: compiles its JSON Schema (a registry `schema` must have been
/// resolved into `json_schema` by the control plane).
pub(crate) fn build(spec: &ValidateSpec, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let Some(schema) = &spec.json_schema else {
        let Some(r) = &spec.schema else {
            cx.problem(
                "/validate",
                "validate: give `schema: {subject, version}` or `json_schema`".into(),
            );
            return None;
        };
        let reason = format!(
            "registry schema `{}` was not resolved: a pipeline that names a registry schema \
             runs when deployed through the control plane (it writes the schema into \
             `json_schema`); give `json_schema` inline to run it elsewhere",
            r.subject
        );
        return Some(Box::new(Validate {
            id: cx.id.clone(),
            validator: Err(reason),
            fast: None,
            on_invalid: spec.on_invalid,
        }));
    };
    match weir_pipelines::json_refs::validator(
        schema,
        spec.references.iter().map(NamedSchema::pair),
    ) {
        Ok(validator) => Some(Box::new(Validate {
            id: cx.id.clone(),
            validator: Ok(validator),
            fast: FastSchema::compile(schema),
            on_invalid: spec.on_invalid,
        })),
        Err(e) => {
            cx.problem(
                format!("/validate/json_schema{}", e.schema_path()),
                format!("validate: invalid JSON Schema: {e}"),
            );
            None
        }
    }
}
