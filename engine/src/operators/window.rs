//! `window`: aggregates messages per group over tumbling, hopping or session windows of event
//! time. The watermark is the latest event time seen minus the allowed lateness (and moves on
//! with the clock after an idle timeout); a window closes when the watermark reaches its end
//! and emits one JSON message per group. Events whose every window has closed go to `late`.

use super::window_agg::{
    Aggregates, Pane, Planned, array_json, column_json, merge, scalar_json, update_row,
};
use super::{Operator, Origin, PlanContext, SideOutput};
use crate::frame::{BatchContext, Frame};
use crate::message::{FailureKind, InputMessage, NodeStats};
use crate::sql::SqlExpr;
use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use bytes::Bytes;
use datafusion::logical_expr::Accumulator;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use weir_pipelines::plan::{WindowPlan, WindowShape};

/// Header naming the start of the window an output or late event belongs to (RFC 3339).
pub(crate) const WINDOW_START: &str = "Weir-Window-Start";
/// Header naming the end of that window (RFC 3339, exclusive).
pub(crate) const WINDOW_END: &str = "Weir-Window-End";
/// Header on late events: the watermark they arrived behind (RFC 3339).
pub(crate) const WATERMARK: &str = "Weir-Watermark";

/// Window shapes in milliseconds.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Tumbling (`slide == size`) or hopping windows aligned to the Unix epoch.
    Fixed { size: i64, slide: i64 },
    /// Per group, events less than `gap` apart.
    Session { gap: i64 },
}

/// A compiled `window` node.
pub(crate) struct Window {
    id: Arc<str>,
    shape: Shape,
    time: Option<SqlExpr>,
    lateness: i64,
    idle: Option<i64>,
    keys: Vec<(String, SqlExpr)>,
    aggs: Aggregates,
    state: Mutex<State>,
}

/// One group's accumulators in one window, with its key values for the output.
struct Group {
    keys: Vec<Value>,
    accs: Vec<Box<dyn Accumulator>>,
}

/// A session of one group: `[start, end)`, `end` = last event + gap.
struct Session {
    start: i64,
    end: i64,
    group: Group,
}

/// What a window node holds across batches.
#[derive(Default)]
struct State {
    /// Event time up to which every window is complete (ms); `None` before the first event.
    watermark: Option<i64>,
    /// Latest event time seen (ms).
    max_event: Option<i64>,
    /// Wall clock of the last event (µs), for the idle timeout.
    last_arrival: Option<i64>,
    /// Fixed windows by (end, start), each with its groups.
    windows: BTreeMap<(i64, i64), Pane>,
    /// Sessions by group key.
    sessions: HashMap<String, Vec<Session>>,
    /// Events sent to `late` so far.
    late: u64,
}

impl State {
    fn watermark(&self) -> i64 {
        self.watermark.unwrap_or(i64::MIN)
    }

    fn observe(&mut self, t: i64, lateness: i64) {
        self.max_event = Some(self.max_event.map_or(t, |m| m.max(t)));
        let w = t.saturating_sub(lateness);
        self.watermark = Some(self.watermark.map_or(w, |old| old.max(w)));
    }
}

/// A window node's state in a checkpoint: the watermark, and per open window and group its
/// bounds, key and (in `states`, one Arrow IPC stream per aggregate, a row per group) the
/// accumulators' states.
#[derive(serde::Serialize, serde::Deserialize)]
struct WindowSnapshot {
    watermark: Option<i64>,
    max_event: Option<i64>,
    late: u64,
    /// The column types the aggregates were planned with (Arrow IPC schema).
    #[serde(with = "serde_bytes")]
    types: Option<Vec<u8>>,
    /// Open fixed windows.
    panes: Vec<PaneSnapshot>,
    /// Open sessions, their states in `states` (an IPC stream per aggregate, a row each).
    sessions: Vec<GroupSnapshot>,
    #[serde(with = "crate::snapshot::byte_strings")]
    states: Vec<Vec<u8>>,
}

