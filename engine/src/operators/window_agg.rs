//! The aggregates of a `window` node: SQL aggregate calls lowered with DataFusion into
//! aggregate expressions, whose accumulators (one set per window and group) are updated
//! incrementally, merged (sessions) and evaluated when the window closes.

use crate::columns::{Catalog, ColumnSource};
use crate::sql::{SqlExpr, strip_df};
use arrow::array::UInt32Array;
use arrow::array::{Array, ArrayRef, new_null_array};
use arrow::compute::take;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::ScalarValue;
use datafusion::execution::SessionState;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{Accumulator, EmitTo, Expr, GroupsAccumulator};
use datafusion::physical_expr::GroupsAccumulatorAdapter;
use datafusion::physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The compiled aggregate calls of one window node.
pub(crate) struct Aggregates {
    /// (output name, call) in file order.
    calls: Vec<(String, SqlExpr)>,
    /// Planned when the first batch fixes the argument types.
    planned: Mutex<Option<Arc<Planned>>>,
}

/// The aggregates lowered against fixed column types.
pub(crate) struct Planned {
    types: Vec<DataType>,
    schema: SchemaRef,
    exprs: Vec<Arc<AggregateFunctionExpr>>,
}

impl Aggregates {
    /// Compiles the calls (each read from `/window/aggregates/<name>`), checking against the
    /// compile-time column types that each is one aggregate function DataFusion can lower.
    pub(crate) fn compile(
        calls: &[(String, String)],
        state: &SessionState,
        catalog: &mut Catalog,
        mut problem: impl FnMut(&str, String),
    ) -> Option<Aggregates> {
        let mut compiled = Vec::with_capacity(calls.len());
        for (name, text) in calls {
            match SqlExpr::compile(text, state, catalog) {
                Ok(e) => compiled.push((name.clone(), e)),
                Err(e) => problem(name, e),
            }
        }
        if compiled.len() != calls.len() {
            return None;
        }
        let aggs = Aggregates {
            calls: compiled,
            planned: Mutex::new(None),
        };
        let types = fixed_types(catalog, &catalog.compile_time_types());
        let mut ok = true;
        for (name, call) in &aggs.calls {
            if let Err(e) = lower(call, state, &catalog.schema(&types)) {
                problem(name, e);
                ok = false;
            }
        }
        ok.then_some(aggs)
    }

    /// The aggregates as planned so far (`None` before the first batch).
    pub(crate) fn planned(&self) -> Option<Arc<Planned>> {
        self.planned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Plans the aggregates with column types read from a snapshot.
    pub(crate) fn plan_with(
        &self,
        state: &SessionState,
        catalog: &Catalog,
        types: Vec<DataType>,
    ) -> Result<Arc<Planned>, String> {
        if types.len() != catalog.len() {
            return Err("the snapshot's columns do not match this pipeline".into());
        }
        let schema = catalog.schema(&types);
        let exprs = self
            .calls
            .iter()
            .map(|(_, c)| lower(c, state, &schema))
            .collect::<Result<Vec<_>, String>>()?;
        let p = Arc::new(Planned {
            types,
            schema,
            exprs,
        });
        *self.planned.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&p));
        Ok(p)
    }

    /// The output names, in file order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.calls.iter().map(|(n, _)| n.as_str())
    }

    /// The aggregates planned for `batch`'s columns (the first batch fixes the types; later
    /// batches are cast to them), with the argument arrays of each aggregate over the batch.
    pub(crate) fn arguments(
        &self,
        state: &SessionState,
        catalog: &Catalog,
        batch: &RecordBatch,
    ) -> Result<(Arc<Planned>, Vec<Vec<ArrayRef>>), String> {
        let planned = {
            let mut slot = self.planned.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(p) => Arc::clone(p),
                None => {
                    let types: Vec<DataType> = batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.data_type().clone())
                        .collect();
                    let types = fixed_types(catalog, &types);
                    let schema = catalog.schema(&types);
                    let exprs = self
                        .calls
                        .iter()
                        .map(|(_, c)| lower(c, state, &schema))
                        .collect::<Result<Vec<_>, String>>()?;
                    let p = Arc::new(Planned {
                        types,
                        schema,
                        exprs,
                    });
                    *slot = Some(Arc::clone(&p));
                    p
                }
            }
        };
        let batch = planned.conform(batch)?;
        let args = planned
            .exprs
            .iter()
            .map(|agg| {
                agg.expressions()
                    .iter()
                    .map(|e| {
                        e.evaluate(&batch)
                            .and_then(|v| v.into_array(batch.num_rows()))
                            .map_err(|e| strip_df(&e))
                    })
                    .collect::<Result<Vec<_>, String>>()
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok((planned, args))
    }
}

