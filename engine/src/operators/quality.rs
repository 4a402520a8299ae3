//! `quality`: named data-quality rules (required, range, pattern, enum, max length, a SQL
//! predicate), each compiled into one SQL predicate over the frame. A failing `reject` rule
//! dead-letters the message naming the rule; a failing `warn` rule adds it to the
//! `Weir-Quality-Warn` header. Per-rule pass and fail counts are the node's counters.

use super::{Operator, PlanContext, predicate_mask};
use crate::columns::Catalog;
use crate::frame::{BatchContext, Frame};
use crate::message::FailureKind;
use crate::sql::SqlExpr;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use weir_pipelines::spec::{QualityRule, QualitySeverity, QualitySpec};

/// The header that names the failed `warn` rules of a message.
pub(crate) const WARN_HEADER: &str = "Weir-Quality-Warn";

struct Rule {
    name: String,
    check: &'static str,
    severity: QualitySeverity,
    predicate: SqlExpr,
    passed: AtomicI64,
    failed: AtomicI64,
}

/// A compiled `quality` node.
pub(crate) struct Quality {
    id: Arc<str>,
    rules: Vec<Rule>,
}

impl Operator for Quality {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let masks: Vec<_> = self
            .rules
            .iter()
            .map(|r| predicate_mask(&r.predicate, &frame, ctx, &self.id))
            .collect();
        let mut leave = Vec::new();
        let (mut passed, mut failed) = (vec![0u64; self.rules.len()], vec![0u64; self.rules.len()]);
        for (i, row) in frame.rows.iter().enumerate() {
            if ctx.failed(row) {
                leave.push(i);
                continue;
            }
            let (mut rejected, mut warned) = (Vec::new(), Vec::new());
            for (k, (rule, mask)) in self.rules.iter().zip(&masks).enumerate() {
                if mask.value(i) {
                    passed[k] += 1;
                    continue;
                }
                failed[k] += 1;
                match rule.severity {
                    QualitySeverity::Reject => {
                        rejected.push(format!("`{}` ({})", rule.name, rule.check))
                    }
                    QualitySeverity::Warn => warned.push(rule.name.as_str()),
                }
            }
            if !rejected.is_empty() {
                let message = format!("quality rules failed: {}", rejected.join(", "));
                ctx.fail(row, &self.id, FailureKind::Validation, message);
                leave.push(i);
            } else if !warned.is_empty() {
                ctx.tag(row, WARN_HEADER, warned.join(","));
            }
        }
        for (k, rule) in self.rules.iter().enumerate() {
            rule.passed.fetch_add(passed[k] as i64, Ordering::Relaxed);
            rule.failed.fetch_add(failed[k] as i64, Ordering::Relaxed);
            ctx.counts.push((format!("{}.pass", rule.name), passed[k]));
            ctx.counts.push((format!("{}.fail", rule.name), failed[k]));
        }
        vec![(0, frame.without(&leave))]
    }

    fn counters(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for r in &self.rules {
            out.insert(format!("{}.pass", r.name), r.passed.load(Ordering::Relaxed));
            out.insert(format!("{}.fail", r.name), r.failed.load(Ordering::Relaxed));
        }
        out
    }
}

/// Builds a `quality` node; every bad rule is a problem at its pointer.
pub(crate) fn build(spec: &QualitySpec, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    if spec.rules.is_empty() {
        cx.problem("/quality/rules", "give at least one rule".into());
        return None;
    }
    let mut rules = Vec::with_capacity(spec.rules.len());
    let mut ok = true;
    for (k, rule) in spec.rules.iter().enumerate() {
        let at = format!("/quality/rules/{k}");
        if spec.rules[..k].iter().any(|r| r.name == rule.name) {
            cx.problem(
                format!("{at}/name"),
                format!("rule name `{}` is used twice", rule.name),
            );
            ok = false;
            continue;
        }
        match predicate_of(rule, &at, cx) {
            Some((check, text, field)) => match cx.expr(&text, check, field) {
                Some(predicate) => rules.push(Rule {
                    name: rule.name.clone(),
                    check,
                    severity: rule.severity,
                    predicate,
                    passed: AtomicI64::new(0),
                    failed: AtomicI64::new(0),
                }),
                None => ok = false,
            },
            None => ok = false,
        }
    }
    ok.then(|| {
        Box::new(Quality {
            id: cx.id.clone(),
            rules,
        }) as Box<dyn Operator>
    })
}