/// One open fixed window: its groups (key text and values) and, per aggregate, an Arrow IPC
/// stream of the groups accumulator's state (a row per group).
#[derive(serde::Serialize, serde::Deserialize)]
struct PaneSnapshot {
    start: i64,
    end: i64,
    keys: Vec<(String, Vec<Value>)>,
    #[serde(with = "crate::snapshot::byte_strings")]
    states: Vec<Vec<u8>>,
}

/// One open session of one group.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupSnapshot {
    start: i64,
    end: i64,
    key: String,
    keys: Vec<Value>,
}

/// A closed window of one group: end, start, key text, key values, aggregate values.
type Closed = (i64, i64, String, Vec<Value>, Vec<Value>);

/// A row's place in the windows: its group, and the windows that take it or the one it missed.
enum Placement {
    /// Updates these fixed windows `(end, start)`.
    Fixed(Vec<(i64, i64)>),
    /// Joins its group's session.
    Session,
    /// Every window of it has closed (a session event: it is behind the watermark);
    /// `(start, end)` of the latest one.
    Late(i64, i64),
}

impl Window {
    /// The fixed windows `(end, start)` that contain `t`, latest first.
    fn windows_of(size: i64, slide: i64, t: i64) -> impl Iterator<Item = (i64, i64)> {
        let last_start = t.div_euclid(slide) * slide;
        (0..)
            .map(move |k| last_start - k * slide)
            .take_while(move |s| s + size > t)
            .map(move |s| (s + size, s))
    }

    fn place(&self, t: i64, watermark: i64) -> Placement {
        match self.shape {
            Shape::Fixed { size, slide } => {
                let open: Vec<(i64, i64)> = Self::windows_of(size, slide, t)
                    .filter(|(end, _)| *end > watermark)
                    .collect();
                if open.is_empty() {
                    let (end, start) = Self::windows_of(size, slide, t)
                        .next()
                        .unwrap_or((t + size, t));
                    Placement::Late(start, end)
                } else {
                    Placement::Fixed(open)
                }
            }
            Shape::Session { gap } => {
                // Behind the watermark: a session it could join may have closed already.
                if t < watermark {
                    Placement::Late(t, t + gap)
                } else {
                    Placement::Session
                }
            }
        }
    }

    /// Adds row `i` to its group's session, merging the sessions it bridges.
    fn join_session(
        &self,
        state: &mut State,
        key: &str,
        keys: &[Value],
        t: i64,
        (planned, args, i): (&Planned, &[Vec<ArrayRef>], usize),
    ) -> Result<(), String> {
        let Shape::Session { gap } = self.shape else {
            return Ok(());
        };
        let sessions = state.sessions.entry(key.to_string()).or_default();
        let (start, end) = (t, t + gap);
        let mut joined: Option<Session> = None;
        let mut kept = Vec::with_capacity(sessions.len());
        for mut s in sessions.drain(..) {
            if s.start < end && start < s.end {
                match &mut joined {
                    None => joined = Some(s),
                    Some(j) => {
                        merge(&mut j.group.accs, &mut s.group.accs)?;
                        j.start = j.start.min(s.start);
                        j.end = j.end.max(s.end);
                    }
                }
            } else {
                kept.push(s);
            }
        }
        let mut session = match joined {
            Some(s) => s,
            None => Session {
                start,
                end,
                group: Group {
                    keys: keys.to_vec(),
                    accs: planned.accumulators()?,
                },
            },
        };
        session.start = session.start.min(start);
        session.end = session.end.max(end);
        update_row(&mut session.group.accs, args, i)?;
        kept.push(session);
        *sessions = kept;
        Ok(())
    }