impl Planned {
    /// A fresh accumulator for each aggregate.
    pub(crate) fn accumulators(&self) -> Result<Vec<Box<dyn Accumulator>>, String> {
        self.exprs
            .iter()
            .map(|e| e.create_accumulator().map_err(|e| strip_df(&e)))
            .collect()
    }

    /// The fixed column types as an Arrow IPC stream (a schema without rows).
    pub(crate) fn encode_types(&self) -> Result<Vec<u8>, String> {
        let mut buf = Vec::new();
        let mut w = StreamWriter::try_new(&mut buf, &self.schema).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        drop(w);
        Ok(buf)
    }

    /// The column types of [`Planned::encode_types`]' bytes.
    pub(crate) fn decode_types(bytes: &[u8]) -> Result<Vec<DataType>, String> {
        let r =
            StreamReader::try_new(std::io::Cursor::new(bytes), None).map_err(|e| e.to_string())?;
        Ok(r.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect())
    }

    /// The accumulator states of `groups` as one Arrow IPC stream per aggregate (row `g` is
    /// group `g`'s state, in the aggregate's state fields). An accumulator whose state was
    /// taken is rebuilt from it, so that taking a snapshot never disturbs the running state.
    pub(crate) fn encode_states(
        &self,
        groups: &mut [&mut Vec<Box<dyn Accumulator>>],
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut out = Vec::with_capacity(self.exprs.len());
        for (a, expr) in self.exprs.iter().enumerate() {
            let mut columns: Vec<Vec<ScalarValue>> = Vec::new();
            for accs in groups.iter_mut() {
                let state = accs[a].state().map_err(|e| strip_df(&e))?;
                let mut fresh = expr.create_accumulator().map_err(|e| strip_df(&e))?;
                let arrays = state
                    .iter()
                    .map(|s| s.to_array().map_err(|e| strip_df(&e)))
                    .collect::<Result<Vec<_>, String>>()?;
                fresh.merge_batch(&arrays).map_err(|e| strip_df(&e))?;
                accs[a] = fresh;
                columns.resize_with(state.len(), Vec::new);
                for (j, v) in state.into_iter().enumerate() {
                    columns[j].push(v);
                }
            }
            if columns.is_empty() {
                out.push(Vec::new());
                continue;
            }
            let arrays = columns
                .into_iter()
                .map(|c| ScalarValue::iter_to_array(c).map_err(|e| strip_df(&e)))
                .collect::<Result<Vec<ArrayRef>, String>>()?;
            let fields: Vec<Field> = arrays
                .iter()
                .enumerate()
                .map(|(j, c)| Field::new(format!("s{j}"), c.data_type().clone(), true))
                .collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut w =
                StreamWriter::try_new(&mut buf, &batch.schema()).map_err(|e| e.to_string())?;
            w.write(&batch).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
            drop(w);
            out.push(buf);
        }
        Ok(out)
    }

    /// The accumulators of `n` groups rebuilt from [`Planned::encode_states`]' streams.
    pub(crate) fn decode_states(
        &self,
        streams: &[Vec<u8>],
        n: usize,
    ) -> Result<Vec<Vec<Box<dyn Accumulator>>>, String> {
        let mut groups: Vec<Vec<Box<dyn Accumulator>>> = (0..n).map(|_| Vec::new()).collect();
        if streams.len() != self.exprs.len() {
            return Err("the snapshot's aggregates do not match this window".into());
        }
        for (expr, bytes) in self.exprs.iter().zip(streams) {
            let batches: Vec<RecordBatch> = if n == 0 {
                Vec::new()
            } else {
                StreamReader::try_new(std::io::Cursor::new(bytes.as_slice()), None)
                    .map_err(|e| e.to_string())?
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?
            };
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if rows != n {
                return Err(format!("the snapshot holds {rows} states for {n} groups"));
            }
            let mut g = 0;
            for b in &batches {
                for i in 0..b.num_rows() {
                    let mut acc = expr.create_accumulator().map_err(|e| strip_df(&e))?;
                    let row: Vec<ArrayRef> = b.columns().iter().map(|c| c.slice(i, 1)).collect();
                    acc.merge_batch(&row).map_err(|e| strip_df(&e))?;
                    groups[g].push(acc);
                    g += 1;
                }
            }
        }
        Ok(groups)
    }

