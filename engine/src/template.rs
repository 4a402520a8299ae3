//! Subject and header templates: literal text with `{expr}` holes (`{{` and `}}` for literal
//! braces). Each hole is a SQL expression compiled once and evaluated per batch; a hole that is
//! null or missing for a message is that message's error, never the text "null".

use crate::columns::Catalog;
use crate::sql::SqlExpr;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;
use weir_pipelines::template::{Part, parse};

/// A piece of a template.
pub(crate) enum Piece {
    /// Literal text.
    Text(String),
    /// A `{expr}` hole.
    Hole(Box<SqlExpr>),
}

/// A compiled template.
pub(crate) struct Template {
    pieces: Vec<Piece>,
    /// A subject template: each hole fills exactly one token, so a value holding `.`, a
    /// wildcard or whitespace is that message's error (it would publish elsewhere).
    one_token: bool,
}

impl Template {
    /// Compiles a template; every problem is reported.
    pub(crate) fn compile(
        text: &str,
        state: &SessionState,
        catalog: &mut Catalog,
    ) -> Result<Template, Vec<String>> {
        let parts = parse(text).map_err(|e| vec![e])?;
        let mut pieces = Vec::with_capacity(parts.len());
        let mut problems = Vec::new();
        for part in parts {
            match part {
                Part::Expr(s) => match SqlExpr::compile(&s, state, catalog) {
                    Ok(e) => pieces.push(Piece::Hole(Box::new(e))),
                    Err(e) => problems.push(e),
                },
                Part::Literal(s) if s.is_empty() => {}
                Part::Literal(s) => pieces.push(Piece::Text(s)),
            }
        }
        if problems.is_empty() {
            Ok(Template {
                pieces,
                one_token: false,
            })
        } else {
            Err(problems)
        }
    }

    /// The template of a subject: each hole's value must be one token.
    pub(crate) fn subject(mut self) -> Template {
        self.one_token = true;
        self
    }

    /// Whether the template is plain text.
    pub(crate) fn constant(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Renders every row of `batch`: `Ok(text)` or `Err(why)` per row.
    pub(crate) fn render(
        &self,
        state: &SessionState,
        batch: &RecordBatch,
    ) -> Vec<Result<String, String>> {
        let n = batch.num_rows();
        let mut out: Vec<Result<String, String>> = vec![Ok(String::new()); n];
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => {
                    for r in out.iter_mut().flatten() {
                        r.push_str(t);
                    }
                }
                Piece::Hole(expr) => {
                    let values = match expr.evaluate(state, batch) {
                        Ok(ev) => {
                            for (i, message) in ev.errors {
                                if out[i].is_ok() {
                                    out[i] = Err(format!("`{{{}}}`: {message}", expr.text));
                                }
                            }
                            ev.values
                        }
                        Err(message) => {
                            for r in out.iter_mut() {
                                if r.is_ok() {
                                    *r = Err(format!("`{{{}}}`: {message}", expr.text));
                                }
                            }
                            continue;
                        }
                    };
                    let text: ArrayRef = if values.data_type() == &DataType::Utf8 {
                        values
                    } else {
                        match arrow::compute::cast(&values, &DataType::Utf8) {
                            Ok(t) => t,
                            Err(e) => {
                                for r in out.iter_mut() {
                                    if r.is_ok() {
                                        *r = Err(format!(
                                            "`{{{}}}` cannot be shown as text: {e}",
                                            expr.text
                                        ));
                                    }
                                }
                                continue;
                            }
                        }
                    };
                    let text = text.as_string::<i32>();
                    for (i, r) in out.iter_mut().enumerate() {
                        if let Ok(s) = r {
                            if text.is_null(i) {
                                *r = Err(format!(
                                    "`{{{}}}` has no value for this message (a field it reads is missing or null)",
                                    expr.text
                                ));
                            } else if self.one_token
                                && let Some(c) = text
                                    .value(i)
                                    .chars()
                                    .find(|c| matches!(c, '.' | '*' | '>') || c.is_whitespace())
                            {
                                *r = Err(format!(
                                    "`{{{}}}` is `{}`, which holds {:?}: a placeholder fills one subject token, so this message would go to another subject; clean the value, e.g. `{{replace({}, '{c}', '_')}}`",
                                    expr.text,
                                    text.value(i),
                                    c,
                                    expr.text
                                ));
                            } else {
                                s.push_str(text.value(i));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