    /// Closes every window whose end the watermark has reached (all of them for `None`), in
    /// order of end, start and group key.
    fn close(&self, state: &mut State, upto: Option<i64>) -> Vec<SideOutput> {
        let due = |end: i64| upto.is_none_or(|w| end <= w);
        let mut closed: Vec<Closed> = Vec::new();
        while let Some(entry) = state.windows.first_entry() {
            let (end, start) = *entry.key();
            if !due(end) {
                break;
            }
            let mut pane = entry.remove();
            let values = pane.evaluate();
            for ((key, keys), values) in pane.keys.drain(..).zip(values) {
                closed.push((end, start, key, keys, values));
            }
        }
        state.sessions.retain(|key, sessions| {
            let (done, open): (Vec<Session>, Vec<Session>) =
                sessions.drain(..).partition(|s| due(s.end));
            for mut s in done {
                let values = s
                    .group
                    .accs
                    .iter_mut()
                    .map(|acc| {
                        acc.evaluate()
                            .map(|v| scalar_json(&v))
                            .unwrap_or(Value::Null)
                    })
                    .collect();
                closed.push((s.end, s.start, key.clone(), s.group.keys, values));
            }
            *sessions = open;
            !sessions.is_empty()
        });
        closed.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
        closed
            .into_iter()
            .map(|(end, start, key, keys, values)| self.result(start, end, &key, keys, values))
            .collect()
    }

    /// The message of one closed window and group.
    fn result(
        &self,
        start: i64,
        end: i64,
        key: &str,
        keys: Vec<Value>,
        values: Vec<Value>,
    ) -> SideOutput {
        let mut object = Map::new();
        object.insert("window_start".into(), Value::String(rfc3339(start)));
        object.insert("window_end".into(), Value::String(rfc3339(end)));
        for ((name, _), v) in self.keys.iter().zip(keys) {
            object.insert(name.clone(), v);
        }
        for (name, v) in self.aggs.names().zip(values) {
            object.insert(name.to_string(), v);
        }
        let payload = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
        SideOutput {
            port: 0,
            message: InputMessage {
                subject: String::new(),
                headers: vec![
                    (WINDOW_START.into(), rfc3339(start)),
                    (WINDOW_END.into(), rfc3339(end)),
                ],
                payload: Bytes::from(payload),
                seq: 0,
                stream: String::new(),
                timestamp_micros: end.saturating_mul(1000),
            },
            origin: Origin::Window(format!("{}:{start}:{end}:{key}", self.id)),
        }
    }

    /// Event times of the frame's rows in ms; `Err` per row that has none.
    fn times(&self, frame: &Frame, ctx: &BatchContext<'_>) -> Vec<Result<i64, String>> {
        let Some(expr) = &self.time else {
            return frame
                .rows
                .iter()
                .map(|r| {
                    Ok(ctx.inputs[r.input as usize]
                        .timestamp_micros
                        .div_euclid(1000))
                })
                .collect();
        };
        let n = frame.rows.len();
        let evaluated = match expr.evaluate(ctx.state, &frame.batch(ctx.catalog)) {
            Ok(e) => e,
            Err(e) => return vec![Err(e); n],
        };
        let mut out = event_millis(&evaluated.values, &expr.text);
        for (i, e) in evaluated.errors {
            out[i] = Err(e);
        }
        out
    }

    /// Group key values of the frame's rows (JSON) with their key text.
    fn group_keys(
        &self,
        frame: &Frame,
        ctx: &BatchContext<'_>,
    ) -> Vec<Result<(String, Vec<Value>), String>> {
        let n = frame.rows.len();
        if self.keys.is_empty() {
            return vec![Ok(("[]".to_string(), Vec::new())); n];
        }
        let batch = frame.batch(ctx.catalog);
        let mut columns = Vec::with_capacity(self.keys.len());
        let mut out: Vec<Result<(String, Vec<Value>), String>> =
            vec![Ok((String::new(), Vec::new())); n];
        for (_, expr) in &self.keys {
            match expr.evaluate(ctx.state, &batch) {
                Ok(e) => {
                    for (i, message) in e.errors {
                        out[i] = Err(message);
                    }
                    columns.push(e.values);
                }
                Err(e) => return vec![Err(e); n],
            }
        }
        let mut columns: Vec<std::vec::IntoIter<Value>> = columns
            .iter()
            .map(|c| column_json(c.as_ref()).into_iter())
            .collect();
        for slot in out.iter_mut() {
            let values: Vec<Value> = columns
                .iter_mut()
                .map(|c| c.next().unwrap_or(Value::Null))
                .collect();
            if slot.is_ok() {
                let text = serde_json::to_string(&values).unwrap_or_default();
                *slot = Ok((text, values));
            }
        }
        out
    }