    /// `batch` with its columns cast to the fixed types (a value that does not cast is null).
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let same = batch
            .columns()
            .iter()
            .zip(&self.types)
            .all(|(c, t)| c.data_type() == t);
        if same {
            return RecordBatch::try_new_with_options(
                Arc::clone(&self.schema),
                batch.columns().to_vec(),
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .map_err(|e| format!("internal: {e}"));
        }
        let options = CastOptions {
            safe: true,
            ..Default::default()
        };
        let columns = batch
            .columns()
            .iter()
            .zip(&self.types)
            .map(|(c, t)| {
                if c.data_type() == t {
                    Arc::clone(c)
                } else {
                    cast_with_options(c, t, &options).unwrap_or_else(|_| new_null_array(t, c.len()))
                }
            })
            .collect();
        RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
        )
        .map_err(|e| format!("internal: {e}"))
    }
}

/// Updates `accs` with row `i` of `args` (one argument list per aggregate).
pub(crate) fn update_row(
    accs: &mut [Box<dyn Accumulator>],
    args: &[Vec<ArrayRef>],
    i: usize,
) -> Result<(), String> {
    for (acc, values) in accs.iter_mut().zip(args) {
        let row: Vec<ArrayRef> = values.iter().map(|a| a.slice(i, 1)).collect();
        acc.update_batch(&row).map_err(|e| strip_df(&e))?;
    }
    Ok(())
}

/// Merges the state of `from` into `into` (two sessions that grew together).
pub(crate) fn merge(
    into: &mut [Box<dyn Accumulator>],
    from: &mut [Box<dyn Accumulator>],
) -> Result<(), String> {
    for (a, b) in into.iter_mut().zip(from.iter_mut()) {
        let state = b.state().map_err(|e| strip_df(&e))?;
        let arrays = state
            .iter()
            .map(|s| s.to_array().map_err(|e| strip_df(&e)))
            .collect::<Result<Vec<_>, String>>()?;
        a.merge_batch(&arrays).map_err(|e| strip_df(&e))?;
    }
    Ok(())
}

/// Lowers one aggregate call against `schema`: it must be a single aggregate function, without
/// `FILTER` or `ORDER BY` (filter before the window instead).
fn lower(
    call: &SqlExpr,
    state: &SessionState,
    schema: &SchemaRef,
) -> Result<Arc<AggregateFunctionExpr>, String> {
    let logical = call.logical(state, schema)?;
    let Expr::AggregateFunction(f) = logical.clone().unalias() else {
        return Err(format!(
            "`{}` is not an aggregate call; use one aggregate function, e.g. count(*), sum(data.amount), avg, min, max, count(DISTINCT …), approx_percentile_cont(data.amount, 0.95)",
            call.text
        ));
    };
    if f.params.filter.is_some() || !f.params.order_by.is_empty() {
        return Err(format!(
            "`{}`: FILTER and ORDER BY are not supported in window aggregates; put a `filter` node before the window",
            call.text
        ));
    }
    let df_schema = datafusion::common::DFSchema::try_from(schema.as_ref().clone())
        .map_err(|e| format!("internal: schema: {e}"))?;
    let ctx = PhysicalPlanningContext::default();
    LoweredAggregateBuilder::new(
        &logical,
        &df_schema,
        schema.as_ref(),
        state.execution_props(),
        &ctx,
    )
    .build()
    .map(|l| l.aggregate)
    .map_err(|e| format!("`{}`: {}", call.text, strip_df(&e)))
}

/// The column types aggregates are planned with: a payload path without a declared type that
/// holds integers or nothing is read as float64, so that one batch of whole numbers does not
/// fix a later batch's decimals to integers.
fn fixed_types(catalog: &Catalog, types: &[DataType]) -> Vec<DataType> {
    catalog
        .columns()
        .zip(types)
        .map(
            |((idx, source), t)| match (source, catalog.declared(idx), t) {
                (ColumnSource::Path(_), None, DataType::Int64 | DataType::Null) => {
                    DataType::Float64
                }
                _ => t.clone(),
            },
        )
        .collect()
}

