//! Payload decoding: each JSON payload is parsed once per batch, and only the payload paths the
//! pipeline reads are kept (as borrowed raw JSON), then turned into typed Arrow columns. Object
//! payloads go through the strict scanner of [`crate::scan`]; whatever it refuses is parsed by
//! serde_json, which gives the verdict and the error message.
//!
//! Measured choice: this "extract the known paths once" decoder beats calling JSON functions
//! (`json_get_*` from `datafusion-functions-json`) per expression, which re-parses the payload
//! in every call; see `benches/benches/engine.rs` (`decode_only` vs `json_functions`).

use crate::columns::{field_type_to_arrow, timestamp_type};
use crate::scan::MAX_DEPTH;
use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, NullArray, StringBuilder,
};
use arrow::datatypes::DataType;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use weir_pipelines::FieldType;

/// The payload paths a pipeline reads, as a trie over object keys.
#[derive(Debug, Default)]
pub(crate) struct PathTrie {
    children: Vec<(String, PathTrie)>,
    slot: Option<usize>,
}

impl PathTrie {
    /// Builds the trie; `slot` numbers are positions in `paths`.
    pub(crate) fn build<'a>(paths: impl IntoIterator<Item = &'a [String]>) -> PathTrie {
        let mut root = PathTrie::default();
        for (slot, path) in paths.into_iter().enumerate() {
            let mut node = &mut root;
            for seg in path {
                let pos = match node.children.iter().position(|(k, _)| k == seg) {
                    Some(p) => p,
                    None => {
                        node.children.push((seg.clone(), PathTrie::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[pos].1;
            }
            node.slot = Some(slot);
        }
        root
    }

    /// The slot of the path that ends here, if one does.
    pub(crate) fn slot(&self) -> Option<usize> {
        self.slot
    }

    /// Whether longer paths go on from here.
    pub(crate) fn has_children(&self) -> bool {
        !self.children.is_empty()
    }

    /// The child under `key`. Runs for every key of every payload: length and last byte
    /// first, so that most keys are rejected without a string comparison.
    #[inline]
    pub(crate) fn child(&self, key: &str) -> Option<&PathTrie> {
        let key = key.as_bytes();
        let last = key.last().copied();
        self.children
            .iter()
            .find(|(k, _)| {
                let k = k.as_bytes();
                k.len() == key.len() && k.last().copied() == last && k == key
            })
            .map(|(_, t)| t)
    }
}

/// Checks that a payload is UTF-8 and not nested deeper than [`MAX_DEPTH`].
pub(crate) fn check_payload(bytes: &[u8]) -> Result<&str, String> {
    if bytes.is_empty() {
        return Err("empty payload: expected a JSON value".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "payload is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    // A document nested deeper than MAX_DEPTH needs at least 2 * (MAX_DEPTH + 1) bytes.
    if bytes.len() > 2 * MAX_DEPTH + 1 {
        check_depth(bytes)?;
    }
    Ok(text)
}

fn check_depth(bytes: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!(
                        "payload is nested deeper than {MAX_DEPTH} levels of arrays/objects"
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Where one top-level field of an object payload lies in its text: key start and end (inside
/// the quotes), value start and end, as byte offsets.
pub(crate) type FieldSpan = [u32; 4];

/// What [`extract`] learned about a document besides the path values.
pub(crate) struct Extracted {
    /// Whether the document is an object.
    pub(crate) is_object: bool,
    /// Where its top-level field spans lie in the span buffer, when asked for and when the
    /// scanner took the payload (its keys are then free of escapes, so each is a slice of the
    /// text); otherwise the encoder parses the payload again.
    pub(crate) fields: Option<(u32, u32)>,
}

/// Parses a whole JSON document (validating all of it) and records the raw JSON of every path
/// of `trie` into `out[slot]`. With `spans`, also appends the top-level field spans of an
/// object to it, so that edits can be encoded later without parsing the payload again.
pub(crate) fn extract<'a>(
    text: &'a str,
    trie: &PathTrie,
    out: &mut [Option<&'a str>],
    spans: Option<&mut Vec<FieldSpan>>,
) -> Result<Extracted, String> {
    if let Some(extracted) = extract_scanned(text, trie, out, spans) {
        return Ok(extracted);
    }
    // The scanner refused the payload (invalid, not an object, escaped keys, deep): serde_json
    // gives the verdict and the error message. No spans then: the encoder parses such a
    // payload again if it must edit it.
    out.fill(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let is_object = TrieSeed { trie, out }
        .deserialize(&mut de)
        .and_then(|o| de.end().map(|()| o))
        .map_err(|e| format!("payload is not valid JSON: {e}"))?;
    Ok(Extracted {
        is_object,
        fields: None,
    })
}

/// The fast path of [`extract`]: an object payload the scanner accepts. `None` when it does
/// not (nothing recorded then).
fn extract_scanned<'a>(
    text: &'a str,
    trie: &PathTrie,
    out: &mut [Option<&'a str>],
    mut spans: Option<&mut Vec<FieldSpan>>,
) -> Option<Extracted> {
    let start = spans.as_ref().map_or(0, |s| s.len());
    let mut nested_ok = true;
    let accepted = crate::scan::scan_object(text, |[k0, k1, v0, v1]| {
        if let Some(spans) = spans.as_deref_mut() {
            spans.push([k0, k1, v0, v1]);
        }
        if trie.children.is_empty() {
            return;
        }
        let Some(child) = trie.child(&text[k0 as usize..k1 as usize]) else {
            return;
        };
        let value = &text[v0 as usize..v1 as usize];
        nested_ok &= fill_paths(value, child, out);
    });
    if !(accepted && nested_ok) {
        if let Some(spans) = spans {
            spans.truncate(start);
        }
        return None;
    }
    let fields = spans.map(|s| (start as u32, s.len() as u32));
    Some(Extracted {
        is_object: true,
        fields,
    })
}

/// Records `value` (already validated) at `trie`'s slot and, when it is an object, its nested
/// paths. False when a nested object cannot be scanned (escaped keys): the caller falls back.
fn fill_paths<'a>(value: &'a str, trie: &PathTrie, out: &mut [Option<&'a str>]) -> bool {
    if let Some(slot) = trie.slot {
        out[slot] = Some(value);
    }
    if trie.children.is_empty() || !value.starts_with('{') {
        // Only objects have nested paths; anything else leaves them missing.
        return true;
    }
    let mut ok = true;
    let scanned = crate::scan::scan_object(value, |[k0, k1, v0, v1]| {
        if let Some(child) = trie.child(&value[k0 as usize..k1 as usize]) {
            ok &= fill_paths(&value[v0 as usize..v1 as usize], child, out);
        }
    });
    scanned && ok
}

/// A JSON object key, borrowed when it has no escapes.
pub(crate) struct Key<'a>(pub(crate) Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

struct TrieSeed<'t, 'o, 'a> {
    trie: &'t PathTrie,
    out: &'o mut [Option<&'a str>],
}

impl<'de> DeserializeSeed<'de> for TrieSeed<'_, '_, 'de> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TrieSeed<'_, '_, 'de> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let TrieSeed { trie, out } = self;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(child) = trie.child(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let raw: &'de RawValue = map.next_value()?;
            if let Some(slot) = child.slot {
                out[slot] = Some(raw.get());
            }
            // Only objects have nested paths; anything else leaves them missing.
            if !child.children.is_empty() && raw.get().starts_with('{') {
                let mut de = serde_json::Deserializer::from_str(raw.get());
                TrieSeed {
                    trie: child,
                    out: &mut *out,
                }
                .deserialize(&mut de)
                .map_err(serde::de::Error::custom)?;
            }
        }
        Ok(true)
    }
}

/// The JSON kind of a raw value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    Int,
    Float,
    String,
    Nested,
}

fn kind(s: &str) -> Kind {
    match s.as_bytes()[0] {
        b'n' => Kind::Null,
        b't' | b'f' => Kind::Bool,
        b'"' => Kind::String,
        b'[' | b'{' => Kind::Nested,
        _ => {
            // A valid JSON number without fraction or exponent is an integer; up to 18 digits
            // (and a sign) it always fits an i64, so only longer ones need parsing.
            if s.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
                || (s.len() > 18 && s.parse::<i64>().is_err())
            {
                Kind::Float
            } else {
                Kind::Int
            }
        }
    }
}

/// The kind classes that decide a column's type: values of two classes in one column of a
/// batch would give every message of the batch a type that is not its own.
const CLASS_NULL: u8 = 1;
const CLASS_BOOL: u8 = 2;
const CLASS_NUMBER: u8 = 4;
const CLASS_TEXT: u8 = 8;

/// The class of a raw value, from its first byte (strings and nested values are both text).
fn class(raw: &str) -> u8 {
    match raw.as_bytes()[0] {
        b'n' => CLASS_NULL,
        b't' | b'f' => CLASS_BOOL,
        b'"' | b'[' | b'{' => CLASS_TEXT,
        _ => CLASS_NUMBER,
    }
}

/// Groups the decoded rows of a batch when some undeclared path (`undeclared`: path numbers)
/// holds values of different classes (numbers and strings, ...; nulls apart from strings
/// and booleans): the rows of the messages
/// whose values have the same classes go together, so that each group's columns have the
/// types its messages would have alone. All rows of one input stay in one group (their
/// outputs keep their order). `None` when no path mixes classes (the common case: one frame).
/// `raws` is row-major, `n_paths` values per row; `input_of(i)` is the input row `i` derives
/// from, for `rows` rows.
pub(crate) fn kind_groups(
    rows: usize,
    input_of: impl Fn(usize) -> u32,
    raws: &[Option<&str>],
    n_paths: usize,
    undeclared: &[usize],
) -> Option<Vec<Vec<usize>>> {
    if rows < 2 {
        return None;
    }
    let conflicting: Vec<usize> = undeclared
        .iter()
        .copied()
        .filter(|&p| {
            let mut seen = 0u8;
            for i in 0..rows {
                seen |= raws[i * n_paths + p].map_or(CLASS_NULL, class);
            }
            // A null (or missing value) typed as text or boolean fails where a bare null
            // would pass (`data.a + 1`), so it goes apart from them; among numbers it
            // behaves as a bare null does.
            (seen & !CLASS_NULL).count_ones() > 1
                || (seen & CLASS_NULL != 0 && seen & (CLASS_TEXT | CLASS_BOOL) != 0)
        })
        .collect();
    if conflicting.is_empty() {
        return None;
    }
    // Each input's key: the classes its rows hold in each conflicting path (missing = null).
    let mut keys: HashMap<u32, Vec<u8>> = HashMap::new();
    for i in 0..rows {
        let key = keys
            .entry(input_of(i))
            .or_insert_with(|| vec![0; conflicting.len()]);
        for (k, &p) in conflicting.iter().enumerate() {
            key[k] |= raws[i * n_paths + p].map_or(CLASS_NULL, class);
        }
    }
    let mut group_of: HashMap<&[u8], usize> = HashMap::new();
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in 0..rows {
        let key = keys[&input_of(i)].as_slice();
        let g = *group_of.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    Some(groups)
}

/// The value of a number token `-?[0-9]+(\.[0-9]+)?` of at most 15 digits, the common
/// case, without the general parser: its digits as an integer (exact in a double) divided by
/// a power of ten (exact up to 10^22), one correctly rounded division, which is the correctly
/// rounded value of the decimal (Clinger's fast path). `None` for any other token.
pub(crate) fn short_decimal(text: &[u8]) -> Option<f64> {
    let (negative, rest) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    if rest.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut digits = 0u32;
    let mut fraction: Option<u32> = None;
    for &b in rest {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                digits += 1;
                if let Some(f) = fraction.as_mut() {
                    *f += 1;
                }
            }
            b'.' if fraction.is_none() && digits > 0 => fraction = Some(0),
            _ => return None,
        }
    }
    if digits == 0 || digits > 15 || fraction == Some(0) {
        return None;
    }
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let value = mantissa as f64 / POWERS[fraction.unwrap_or(0) as usize];
    Some(if negative { -value } else { value })
}

/// The text of a JSON string value, borrowed when it has no escapes.
pub(crate) fn string_value(raw: &str) -> Cow<'_, str> {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains('\\') {
        Cow::Owned(serde_json::from_str::<String>(raw).unwrap_or_else(|_| inner.to_string()))
    } else {
        Cow::Borrowed(inner)
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Null => "null",
        Kind::Bool => "a boolean",
        Kind::Int | Kind::Float => "a number",
        Kind::String => "a string",
        Kind::Nested => "an object or array",
    }
}

/// Builds one typed column from the raw values of a path (`None` = missing). With a declared
/// type, values that do not fit are per-row errors; without one, the type is inferred from this
/// batch's values: all booleans → Boolean, all integers → Int64, numbers → Float64, all
/// strings → Utf8, only null/missing → Null, anything mixed or nested → Utf8 holding the JSON
/// text (strings unquoted).
pub(crate) fn build_column(
    raws: &[Option<&str>],
    declared: Option<FieldType>,
    name: &str,
) -> (ArrayRef, Vec<(usize, String)>) {
    let kinds: Vec<Kind> = raws.iter().map(|r| r.map_or(Kind::Null, kind)).collect();
    let target = match declared {
        Some(t) => field_type_to_arrow(t),
        None => inferred_type(&kinds),
    };
    let mut c = ColumnBuild {
        raws,
        kinds: &kinds,
        name,
        errors: Vec::new(),
    };
    let array: ArrayRef = match &target {
        DataType::Null => Arc::new(NullArray::new(raws.len())),
        DataType::Boolean => c.booleans(),
        DataType::Int64 => c.integers(),
        DataType::Float64 => c.floats(),
        DataType::Timestamp(..) => c.timestamps(),
        _ => c.text(declared),
    };
    (array, c.errors)
}

/// The type of a column without a declared type, from this batch's kinds of values.
fn inferred_type(kinds: &[Kind]) -> DataType {
    let mut seen = [false; 6];
    for k in kinds {
        seen[*k as usize] = true;
    }
    let non_null: Vec<usize> = (1..6).filter(|i| seen[*i]).collect();
    match non_null.as_slice() {
        [] => DataType::Null,
        [1] => DataType::Boolean,
        [2] => DataType::Int64,
        [3] | [2, 3] => DataType::Float64,
        _ => DataType::Utf8,
    }
}

/// One column being built: the raw values of its path, their kinds, and the per-row errors.
struct ColumnBuild<'a> {
    raws: &'a [Option<&'a str>],
    kinds: &'a [Kind],
    name: &'a str,
    errors: Vec<(usize, String)>,
}