    /// Sends the late rows to the `late` port: the message as it is at this node, plus headers
    /// naming the window it missed and the watermark.
    fn send_late(
        &self,
        frame: &Frame,
        late: Vec<(usize, i64, i64, i64)>,
        ctx: &mut BatchContext<'_>,
    ) {
        for (i, start, end, watermark) in late {
            let row = &frame.rows[i];
            let payload = match row.encode(ctx.inputs, &ctx.spans) {
                Ok(p) => p,
                Err(e) => {
                    ctx.fail_with(row, e);
                    continue;
                }
            };
            let mut message = ctx.inputs[row.input as usize].clone();
            message.payload = payload;
            for (name, value) in [
                (WINDOW_START, rfc3339(start)),
                (WINDOW_END, rfc3339(end)),
                (WATERMARK, rfc3339(watermark)),
            ] {
                message
                    .headers
                    .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                message.headers.push((name.to_string(), value));
            }
            ctx.side.push(SideOutput {
                port: 1,
                message,
                origin: Origin::Input(row.input),
            });
        }
    }
}

impl Operator for Window {
    fn process_batch(&self, frame: Frame, ctx: &mut BatchContext<'_>) -> Vec<(usize, Frame)> {
        let node: &str = &self.id;
        let times = self.times(&frame, ctx);
        let keys = self.group_keys(&frame, ctx);
        let batch = frame.batch(ctx.catalog);
        let (planned, args) = match self.aggs.arguments(ctx.state, ctx.catalog, &batch) {
            Ok(x) => x,
            Err(e) => {
                for row in &frame.rows {
                    ctx.fail(row, node, FailureKind::Expression, e.clone());
                }
                return Vec::new();
            }
        };
        let mut late = Vec::new();
        // Rows and their group indices per fixed window, added once the rows are placed.
        let mut updates: BTreeMap<(i64, i64), (Vec<u32>, Vec<usize>)> = BTreeMap::new();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (i, (t, key)) in times.into_iter().zip(keys).enumerate() {
            let row = &frame.rows[i];
            if ctx.failed(row) {
                continue;
            }
            let (t, (key, values)) = match (t, key) {
                (Ok(t), Ok(k)) => (t, k),
                (Err(e), _) | (_, Err(e)) => {
                    ctx.fail(row, node, FailureKind::Expression, e);
                    continue;
                }
            };
            let watermark = state.watermark();
            let placed = match self.place(t, watermark) {
                Placement::Late(start, end) => {
                    state.late += 1;
                    late.push((i, start, end, watermark));
                    Ok(())
                }
                Placement::Fixed(windows) => windows.into_iter().try_for_each(|w| {
                    let pane = match state.windows.entry(w) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => e.insert(planned.pane()?),
                    };
                    let g = pane.group(&key, &values);
                    let (rows, groups) = updates.entry(w).or_default();
                    rows.push(i as u32);
                    groups.push(g);
                    Ok(())
                }),
                Placement::Session => {
                    self.join_session(&mut state, &key, &values, t, (&planned, &args, i))
                }
            };
            if let Err(e) = placed {
                ctx.fail(row, node, FailureKind::Expression, e);
                continue;
            }
            state.observe(t, self.lateness);
            state.last_arrival = Some(now_micros());
        }
        for (w, (rows, groups)) in updates {
            let Some(pane) = state.windows.get_mut(&w) else {
                continue;
            };
            if let Err(e) = pane.update(&args, &rows, &groups) {
                for &i in &rows {
                    ctx.fail(
                        &frame.rows[i as usize],
                        node,
                        FailureKind::Expression,
                        e.clone(),
                    );
                }
            }
        }
        let watermark = state.watermark();
        let closed = self.close(&mut state, Some(watermark));
        drop(state);
        ctx.side.extend(closed);
        self.send_late(&frame, late, ctx);
        Vec::new()
    }

    fn on_time(&self, now: Option<i64>) -> Vec<SideOutput> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match now {
            None => self.close(&mut state, None),
            Some(now) => {
                let (Some(idle), Some(last), Some(max)) =
                    (self.idle, state.last_arrival, state.max_event)
                else {
                    return Vec::new();
                };
                let quiet = (now - last).div_euclid(1000);
                if quiet < idle {
                    return Vec::new();
                }
                let moved = max.saturating_sub(self.lateness).saturating_add(quiet);
                state.watermark = Some(state.watermark().max(moved));
                let upto = state.watermark();
                self.close(&mut state, Some(upto))
            }
        }
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let planned = self.aggs.planned();
        let State {
            watermark,
            max_event,
            windows,
            sessions,
            late,
            ..
        } = &mut *state;
        let mut panes = Vec::with_capacity(windows.len());
        let mut groups = Vec::new();
        let mut accs: Vec<&mut Vec<Box<dyn Accumulator>>> = Vec::new();
        let (types, states) = match &planned {
            None => (None, Vec::new()),
            Some(p) => {
                for (&(end, start), pane) in windows.iter_mut() {
                    panes.push(PaneSnapshot {
                        start,
                        end,
                        keys: pane.keys.clone(),
                        states: pane.encode(p)?,
                    });
                }
                for (key, list) in sessions.iter_mut() {
                    for s in list.iter_mut() {
                        groups.push(GroupSnapshot {
                            start: s.start,
                            end: s.end,
                            key: key.clone(),
                            keys: s.group.keys.clone(),
                        });
                        accs.push(&mut s.group.accs);
                    }
                }
                (Some(p.encode_types()?), p.encode_states(&mut accs)?)
            }
        };
        let snapshot = WindowSnapshot {
            watermark: *watermark,
            max_event: *max_event,
            late: *late,
            types,
            panes,
            sessions: groups,
            states,
        };
        crate::snapshot::encode(&snapshot).map(Some)
    }

    fn restore(
        &self,
        bytes: &[u8],
        session: &datafusion::execution::SessionState,
        catalog: &crate::columns::Catalog,
    ) -> Result<(), String> {
        let snap: WindowSnapshot = crate::snapshot::decode(bytes)?;
        let mut restored = State {
            watermark: snap.watermark,
            max_event: snap.max_event,
            late: snap.late,
            ..State::default()
        };
        if let Some(types) = &snap.types {
            let planned = self
                .aggs
                .plan_with(session, catalog, Planned::decode_types(types)?)?;
            for p in snap.panes {
                let pane = planned.decode_pane(p.keys, &p.states)?;
                restored.windows.insert((p.end, p.start), pane);
            }
            let accs = planned.decode_states(&snap.states, snap.sessions.len())?;
            for (g, accs) in snap.sessions.into_iter().zip(accs) {
                restored.sessions.entry(g.key).or_default().push(Session {
                    start: g.start,
                    end: g.end,
                    group: Group { keys: g.keys, accs },
                });
            }
        }
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = restored;
        Ok(())
    }

    fn stats(&self) -> Option<NodeStats> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let sessions: usize = state.sessions.values().map(Vec::len).sum();
        Some(NodeStats {
            open_windows: (state.windows.len() + sessions) as u64,
            keys_held: (state.windows.values().map(|p| p.keys.len()).sum::<usize>() + sessions)
                as u64,
            late_events: state.late,
            duplicates_dropped: 0,
            watermark_ms: state.watermark,
        })
    }
}