/// A scalar as JSON: numbers, strings, booleans, null; other types as their text.
pub(crate) fn scalar_json(v: &ScalarValue) -> serde_json::Value {
    use serde_json::Value;
    if v.is_null() {
        return Value::Null;
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Value::Bool(*b),
        ScalarValue::Int8(Some(n)) => Value::from(*n),
        ScalarValue::Int16(Some(n)) => Value::from(*n),
        ScalarValue::Int32(Some(n)) => Value::from(*n),
        ScalarValue::Int64(Some(n)) => Value::from(*n),
        ScalarValue::UInt8(Some(n)) => Value::from(*n),
        ScalarValue::UInt16(Some(n)) => Value::from(*n),
        ScalarValue::UInt32(Some(n)) => Value::from(*n),
        ScalarValue::UInt64(Some(n)) => Value::from(*n),
        ScalarValue::Float32(Some(f)) => float_json(f64::from(*f)),
        ScalarValue::Float64(Some(f)) => float_json(*f),
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

/// A float as JSON: whole numbers without a fraction print as integers; NaN and infinities
/// are null.
fn float_json(f: f64) -> serde_json::Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        serde_json::Value::from(f as i64)
    } else {
        serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Row `i` of `array` as JSON.
pub(crate) fn array_json(array: &dyn Array, i: usize) -> serde_json::Value {
    let array = array.slice(i, 1);
    match ScalarValue::try_from_array(&array, 0) {
        Ok(v) => scalar_json(&v),
        Err(_) => serde_json::Value::Null,
    }
}

/// Every row of `array` as JSON: common types read straight from the typed array, others
/// through a scalar.
pub(crate) fn column_json(array: &dyn Array) -> Vec<serde_json::Value> {
    use arrow::array::AsArray;
    use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
    use serde_json::Value;
    // Each row through `value`, nulls as JSON null.
    let rows = |value: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..array.len())
            .map(|i| {
                if array.is_valid(i) {
                    value(i)
                } else {
                    Value::Null
                }
            })
            .collect()
    };
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            rows(&|i| Value::String(a.value(i).to_string()))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            rows(&|i| Value::String(a.value(i).to_string()))
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            rows(&|i| Value::from(a.value(i)))
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            rows(&|i| Value::from(a.value(i)))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            rows(&|i| float_json(a.value(i)))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            rows(&|i| Value::Bool(a.value(i)))
        }
        _ => (0..array.len()).map(|i| array_json(array, i)).collect(),
    }
}

/// The groups of one fixed window: each aggregate as one DataFusion groups accumulator (its
/// vectorised form, or an adapter over per-group accumulators), updated once per batch.
pub(crate) struct Pane {
    index: HashMap<String, usize>,
    /// (key text, key values) of each group, by group index.
    pub(crate) keys: Vec<(String, Vec<serde_json::Value>)>,
    accs: Vec<Box<dyn GroupsAccumulator>>,
}

impl Planned {
    /// An empty pane.
    pub(crate) fn pane(&self) -> Result<Pane, String> {
        let accs = self
            .exprs
            .iter()
            .map(|e| groups_accumulator(e))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Pane {
            index: HashMap::new(),
            keys: Vec::new(),
            accs,
        })
    }

    /// A pane rebuilt from [`Pane::encode`]'s streams.
    pub(crate) fn decode_pane(
        &self,
        keys: Vec<(String, Vec<serde_json::Value>)>,
        streams: &[Vec<u8>],
    ) -> Result<Pane, String> {
        let mut pane = self.pane()?;
        if streams.len() != pane.accs.len() {
            return Err("the snapshot's aggregates do not match this window".into());
        }
        let n = keys.len();
        pane.index = keys
            .iter()
            .enumerate()
            .map(|(g, (k, _))| (k.clone(), g))
            .collect();
        pane.keys = keys;
        if n == 0 {
            return Ok(pane);
        }
        let groups: Vec<usize> = (0..n).collect();
        for (acc, bytes) in pane.accs.iter_mut().zip(streams) {
            let batches: Vec<RecordBatch> =
                StreamReader::try_new(std::io::Cursor::new(bytes.as_slice()), None)
                    .map_err(|e| e.to_string())?
                    .collect::<Result<_, _>>()
                    .map_err(|e| e.to_string())?;
            let [batch] = batches.as_slice() else {
                return Err("a pane's state is one batch".into());
            };
            if batch.num_rows() != n {
                return Err(format!(
                    "the snapshot holds {} states for {n} groups",
                    batch.num_rows()
                ));
            }
            acc.merge_batch(batch.columns(), &groups, n)
                .map_err(|e| strip_df(&e))?;
        }
        Ok(pane)
    }
}

