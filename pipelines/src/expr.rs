//! SQL expressions of pipeline files (filters, route conditions, map values, template
//! placeholders): parsed with the dialect DataFusion uses, and checked to refer only to the
//! fields of a message record. Functions are left to the engine, which knows them.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{AccessExpr, Expr, Ident, visit_expressions};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// The names an expression may refer to: the fields of a message record.
pub const RECORD_FIELDS: &[&str] = &["data", "subject", "headers", "timestamp", "seq", "stream"];

/// Deepest nesting the parser accepts before it gives up (it never overflows the stack).
const RECURSION_LIMIT: usize = 50;

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The text is not a SQL expression.
    #[error("{0}")]
    Syntax(String),
    /// The expression refers to something that is not a field of the record.
    #[error("{0}")]
    Reference(String),
}

impl ExprError {
    /// The stable diagnostic code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ExprError::Syntax(_) => "invalid-expression",
            ExprError::Reference(_) => "unknown-reference",
        }
    }
}

/// Parses a SQL expression (DataFusion's SQL, via `sqlparser`'s `GenericDialect`) and checks
/// that it refers only to the record's fields: `data` (with paths `data.a.b`, `data['a-b']`),
/// `subject`, `headers` (`headers['X-Name']`), `timestamp`, `seq`, `stream`.
pub fn parse(text: &str) -> Result<Expr, String> {
    parse_checked(text).map_err(|e| e.to_string())
}

/// [`parse`] with the kind of failure kept.
pub fn parse_checked(text: &str) -> Result<Expr, ExprError> {
    let expr = parse_syntax(text)?;
    check_references(&expr)?;
    Ok(expr)
}

fn parse_syntax(text: &str) -> Result<Expr, ExprError> {
    if text.trim().is_empty() {
        return Err(ExprError::Syntax(
            "empty expression; write a SQL expression such as `data.amount > 100`".into(),
        ));
    }
    let dialect = GenericDialect {};
    let syntax = |err: ParserError| {
        let detail = match err {
            ParserError::TokenizerError(m) | ParserError::ParserError(m) => m,
            ParserError::RecursionLimitExceeded => "the expression is nested too deeply".into(),
        };
        ExprError::Syntax(format!("invalid SQL expression `{text}`: {detail}"))
    };
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .map_err(syntax)?;
    let expr = parser.parse_expr().map_err(syntax)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(ExprError::Syntax(format!(
            "invalid SQL expression `{text}`: unexpected `{}` after the expression at {}",
            next.token, next.span.start
        )));
    }
    Ok(expr)
}

fn check_references(expr: &Expr) -> Result<(), ExprError> {
    // Identifiers that are field names inside an access chain (`data['a'].b`) are not
    // references; remember them by address while walking down (the walk is pre-order).
    let mut field_names: HashSet<*const Expr> = HashSet::new();
    let flow = visit_expressions(expr, |e: &Expr| {
        if field_names.contains(&(e as *const Expr)) {
            return ControlFlow::Continue(());
        }
        let result = match e {
            Expr::Identifier(ident) => check_root(ident, 0),
            Expr::CompoundIdentifier(idents) => match idents.first() {
                Some(first) => check_root(first, idents.len() - 1),
                None => Ok(()),
            },
            Expr::CompoundFieldAccess { root, access_chain } => {
                for access in access_chain {
                    if let AccessExpr::Dot(field) = access {
                        field_names.insert(field as *const Expr);
                    }
                }
                match root.as_ref() {
                    Expr::Identifier(ident) => check_root(ident, access_chain.len()),
                    _ => Ok(()),
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Err(
                ExprError::Reference("subqueries are not supported in pipeline expressions".into()),
            ),
            _ => Ok(()),
        };
        match result {
            Ok(()) => ControlFlow::Continue(()),
            Err(err) => ControlFlow::Break(err),
        }
    });
    match flow {
        ControlFlow::Break(err) => Err(err),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Checks the first name of a reference; `path_len` is how many field accesses follow it.
fn check_root(ident: &Ident, path_len: usize) -> Result<(), ExprError> {
    let name = if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    };
    if !RECORD_FIELDS.contains(&name.as_str()) && ident.quote_style == Some('"') {
        // `"plant-a"`: double quotes make a name in SQL; text takes single quotes.
        return Err(ExprError::Reference(format!(
            "`\"{v}\"` is a name in SQL (double quotes quote names), and no field is called `{v}`; for the text {v} write single quotes: `'{v}'`",
            v = ident.value
        )));
    }
    if !RECORD_FIELDS.contains(&name.as_str()) {
        let known = RECORD_FIELDS
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let hint = match crate::suggest::nearest(&name, RECORD_FIELDS.iter().copied()) {
            Some(near) => format!("did you mean `{near}`, or `data.{}`?", ident.value),
            None => format!("for a payload field write `data.{}`", ident.value),
        };
        return Err(ExprError::Reference(format!(
            "unknown name `{}`: an expression can use {known}; {hint}",
            ident.value
        )));
    }
    if path_len > 0 && name != "data" && name != "headers" {
        return Err(ExprError::Reference(format!(
            "`{name}` has no fields; only `data` (the payload) and `headers` can be followed by a path"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_record_fields() {
        for ok in [
            "data.amount > 100 AND data.status = 'pending'",
            "data['a-b'] = 1",
            "data.customer['first-name'].x IS NOT NULL",
            "headers['X-Priority'] = 'high'",
            "subject LIKE 'orders.%' OR seq > 3 OR stream = 'ORDERS'",
            "timestamp > now() - INTERVAL '1 hour'",
            "CAST(data.amount * 100 AS BIGINT)",
            "encode(sha256(data.order_id), 'hex')",
            "data.region LIKE 'eu-%'",
            "data.currency IN ('USD', 'EUR')",
            "CASE WHEN data.amount > 10 THEN 'big' ELSE 'small' END",
            "'vip'",
            "DATA.amount > 1",
        ] {
            assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok));
        }
    }

    #[test]
    fn refuses_syntax_errors() {
        for bad in [
            "data.amount >",
            "data.amount > 100 AND",
            "(",
            "",
            "a b",
            "1 +* 2",
        ] {
            assert!(
                matches!(parse_checked(bad), Err(ExprError::Syntax(_))),
                "{bad}: {:?}",
                parse_checked(bad)
            );
        }
        let deep = format!("{}1{}", "(".repeat(500), ")".repeat(500));
        assert!(matches!(parse_checked(&deep), Err(ExprError::Syntax(_))));
    }

    #[test]
    fn double_quoted_text_gets_the_single_quote_advice() {
        let err = parse("data.site = \"plant-a\"").unwrap_err();
        assert!(err.contains("write single quotes: `'plant-a'`"), "{err}");
        assert!(!err.contains("data.plant-a"), "{err}");
    }

    #[test]
    fn refuses_unknown_references() {
        let err = parse("foo.bar = 1").unwrap_err();
        assert!(err.contains("unknown name `foo`"), "{err}");
        assert!(err.contains("data.foo"), "{err}");
        assert!(matches!(
            parse_checked("amount > 1"),
            Err(ExprError::Reference(_))
        ));
        assert!(matches!(
            parse_checked("subject.x = 1"),
            Err(ExprError::Reference(_))
        ));
        assert!(matches!(
            parse_checked("data.a IN (SELECT 1)"),
            Err(ExprError::Reference(_))
        ));
        assert!(matches!(
            parse_checked("upper(dta.x)"),
            Err(ExprError::Reference(_))
        ));
        assert!(matches!(
            parse_checked("\"Data\".x"),
            Err(ExprError::Reference(_))
        ));
    }
}
