//! Checks of single values of a pipeline file (durations, SQL expressions), each reported as a
//! located problem; shared by the graph checks and the window checks.

use crate::expr;
use crate::problem::Problem;
use crate::units::parse_duration;

/// Checks a duration (`500ms`, `1m`); returns it when valid.
pub(crate) fn check_duration(
    value: &str,
    path: &str,
    out: &mut Vec<Problem>,
) -> Option<std::time::Duration> {
    match parse_duration(value) {
        Ok(d) => Some(d),
        Err(e) => {
            out.push(Problem::new(path, "invalid-duration", e));
            None
        }
    }
}

/// Checks that a SQL expression parses.
pub(crate) fn check_expression(text: &str, path: &str, out: &mut Vec<Problem>) {
    if let Err(e) = expr::parse_checked(text) {
        out.push(Problem::new(path, e.code(), e.to_string()));
    }
}