/// The rule's check name, its SQL predicate, and the pointer its errors belong to; `None`
/// (with the problem recorded) when the rule is malformed.
fn predicate_of(
    rule: &QualityRule,
    at: &str,
    cx: &mut PlanContext<'_>,
) -> Option<(&'static str, String, String)> {
    let mut checks = Vec::new();
    if rule.required.is_some() {
        checks.push("required");
    }
    if rule.range.is_some() {
        checks.push("range");
    }
    if rule.pattern.is_some() {
        checks.push("pattern");
    }
    if rule.one_of.is_some() {
        checks.push("enum");
    }
    if rule.max_length.is_some() {
        checks.push("max_length");
    }
    if rule.sql.is_some() {
        checks.push("sql");
    }
    let [check] = checks.as_slice() else {
        cx.problem(
            at.to_string(),
            format!(
                "rule `{}` needs exactly one of `required`, `range`, `pattern`, `enum`, `max_length`, `sql` (it has {})",
                rule.name,
                if checks.is_empty() { "none".into() } else { checks.join(", ") }
            ),
        );
        return None;
    };
    if let Some(sql) = &rule.sql {
        return Some(("sql", format!("(({sql})) IS TRUE"), format!("{at}/sql")));
    }
    let Some(field) = &rule.field else {
        cx.problem(
            at.to_string(),
            format!(
                "rule `{}`: `{check}` needs `field`, the value it checks (e.g. `data.amount`)",
                rule.name
            ),
        );
        return None;
    };
    let v = format!("({field})");
    let text = match *check {
        "required" if rule.required == Some(false) => {
            cx.problem(
                format!("{at}/required"),
                "`required: false` checks nothing; leave the rule out".into(),
            );
            return None;
        }
        "required" => format!("{v} IS NOT NULL"),
        "range" => {
            let range = rule.range.as_ref()?;
            let mut bounds = Vec::new();
            if let Some(min) = range.min {
                bounds.push(format!("{v} >= {min:?}"));
            }
            if let Some(max) = range.max {
                bounds.push(format!("{v} <= {max:?}"));
            }
            if bounds.is_empty() {
                cx.problem(format!("{at}/range"), "give `min`, `max` or both".into());
                return None;
            }
            if let (Some(min), Some(max)) = (range.min, range.max)
                && min > max
            {
                cx.problem(
                    format!("{at}/range"),
                    format!("`min` ({min}) is above `max` ({max})"),
                );
                return None;
            }
            format!("{v} IS NULL OR ({})", bounds.join(" AND "))
        }
        "pattern" => {
            let pattern = rule.pattern.as_deref()?;
            if let Err(e) = check_pattern(pattern, cx) {
                cx.problem(
                    format!("{at}/pattern"),
                    format!("invalid regular expression: {e}"),
                );
                return None;
            }
            format!(
                "{v} IS NULL OR regexp_like(CAST({v} AS VARCHAR), {})",
                literal(pattern)
            )
        }
        "enum" => {
            let values = rule.one_of.as_deref()?;
            let mut items = Vec::with_capacity(values.len());
            for (j, value) in values.iter().enumerate() {
                match value {
                    serde_json::Value::String(s) => items.push(literal(s)),
                    serde_json::Value::Number(n) => items.push(n.to_string()),
                    _ => {
                        cx.problem(
                            format!("{at}/enum/{j}"),
                            "enum values are strings or numbers".into(),
                        );
                        return None;
                    }
                }
            }
            if items.is_empty() {
                cx.problem(format!("{at}/enum"), "give at least one value".into());
                return None;
            }
            format!("{v} IS NULL OR {v} IN ({})", items.join(", "))
        }
        _ => {
            let n = rule.max_length?;
            format!("{v} IS NULL OR character_length(CAST({v} AS VARCHAR)) <= {n}")
        }
    };
    Some((check, text, format!("{at}/field")))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether DataFusion's `regexp_like` accepts `pattern`, by evaluating it once on a constant.
fn check_pattern(pattern: &str, cx: &PlanContext<'_>) -> Result<(), String> {
    use arrow::array::RecordBatchOptions;
    use arrow::datatypes::Schema;
    use arrow::record_batch::RecordBatch;
    let mut scratch = Catalog::default();
    let expr = SqlExpr::compile(
        &format!("regexp_like('', {})", literal(pattern)),
        cx.state,
        &mut scratch,
    )?;
    let batch = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|e| e.to_string())?;
    let evaluated = expr.evaluate(cx.state, &batch)?;
    match evaluated.errors.into_iter().next() {
        // The regex crate's report spans lines; its `error: ...` line says it all.
        Some((_, e)) => Err(e
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .map_or_else(|| e.clone(), str::to_string)),
        None => Ok(()),
    }
}
