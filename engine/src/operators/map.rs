//! `map`: changes payload fields — `set` (SQL expressions, all evaluated against the message as
//! it entered the node), then `rename`, `cast`, `remove`. Edits are recorded per message and
//! encoded once at the sink; the columns downstream expressions read are updated in place.

use super::{Operator, PlanContext, escape_pointer};
use crate::columns::{Catalog, ColumnSource, field_type_to_arrow, path_display, split_path};
use crate::frame::{BatchContext, Frame};
use crate::message::FailureKind;
use crate::payload::Edit;
use crate::sql::SqlExpr;
use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::datatypes::{DataType, TimeUnit};
use serde_json::{Number, Value};
use std::sync::Arc;
use weir_pipelines::{FieldType, MapSpec};

/// A field path inside the payload, shared between rows.
pub(crate) type FieldPath = Arc<Vec<String>>;

/// A compiled `map` node.
pub(crate) struct Map {
    pub(crate) id: Arc<str>,
    pub(crate) set: Vec<(FieldPath, SqlExpr)>,
    pub(crate) rename: Vec<(FieldPath, FieldPath)>,
    pub(crate) cast: Vec<(FieldPath, FieldType)>,
    pub(crate) remove: Vec<FieldPath>,
}

/// How a change to `changed` affects the column of `path`.
fn related(path: &[String], changed: &[String]) -> bool {
    let k = path.len().min(changed.len());
    path[..k] == changed[..k]
}

/// Whether the columns can follow a change of `changed` exactly (no column reads a parent or
/// a child of it), so no re-decode is needed.
fn columns_follow(catalog: &Catalog, changed: &[String]) -> bool {
    catalog
        .paths()
        .iter()
        .all(|(_, p)| *p == changed || !related(p, changed))
}

impl Map {
    fn set_column(frame: &mut Frame, catalog: &Catalog, path: &[String], values: ArrayRef) {
        if let Some(idx) = catalog.index_of(&ColumnSource::Path(path.to_vec())) {
            frame.columns[idx] = values;
        }
    }
}

impl Operator for Map {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let Some(mut frame) = self.admit(frame, ctx) else {
            return Vec::new();
        };
        let mut redecode = false;
        if !self.set.is_empty() {
            let Some(set) = self.apply_set(frame, ctx, &mut redecode) else {
                return Vec::new();
            };
            frame = set;
        }
        redecode |= self.apply_renames(&mut frame, ctx);
        if !self.cast.is_empty() && redecode {
            // Re-decoding may group the messages by the kinds of their values: cast and
            // remove run on each group.
            let node: &str = &self.id;
            return ctx
                .redecode(frame, node)
                .into_iter()
                .flat_map(|frame| self.cast_and_remove(frame, ctx, false))
                .collect();
        }
        self.cast_and_remove(frame, ctx, redecode)
    }
}

