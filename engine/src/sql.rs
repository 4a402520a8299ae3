//! SQL expressions of a pipeline: parsed once, `data.<path>` / `headers['X']` rewritten into
//! column references, and planned into DataFusion physical expressions, once per batch schema
//! (undeclared payload paths get their type from the data, so a pipeline sees one or a few).

use crate::columns::{Catalog, ColumnSource};
use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::execution::SessionState;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::{
    AccessExpr, Expr as SqlAst, ExprWithAlias, Ident, Subscript, Value, ValueWithSpan,
    visit_expressions, visit_expressions_mut,
};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

/// A physical plan of an expression for one batch schema (its column types).
type PlanForSchema = (Vec<DataType>, Arc<dyn PhysicalExpr>);

/// One SQL expression of the pipeline, compiled.
pub(crate) struct SqlExpr {
    /// The expression as the user wrote it.
    pub(crate) text: String,
    ast: ExprWithAlias,
    plans: Mutex<Vec<PlanForSchema>>,
}

/// The result of evaluating an expression over a batch: one value per row, and the rows for
/// which evaluation failed (their value in `values` is null).
pub(crate) struct Evaluated {
    pub(crate) values: ArrayRef,
    pub(crate) errors: Vec<(usize, String)>,
}

impl SqlExpr {
    /// Parses `text`, rewrites payload/header/metadata references into columns of `catalog`
    /// (adding them), and checks that it plans against the compile-time schema.
    pub(crate) fn compile(
        text: &str,
        state: &SessionState,
        catalog: &mut Catalog,
    ) -> Result<SqlExpr, String> {
        let dialect = state.config().options().sql_parser.dialect;
        let mut ast = state
            .sql_to_expr_with_alias(text, &dialect)
            .map_err(|e| format!("invalid SQL expression `{text}`: {}", strip_df(&e)))?;
        let mut problem: Option<String> = None;
        let _ = visit_expressions_mut(&mut ast.expr, |expr| {
            if let Err(e) = rewrite(expr, catalog) {
                problem.get_or_insert(e);
            }
            ControlFlow::<()>::Continue(())
        });
        if let Some(p) = problem {
            return Err(format!("in `{text}`: {p}"));
        }
        let mut uses_payload = false;
        let mut bare_headers = false;
        let _ = visit_expressions(&ast.expr, |expr| {
            if let SqlAst::Identifier(i) = expr {
                uses_payload |= i.value == "data" && i.quote_style == Some('"');
                bare_headers |= is_root(i, "headers");
            }
            ControlFlow::<()>::Continue(())
        });
        if bare_headers {
            return Err(format!(
                "in `{text}`: `headers` is read one header at a time: `headers['X-Name']`"
            ));
        }
        if uses_payload {
            catalog.add(ColumnSource::Payload);
        }
        Ok(SqlExpr {
            text: text.to_string(),
            ast,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// The logical expression for a batch schema (for aggregate calls, which the window
    /// operator lowers itself).
    pub(crate) fn logical(
        &self,
        state: &SessionState,
        schema: &SchemaRef,
    ) -> Result<datafusion::logical_expr::Expr, String> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| format!("internal: schema: {e}"))?;
        state
            .create_logical_expr_from_sql_expr(self.ast.clone(), &df_schema)
            .map_err(|e| format!("`{}`: {}", self.text, strip_df(&e)))
    }

    /// The physical expression for a batch schema, planned on first use and cached.
    pub(crate) fn physical(
        &self,
        state: &SessionState,
        schema: &SchemaRef,
    ) -> Result<Arc<dyn PhysicalExpr>, String> {
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, plan)) = plans.iter().find(|(t, _)| *t == types) {
            return Ok(Arc::clone(plan));
        }
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| format!("internal: schema: {e}"))?;
        let logical = state
            .create_logical_expr_from_sql_expr(self.ast.clone(), &df_schema)
            .map_err(|e| format!("`{}`: {}", self.text, strip_df(&e)))?;
        let plan = state
            .create_physical_expr(logical, &df_schema)
            .map_err(|e| format!("`{}`: {}", self.text, strip_df(&e)))?;
        // A pipeline sees few distinct schemas; keep the cache bounded anyway.
        if plans.len() >= 64 {
            plans.remove(0);
        }
        plans.push((types, Arc::clone(&plan)));
        Ok(plan)
    }

    /// Evaluates over every row of `batch`. When evaluation fails for the batch as a whole
    /// (one row's failing cast fails the whole kernel), evaluates row by row so that only the
    /// culprits fail.
    pub(crate) fn evaluate(
        &self,
        state: &SessionState,
        batch: &RecordBatch,
    ) -> Result<Evaluated, String> {
        let plan = self.physical(state, &batch.schema())?;
        let n = batch.num_rows();
        match eval_plan(&plan, batch) {
            Ok(values) => Ok(Evaluated {
                values,
                errors: Vec::new(),
            }),
            Err(batch_error) => {
                if n <= 1 {
                    let values = arrow::array::new_null_array(&DataType::Null, n);
                    let errors = (0..n).map(|i| (i, batch_error.clone())).collect();
                    return Ok(Evaluated { values, errors });
                }
                let mut parts: Vec<ArrayRef> = Vec::with_capacity(n);
                let mut errors = Vec::new();
                let mut data_type: Option<DataType> = None;
                let mut results = Vec::with_capacity(n);
                for i in 0..n {
                    match eval_plan(&plan, &batch.slice(i, 1)) {
                        Ok(a) => {
                            if !matches!(a.data_type(), DataType::Null) {
                                data_type.get_or_insert_with(|| a.data_type().clone());
                            }
                            results.push(Some(a));
                        }
                        Err(e) => {
                            errors.push((i, e));
                            results.push(None);
                        }
                    }
                }
                let dt = data_type.unwrap_or(DataType::Null);
                for r in results {
                    match r {
                        Some(a) if a.data_type() == &dt => parts.push(a),
                        Some(a) => parts.push(
                            arrow::compute::cast(&a, &dt)
                                .unwrap_or_else(|_| arrow::array::new_null_array(&dt, 1)),
                        ),
                        None => parts.push(arrow::array::new_null_array(&dt, 1)),
                    }
                }
                let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
                let values =
                    arrow::compute::concat(&refs).map_err(|e| format!("internal: concat: {e}"))?;
                Ok(Evaluated { values, errors })
            }
        }
    }
}