impl ColumnBuild<'_> {
    fn mismatch(&mut self, i: usize, k: Kind, want: &str) {
        let message = format!(
            "field {}: expected {want}, found {}",
            self.name,
            kind_name(k)
        );
        self.errors.push((i, message));
    }

    fn booleans(&mut self) -> ArrayRef {
        let mut b = BooleanBuilder::with_capacity(self.raws.len());
        for (i, (r, k)) in self.raws.iter().zip(self.kinds).enumerate() {
            match (r, k) {
                (Some(r), Kind::Bool) => b.append_value(*r == "true"),
                (_, Kind::Null) => b.append_null(),
                (_, k) => {
                    self.mismatch(i, *k, "a boolean");
                    b.append_null()
                }
            }
        }
        Arc::new(b.finish())
    }

    fn integers(&mut self) -> ArrayRef {
        let mut b = Int64Builder::with_capacity(self.raws.len());
        for (i, (r, k)) in self.raws.iter().zip(self.kinds).enumerate() {
            match (r, k) {
                (Some(r), Kind::Int) => b.append_value(r.parse().unwrap_or_default()),
                (Some(r), Kind::Float) => match r.parse::<f64>() {
                    Ok(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => b.append_value(f as i64),
                    _ => {
                        let message =
                            format!("field {}: expected an integer, found {r}", self.name);
                        self.errors.push((i, message));
                        b.append_null()
                    }
                },
                (_, Kind::Null) => b.append_null(),
                (_, k) => {
                    self.mismatch(i, *k, "an integer");
                    b.append_null()
                }
            }
        }
        Arc::new(b.finish())
    }

    fn floats(&mut self) -> ArrayRef {
        let mut b = Float64Builder::with_capacity(self.raws.len());
        for (i, (r, k)) in self.raws.iter().zip(self.kinds).enumerate() {
            match (r, k) {
                (Some(r), Kind::Int | Kind::Float) => b.append_value(
                    short_decimal(r.as_bytes()).unwrap_or_else(|| r.parse().unwrap_or(f64::NAN)),
                ),
                (_, Kind::Null) => b.append_null(),
                (_, k) => {
                    self.mismatch(i, *k, "a number");
                    b.append_null()
                }
            }
        }
        Arc::new(b.finish())
    }

    /// RFC 3339 strings cast to timestamps; a string that does not parse is a row error.
    fn timestamps(&mut self) -> ArrayRef {
        let n = self.raws.len();
        let mut b = StringBuilder::with_capacity(n, n * 24);
        for (i, (r, k)) in self.raws.iter().zip(self.kinds).enumerate() {
            match (r, k) {
                (Some(r), Kind::String) => b.append_value(string_value(r)),
                (_, Kind::Null) => b.append_null(),
                (_, k) => {
                    self.mismatch(i, *k, "an RFC 3339 timestamp string");
                    b.append_null()
                }
            }
        }
        let strings = b.finish();
        let opts = arrow::compute::CastOptions {
            safe: true,
            ..Default::default()
        };
        let name = self.name;
        match arrow::compute::cast_with_options(&strings, &timestamp_type(), &opts) {
            Ok(ts) => {
                for i in (0..n).filter(|i| strings.is_valid(*i) && ts.is_null(*i)) {
                    let message = format!(
                        "field {name}: `{}` is not an RFC 3339 timestamp",
                        strings.value(i)
                    );
                    self.errors.push((i, message));
                }
                ts
            }
            Err(e) => {
                for i in (0..n).filter(|i| strings.is_valid(*i)) {
                    self.errors.push((i, format!("field {name}: {e}")));
                }
                arrow::array::new_null_array(&timestamp_type(), n)
            }
        }
    }

    /// Utf8: strings unquoted; other values as JSON text, unless declared `string`.
    fn text(&mut self, declared: Option<FieldType>) -> ArrayRef {
        let strict = declared == Some(FieldType::String);
        let n = self.raws.len();
        let mut b = StringBuilder::with_capacity(n, n * 16);
        for (i, (r, k)) in self.raws.iter().zip(self.kinds).enumerate() {
            match (r, k) {
                (_, Kind::Null) => b.append_null(),
                (Some(r), Kind::String) if declared != Some(FieldType::Json) => {
                    b.append_value(string_value(r))
                }
                (Some(_), k) if strict => {
                    self.mismatch(i, *k, "a string");
                    b.append_null()
                }
                (Some(r), _) => b.append_value(r),
                (None, _) => b.append_null(),
            }
        }
        Arc::new(b.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::short_decimal;
    use proptest::prelude::*;

    #[test]
    fn short_decimals_parse_as_the_general_parser_does() {
        for t in [
            "0",
            "-0",
            "0.5",
            "123.45",
            "-7.125",
            "999999999999999",
            "1.00000000000001",
        ] {
            let v = short_decimal(t.as_bytes()).unwrap();
            assert_eq!(v.to_bits(), t.parse::<f64>().unwrap().to_bits(), "{t}");
        }
        for t in [
            "1e5",
            "1.",
            ".5",
            "-",
            "",
            "1.2.3",
            "1234567890123456",
            "12a",
        ] {
            assert!(short_decimal(t.as_bytes()).is_none(), "{t}");
        }
        proptest!(|(int in 0u64..10_000_000_000, frac in "[0-9]{0,6}", neg in any::<bool>())| {
            let text = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if frac.is_empty() { "" } else { "." });
            if let Some(v) = short_decimal(text.as_bytes()) {
                prop_assert_eq!(v.to_bits(), text.parse::<f64>().unwrap().to_bits(), "{}", text);
            }
        });
    }
}
