//! `route`: rules evaluated in order; every matching rule fires (fan-out), a rule with
//! `stop: true` ends matching for that message, and `default` gets the messages no rule matched.

use super::{Operator, PlanContext, predicate_mask};
use crate::frame::{BatchContext, Frame};
use crate::sql::SqlExpr;
use arrow::array::BooleanArray;
use std::sync::Arc;
use weir_pipelines::plan::RulePlan;

/// One compiled rule.
pub(crate) struct Rule {
    pub(crate) when: SqlExpr,
    pub(crate) stop: bool,
}

/// A compiled `route` node. Port `i` is rule `i`; port `rules.len()` is `default`.
pub(crate) struct Route {
    pub(crate) id: Arc<str>,
    pub(crate) rules: Vec<Rule>,
}

impl Operator for Route {
    /// Only its columns: messages it drops never get their text.
    fn reads_payload(&self) -> bool {
        false
    }

    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let n = frame.rows.len();
        let matches: Vec<BooleanArray> = self
            .rules
            .iter()
            .map(|r| predicate_mask(&r.when, &frame, ctx, &self.id))
            .collect();
        // A message whose rule failed has failed as a whole: send it nowhere.
        let failed: Vec<bool> = frame.rows.iter().map(|r| ctx.failed(r)).collect();
        let mut active: Vec<bool> = failed.iter().map(|f| !f).collect();
        let mut matched_any = vec![false; n];
        let mut ports = Vec::with_capacity(self.rules.len() + 1);
        let mut masks = Vec::with_capacity(self.rules.len() + 1);
        for (port, (rule, m)) in self.rules.iter().zip(&matches).enumerate() {
            let fire: Vec<bool> = (0..n).map(|i| active[i] && m.value(i)).collect();
            for i in 0..n {
                if fire[i] {
                    matched_any[i] = true;
                    if rule.stop {
                        active[i] = false;
                    }
                }
            }
            if fire.iter().any(|f| *f) {
                ports.push(port);
                masks.push(BooleanArray::from(fire));
            }
        }
        let default: Vec<bool> = (0..n).map(|i| !failed[i] && !matched_any[i]).collect();
        if default.iter().any(|d| *d) {
            ports.push(self.rules.len());
            masks.push(BooleanArray::from(default));
        }
        // Each row is copied only for its second and later ports.
        ports.into_iter().zip(frame.split(&masks)).collect()
    }
}

/// Builds a `route` node from its rules (ports: the rules in order, then `default`).
pub(crate) fn build(rules: &[RulePlan], cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let mut compiled = Vec::with_capacity(rules.len());
    for (i, r) in rules.iter().enumerate() {
        let what = match &r.name {
            Some(n) => format!("rule `{n}`"),
            None => format!("rule {}", i + 1),
        };
        if let Some(when) = cx.expr(&r.when, &what, format!("/route/{i}/when")) {
            compiled.push(Rule { when, stop: r.stop });
        }
    }
    Some(Box::new(Route {
        id: cx.id.clone(),
        rules: compiled,
    }))
}