/// Event times in ms from a timestamp, an integer or float (epoch ms) or an RFC 3339 string.
fn event_millis(values: &ArrayRef, text: &str) -> Vec<Result<i64, String>> {
    let n = values.len();
    let target = match values.data_type() {
        DataType::Timestamp(_, _)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64 => DataType::Timestamp(TimeUnit::Millisecond, None),
        DataType::Null => return vec![Err(format!("event time `{text}` is missing")); n],
        t if t.is_numeric() => DataType::Int64,
        other => {
            return vec![
                Err(format!(
                    "event time `{text}` is {other}; it must be a timestamp, RFC 3339 text or epoch milliseconds"
                ));
                n
            ];
        }
    };
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let cast = match cast_with_options(values, &target, &options)
        .and_then(|a| cast_with_options(&a, &DataType::Int64, &options))
    {
        Ok(a) => a,
        Err(e) => return vec![Err(format!("event time `{text}`: {e}")); n],
    };
    let ints = cast.as_primitive::<Int64Type>();
    (0..n)
        .map(|i| {
            if ints.is_valid(i) {
                Ok(ints.value(i))
            } else if values.is_valid(i) {
                Err(format!(
                    "event time `{text}` is `{}`, which is neither RFC 3339 nor epoch milliseconds",
                    array_json(values, i)
                ))
            } else {
                Err(format!("event time `{text}` is missing"))
            }
        })
        .collect()
}