impl Map {
    /// The rows this map can edit: object payloads (the others fail with a shape error), marked
    /// as edited by this node; none when no row is left.
    fn admit(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Option<Frame> {
        let not_objects: Vec<usize> = (0..frame.rows.len())
            .filter(|i| !frame.rows[*i].is_object)
            .collect();
        for &i in &not_objects {
            ctx.fail(
                &frame.rows[i],
                &self.id,
                FailureKind::Shape,
                "map needs a JSON object payload, but this payload is not an object".into(),
            );
        }
        let mut frame = frame.without(&not_objects);
        // Errors while encoding edits name the node that made them; a row still carrying
        // edits of an earlier map keeps that map's id.
        for row in frame.rows.iter_mut() {
            if row.edits.is_empty() {
                row.edited_by = Some(Arc::clone(&self.id));
            }
        }
        (!frame.rows.is_empty()).then_some(frame)
    }

    /// `set`: every expression evaluated against the input, then applied. Rows whose
    /// expressions fail are dropped (failed); none is left when an expression cannot run.
    fn apply_set(
        &self,
        mut frame: Frame,
        ctx: &mut BatchContext<'_>,
        redecode: &mut bool,
    ) -> Option<Frame> {
        let node: &str = &self.id;
        let n = frame.rows.len();
        let batch = frame.batch(ctx.catalog);
        let mut results = Vec::with_capacity(self.set.len());
        let mut bad = vec![false; n];
        for (path, expr) in &self.set {
            match expr.evaluate(ctx.state, &batch) {
                Ok(ev) => {
                    for (i, message) in ev.errors {
                        bad[i] = true;
                        ctx.fail(
                            &frame.rows[i],
                            node,
                            FailureKind::Expression,
                            format!("set {}: {message}", path_display(path)),
                        );
                    }
                    results.push(ev.values);
                }
                Err(message) => {
                    for row in &frame.rows {
                        ctx.fail(
                            row,
                            node,
                            FailureKind::Expression,
                            format!("set {}: {message}", path_display(path)),
                        );
                    }
                    return None;
                }
            }
        }
        for ((path, _), values) in self.set.iter().zip(&results) {
            for (i, row) in frame.rows.iter_mut().enumerate() {
                if !bad[i] {
                    row.edits
                        .push(Edit::Set(Arc::clone(path), json_value(values, i)));
                }
            }
            Self::set_column(&mut frame, ctx.catalog, path, Arc::clone(values));
            *redecode |= !columns_follow(ctx.catalog, path);
        }
        let bad_rows: Vec<usize> = (0..n).filter(|i| bad[*i]).collect();
        Some(frame.without(&bad_rows))
    }

    /// `rename`: the edits, and the columns moved along where they can follow; whether the
    /// frame must be re-decoded.
    fn apply_renames(&self, frame: &mut Frame, ctx: &BatchContext<'_>) -> bool {
        let mut redecode = false;
        for (from, to) in &self.rename {
            for row in frame.rows.iter_mut() {
                row.edits
                    .push(Edit::Rename(Arc::clone(from), Arc::clone(to)));
            }
            let from_idx = ctx.catalog.index_of(&ColumnSource::Path(from.to_vec()));
            let to_idx = ctx.catalog.index_of(&ColumnSource::Path(to.to_vec()));
            match (from_idx, to_idx) {
                (Some(f), Some(t)) => frame.columns[t] = Arc::clone(&frame.columns[f]),
                (None, Some(_)) => redecode = true,
                _ => {}
            }
            if let Some(f) = from_idx {
                frame.columns[f] = new_null_array(&DataType::Null, frame.rows.len());
            }
            redecode |= !columns_follow(ctx.catalog, from) || !columns_follow(ctx.catalog, to);
        }
        redecode
    }
}

impl Map {
    /// The `cast` and `remove` steps, then a re-decode when the columns cannot follow.
    fn cast_and_remove(
        &self,
        mut frame: Frame,
        ctx: &mut BatchContext<'_>,
        mut redecode: bool,
    ) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        for (path, to) in &self.cast {
            // The compiler registers every cast path as a column.
            let Some(idx) = ctx.catalog.index_of(&ColumnSource::Path(path.to_vec())) else {
                continue;
            };
            let current = Arc::clone(&frame.columns[idx]);
            let (cast, errors) = cast_column(&current, *to, &path_display(path));
            for (i, message) in &errors {
                ctx.fail(
                    &frame.rows[*i],
                    node,
                    FailureKind::Expression,
                    message.clone(),
                );
            }
            for (i, row) in frame.rows.iter_mut().enumerate() {
                if current.is_valid(i) && cast.is_valid(i) {
                    row.edits
                        .push(Edit::Set(Arc::clone(path), json_value(&cast, i)));
                }
            }
            frame.columns[idx] = cast;
            redecode |= !columns_follow(ctx.catalog, path);
            let bad: Vec<usize> = errors.iter().map(|(i, _)| *i).collect();
            frame = frame.without(&bad);
        }

        for path in &self.remove {
            for row in frame.rows.iter_mut() {
                row.edits.push(Edit::Remove(Arc::clone(path)));
            }
            if let Some(idx) = ctx.catalog.index_of(&ColumnSource::Path(path.to_vec())) {
                frame.columns[idx] = new_null_array(&DataType::Null, frame.rows.len());
            }
            redecode |= !columns_follow(ctx.catalog, path);
        }

        if redecode {
            return ctx
                .redecode(frame, node)
                .into_iter()
                .map(|frame| (0, frame))
                .collect();
        }
        vec![(0, frame)]
    }
}

/// Casts a column to a declared type; values that do not convert are per-row errors.
fn cast_column(values: &ArrayRef, to: FieldType, name: &str) -> (ArrayRef, Vec<(usize, String)>) {
    let n = values.len();
    let target = field_type_to_arrow(to);
    if to == FieldType::Json {
        // `json` keeps the value as JSON text: already the case for nested values.
        let cast = arrow::compute::cast(values, &DataType::Utf8)
            .unwrap_or_else(|_| new_null_array(&DataType::Utf8, n));
        return (cast, Vec::new());
    }
    let opts = arrow::compute::CastOptions {
        safe: true,
        ..Default::default()
    };
    match arrow::compute::cast_with_options(values, &target, &opts) {
        Ok(cast) => {
            let errors = (0..n)
                .filter(|i| values.is_valid(*i) && cast.is_null(*i))
                .map(|i| (i, cast_error(values, i, to, name)))
                .collect();
            (cast, errors)
        }
        Err(e) => {
            let errors = (0..n)
                .filter(|i| values.is_valid(*i))
                .map(|i| (i, format!("cannot cast {name} to {}: {e}", type_name(to))))
                .collect();
            (new_null_array(&target, n), errors)
        }
    }
}

