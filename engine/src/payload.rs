//! Payload changes: a `map` records edits per message instead of rewriting JSON on the spot;
//! a sink encodes them once. A message nobody edited leaves with its original bytes.

use crate::columns::path_display;
use crate::decode::{FieldSpan, Key};
use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
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
///
/// `fields` are the top-level field spans the decoder recorded for `base`, if any; without
/// them the payload is parsed again.
pub(crate) fn apply(
    base: &[u8],
    edits: &[Edit],
    fields: Option<&[FieldSpan]>,
) -> Result<Bytes, String> {
    if edits.is_empty() {
        return Ok(Bytes::copy_from_slice(base));
    }
    if edits.iter().all(Edit::top_level) {
        apply_top_level(base, edits, fields)
    } else {
        apply_nested(base, edits)
    }
}

enum Slot<'a> {
    Raw(&'a [u8]),
    Value(Value),
}

/// The top-level fields of an object in document order; an `IndexMap` gives JSON's object
/// semantics (setting an existing key keeps its place, a new key goes last).
type Fields<'a> = IndexMap<Cow<'a, str>, Slot<'a>>;

/// The fields of `base` from spans the decoder recorded (`None` if a span does not fit).
fn fields_from_spans<'a>(base: &'a [u8], spans: &[FieldSpan]) -> Option<Fields<'a>> {
    let mut fields = Fields::with_capacity(spans.len() + 4);
    for &[k0, k1, v0, v1] in spans {
        let key = std::str::from_utf8(base.get(k0 as usize..k1 as usize)?).ok()?;
        let value = base.get(v0 as usize..v1 as usize)?;
        fields.insert(Cow::Borrowed(key), Slot::Raw(value));
    }
    Some(fields)
}

/// The fields of `base`, parsed.
fn parse_fields(base: &[u8]) -> Result<Fields<'_>, String> {
    let parsed: IndexMap<Key<'_>, &RawValue> =
        serde_json::from_slice(base).map_err(|e| format!("payload is not a JSON object: {e}"))?;
    Ok(parsed
        .into_iter()
        .map(|(k, v)| (k.0, Slot::Raw(v.get().as_bytes())))
        .collect())
}

/// The key a top-level `set` writes (`None`: not a set, or not top-level).
fn set_key(edit: &Edit) -> Option<&str> {
    match edit {
        Edit::Set(path, _) if path.len() == 1 => Some(path[0].as_str()),
        _ => None,
    }
}

/// The value of the last set of `key` among `edits` (a later set of the same key wins).
fn last_set<'e>(edits: &'e [Edit], key: &[u8]) -> Option<&'e Value> {
    edits.iter().rev().find_map(|e| match e {
        Edit::Set(_, value) if set_key(e).is_some_and(|k| k.as_bytes() == key) => Some(value),
        _ => None,
    })
}

