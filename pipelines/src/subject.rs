//! NATS subject rules: the subjects a pipeline publishes to (no wildcards) and the subject
//! filters of sources and streams (`*` as a whole token, `>` as the last whole token).

/// Checks a subject that messages are published to: non-empty tokens separated by `.`, no
/// whitespace, no wildcards.
pub fn check_subject(subject: &str) -> Result<(), String> {
    check(subject, false)
}

/// Checks a subject filter (source `subjects`, stream `subjects`): like [`check_subject`], but
/// a token may be the wildcard `*`, and the last token may be `>`.
pub fn check_filter(filter: &str) -> Result<(), String> {
    check(filter, true)
}

fn check(subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.is_empty() {
        return Err("empty subject".into());
    }
    if let Some(c) = subject
        .chars()
        .find(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "subject `{subject}` contains whitespace or a control character ({c:?})"
        ));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let count = tokens.len();
    for (i, token) in tokens.into_iter().enumerate() {
        if token.is_empty() {
            return Err(format!(
                "subject `{subject}` has an empty token (tokens are separated by single dots, with none at either end)"
            ));
        }
        let is_wildcard = token == "*" || token == ">";
        if is_wildcard && !wildcards {
            return Err(format!(
                "subject `{subject}` contains the wildcard `{token}`; a published subject must be concrete"
            ));
        }
        if token == ">" && i + 1 != count {
            return Err(format!(
                "subject `{subject}`: `>` may only be the last token"
            ));
        }
        if !is_wildcard && (token.contains('*') || token.contains('>')) {
            return Err(format!(
                "subject `{subject}`: token `{token}` mixes a wildcard with other characters; `*` and `>` must be whole tokens"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(check_subject("orders.created").is_ok());
        assert!(check_subject("orders.eu-west.v1").is_ok());
        assert!(check_subject("").is_err());
        assert!(check_subject("orders..created").is_err());
        assert!(check_subject(".orders").is_err());
        assert!(check_subject("orders.").is_err());
        assert!(check_subject("orders created").is_err());
        assert!(check_subject("orders.*").is_err());
        assert!(check_subject("orders.>").is_err());
        assert!(check_subject("orders.a*b").is_err());
    }

    #[test]
    fn filters() {
        assert!(check_filter("orders.>").is_ok());
        assert!(check_filter("orders.*.created").is_ok());
        assert!(check_filter(">").is_ok());
        assert!(check_filter("orders.>.created").is_err());
        assert!(check_filter("orders.*x").is_err());
        assert!(check_filter("orders.\t").is_err());
        assert!(check_filter("orders..>").is_err());
    }
}
