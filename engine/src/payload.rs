//! Payload changes: a `map` records edits per message instead of rewriting JSON on the spot;
//! a sink encodes them once. A message nobody edited leaves with its original bytes.

use crate::columns::path_display;
use crate::decode::Key;
use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// One change to a payload, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Edit {
    /// Set a field (creating missing parent objects).
    Set(Arc<Vec<String>>, Value),
    /// Move a field (no-op when it is missing).
    Rename(Arc<Vec<String>>, Arc<Vec<String>>),
    /// Remove a field (no-op when it is missing).
    Remove(Arc<Vec<String>>),
}

impl Edit {
    fn top_level(&self) -> bool {
        match self {
            Edit::Set(p, _) | Edit::Remove(p) => p.len() == 1,
            Edit::Rename(a, b) => a.len() == 1 && b.len() == 1,
        }
    }
}

/// Applies `edits` to the JSON object `base` and encodes the result. Edits of top-level
/// fields splice raw field values (no full parse); nested edits go through `serde_json::Value`.
pub(crate) fn apply(base: &[u8], edits: &[Edit]) -> Result<Bytes, String> {
    if edits.is_empty() {
        return Ok(Bytes::copy_from_slice(base));
    }
    if edits.iter().all(Edit::top_level) {
        apply_top_level(base, edits)
    } else {
        apply_nested(base, edits)
    }
}

enum Slot<'a> {
    Raw(&'a RawValue),
    Value(Value),
}

fn apply_top_level(base: &[u8], edits: &[Edit]) -> Result<Bytes, String> {
    let mut fields: IndexMap<Key<'_>, Slot<'_>> = {
        let parsed: IndexMap<Key<'_>, &RawValue> = serde_json::from_slice(base)
            .map_err(|e| format!("payload is not a JSON object: {e}"))?;
        parsed.into_iter().map(|(k, v)| (k, Slot::Raw(v))).collect()
    };
    for edit in edits {
        match edit {
            Edit::Set(path, value) => {
                fields.insert(Key(path[0].clone().into()), Slot::Value(value.clone()));
            }
            Edit::Remove(path) => {
                fields.shift_remove(path[0].as_str());
            }
            Edit::Rename(from, to) => {
                if let Some(v) = fields.shift_remove(from[0].as_str()) {
                    fields.insert(Key(to[0].clone().into()), v);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(base.len() + 32);
    out.push(b'{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k.0.as_ref()).map_err(|e| e.to_string())?;
        out.push(b':');
        match v {
            Slot::Raw(r) => out.extend_from_slice(r.get().as_bytes()),
            Slot::Value(v) => serde_json::to_writer(&mut out, v).map_err(|e| e.to_string())?,
        }
    }
    out.push(b'}');
    Ok(Bytes::from(out))
}

impl std::hash::Hash for Key<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_ref().hash(state)
    }
}
impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl Eq for Key<'_> {}
impl indexmap::Equivalent<Key<'_>> for str {
    fn equivalent(&self, key: &Key<'_>) -> bool {
        self == key.0.as_ref()
    }
}

fn apply_nested(base: &[u8], edits: &[Edit]) -> Result<Bytes, String> {
    let mut doc: Value =
        serde_json::from_slice(base).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    for edit in edits {
        match edit {
            Edit::Set(path, value) => set_path(&mut doc, path, value.clone())?,
            Edit::Remove(path) => {
                take_path(&mut doc, path);
            }
            Edit::Rename(from, to) => {
                if let Some(v) = take_path(&mut doc, from) {
                    set_path(&mut doc, to, v)?;
                }
            }
        }
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| e.to_string())
}

/// Sets `path` in `doc`, creating missing parent objects.
pub(crate) fn set_path(doc: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let mut cur = doc;
    for (i, seg) in path.iter().enumerate() {
        let Value::Object(map) = cur else {
            return Err(format!(
                "cannot set {}: {} is not an object",
                path_display(path),
                path_display(&path[..i])
            ));
        };
        if i + 1 == path.len() {
            map.insert(seg.clone(), value);
            return Ok(());
        }
        cur = map
            .entry(seg.clone())
            .or_insert_with(|| Value::Object(Default::default()));
    }
    Ok(())
}

/// Removes `path` from `doc` and returns its value.
pub(crate) fn take_path(doc: &mut Value, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = doc;
    for seg in parents {
        cur = cur.as_object_mut()?.get_mut(seg)?;
    }
    cur.as_object_mut()?.shift_remove(last)
}

/// Finds `path` in a JSON document and returns its raw text, borrowed from `text`.
pub(crate) fn find_raw<'a>(text: &'a str, path: &[String]) -> Result<Option<&'a RawValue>, String> {
    let mut cur: &'a RawValue =
        serde_json::from_str(text).map_err(|e| format!("payload is not valid JSON: {e}"))?;
    for seg in path {
        if !cur.get().starts_with('{') {
            return Ok(None);
        }
        let map: IndexMap<Key<'a>, &'a RawValue> =
            serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
        match map.into_iter().find(|(k, _)| k.0 == seg.as_str()) {
            Some((_, v)) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}