fn eval_plan(plan: &Arc<dyn PhysicalExpr>, batch: &RecordBatch) -> Result<ArrayRef, String> {
    plan.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(|e| strip_df(&e))
}

/// DataFusion errors carry a context prefix ("Arrow error: ", "Error during planning: ") that
/// helps nobody writing a pipeline; keep the message.
pub(crate) fn strip_df(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    let mut s = s.as_str();
    for prefix in [
        "Error during planning: ",
        "Arrow error: ",
        "Execution error: ",
        "Cast error: ",
        "SQL error: ",
        "Schema error: ",
        "Optimizer rule 'simplify_expressions' failed\ncaused by\n",
        "This feature is not implemented: ",
    ] {
        while let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    s.trim().to_string()
}

fn quoted(name: String) -> SqlAst {
    SqlAst::Identifier(Ident::with_quote('"', name))
}

fn string_literal(e: &SqlAst) -> Option<&str> {
    match e {
        SqlAst::Value(ValueWithSpan {
            value: Value::SingleQuotedString(s) | Value::DoubleQuotedString(s),
            ..
        }) => Some(s),
        _ => None,
    }
}

fn is_root(ident: &Ident, name: &str) -> bool {
    ident.quote_style.is_none() && ident.value.eq_ignore_ascii_case(name)
}

/// Rewrites one AST node in place (the visitor calls this bottom-up for every expression).
fn rewrite(expr: &mut SqlAst, catalog: &mut Catalog) -> Result<(), String> {
    match expr {
        SqlAst::Identifier(ident) if ident.quote_style.is_none() => {
            let source = match ident.value.to_ascii_lowercase().as_str() {
                "subject" => ColumnSource::Subject,
                "stream" => ColumnSource::Stream,
                "seq" => ColumnSource::Seq,
                "timestamp" => ColumnSource::Timestamp,
                "data" => ColumnSource::Payload,
                // The root of `headers['X-Name']`, rewritten with its parent; a bare
                // `headers` left after the pass is refused below.
                "headers" => return Ok(()),
                _ => return Ok(()),
            };
            let name = source.name();
            // A bare `data` may still turn out to be the root of `data['a-b']`; whether the
            // payload column is needed is decided after the whole pass.
            if source != ColumnSource::Payload {
                catalog.add(source);
            }
            *expr = quoted(name);
        }
        SqlAst::CompoundIdentifier(idents) if idents.len() >= 2 => {
            if is_root(&idents[0], "data") {
                let path: Vec<String> = idents[1..].iter().map(|i| i.value.clone()).collect();
                let source = ColumnSource::Path(path);
                let name = source.name();
                catalog.add(source);
                *expr = quoted(name);
            } else if is_root(&idents[0], "headers") {
                return Err(format!(
                    "write a header as `headers['{}']`",
                    idents[1..]
                        .iter()
                        .map(|i| i.value.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                ));
            }
        }
        SqlAst::CompoundFieldAccess { root, access_chain } => {
            // After the bottom-up pass, a bare `data` root is already `"data"` (quoted).
            let (is_data, is_headers, mut path) = match root.as_ref() {
                SqlAst::Identifier(i) if i.value == "data" && i.quote_style == Some('"') => {
                    (true, false, Vec::new())
                }
                SqlAst::Identifier(i) if is_root(i, "headers") => (false, true, Vec::new()),
                SqlAst::CompoundIdentifier(ids) if is_root(&ids[0], "data") => (
                    true,
                    false,
                    ids[1..].iter().map(|i| i.value.clone()).collect(),
                ),
                _ => (false, false, Vec::new()),
            };
            if !is_data && !is_headers {
                return Ok(());
            }
            for access in access_chain.iter() {
                let seg = match access {
                    AccessExpr::Dot(SqlAst::Identifier(i)) => Some(i.value.clone()),
                    AccessExpr::Subscript(Subscript::Index { index }) => {
                        string_literal(index).map(str::to_string)
                    }
                    _ => None,
                };
                match seg {
                    Some(s) => path.push(s),
                    None => {
                        return Err(format!(
                            "`{access}`: only field names are supported here, as `['name']` or `.name`"
                        ));
                    }
                }
            }
            let source = if is_headers {
                if path.len() != 1 {
                    return Err("a header is read as `headers['X-Name']`".into());
                }
                ColumnSource::Header(path[0].to_ascii_lowercase())
            } else {
                ColumnSource::Path(path)
            };
            let name = source.name();
            catalog.add(source);
            *expr = quoted(name);
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::session_state::SessionStateBuilder;

    #[test]
    fn rewrites_paths_and_headers() {
        let state = SessionStateBuilder::new().with_default_features().build();
        let mut catalog = Catalog::default();
        let e = SqlExpr::compile(
            "lower(headers['X-Tenant']) = data['a-b'] AND data.c.d > 1",
            &state,
            &mut catalog,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = catalog.columns().map(|(_, c)| c.name()).collect();
        assert_eq!(
            names,
            ["headers['x-tenant']", "data['a-b']", "data.c.d"],
            "{:?}",
            e.ast
        );
    }
}
