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
    // No allocation: the engine checks every rendered subject of every message with this.
    let mut tokens = subject.split('.').peekable();
    while let Some(token) = tokens.next() {
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
        if token == ">" && tokens.peek().is_some() {
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

/// Whether every subject matched by `inner` is also matched by `outer` (both filters).
/// `orders.>` covers `orders.eu.*`; `sensors.>` does not cover `sensor.>`.
pub fn filter_covers(outer: &str, inner: &str) -> bool {
    let outer: Vec<&str> = outer.split('.').collect();
    let inner: Vec<&str> = inner.split('.').collect();
    for (i, o) in outer.iter().enumerate() {
        if *o == ">" {
            return i < inner.len();
        }
        let Some(t) = inner.get(i) else {
            return false;
        };
        match (*o, *t) {
            (_, ">") => return false,
            ("*", _) => {}
            (_, "*") => return false,
            (o, t) if o == t => {}
            _ => return false,
        }
    }
    outer.len() == inner.len()
}

/// Whether the concrete `subject` is matched by `filter` (`*` one token, `>` the rest).
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some subject is matched by both filters.
pub fn filters_overlap(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if *x != "*" && *y != "*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
        i += 1;
    }
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

    #[test]
    fn relations() {
        assert!(filter_covers("orders.>", "orders.eu.*"));
        assert!(filter_covers("orders.>", "orders.created"));
        assert!(filter_covers(">", "a"));
        assert!(filter_covers("a.*", "a.b"));
        assert!(!filter_covers("a.b", "a.*"));
        assert!(!filter_covers("orders.>", "orders"));
        assert!(!filter_covers("sensors.>", "sensor.>"));
        assert!(!filter_covers("a.*", "a.>"));
        assert!(filter_covers("a.>", "a.>"));
        assert!(filters_overlap("readings.>", "readings.clean.*"));
        assert!(filters_overlap("a.*.c", "a.b.*"));
        assert!(!filters_overlap("a.b", "a.c"));
        assert!(!filters_overlap("a.b", "a.b.c"));
        assert!(filters_overlap("*", "x"));
        assert!(subject_matches("dlq.>", "dlq.orders"));
        assert!(subject_matches("dlq.*", "dlq.orders"));
        assert!(!subject_matches("dlq.*", "dlq.orders.x"));
        assert!(!subject_matches("dlq.>", "dlq"));
        assert!(subject_matches("a.b", "a.b"));
        assert!(!subject_matches("a.b", "a.c"));
    }
}
