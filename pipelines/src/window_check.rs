//! Checks of the stateful nodes. A `window`: the durations its kind needs (and no others), a hopping slide
//! that divides into its size, named group keys and aggregates, and their SQL. Which functions
//! are aggregates is the engine's to say (it knows DataFusion's registry).

use crate::document::escape;
use crate::problem::Problem;
use crate::spec::{DedupSpec, WindowKind, WindowSpec};
use crate::value_check::{check_duration, check_expression};

/// Most hopping windows one event may fall in (`size / slide`).
const MAX_WINDOWS_PER_EVENT: u128 = 1000;

/// Output fields every window message has; group keys and aggregates may not reuse them.
const RESERVED: &[&str] = &["window_start", "window_end"];

/// Checks one `window` spec at `base` (`/spec/nodes/N/window`).
pub(crate) fn check_window(w: &WindowSpec, base: &str, out: &mut Vec<Problem>) {
    check_lengths(w, base, out);
    for (field, value) in [
        ("allowed_lateness", &w.allowed_lateness),
        ("idle_timeout", &w.idle_timeout),
    ] {
        if let Some(v) = value {
            check_duration(v, &format!("{base}/{field}"), out);
        }
    }
    let zero = |v: &Option<String>| {
        v.as_deref()
            .and_then(|v| crate::units::parse_duration(v).ok())
            .is_some_and(|d| d.is_zero())
    };
    if zero(&w.idle_timeout) {
        out.push(Problem::new(
            format!("{base}/idle_timeout"),
            "invalid-duration",
            "idle_timeout must be longer than zero".into(),
        ));
    }
    if let Some(t) = &w.time {
        check_expression(t, &format!("{base}/time"), out);
    }
    let mut names: Vec<String> = Vec::new();
    for (i, (name, expr)) in w.group_by.named().into_iter().enumerate() {
        let at = match (&w.group_by, &name) {
            (crate::spec::GroupBy::Named(_), Some(n)) => format!("{base}/group_by/{}", escape(n)),
            _ => format!("{base}/group_by/{i}"),
        };
        check_expression(&expr, &at, out);
        match name {
            Some(n) => check_name(&n, &at, &mut names, out),
            None => out.push(Problem::new(
                at,
                "unnamed-group-key",
                format!(
                    "group key `{expr}` is not a payload path, so it has no name; write `group_by: {{ <name>: {expr} }}`"
                ),
            )),
        }
    }
    if w.aggregates.is_empty() {
        out.push(Problem::new(
            format!("{base}/aggregates"),
            "empty-aggregates",
            "a window needs at least one aggregate, e.g. `aggregates: { orders: count(*) }`".into(),
        ));
    }
    for (name, call) in &w.aggregates {
        let at = format!("{base}/aggregates/{}", escape(name));
        check_expression(call, &at, out);
        check_name(name, &at, &mut names, out);
    }
}

/// The durations of the window's kind are present and positive, the others absent; a hopping
/// window's slide is at most its size.
fn check_lengths(w: &WindowSpec, base: &str, out: &mut Vec<Problem>) {
    let (needs, kind): (&[&str], &str) = match w.kind {
        WindowKind::Tumbling => (&["size"], "tumbling"),
        WindowKind::Hopping => (&["size", "slide"], "hopping"),
        WindowKind::Session => (&["gap"], "session"),
    };
    let mut lengths = Vec::new();
    for (field, value) in [("size", &w.size), ("slide", &w.slide), ("gap", &w.gap)] {
        let needed = needs.contains(&field);
        match (needed, value) {
            (true, None) => out.push(Problem::new(
                base,
                "missing-field",
                format!("a {kind} window needs `{field}` (e.g. `{field}: 1m`)"),
            )),
            (false, Some(_)) => out.push(
                Problem::new(
                    format!("{base}/{field}"),
                    "unexpected-field",
                    format!(
                        "a {kind} window has no `{field}`; it takes {}",
                        needs
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                )
                .at_key(),
            ),
            (true, Some(v)) => {
                let at = format!("{base}/{field}");
                if let Some(d) = check_duration(v, &at, out) {
                    if d.as_millis() == 0 {
                        out.push(Problem::new(
                            at,
                            "invalid-duration",
                            format!("`{field}` must be at least 1ms"),
                        ));
                    } else {
                        lengths.push((field, d));
                    }
                }
            }
            (false, None) => {}
        }
    }
    if let [("size", size), ("slide", slide)] = lengths.as_slice()
        && slide <= size
        && size.as_millis() / slide.as_millis() > MAX_WINDOWS_PER_EVENT
    {
        out.push(Problem::new(
            format!("{base}/slide"),
            "invalid-value",
            format!(
                "with size {} and slide {}, every event would fall in {} windows; at most {MAX_WINDOWS_PER_EVENT} are allowed: make slide longer",
                w.size.as_deref().unwrap_or_default(),
                w.slide.as_deref().unwrap_or_default(),
                size.as_millis() / slide.as_millis()
            ),
        ));
    }
    if let [("size", size), ("slide", slide)] = lengths.as_slice()
        && slide > size
    {
        out.push(Problem::new(
            format!("{base}/slide"),
            "invalid-value",
            format!(
                "slide ({}) is longer than size ({}): events between windows would belong to none; make slide at most size",
                w.slide.as_deref().unwrap_or_default(),
                w.size.as_deref().unwrap_or_default()
            ),
        ));
    }
}

/// An output field name: a plain identifier, not reserved, not used twice.
fn check_name(name: &str, at: &str, names: &mut Vec<String>, out: &mut Vec<Problem>) {
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !plain {
        out.push(
            Problem::new(
                at,
                "invalid-name",
                format!("output field name `{name}`: use letters, digits and `_`, not starting with a digit"),
            )
            .at_key(),
        );
    } else if RESERVED.contains(&name) {
        out.push(
            Problem::new(
                at,
                "reserved-name",
                format!("`{name}` is set by the window itself; pick another name"),
            )
            .at_key(),
        );
    } else if names.iter().any(|n| n == name) {
        out.push(
            Problem::new(
                at,
                "duplicate-name",
                format!("output field `{name}` is defined twice (group keys and aggregates share one namespace)"),
            )
            .at_key(),
        );
    } else {
        names.push(name.to_string());
    }
}

/// Checks one `dedup` spec at `base` (`/spec/nodes/N/dedup`): its key expression, and a
/// `within` of at least 1 ms.
pub(crate) fn check_dedup(d: &DedupSpec, base: &str, out: &mut Vec<Problem>) {
    check_expression(&d.key, &format!("{base}/key"), out);
    let at = format!("{base}/within");
    if let Some(w) = check_duration(&d.within, &at, out)
        && w.as_millis() == 0
    {
        out.push(Problem::new(
            at,
            "invalid-duration",
            "`within` must be at least 1ms".into(),
        ));
    }
}
