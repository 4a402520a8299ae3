//! Subject and header templates: literal text with `{expr}` holes (`{{` and `}}` for literal
//! braces). Each hole is a SQL expression compiled once and evaluated per batch; a hole that is
//! null or missing for a message is that message's error, never the text "null".

use crate::columns::Catalog;
use crate::sql::SqlExpr;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;

/// A piece of a template.
pub(crate) enum Piece {
    /// Literal text.
    Text(String),
    /// A `{expr}` hole.
    Hole(SqlExpr),
}

/// A compiled template.
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

/// Splits a template into literal text and expression source.
pub(crate) fn split(text: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut lit = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '}' => {
                return Err(format!(
                    "unmatched `}}` in template `{text}` (write `}}}}` for a literal brace)"
                ));
            }
            '{' => {
                let mut expr = String::new();
                let mut in_quote = false;
                let mut closed = false;
                for c in chars.by_ref() {
                    match c {
                        '\'' => {
                            in_quote = !in_quote;
                            expr.push(c);
                        }
                        '}' if !in_quote => {
                            closed = true;
                            break;
                        }
                        _ => expr.push(c),
                    }
                }
                if !closed {
                    return Err(format!("unclosed `{{` in template `{text}`"));
                }
                if expr.trim().is_empty() {
                    return Err(format!("empty `{{}}` in template `{text}`"));
                }
                if !lit.is_empty() {
                    out.push((false, std::mem::take(&mut lit)));
                }
                out.push((true, expr));
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push((false, lit));
    }
    Ok(out)
}

impl Template {
    /// Compiles a template; every problem is reported.
    pub(crate) fn compile(
        text: &str,
        state: &SessionState,
        catalog: &mut Catalog,
    ) -> Result<Template, Vec<String>> {
        let parts = split(text).map_err(|e| vec![e])?;
        let mut pieces = Vec::with_capacity(parts.len());
        let mut problems = Vec::new();
        for (is_expr, s) in parts {
            if is_expr {
                match SqlExpr::compile(&s, state, catalog) {
                    Ok(e) => pieces.push(Piece::Hole(e)),
                    Err(e) => problems.push(e),
                }
            } else {
                pieces.push(Piece::Text(s));
            }
        }
        if problems.is_empty() {
            Ok(Template { pieces })
        } else {
            Err(problems)
        }
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

/// Checks a rendered subject: tokens separated by `.`, none empty, no whitespace, no wildcards.
pub(crate) fn check_subject(subject: &str) -> Result<(), String> {
    if subject.is_empty() {
        return Err("the subject is empty".into());
    }
    if let Some(c) = subject
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "subject `{subject}` contains whitespace or a control character ({c:?})"
        ));
    }
    for token in subject.split('.') {
        if token.is_empty() {
            return Err(format!(
                "subject `{subject}` has an empty token (leading, trailing or double `.`)"
            ));
        }
        if token == "*" || token == ">" {
            return Err(format!(
                "subject `{subject}` contains the wildcard `{token}`; messages are published to concrete subjects"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_holes_and_escapes() {
        let parts = split("orders.{data.region}.{{x}}.{coalesce(data.a, '}')}").unwrap();
        assert_eq!(
            parts,
            vec![
                (false, "orders.".to_string()),
                (true, "data.region".to_string()),
                (false, ".{x}.".to_string()),
                (true, "coalesce(data.a, '}')".to_string()),
            ]
        );
        assert!(split("a.{b").is_err());
        assert!(split("a.}").is_err());
        assert!(split("a.{ }").is_err());
    }

    #[test]
    fn subjects() {
        assert!(check_subject("orders.eu.created").is_ok());
        assert!(check_subject("orders..x").is_err());
        assert!(check_subject("orders.*").is_err());
        assert!(check_subject("orders.a b").is_err());
        assert!(check_subject(".a").is_err());
        assert!(check_subject("").is_err());
    }
}