/// Milliseconds since the epoch as RFC 3339 UTC (`2026-12-05T10:01:00Z`, ms when not whole).
pub(crate) fn rfc3339(ms: i64) -> String {
    match arrow::temporal_conversions::timestamp_ms_to_datetime(ms) {
        Some(t) if ms.rem_euclid(1000) == 0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => ms.to_string(),
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Builds a `window` node: the time and key expressions and the aggregate calls, planned.
pub(crate) fn build(spec: &WindowPlan, cx: &mut PlanContext<'_>) -> Option<Box<dyn Operator>> {
    let ms = |d: std::time::Duration| d.as_millis().min(i64::MAX as u128) as i64;
    let shape = match spec.shape {
        WindowShape::Tumbling { size } => Shape::Fixed {
            size: ms(size),
            slide: ms(size),
        },
        WindowShape::Hopping { size, slide } => Shape::Fixed {
            size: ms(size),
            slide: ms(slide),
        },
        WindowShape::Session { gap } => Shape::Session { gap: ms(gap) },
    };
    let time = match &spec.time {
        Some(t) => Some(cx.expr(t, "time", "/window/time".into())?),
        None => None,
    };
    let mut keys = Vec::with_capacity(spec.group_by.len());
    let mut ok = true;
    for (name, e) in &spec.group_by {
        let field = format!("/window/group_by/{}", super::escape_pointer(name));
        match cx.expr(e, "group key", field) {
            Some(x) => keys.push((name.clone(), x)),
            None => ok = false,
        }
    }
    let mut problems = Vec::new();
    cx.reading("/window/aggregates");
    let aggs = Aggregates::compile(&spec.aggregates, cx.state, cx.catalog, |name, e| {
        problems.push((
            format!("/window/aggregates/{}", super::escape_pointer(name)),
            format!("aggregate {name}: {e}"),
        ));
    });
    for (field, message) in problems {
        cx.problem(field, message);
    }
    let aggs = aggs.filter(|_| ok)?;
    Some(Box::new(Window {
        id: cx.id.clone(),
        shape,
        time,
        lateness: ms(spec.allowed_lateness),
        idle: spec.idle_timeout.map(ms),
        keys,
        aggs,
        state: Mutex::new(State::default()),
    }))
}
