//! The reasons a JSON value fails a JSON Schema, as the `validate` node and `publish` with a
//! JSON schema name them in dead letters and `Weir-Invalid` headers.

/// At most this many failures are named in a reason.
const MAX_REASONS: usize = 10;

/// Every failure of `value` against `validator`: `<JSON pointer>: <rule>: <message>`, joined
/// by `; ` (at most [`MAX_REASONS`], then `and N more`).
pub(crate) fn failures(validator: &jsonschema::Validator, value: &serde_json::Value) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut more = 0;
    for e in validator.iter_errors(value) {
        if out.len() == MAX_REASONS {
            more += 1;
            continue;
        }
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        out.push(format!("{at}: {}: {e}", e.kind().keyword()));
    }
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    out.join("; ")
}
