//! Subject and header templates: literal text with `{expr}` placeholders, each a SQL
//! expression over the record; `{{` and `}}` stand for literal braces.

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is (escapes already resolved).
    Literal(String),
    /// A SQL expression whose value is inserted (trimmed, without the braces).
    Expr(String),
}

/// Splits a template into literal text and expressions. The expressions are not checked here
/// (see [`crate::expr::parse`]). Quotes inside an expression may contain braces.
pub fn parse(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = template.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '{' if chars.peek().map(|(_, n)| *n) == Some('{') => {
                chars.next();
                literal.push('{');
            }
            '}' if chars.peek().map(|(_, n)| *n) == Some('}') => {
                chars.next();
                literal.push('}');
            }
            '}' => {
                return Err(format!(
                    "unmatched `}}` at offset {start} in template `{template}`; write `}}}}` for a literal brace"
                ));
            }
            '{' => {
                let mut quote: Option<char> = None;
                let mut end = None;
                for (i, c) in chars.by_ref() {
                    match (quote, c) {
                        (Some(q), c) if c == q => quote = None,
                        (Some(_), _) => {}
                        (None, '\'' | '"') => quote = Some(c),
                        (None, '}') => {
                            end = Some(i);
                            break;
                        }
                        (None, '{') => {
                            return Err(format!(
                                "`{{` inside the expression starting at offset {start} in template `{template}`; close the expression with `}}` first"
                            ));
                        }
                        (None, _) => {}
                    }
                }
                let Some(end) = end else {
                    return Err(format!(
                        "unclosed `{{` at offset {start} in template `{template}`; close it with `}}`, or write `{{{{` for a literal brace"
                    ));
                };
                let expr = template[start + 1..end].trim();
                if expr.is_empty() {
                    return Err(format!(
                        "empty `{{}}` at offset {start} in template `{template}`; put an expression inside, e.g. `{{data.region}}`"
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Expr(expr.to_string()));
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_literals_and_expressions() {
        assert_eq!(
            parse("orders.vip.{data.region}").unwrap(),
            vec![
                Part::Literal("orders.vip.".into()),
                Part::Expr("data.region".into())
            ]
        );
        assert_eq!(
            parse("{{x}} { lower(data['a-b']) }-{seq}").unwrap(),
            vec![
                Part::Literal("{x} ".into()),
                Part::Expr("lower(data['a-b'])".into()),
                Part::Literal("-".into()),
                Part::Expr("seq".into()),
            ]
        );
        assert_eq!(
            parse("{concat(data.a, '}')}").unwrap(),
            vec![Part::Expr("concat(data.a, '}')".into())]
        );
        assert_eq!(parse("").unwrap(), vec![]);
    }

    #[test]
    fn reports_broken_braces() {
        assert!(
            parse("orders.{data.region")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(parse("orders.}").unwrap_err().contains("unmatched"));
        assert!(parse("orders.{}").unwrap_err().contains("empty"));
        assert!(parse("orders.{ {a} }").is_err());
        assert!(parse("{'abc}").unwrap_err().contains("unclosed"));
    }
}