fn cast_error(values: &ArrayRef, i: usize, to: FieldType, name: &str) -> String {
    let shown = arrow::util::display::array_value_to_string(values, i).unwrap_or_default();
    format!("cannot cast {name} value `{shown}` to {}", type_name(to))
}

fn type_name(t: FieldType) -> &'static str {
    match t {
        FieldType::String => "string",
        FieldType::Int64 => "int64",
        FieldType::Float64 => "float64",
        FieldType::Boolean => "boolean",
        FieldType::Timestamp => "timestamp",
        FieldType::Json => "json",
    }
}

/// Row `i` of an Arrow array as a JSON value (timestamps as RFC 3339 text; types without a
/// JSON counterpart as their display text).
pub(crate) fn json_value(array: &ArrayRef, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => Value::from(array.as_primitive::<arrow::datatypes::Int8Type>().value(i)),
        DataType::Int16 => {
            Value::from(array.as_primitive::<arrow::datatypes::Int16Type>().value(i))
        }
        DataType::Int32 => {
            Value::from(array.as_primitive::<arrow::datatypes::Int32Type>().value(i))
        }
        DataType::Int64 => {
            Value::from(array.as_primitive::<arrow::datatypes::Int64Type>().value(i))
        }
        DataType::UInt8 => {
            Value::from(array.as_primitive::<arrow::datatypes::UInt8Type>().value(i))
        }
        DataType::UInt16 => Value::from(
            array
                .as_primitive::<arrow::datatypes::UInt16Type>()
                .value(i),
        ),
        DataType::UInt32 => Value::from(
            array
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .value(i),
        ),
        DataType::UInt64 => Value::from(
            array
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(i),
        ),
        DataType::Float32 => float(
            array
                .as_primitive::<arrow::datatypes::Float32Type>()
                .value(i) as f64,
        ),
        DataType::Float64 => float(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(i),
        ),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
        DataType::Timestamp(TimeUnit::Microsecond, _)
        | DataType::Timestamp(TimeUnit::Millisecond, _)
        | DataType::Timestamp(TimeUnit::Nanosecond, _)
        | DataType::Timestamp(TimeUnit::Second, _) => {
            let utc = arrow::compute::cast(
                &array.slice(i, 1),
                &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            );
            let shown = utc
                .ok()
                .and_then(|a| arrow::util::display::array_value_to_string(&a, 0).ok())
                .unwrap_or_default();
            // Arrow shows `2026-11-25T10:00:00Z`-style text for UTC timestamps.
            Value::String(shown)
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let list = arrow::compute::cast(&array.slice(i, 1), array.data_type()).ok();
            match list.as_ref().map(|l| l.as_list::<i32>().value(0)) {
                Some(items) if matches!(array.data_type(), DataType::List(_)) => {
                    Value::Array((0..items.len()).map(|j| json_value(&items, j)).collect())
                }
                _ => Value::String(
                    arrow::util::display::array_value_to_string(array, i).unwrap_or_default(),
                ),
            }
        }
        _ => {
            Value::String(arrow::util::display::array_value_to_string(array, i).unwrap_or_default())
        }
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// Builds a `map` node: `set` expressions are planned now; the columns `cast` reads are added
/// to the catalog so that their values are decoded.
pub(crate) fn build(spec: &MapSpec, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let mut set = Vec::with_capacity(spec.set.len());
    for (path, text) in &spec.set {
        let field = format!("/map/set/{}", escape_pointer(path));
        if let Some(e) = cx.expr(text, &format!("set {path}"), field) {
            set.push((Arc::new(split_path(path)), e));
        }
    }
    let rename = spec
        .rename
        .iter()
        .map(|(a, b)| (Arc::new(split_path(a)), Arc::new(split_path(b))))
        .collect();
    let cast: Vec<_> = spec
        .cast
        .iter()
        .map(|(p, t)| (Arc::new(split_path(p)), *t))
        .collect();
    cx.reading("/map/cast");
    for (p, _) in &cast {
        cx.catalog.add(ColumnSource::Path(p.to_vec()));
    }
    let remove = spec
        .remove
        .iter()
        .map(|p| Arc::new(split_path(p)))
        .collect();
    Some(Box::new(Map {
        id: cx.id.clone(),
        set,
        rename,
        cast,
        remove,
    }))
}