thread_local! {
    /// The buffer a payload is written into before it is copied out at its exact size: a
    /// `Bytes` made from a `Vec` with spare room allocates a second time, for a shared header.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest scratch buffer kept between payloads.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `write` on an empty scratch buffer and returns what it wrote, copied at its exact size.
fn written<E>(write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Bytes, E> {
    SCRATCH.with(|scratch| {
        let mut out = scratch.take();
        out.clear();
        let result = write(&mut out).map(|()| Bytes::copy_from_slice(&out));
        if out.capacity() <= SCRATCH_KEEP {
            scratch.replace(out);
        }
        result
    })
}

/// The common case, done by splicing: every edit sets a top-level field, and each field it
/// sets occurs at most once. Existing values are replaced in place, new fields are appended
/// before the closing brace; the rest of the payload is copied as is. `None` when it does not
/// apply. Allocates nothing but the result: edits are few, so they are searched rather than
/// indexed.
fn splice_sets(base: &[u8], edits: &[Edit], spans: &[FieldSpan]) -> Option<Result<Bytes, String>> {
    let key_at = |&[k0, k1, ..]: &FieldSpan| base.get(k0 as usize..k1 as usize);
    for edit in edits {
        let key = set_key(edit)?.as_bytes();
        let mut occurrences = 0;
        for span in spans {
            occurrences += usize::from(key_at(span)? == key);
        }
        if occurrences > 1 {
            return None; // a duplicate key: the general path decides
        }
    }
    let close = base.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if base[close] != b'}' {
        return None;
    }
    let write_value =
        |out: &mut Vec<u8>, v: &Value| serde_json::to_writer(out, v).map_err(|e| e.to_string());
    Some(written(|out| {
        // Existing fields, in document order (the spans'), get their last set value.
        let mut copied = 0usize;
        for span in spans {
            let [_, _, v0, v1] = *span;
            if let Some(value) = key_at(span).and_then(|key| last_set(edits, key)) {
                out.extend_from_slice(&base[copied..v0 as usize]);
                write_value(out, value)?;
                copied = v1 as usize;
            }
        }
        out.extend_from_slice(&base[copied..close]);
        // New fields, in the order of their first set, with their last set value.
        let mut empty = spans.is_empty();
        for (i, edit) in edits.iter().enumerate() {
            let Some(key) = set_key(edit) else { continue };
            let first = !edits[..i].iter().any(|e| set_key(e) == Some(key));
            if !first || spans.iter().any(|s| key_at(s) == Some(key.as_bytes())) {
                continue;
            }
            if !empty {
                out.push(b',');
            }
            empty = false;
            serde_json::to_writer(&mut *out, key).map_err(|e| e.to_string())?;
            out.push(b':');
            write_value(
                out,
                last_set(edits, key.as_bytes()).expect("this key is set"),
            )?;
        }
        out.extend_from_slice(&base[close..]);
        Ok(())
    }))
}

fn apply_top_level(
    base: &[u8],
    edits: &[Edit],
    spans: Option<&[FieldSpan]>,
) -> Result<Bytes, String> {
    if let Some(done) = spans.and_then(|s| splice_sets(base, edits, s)) {
        return done;
    }
    let mut fields = match spans.and_then(|s| fields_from_spans(base, s)) {
        Some(fields) => fields,
        None => parse_fields(base)?,
    };
    for edit in edits {
        match edit {
            Edit::Set(path, value) => {
                fields.insert(Cow::Owned(path[0].clone()), Slot::Value(value.clone()));
            }
            Edit::Remove(path) => {
                fields.shift_remove(path[0].as_str());
            }
            Edit::Rename(from, to) => {
                if let Some(v) = fields.shift_remove(from[0].as_str()) {
                    fields.insert(Cow::Owned(to[0].clone()), v);
                }
            }
        }
    }
    written(|out| {
        out.push(b'{');
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match k {
                // A key borrowed from valid JSON had no escapes, so it needs none.
                Cow::Borrowed(k) => {
                    out.push(b'"');
                    out.extend_from_slice(k.as_bytes());
                    out.push(b'"');
                }
                Cow::Owned(k) => serde_json::to_writer(&mut *out, k).map_err(|e| e.to_string())?,
            }
            out.push(b':');
            match v {
                Slot::Raw(r) => out.extend_from_slice(r),
                Slot::Value(v) => serde_json::to_writer(&mut *out, v).map_err(|e| e.to_string())?,
            }
        }
        out.push(b'}');
        Ok(())
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{PathTrie, extract};

    fn path(p: &str) -> Arc<Vec<String>> {
        Arc::new(p.split('.').map(str::to_string).collect())
    }

    /// Encoding from the decoder's spans gives exactly what a fresh parse gives.
    #[test]
    fn spans_and_parse_agree() {
        let payloads = [
            r#"{"a":1,"b":"x","c":{"d":[1,2]}}"#,
            r#"{"a":1,"a":2,"b":true}"#,
            r#" { "a" : 1 , "b" : null } "#,
            r#"{}"#,
            r#"{"k\"ey":1,"a":2}"#,
        ];
        let edits = [
            Edit::Set(path("a"), Value::from(5)),
            Edit::Set(path("new"), Value::from("v")),
            Edit::Rename(path("b"), path("bb")),
            Edit::Remove(path("c")),
        ];
        let trie = PathTrie::build(std::iter::empty::<&[String]>());
        for text in payloads {
            let mut spans = Vec::new();
            let x = extract(text, &trie, &mut [], Some(&mut spans)).expect("valid JSON");
            let fields = x.fields.map(|(a, b)| &spans[a as usize..b as usize]);
            assert_eq!(fields.is_some(), !text.contains('\\'), "{text}");
            let normal = |b: Result<Bytes, String>| -> String {
                let v: Value = serde_json::from_slice(&b.expect("encodes")).expect("JSON out");
                v.to_string()
            };
            for k in 0..=edits.len() {
                // Sets alone take the splicing path; with rename/remove, the general one.
                for edits in [&edits[..k], &edits[k.min(2)..k]] {
                    let with = apply(text.as_bytes(), edits, fields);
                    let without = apply(text.as_bytes(), edits, None);
                    assert_eq!(normal(with), normal(without), "{text} with {edits:?}");
                }
            }
            let twice = [
                Edit::Set(path("z"), Value::from(1)),
                Edit::Set(path("z"), Value::from(2)),
            ];
            let out = normal(apply(text.as_bytes(), &twice, fields));
            assert!(out.ends_with(r#""z":2}"#), "{out}");
        }
        let out = apply(payloads[1].as_bytes(), &edits, None).expect("encodes");
        assert_eq!(&out[..], br#"{"a":5,"new":"v","bb":true}"#);
    }

    /// A splice keeps the payload's bytes as they are, replaces values in place and appends
    /// new fields in the order they were first set, each with its last value.
    #[test]
    fn a_splice_replaces_in_place_and_appends_in_first_set_order() {
        let text = r#"{ "b" : [1, 2],"a":"old" , "c":null }"#;
        let trie = PathTrie::build(std::iter::empty::<&[String]>());
        let mut spans = Vec::new();
        let x = extract(text, &trie, &mut [], Some(&mut spans)).expect("valid JSON");
        let fields = x.fields.map(|(a, b)| &spans[a as usize..b as usize]);
        let edits = [
            Edit::Set(path("y"), Value::from(1)),
            Edit::Set(path("c"), Value::from("first")),
            Edit::Set(path("x"), Value::from(true)),
            Edit::Set(path("a"), Value::from(2)),
            Edit::Set(path("y"), Value::from("last")),
            Edit::Set(path("c"), Value::from("second")),
        ];
        let out = apply(text.as_bytes(), &edits, fields).expect("encodes");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "b" : [1, 2],"a":2 , "c":"second" ,"y":"last","x":true}"#
        );
        // Twice in a row from the same thread: the scratch buffer starts empty each time.
        assert_eq!(
            apply(text.as_bytes(), &edits, fields).expect("encodes"),
            out
        );
    }
}