/// The groups accumulator of one aggregate.
fn groups_accumulator(
    e: &Arc<AggregateFunctionExpr>,
) -> Result<Box<dyn GroupsAccumulator>, String> {
    if e.groups_accumulator_supported() {
        e.create_groups_accumulator().map_err(|e| strip_df(&e))
    } else {
        let e = Arc::clone(e);
        Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
            e.create_accumulator()
        })))
    }
}

impl Pane {
    /// The group index of `key`, added with its values when new.
    pub(crate) fn group(&mut self, key: &str, values: &[serde_json::Value]) -> usize {
        if let Some(&g) = self.index.get(key) {
            return g;
        }
        let g = self.keys.len();
        self.index.insert(key.to_string(), g);
        self.keys.push((key.to_string(), values.to_vec()));
        g
    }

    /// Adds `rows` of the batch's argument arrays to their `groups`.
    pub(crate) fn update(
        &mut self,
        args: &[Vec<ArrayRef>],
        rows: &[u32],
        groups: &[usize],
    ) -> Result<(), String> {
        let indices = UInt32Array::from(rows.to_vec());
        let n = self.keys.len();
        for (acc, values) in self.accs.iter_mut().zip(args) {
            let taken = values
                .iter()
                .map(|a| take(a.as_ref(), &indices, None).map_err(|e| e.to_string()))
                .collect::<Result<Vec<_>, String>>()?;
            acc.update_batch(&taken, groups, None, n)
                .map_err(|e| strip_df(&e))?;
        }
        Ok(())
    }

    /// Each group's aggregate values, by group index.
    pub(crate) fn evaluate(&mut self) -> Vec<Vec<serde_json::Value>> {
        let n = self.keys.len();
        let mut out: Vec<Vec<serde_json::Value>> = (0..n).map(|_| Vec::new()).collect();
        for acc in &mut self.accs {
            match acc.evaluate(EmitTo::All) {
                Ok(values) => {
                    for (g, v) in column_json(values.as_ref()).into_iter().enumerate().take(n) {
                        out[g].push(v);
                    }
                }
                Err(_) => out.iter_mut().for_each(|o| o.push(serde_json::Value::Null)),
            }
        }
        out
    }

    /// The accumulator states, one Arrow IPC stream per aggregate (a row per group); the
    /// accumulators are rebuilt from them, so taking a snapshot disturbs nothing.
    pub(crate) fn encode(&mut self, planned: &Planned) -> Result<Vec<Vec<u8>>, String> {
        let n = self.keys.len();
        let groups: Vec<usize> = (0..n).collect();
        let mut out = Vec::with_capacity(self.accs.len());
        for (acc, expr) in self.accs.iter_mut().zip(&planned.exprs) {
            if n == 0 {
                out.push(Vec::new());
                continue;
            }
            let state = acc.state(EmitTo::All).map_err(|e| strip_df(&e))?;
            let mut fresh = groups_accumulator(expr)?;
            fresh
                .merge_batch(&state, &groups, n)
                .map_err(|e| strip_df(&e))?;
            *acc = fresh;
            let fields: Vec<Field> = state
                .iter()
                .enumerate()
                .map(|(j, c)| Field::new(format!("s{j}"), c.data_type().clone(), true))
                .collect();
            let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), state)
                .map_err(|e| e.to_string())?;
            let mut buf = Vec::new();
            let mut w =
                StreamWriter::try_new(&mut buf, &batch.schema()).map_err(|e| e.to_string())?;
            w.write(&batch).map_err(|e| e.to_string())?;
            w.finish().map_err(|e| e.to_string())?;
            drop(w);
            out.push(buf);
        }
        Ok(out)
    }
}
