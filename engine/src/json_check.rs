//! A fast "certainly valid" check of JSON text against the common subset of JSON Schema
//! (`type`, `properties`, `required`, `additionalProperties`, `items`, `enum`, `const`,
//! numeric bounds, string lengths, item and property counts), run on the raw text with the
//! decoder's scanner and no `serde_json::Value`.
//!
//! Why by hand: the `jsonschema` crate validates a `serde_json::Value`, and building that
//! value costs ~1.5 µs for a 223-byte order, ten times the per-message budget of a
//! `validate` node. This checker is only a fast path in front of `jsonschema`: it answers
//! "valid" or "don't know", never "invalid". Whatever it cannot vouch for (a keyword outside
//! the subset anywhere in the schema, escapes, a number on a bound, a value that looks wrong)
//! goes to `jsonschema`, which gives the verdict and the failure messages. So a `true` from
//! [`FastSchema::valid`] must always agree with `jsonschema`; `tests::agrees_with_jsonschema`
//! checks that property.
//!
//! Where the time goes (the order schema of `benches/engine.rs`, 2-core VM, the check timed
//! alone over 1,024 orders): it is instructions, not memory (the same with the caches flushed
//! or with 64 orders that stay in L1), so the work per field is kept short: the guessed
//! property's name is compared with the key as one 16-byte pattern (no length dispatch), and
//! the common shapes (any value, any string, any number, a number at or above zero) are
//! checked by a table lookup of the value's first byte. Counted with callgrind, an order took
//! ~1,470 instructions before these and ~1,080 after, of which the `items` array with its one
//! object is ~450 and the `currency` enum ~70. `value_end` inline for strings and scalars
//! (objects and arrays out of line) then took ~1,050, and 11 % of the time: a call per nested
//! value had cost more than its instructions. Timings on this VM move by ±20 % with the
//! machine's state and the process's memory layout, so variants are compared interleaved.
//! Slower, and not kept: checking each payload right after the decoder's scan (twice), names
//! held in words beside their shapes, enum texts as 16-byte patterns, the array's objects
//! checked without `check_at`, and the whole of `value_end` or the nested checks inlined.

use crate::decode::{FieldSpan, short_decimal};
use crate::scan::{scan_array, scan_object};
use serde_json::Value;
use std::sync::atomic::{AtomicU16, Ordering};

/// Keywords that do not constrain a value (annotations and containers of unused
/// definitions); any keyword not here nor handled below disables the fast path.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "description",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// The JSON types, as bits.
const NULL: u8 = 1;
const BOOLEAN: u8 = 2;
const INTEGER: u8 = 4;
const NUMBER: u8 = 8;
const STRING: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ANY: u8 = 127;
const NUMBER_OR_INTEGER: u8 = NUMBER | INTEGER;

/// One compiled (sub)schema of the subset.
#[derive(Debug, Default)]
pub(crate) struct FastSchema {
    /// Allowed types (`INTEGER` alone admits integers written without a fraction or exponent).
    types: u8,
    /// `false` schema: nothing is certainly valid.
    never: bool,
    /// `properties`, with whether each is `required`.
    properties: Vec<(String, FastSchema, bool)>,
    /// The required ones among the first 64 `properties`, a bit each.
    required_bits: u64,
    /// `properties` by the hash of their names ([`name_hash`]), open addressing: each slot
    /// holds an index into `properties`, or [`EMPTY`].
    by_name: Vec<u16>,
    /// The property that was the n-th field of the last object checked, tried first for the
    /// n-th field of the next: messages of one stream mostly list their fields in one order,
    /// so the guess is right, and guesses by position do not wait on each other. Only a
    /// guess: relaxed atomics, as checks may run on several threads.
    by_position: Box<[AtomicU16]>,
    /// Each property as a field's check reads it first (name, pattern, [`Shape`], bit).
    keys: Vec<Key>,
    /// Required names that `properties` does not declare.
    required_only: Vec<String>,
    /// `additionalProperties` (`None` = any).
    additional: Option<Box<FastSchema>>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    items: Option<Box<FastSchema>>,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    /// Numeric bounds, inclusive or not: a value equal to one is left to jsonschema.
    lower: Vec<f64>,
    upper: Vec<f64>,
    /// Any value of the token's sign meets every lower bound (`minimum` ≤ 0,
    /// `exclusiveMinimum` < 0) or every upper bound (`maximum` ≥ 0, `exclusiveMaximum` > 0):
    /// the common `minimum: 0` then needs no parse.
    sign_meets_lower: bool,
    sign_meets_upper: bool,
    /// `enum` / `const`: the JSON text of each allowed value (scalars only).
    one_of_texts: Option<Vec<String>>,
    /// What the common schemas come down to, so that their check is inline.
    shape: Shape,
    /// An object's fields need no look: nothing declared or required, no bounds on their count.
    any_fields: bool,
    /// Required names that are not a bit of `required_bits` (past the first 64 properties, or
    /// not declared), so that an object's keys must be searched for them.
    names_to_find: bool,
}

impl FastSchema {
    /// Compiles `schema` when every keyword in it is in the subset; `None` otherwise.
    pub(crate) fn compile(schema: &Value) -> Option<FastSchema> {
        let mut s = Self::compile_keywords(schema)?;
        s.shape = Shape::of(&s);
        Some(s)
    }

    /// [`FastSchema::compile`], but for its [`Shape`].
    fn compile_keywords(schema: &Value) -> Option<FastSchema> {
        match schema {
            Value::Bool(true) => Some(FastSchema {
                types: ANY,
                ..FastSchema::default()
            }),
            Value::Bool(false) => Some(FastSchema {
                never: true,
                ..FastSchema::default()
            }),
            Value::Object(map) => {
                let mut s = FastSchema {
                    types: ANY,
                    ..FastSchema::default()
                };
                let mut required: Vec<String> = Vec::new();
                let (mut sign_lower, mut sign_upper) = (true, true);
                for (key, value) in map {
                    match key.as_str() {
                        "type" => s.types = types(value)?,
                        "properties" => {
                            for (name, sub) in value.as_object()? {
                                s.properties
                                    .push((name.clone(), FastSchema::compile(sub)?, false));
                            }
                        }
                        "required" => {
                            for name in value.as_array()? {
                                required.push(name.as_str()?.to_string());
                            }
                        }
                        "additionalProperties" => {
                            s.additional = Some(Box::new(FastSchema::compile(value)?))
                        }
                        "items" if value.is_object() || value.is_boolean() => {
                            s.items = Some(Box::new(FastSchema::compile(value)?))
                        }
                        "minProperties" => s.min_properties = Some(value.as_u64()?),
                        "maxProperties" => s.max_properties = Some(value.as_u64()?),
                        "minItems" => s.min_items = Some(value.as_u64()?),
                        "maxItems" => s.max_items = Some(value.as_u64()?),
                        "minLength" => s.min_length = Some(value.as_u64()?),
                        "maxLength" => s.max_length = Some(value.as_u64()?),
                        "uniqueItems" if value == &Value::Bool(false) => {}
                        "minimum" | "exclusiveMinimum" => {
                            let m = bound(value)?;
                            s.lower.push(m);
                            sign_lower &= m < 0.0 || (m == 0.0 && key == "minimum");
                        }
                        "maximum" | "exclusiveMaximum" => {
                            let m = bound(value)?;
                            s.upper.push(m);
                            sign_upper &= m > 0.0 || (m == 0.0 && key == "maximum");
                        }
                        "enum" => s.one_of_texts = Some(texts(value.as_array()?)?),
                        "const" => s.one_of_texts = Some(texts(std::slice::from_ref(value))?),
                        k if ANNOTATIONS.contains(&k) => {}
                        _ => return None,
                    }
                }
                s.sign_meets_lower = sign_lower;
                s.sign_meets_upper = sign_upper;
                for name in required {
                    match s.properties.iter_mut().find(|(n, _, _)| *n == name) {
                        Some(p) => p.2 = true,
                        // Any value will do: tracked as a property, so that presence is a bit.
                        None if s.additional.is_none() => s.properties.push((
                            name,
                            FastSchema::compile(&Value::Bool(true))?,
                            true,
                        )),
                        None => s.required_only.push(name),
                    }
                }
                s.required_bits = s
                    .properties
                    .iter()
                    .take(64)
                    .enumerate()
                    .filter(|(_, (_, _, required))| *required)
                    .fold(0, |bits, (i, _)| bits | 1 << i);
                s.by_name = by_name(&s.properties)?;
                s.keys = s
                    .properties
                    .iter()
                    .enumerate()
                    .map(|(i, (n, sub, _))| Key::new(i, n, sub))
                    .collect();
                s.by_position = (0..s.properties.len()).map(|_| AtomicU16::new(0)).collect();
                s.names_to_find = !s.required_only.is_empty()
                    || s.properties
                        .iter()
                        .skip(64)
                        .any(|(_, _, required)| *required);
                s.any_fields = s.properties.is_empty()
                    && s.required_only.is_empty()
                    && s.additional.is_none()
                    && s.min_properties.is_none()
                    && s.max_properties.is_none();
                Some(s)
            }
            _ => None,
        }
    }

    /// Whether `text` (one JSON value) is certainly valid. `false` means "don't know".
    pub(crate) fn valid(&self, text: &str) -> bool {
        let text = text.trim_matches([' ', '\n', '\t', '\r']);
        // The scanner validates the whole text once; the checks below walk it as valid JSON.
        let scanned = match text.as_bytes().first() {
            Some(b'{') => scan_object(text, |_| {}),
            Some(b'[') => scan_array(text),
            // A scalar payload is left to jsonschema.
            _ => false,
        };
        scanned && self.valid_value(text.as_bytes(), 0, text.len())
    }

    /// Whether an object whose top-level fields lie at `fields` in `text` (as the decoder's
    /// scanner recorded them: the text is valid JSON in UTF-8 and the keys have no escapes) is
    /// certainly valid.
    #[inline(never)]
    pub(crate) fn valid_object(&self, text: &[u8], fields: &[FieldSpan]) -> bool {
        if self.never || self.types & OBJECT == 0 {
            return false;
        }
        if self.any_fields {
            return true;
        }
        let mut check = ObjectCheck::new(self);
        for &[k0, k1, v0, v1] in fields {
            let (k0, v0, v1) = (k0 as usize, v0 as usize, v1 as usize);
            let found = match check.guess(text, k0) {
                Some(found) => Some(found),
                None => match text.get(k0..k1 as usize) {
                    Some(name) => check.look_up(name),
                    None => return false,
                },
            };
            check.count(found);
            let valid = match found {
                // The common shapes need only the value's first byte.
                Some((i, key)) => {
                    key.any_of & first_byte_types(text, v0) != 0
                        || self.properties[i].1.valid_value(text, v0, v1)
                }
                None => self
                    .additional
                    .as_deref()
                    .is_none_or(|a| a.valid_value(text, v0, v1)),
            };
            if !valid {
                return false;
            }
        }
        check.finish(|name| {
            fields
                .iter()
                .any(|&[k0, k1, _, _]| &text[k0 as usize..k1 as usize] == name.as_bytes())
        })
    }

    /// Checks the value that starts at `i` of `text` (valid JSON) in one pass: its end when
    /// it is certainly valid, `None` when that is not known. Objects and arrays are checked
    /// while their end is sought, so a nested value is read once.
    fn check_at(&self, text: &[u8], i: usize) -> Option<usize> {
        match text.get(i)? {
            // An `enum`/`const` holds scalars only: an object or array is none of them.
            b'{' | b'[' if self.never || self.one_of_texts.is_some() => None,
            b'{' => self.check_object_at(text, i),
            b'[' => self.check_array_at(text, i),
            _ => {
                let end = value_end(text, i);
                self.valid_value(text, i, end).then_some(end)
            }
        }
    }

    /// [`FastSchema::check_at`] of an object.
    #[inline(never)]
    fn check_object_at(&self, text: &[u8], i: usize) -> Option<usize> {
        if self.types & OBJECT == 0 {
            return None;
        }
        let mut check = ObjectCheck::new(self);
        let mut j = skip_ws(text, i + 1);
        while text.get(j) == Some(&b'"') {
            // The key is most often the guessed property's name, followed by its closing
            // quote: then it needs no search for its end.
            let k0 = j + 1;
            let (k1, found) = match check.guess(text, k0) {
                Some((i, key)) => (k0 + key.name.len(), Some((i, key))),
                None => {
                    let (key_end, escaped) = string_end(text, j);
                    if escaped {
                        return None;
                    }
                    let k1 = key_end.checked_sub(1)?;
                    (k1, check.look_up(text.get(k0..k1)?))
                }
            };
            check.count(found);
            let v0 = skip_ws(text, skip_ws(text, k1 + 1) + 1);
            let v1 = check.property_at(found, text, v0)?;
            j = skip_ws(text, v1);
            if text.get(j) == Some(&b',') {
                j = skip_ws(text, j + 1);
            }
        }
        if text.get(j) != Some(&b'}') {
            return None;
        }
        let object = &text[i..=j];
        check
            .finish(|name| {
                let mut found = false;
                walk_object(object, |key, _| found |= key == name.as_bytes());
                found
            })
            .then_some(j + 1)
    }

    /// [`FastSchema::check_at`] of an array.
    #[inline(never)]
    fn check_array_at(&self, text: &[u8], i: usize) -> Option<usize> {
        if self.types & ARRAY == 0 {
            return None;
        }
        let mut count = 0u64;
        let mut j = skip_ws(text, i + 1);
        if text.get(j) != Some(&b']') {
            loop {
                let end = match &self.items {
                    Some(items) => items.check_at(text, j)?,
                    None => value_end(text, j),
                };
                count += 1;
                j = skip_ws(text, end);
                match text.get(j) {
                    Some(b',') => j = skip_ws(text, j + 1),
                    Some(b']') => break,
                    _ => return None,
                }
            }
        }
        let within =
            self.min_items.is_none_or(|m| count >= m) && self.max_items.is_none_or(|m| count <= m);
        within.then_some(j + 1)
    }

    /// The position of the declared property named `key`, found by the name's hash.
    #[inline(never)]
    fn property_by_hash(&self, key: &[u8]) -> Option<usize> {
        if self.by_name.is_empty() {
            return None;
        }
        let mask = self.by_name.len() - 1;
        let mut slot = name_hash(key) & mask;
        loop {
            let i = usize::from(self.by_name[slot]);
            if same(&self.keys.get(i)?.name, key) {
                return Some(i);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Whether one value (valid JSON, as the scanner found it) is certainly valid.
    #[inline(always)]
    fn valid_value(&self, text: &[u8], v0: usize, v1: usize) -> bool {
        let value = &text[v0..v1];
        match self.shape {
            Shape::AnyValue => true,
            Shape::AnyString => value.first() == Some(&b'"'),
            Shape::AnyNumber => matches!(value.first(), Some(b'-' | b'0'..=b'9')),
            Shape::Number => {
                matches!(value.first(), Some(b'-' | b'0'..=b'9')) && self.valid_number(value)
            }
            Shape::OneOf => self
                .one_of_texts
                .as_deref()
                // Every value compared, the verdicts or-ed: no branch on which one it is.
                .is_some_and(|allowed| {
                    allowed
                        .iter()
                        .fold(false, |any, a| any | same(a.as_bytes(), value))
                }),
            Shape::Other => self.valid_other(text, v0, v1),
        }
    }

    /// [`FastSchema::valid_value`] of the schemas that are not a common [`Shape`].
    fn valid_other(&self, text: &[u8], v0: usize, v1: usize) -> bool {
        let value = &text[v0..v1];
        if self.never {
            return false;
        }
        if let Some(allowed) = &self.one_of_texts {
            // Same text, same value; a different spelling of an allowed value is left to
            // jsonschema.
            if !allowed.iter().any(|a| same(a.as_bytes(), value)) {
                return false;
            }
        }
        match value.first() {
            // Nested values are read in the whole text: fewer byte-at-a-time tails.
            Some(b'{') => self.check_object_at(text, v0) == Some(v1),
            Some(b'[') => self.check_array_at(text, v0) == Some(v1),
            Some(b'"') => self.types & STRING != 0 && self.valid_string(value),
            Some(b't') | Some(b'f') => self.types & BOOLEAN != 0,
            Some(b'n') => self.types & NULL != 0,
            Some(_) => self.valid_number(value),
            None => false,
        }
    }

    /// A string token: lengths are counted in code points, as jsonschema does; a string with
    /// escapes is left to jsonschema when a length bound applies.
    fn valid_string(&self, text: &[u8]) -> bool {
        if self.min_length.is_none() && self.max_length.is_none() {
            return true;
        }
        let inner = &text[1..text.len() - 1];
        if inner.contains(&b'\\') {
            return false;
        }
        // Code points of valid UTF-8: the bytes that are not continuation bytes.
        let n = inner.iter().filter(|&&b| (b as i8) >= -0x40).count() as u64;
        self.min_length.is_none_or(|m| n >= m) && self.max_length.is_none_or(|m| n <= m)
    }

    /// A number token. Integers are the ones written without a fraction or exponent. Bounds
    /// are met by the token's sign alone where that decides (`minimum: 0`), else compared with
    /// the token's value: exact for a short plain decimal, else in f64 on tokens of at most 15
    /// significant digits. A value on a bound is left to jsonschema.
    #[inline(never)]
    fn valid_number(&self, text: &[u8]) -> bool {
        if self.types & NUMBER == 0
            && (self.types & INTEGER == 0 || text.iter().any(|b| matches!(b, b'.' | b'e' | b'E')))
        {
            return false;
        }
        // A token is negative exactly when it opens with `-` (`-0` is 0 or -0.0, which meet
        // the same bounds).
        let negative = text.first() == Some(&b'-');
        let lower = self.lower.is_empty() || (!negative && self.sign_meets_lower);
        let upper = self.upper.is_empty() || (negative && self.sign_meets_upper);
        if lower && upper {
            return true;
        }
        let within =
            |n: f64| self.lower.iter().all(|&m| n > m) && self.upper.iter().all(|&m| n < m);
        // Most tokens are a short plain decimal: its value is exact, and the same as
        // serde_json's.
        if let Some(n) = short_decimal(text) {
            return within(n);
        }
        let digits = text.iter().filter(|b| b.is_ascii_digit()).count();
        if digits > 15 {
            return false;
        }
        // Within 15 digits, this parse and serde_json's differ by at most one unit in the last
        // place; a value that close to a bound is left to jsonschema.
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|n| within(n.next_down()) && within(n.next_up()))
    }
}

/// Calls `field(key, value)` for each field of `text`, an object of valid JSON; false when a
/// key has escapes (it is then not its bytes, and the caller does not know).
fn walk_object(text: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> bool {
    let mut i = skip_ws(text, 1);
    while i < text.len() && text[i] == b'"' {
        let (key_end, escaped) = string_end(text, i);
        if escaped {
            return false;
        }
        let k1 = key_end - 1;
        let key = &text[i + 1..k1];
        let v0 = skip_ws(text, skip_ws(text, k1 + 1) + 1);
        let v1 = value_end(text, v0);
        field(key, &text[v0..v1]);
        // `,` then the next key, or `}`.
        i = skip_ws(text, skip_ws(text, v1) + 1);
    }
    true
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = text.get(i) {
        i += 1;
    }
    i
}

/// The end of the string opening at `i` (after its closing quote) in valid JSON, and whether
/// it has escapes. Eight bytes at a time: keys and short values end in their first word, with
/// one predictable branch instead of one per byte.
#[inline]
fn string_end(text: &[u8], i: usize) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        if let Some(chunk) = text.get(j..j + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // A byte of `q` or `b` is 0 where `w` has a quote or a backslash; the lowest
            // flagged byte of the zero-byte test is exact (borrows only flag bytes above it).
            let (q, b) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
            let hits = ((q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b)) & HIGHS;
            if hits == 0 {
                j += 8;
                continue;
            }
            j += (hits.trailing_zeros() / 8) as usize;
        } else {
            while text.get(j).is_some_and(|&c| c != b'"' && c != b'\\') {
                j += 1;
            }
        }
        match text.get(j) {
            Some(b'\\') => {
                escaped = true;
                j += 2;
            }
            Some(_) => return (j + 1, escaped),
            None => return (j, escaped),
        }
    }
}

/// The end of the value starting at `i`, in valid JSON. Inline for a string or a scalar, the
/// common values; an object or an array is sought out of line.
#[inline(always)]
fn value_end(text: &[u8], i: usize) -> usize {
    match text.get(i) {
        Some(b'"') => string_end(text, i).0,
        Some(b'{' | b'[') => container_end(text, i),
        _ => {
            let mut j = i;
            while let Some(b) = text.get(j) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\t' | b'\r') {
                    break;
                }
                j += 1;
            }
            j
        }
    }
}

/// The end of the object or array starting at `i`, in valid JSON.
#[inline(never)]
fn container_end(text: &[u8], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while let Some(&b) = text.get(j) {
        match b {
            b'"' => {
                j = string_end(text, j).0;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

/// Byte equality of short strings, inline: keys and enum values are a few bytes, where a
/// call to `memcmp` costs more than the comparison. Compared a word at a time: two
/// overlapping loads cover 4 to 16 bytes.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    #[inline(always)]
    fn word(s: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"))
    }
    #[inline(always)]
    fn half(s: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(s[at..at + 4].try_into().expect("4 bytes"))
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        // The first, middle and last bytes: all of them, for 1 to 3 bytes.
        1..4 => (a[0] == b[0]) & (a[n / 2] == b[n / 2]) & (a[n - 1] == b[n - 1]),
        // `&`, not `&&`: both loads and one branch, whatever the bytes.
        4..8 => (half(a, 0) == half(b, 0)) & (half(a, n - 4) == half(b, n - 4)),
        8..=16 => (word(a, 0) == word(b, 0)) & (word(a, n - 8) == word(b, n - 8)),
        _ => {
            let mut i = 0;
            while i + 8 <= n {
                if word(a, i) != word(b, i) {
                    return false;
                }
                i += 8;
            }
            word(a, n - 8) == word(b, n - 8)
        }
    }
}

/// The check of one object's fields, one at a time.
struct ObjectCheck<'s> {
    schema: &'s FastSchema,
    /// Which declared properties were seen (a bit each; past 64, required ones are looked up
    /// by name at the end).
    seen: u64,
    /// Fields so far.
    count: u64,
}

impl<'s> ObjectCheck<'s> {
    fn new(schema: &'s FastSchema) -> Self {
        ObjectCheck {
            schema,
            seen: 0,
            count: 0,
        }
    }

    /// The declared property guessed for the next field (the one that was the field at its
    /// position in the last object checked), when the key that starts at `k0` of `text` (just
    /// after its opening quote) is that property's name: its position and [`Key`].
    #[inline(always)]
    fn guess(&self, text: &[u8], k0: usize) -> Option<(usize, &'s Key)> {
        let s = self.schema;
        let hint = usize::from(
            s.by_position
                .get(self.count as usize)?
                .load(Ordering::Relaxed),
        );
        let key = s.keys.get(hint)?;
        key.quoted.at(text, k0).then_some((hint, key))
    }

    /// The declared property named `name`, the next field's key (`None`: not declared), when
    /// [`ObjectCheck::guess`] did not find it: the guessed name compared whole (one its
    /// pattern cannot hold), else looked up by hash, and then guessed for this position.
    #[inline(never)]
    fn look_up(&self, name: &[u8]) -> Option<(usize, &'s Key)> {
        let s = self.schema;
        let guess = s.by_position.get(self.count as usize);
        if let Some(g) = guess {
            let hint = usize::from(g.load(Ordering::Relaxed));
            if let Some(key) = s.keys.get(hint).filter(|k| same(&k.name, name)) {
                return Some((hint, key));
            }
        }
        let i = s.property_by_hash(name)?;
        if let Some(g) = guess {
            g.store(i as u16, Ordering::Relaxed);
        }
        Some((i, &s.keys[i]))
    }

    /// Counts the next field, and marks its declared property (if any) as seen.
    #[inline(always)]
    fn count(&mut self, found: Option<(usize, &Key)>) {
        self.count += 1;
        if let Some((_, key)) = found {
            self.seen |= key.bit;
        }
    }

    /// The check of a field already counted (`found`: its declared property, if any) whose
    /// value starts at `v0` of `text`: the value's end when it is certainly valid.
    #[inline(always)]
    fn property_at(&self, found: Option<(usize, &Key)>, text: &[u8], v0: usize) -> Option<usize> {
        let s = self.schema;
        let schema = match found {
            // The common shapes need only the value's end.
            Some((i, key)) => match key.shape {
                Shape::AnyValue => return Some(value_end(text, v0)),
                Shape::AnyString if text.get(v0) == Some(&b'"') => {
                    return Some(string_end(text, v0).0);
                }
                _ => &s.properties[i].1,
            },
            None => match s.additional.as_deref() {
                Some(a) => a,
                None => return Some(value_end(text, v0)),
            },
        };
        schema.check_at(text, v0)
    }

    /// The verdict once every field was seen; `has(name)` says whether a key is present.
    fn finish(self, has: impl Fn(&str) -> bool) -> bool {
        let s = self.schema;
        let n = self.count;
        s.min_properties.is_none_or(|m| n >= m)
            && s.max_properties.is_none_or(|m| n <= m)
            && self.seen & s.required_bits == s.required_bits
            && (!s.names_to_find
                || s.properties
                    .iter()
                    .skip(64)
                    .filter(|(_, _, required)| *required)
                    .all(|(name, _, _)| has(name))
                    && s.required_only.iter().all(|name| has(name)))
    }
}

/// A declared property as a field's check reads it first.
#[derive(Debug)]
struct Key {
    quoted: QuotedName,
    /// The property's bit in [`ObjectCheck::seen`] (none past 64).
    bit: u64,
    /// The types of which any value is valid here (see [`first_byte_types`]): the whole check
    /// of the common shapes; none when the property's schema must be asked.
    any_of: u8,
    shape: Shape,
    name: Box<[u8]>,
}

impl Key {
    fn new(position: usize, name: &str, schema: &FastSchema) -> Key {
        let shape = schema.shape;
        Key {
            quoted: QuotedName::of(name.as_bytes()),
            bit: if position < 64 { 1 << position } else { 0 },
            any_of: match shape {
                Shape::AnyValue => ANY,
                Shape::AnyString => STRING,
                Shape::AnyNumber => NUMBER_OR_INTEGER,
                // Bounds that every number at or above zero meets (the common `minimum: 0`),
                // on any number: a first byte that is a digit says enough.
                Shape::Number if schema.sign_meets_lower && schema.upper.is_empty() => NON_NEGATIVE,
                Shape::Number | Shape::OneOf | Shape::Other => 0,
            },
            shape,
            name: name.as_bytes().into(),
        }
    }
}

/// Beside the type bits of [`first_byte_types`]: a number at or above zero (its token does not
/// open with `-`; `-0` is left out, which only makes the check ask further).
const NON_NEGATIVE: u8 = 128;

/// The type of the JSON value whose first byte is `text[i]`, as a type bit (both number bits
/// for a number: whether it is an integer is not known from its first byte), with
/// [`NON_NEGATIVE`] for a number that does not open with `-`; none past the end.
#[inline(always)]
fn first_byte_types(text: &[u8], i: usize) -> u8 {
    const TYPES: [u8; 256] = {
        let mut t = [0u8; 256];
        t[b'"' as usize] = STRING;
        t[b'-' as usize] = NUMBER_OR_INTEGER;
        let mut d = b'0';
        while d <= b'9' {
            t[d as usize] = NUMBER_OR_INTEGER | NON_NEGATIVE;
            d += 1;
        }
        t[b't' as usize] = BOOLEAN;
        t[b'f' as usize] = BOOLEAN;
        t[b'n' as usize] = NULL;
        t[b'{' as usize] = OBJECT;
        t[b'[' as usize] = ARRAY;
        t
    };
    text.get(i).map_or(0, |&b| TYPES[usize::from(b)])
}

/// A property's name followed by the closing quote of its key, as JSON text holds them,
/// packed in two words with the mask of its bytes: a key that starts at a known place is
/// compared with the name in two loads, with no search for its end, no length dispatch and
/// no loop. Exact on valid JSON: bytes free of `"` and `\` and then `"` are the whole key,
/// unescaped. A name of 16 bytes or more, or one holding `"` or `\` (its key has escapes in
/// JSON text), gets a pattern that never matches: a NUL byte, which JSON text never holds
/// raw inside a string; the caller then compares the key itself.
#[derive(Debug, Clone, Copy)]
struct QuotedName {
    words: [u64; 2],
    masks: [u64; 2],
}

impl QuotedName {
    fn of(name: &[u8]) -> QuotedName {
        if name.len() >= 16 || name.iter().any(|b| matches!(b, b'"' | b'\\')) {
            return QuotedName {
                words: [0, 0],
                masks: [0xFF, 0],
            };
        }
        let (mut bytes, mut mask) = ([0u8; 16], [0u8; 16]);
        bytes[..name.len()].copy_from_slice(name);
        bytes[name.len()] = b'"';
        mask[..=name.len()].fill(0xFF);
        let word = |b: &[u8; 16], at: usize| {
            u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
        };
        QuotedName {
            words: [word(&bytes, 0), word(&bytes, 8)],
            masks: [word(&mask, 0), word(&mask, 8)],
        }
    }

    /// Whether the key whose text starts at `k0` (just after its opening quote) of `text`,
    /// valid JSON, is this name. `false` also when it cannot tell: fewer than 16 bytes from
    /// `k0`, or a name the pattern cannot hold.
    #[inline(always)]
    fn at(&self, text: &[u8], k0: usize) -> bool {
        let Some(chunk) = text.get(k0..k0 + 16) else {
            return false;
        };
        let w0 = u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
        let w1 = u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
        let differ =
            ((w0 ^ self.words[0]) & self.masks[0]) | ((w1 ^ self.words[1]) & self.masks[1]);
        differ == 0
    }
}

/// What a compiled schema comes down to: the common cases checked inline.
#[derive(Debug, Default, Clone, Copy)]
enum Shape {
    /// `true` or `{}`: any value.
    AnyValue,
    /// `{type: string}` with no other constraint.
    AnyString,
    /// `{type: number}` (or `[number, integer]`) with no other constraint.
    AnyNumber,
    /// `{type: number}` (or `[number, integer]`) with numeric bounds.
    Number,
    /// `enum` or `const` alone: any of its values, as written there.
    OneOf,
    /// Anything else.
    #[default]
    Other,
}

impl Shape {
    fn of(s: &FastSchema) -> Shape {
        let plain = !s.never
            && s.properties.is_empty()
            && s.required_only.is_empty()
            && s.additional.is_none()
            && s.min_properties.is_none()
            && s.max_properties.is_none()
            && s.items.is_none()
            && s.min_items.is_none()
            && s.max_items.is_none()
            && s.min_length.is_none()
            && s.max_length.is_none();
        let unbounded = s.lower.is_empty() && s.upper.is_empty();
        match (s.types, &s.one_of_texts) {
            _ if !plain => Shape::Other,
            (ANY, None) if unbounded => Shape::AnyValue,
            (STRING, None) if unbounded => Shape::AnyString,
            (NUMBER | NUMBER_OR_INTEGER, None) if unbounded => Shape::AnyNumber,
            (NUMBER | NUMBER_OR_INTEGER, None) => Shape::Number,
            (ANY, Some(_)) if unbounded => Shape::OneOf,
            _ => Shape::Other,
        }
    }
}

/// A free slot of [`FastSchema::by_name`].
const EMPTY: u16 = u16::MAX;

/// A hash of a property name from its length and three of its bytes: cheap, and enough to
/// tell apart the few names of one object.
#[inline]
fn name_hash(key: &[u8]) -> usize {
    let n = key.len();
    let byte = |i: usize| key.get(i).copied().unwrap_or(0) as u64;
    let mixed = (n as u64) | byte(0) << 8 | byte(n / 2) << 16 | byte(n.wrapping_sub(1)) << 24;
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize
}

/// The open-addressed table of `properties` by name, with at least four slots a property so
/// that probes are short; `None` past `u16` indexes (the schema then stays off the fast path).
fn by_name(properties: &[(String, FastSchema, bool)]) -> Option<Vec<u16>> {
    if properties.is_empty() {
        return Some(Vec::new());
    }
    let slots = (properties.len() * 4).next_power_of_two();
    if properties.len() >= usize::from(EMPTY) {
        return None;
    }
    let mut table = vec![EMPTY; slots];
    for (i, (name, _, _)) in properties.iter().enumerate() {
        let mut slot = name_hash(name.as_bytes()) & (slots - 1);
        while table[slot] != EMPTY {
            slot = (slot + 1) & (slots - 1);
        }
        table[slot] = i as u16;
    }
    Some(table)
}

/// The type bits of a `type` keyword.
fn types(value: &Value) -> Option<u8> {
    let one = |v: &Value| -> Option<u8> {
        Some(match v.as_str()? {
            "null" => NULL,
            "boolean" => BOOLEAN,
            "integer" => INTEGER,
            "number" => NUMBER | INTEGER,
            "string" => STRING,
            "array" => ARRAY,
            "object" => OBJECT,
            _ => return None,
        })
    };
    match value {
        Value::Array(list) => list.iter().try_fold(0, |acc, v| Some(acc | one(v)?)),
        v => one(v),
    }
}

/// A numeric bound that f64 holds exactly.
fn bound(value: &Value) -> Option<f64> {
    let n = value.as_f64()?;
    let exact = match value.as_i64() {
        Some(i) => i.unsigned_abs() < 1 << 53,
        None => value.as_u64().is_none(),
    };
    exact.then_some(n)
}

/// The JSON texts of scalar `enum`/`const` values; `None` when one is an array or object.
fn texts(values: &[Value]) -> Option<Vec<String>> {
    values
        .iter()
        .map(|v| match v {
            Value::Array(_) | Value::Object(_) => None,
            v => serde_json::to_string(v).ok(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn order_schema() -> Value {
        json!({
            "type": "object",
            "required": ["order_id", "amount", "currency", "items"],
            "additionalProperties": false,
            "properties": {
                "order_id": {"type": "string", "minLength": 3, "maxLength": 12},
                "amount": {"type": "number", "minimum": 0, "exclusiveMaximum": 1000},
                "qty": {"type": "integer", "minimum": 1},
                "currency": {"enum": ["USD", "EUR", "GBP"]},
                "note": {"type": ["string", "null"]},
                "paid": {"type": "boolean"},
                "status": {"type": "string"},
                "meta": {},
                // Names around the 16 bytes that a key's pattern holds with its quote.
                "fifteen_chars_x": {"type": "integer"},
                "a_long_property_name": {"type": "string"},
                "items": {"type": "array", "minItems": 1, "maxItems": 3,
                          "items": {"type": "object", "required": ["sku"],
                                    "properties": {"sku": {"const": "A-1"}}}}
            }
        })
    }

    proptest! {
        /// The word-wise comparison is byte equality, at every length around its cases.
        #[test]
        fn same_is_byte_equality(
            a in prop::collection::vec(prop::sample::select(vec![b'a', b'b']), 0..40),
            flip in any::<prop::sample::Index>(),
        ) {
            prop_assert!(same(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone();
                let at = flip.index(b.len());
                b[at] = if b[at] == b'a' { b'b' } else { b'a' };
                prop_assert!(!same(&a, &b));
                prop_assert!(!same(&a, &a[..a.len() - 1]));
            }
        }
    }

    proptest! {
        /// The word-at-a-time string end is the byte loop's, with or without escapes, at
        /// every distance from the end of the text.
        #[test]
        fn string_end_is_the_byte_loops(
            inner in prop::collection::vec(
                prop::sample::select(vec![b'a', b'"', b'\\', 0xc3, 0xa9, b' ']), 0..24),
            tail in 0usize..10,
        ) {
            let mut text = vec![b'"'];
            text.extend(&inner);
            text.push(b'"');
            text.extend(std::iter::repeat_n(b'x', tail));
            let (mut j, mut escaped) = (1, false);
            while j < text.len() && text[j] != b'"' {
                if text[j] == b'\\' {
                    escaped = true;
                    j += 1;
                }
                j += 1;
            }
            let expected = ((j + 1).min(text.len()), escaped);
            prop_assert_eq!(string_end(&text, 0), expected);
        }

        /// Numeric bounds: whatever number token and bound, a vouched value is valid for
        /// jsonschema; and a plain decimal well inside its bounds is vouched for.
        #[test]
        fn number_bounds_agree_with_jsonschema(
            // Near the bounds mostly, so that values on them come up.
            int in prop_oneof![0u64..3, 99u64..101, 999u64..1001, 0u64..100_000],
            frac in prop_oneof!["0{0,3}", "[0-9]{0,4}", Just("25".to_string()), Just("32".to_string())],
            exp in prop::option::of(-3i32..4),
            negative in any::<bool>(),
            bound in prop::sample::select(vec![-1.5, -1.0, 0.0, 0.25, 0.32, 1.0, 99.99, 1000.0]),
            on_bound in any::<bool>(),
            keyword in prop::sample::select(vec![
                "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"]),
        ) {
            let mut token = format!("{}{int}", if negative { "-" } else { "" });
            if !frac.is_empty() {
                token = format!("{token}.{frac}");
            }
            if let Some(e) = exp {
                token = format!("{token}e{e}");
            }
            let value: Value = serde_json::from_str(&token).unwrap();
            // Half the time the bound is the value itself.
            let bound = if on_bound { value.as_f64().unwrap() } else { bound };
            let schema = json!({"type": "number", keyword: bound});
            let fast = FastSchema::compile(&schema).unwrap();
            let valid = jsonschema::validator_for(&schema).unwrap().is_valid(&value);
            if fast.valid_value(token.as_bytes(), 0, token.len()) {
                prop_assert!(valid, "vouched for {} against {} {}", token, keyword, bound);
            }
            let n = value.as_f64().unwrap();
            let inside = match keyword {
                "minimum" | "exclusiveMinimum" => n > bound,
                _ => n < bound,
            };
            if exp.is_none() && inside && (n - bound).abs() > 1e-9 {
                prop_assert!(fast.valid_value(token.as_bytes(), 0, token.len()), "{}", token);
            }
        }
    }

    /// The fields' order changes from one object to the next (the guesses by position go
    /// stale): every object still gets its own verdict.
    #[test]
    fn guesses_by_position_never_decide() {
        let schema = json!({
            "type": "object",
            "required": ["a", "b"],
            "properties": {"a": {"type": "string"}, "b": {"type": "integer"}, "c": {}},
        });
        let fast = FastSchema::compile(&schema).unwrap();
        for _ in 0..3 {
            assert!(fast.valid(r#"{"a":"x","b":1}"#));
            assert!(fast.valid(r#"{"b":1,"a":"x","c":[1]}"#));
            assert!(!fast.valid(r#"{"b":"x","a":1}"#));
            assert!(!fast.valid(r#"{"a":1,"b":"x"}"#));
            assert!(!fast.valid(r#"{"c":1,"a":"x"}"#));
            assert!(fast.valid(r#"{"c":1,"a":"x","b":2}"#));
        }
    }

    /// Fields in any order, among undeclared ones, past the 64 that are tracked by bits:
    /// each is found by name.
    #[test]
    fn finds_properties_in_any_order() {
        let names: Vec<String> = (0..70).map(|i| format!("p{i}")).collect();
        let schema = json!({
            "type": "object",
            "required": names,
            "properties": names.iter().map(|n| (n.clone(), json!({"type": "integer"})))
                .collect::<serde_json::Map<_, _>>(),
        });
        let fast = FastSchema::compile(&schema).unwrap();
        let doc = |skip: Option<usize>, text_at: Option<usize>| {
            let fields: Vec<String> = (0..70)
                .rev()
                .filter(|i| Some(*i) != skip)
                .map(|i| match text_at == Some(i) {
                    true => format!("\"p{i}\":\"x\",\"q{i}\":1"),
                    false => format!("\"p{i}\":{i},\"q{i}\":\"y\""),
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        assert!(fast.valid(&doc(None, None)));
        for missing in [0, 3, 63, 64, 69] {
            assert!(!fast.valid(&doc(Some(missing), None)), "p{missing} missing");
        }
        for wrong in [0, 10, 66] {
            assert!(!fast.valid(&doc(None, Some(wrong))), "p{wrong} a string");
        }
    }

    #[test]
    fn subset_compiles_and_the_rest_does_not() {
        assert!(FastSchema::compile(&order_schema()).is_some());
        for s in [
            json!({"pattern": "^a"}),
            json!({"properties": {"a": {"format": "date-time"}}}),
            json!({"$ref": "#/$defs/a"}),
            json!({"allOf": [{"type": "string"}]}),
            json!({"items": [{"type": "string"}]}),
            json!({"enum": [[1]]}),
            json!({"type": "strin"}),
        ] {
            assert!(FastSchema::compile(&s).is_none(), "{s}");
        }
    }

    #[test]
    fn vouches_for_valid_orders_and_never_for_invalid_ones() {
        let fast = FastSchema::compile(&order_schema()).unwrap();
        let valid = r#"{"order_id":"o-1","amount":12.5,"currency":"EUR","items":[{"sku":"A-1"}],"note":null,"paid":true,"qty":2}"#;
        assert!(fast.valid(valid));
        for invalid in [
            r#"{"order_id":"o-1","amount":12.5,"currency":"EUR"}"#,
            r#"{"order_id":"o-1","amount":-1,"currency":"EUR","items":[{"sku":"A-1"}]}"#,
            r#"{"order_id":"o-1","amount":1000,"currency":"EUR","items":[{"sku":"A-1"}]}"#,
            r#"{"order_id":"o","amount":1,"currency":"EUR","items":[{"sku":"A-1"}]}"#,
            r#"{"order_id":"o-1","amount":1,"currency":"JPY","items":[{"sku":"A-1"}]}"#,
            r#"{"order_id":"o-1","amount":1,"currency":"EUR","items":[]}"#,
            r#"{"order_id":"o-1","amount":1,"currency":"EUR","items":[{"sku":"B"}]}"#,
            r#"{"order_id":"o-1","amount":1,"currency":"EUR","items":[{"sku":"A-1"}],"x":1}"#,
            r#"{"order_id":"o-1","amount":1,"currency":"EUR","items":[{"sku":"A-1"}],"qty":1.5}"#,
            r#"[1]"#,
            r#"{"order_id":"o-1""#,
        ] {
            assert!(!fast.valid(invalid), "{invalid}");
        }
    }

    /// The check from the decoder's field spans: a schema that says nothing of an object's
    /// fields vouches without looking at them; every other keyword on the fields still
    /// decides.
    #[test]
    fn recorded_fields_are_checked_unless_nothing_is_said_of_them() {
        let texts = [
            r#"{}"#,
            r#"{"a":1}"#,
            r#"{"a":"x","b":2}"#,
            r#"{"b":[1,{"c":null}]}"#,
            r#"{"a":-1.5,"b":"y"}"#,
            r#"{"a":true,"b":null}"#,
            r#"{"a":null,"b":{"c":1}}"#,
            r#"{"a":[1],"b":false}"#,
            r#"{"a":{},"b":"a string long enough to follow a key by 16 bytes"}"#,
            r#"{"a":25,"b":-3}"#,
            r#"{"a":0.5,"b":0}"#,
            r#"{"a":0,"b":-0.5}"#,
        ];
        let schemas = [
            json!({"type": "object"}),
            json!({"title": "anything"}),
            json!(true),
            json!(false),
            json!({"type": "array"}),
            json!({"minProperties": 1}),
            json!({"maxProperties": 1}),
            json!({"required": ["a"]}),
            json!({"additionalProperties": false}),
            json!({"additionalProperties": {"type": "string"}}),
            json!({"properties": {"a": {"type": "integer"}}}),
            // One of each common shape, checked by the value's first byte.
            json!({"properties": {"a": {"type": "string"}, "b": {}}}),
            json!({"properties": {"a": {"type": "number"}, "b": {"type": "string"}}}),
            json!({"properties": {"b": {"type": ["number", "integer"]}}}),
            json!({"properties": {"a": {}, "b": true}, "additionalProperties": false}),
            // Numbers with bounds, some met by any number at or above zero.
            json!({"properties": {"a": {"type": "number", "minimum": 0}, "b": {"type": "number", "minimum": -1}}}),
            json!({"properties": {"a": {"type": "number", "minimum": 0, "maximum": 10}}}),
            json!({"properties": {"a": {"type": "number", "exclusiveMinimum": 0}}}),
            json!({"properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "integer", "minimum": 0}}}),
        ];
        for schema in &schemas {
            let fast = FastSchema::compile(schema).unwrap();
            let full = jsonschema::validator_for(schema).unwrap();
            let says_nothing = fast.types & OBJECT != 0 && fast.any_fields && !fast.never;
            for text in texts {
                let mut spans = Vec::new();
                assert!(crate::scan::scan_object(text, |s| spans.push(s)));
                let verdict = fast.valid_object(text.as_bytes(), &spans);
                let doc: Value = serde_json::from_str(text).unwrap();
                assert!(
                    !verdict || full.is_valid(&doc),
                    "{schema} vouched for {text}"
                );
                assert_eq!(
                    verdict,
                    says_nothing || fast.valid(text),
                    "{schema} on {text}"
                );
            }
        }
    }

    /// `enum`/`const` values: the allowed texts as written (short ones, one longer than the
    /// 16 bytes of a pattern, a number, `null`) are vouched for, and their near misses are
    /// not, by both checks and in agreement with jsonschema.
    #[test]
    fn enum_values_are_vouched_for_as_written() {
        let long = "a text longer than the sixteen bytes of a pattern";
        let schema = json!({"properties": {"v": {"enum": ["USD", long, 1, null, "exactly 14 b"]}}});
        let fast = FastSchema::compile(&schema).unwrap();
        let full = jsonschema::validator_for(&schema).unwrap();
        let values = [
            (json!("USD"), true),
            (json!(long), true),
            (json!(1), true),
            (json!(null), true),
            (json!("exactly 14 b"), true),
            (json!("US"), false),
            (json!("USDX"), false),
            (json!("exactly 14 bX"), false),
            (json!(2), false),
            (json!(12), false),
            (json!(1.5), false),
            (json!(&long[1..]), false),
        ];
        for (value, allowed) in values {
            // At the end of the text (fewer than 16 bytes follow), and before another field.
            for doc in [
                json!({"v": value}),
                json!({"v": value, "w": "padding, 16 bytes"}),
            ] {
                let text = doc.to_string();
                let verdict = fast.valid(&text);
                assert_eq!(verdict, allowed, "{text}");
                assert_eq!(full.is_valid(&doc), allowed, "{text}");
                let mut spans = Vec::new();
                assert!(crate::scan::scan_object(&text, |s| spans.push(s)));
                assert_eq!(
                    fast.valid_object(text.as_bytes(), &spans),
                    allowed,
                    "{text}"
                );
            }
        }
    }

    /// Nested keys matched against the guessed property's name without seeking their end:
    /// a longer or shorter key, one spelled with an escape, and names that cannot stand
    /// unescaped in JSON text are all told apart from the guess. The texts are checked in
    /// turn, so each meets the guesses learned from those before it.
    #[test]
    fn nested_keys_are_told_apart_from_the_guess() {
        let schema = json!({"type": "array", "items": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                // First: the guess for a first field before anything was learned.
                "a\\nb": {},
                "n": {"type": "integer"},
                "sku": {"type": "string"},
                "c\"d": {"type": "integer"},
            }
        }});
        let fast = FastSchema::compile(&schema).unwrap();
        let full = jsonschema::validator_for(&schema).unwrap();
        let texts = [
            // The key is a, a new line, b: not the name's bytes `a\nb`.
            (r#"[{"a\nb":1}]"#, false),
            (r#"[{"a\\nb":1}]"#, false),
            (r#"[{"n":1}]"#, true),
            // The name `n` then a byte that is not the closing quote.
            (r#"[{"nA:1":"x"}]"#, false),
            (r#"[{"sku":"x"},{"sku":"y"}]"#, true),
            (r#"[{"sku":"x"}, {"sku" : "y"}]"#, true),
            (r#"[{"sku":"x"},{"skus":"y"}]"#, false),
            (r#"[{"sku":"x"},{"sk":"y"}]"#, false),
            (r#"[{"sku":"x"},{"sk\u0075":1}]"#, false),
            (r#"[{"sku":"x","c\"d":1}]"#, false),
            (r#"[{"sku":"x","c\"d":"1"}]"#, false),
            (r#"[{"sku":"x","c":"2"}]"#, false),
            (r#"[{"sku":1}]"#, false),
            (r#"[{"sku":"x","n":2}]"#, true),
        ];
        // Each text also padded with empty items, so that 16 bytes follow every key and its
        // pattern is compared.
        let padded =
            texts.map(|(text, must_vouch)| (text.replace("}]", "},{},{},{},{},{}]"), must_vouch));
        let all = texts
            .into_iter()
            .chain(padded.iter().map(|(t, m)| (t.as_str(), *m)));
        // Each text on a new schema (guessing the first property first), then all in turn on
        // one schema, twice (guessing what the texts before taught it).
        let runs = all
            .clone()
            .map(|t| (vec![t], FastSchema::compile(&schema).unwrap()));
        let shared = (all.clone().chain(all).collect(), fast);
        for (texts, fast) in runs.chain([shared]) {
            for (text, must_vouch) in texts {
                let doc: Value = serde_json::from_str(text).unwrap();
                let verdict = fast.valid(text);
                assert!(
                    !verdict || full.is_valid(&doc),
                    "vouched for invalid {text}"
                );
                assert!(verdict || !must_vouch, "did not vouch for {text}");
            }
        }
    }

    /// Random documents over the order's fields: whenever the fast path says valid,
    /// jsonschema agrees; and it says valid for the plain valid ones.
    #[test]
    fn agrees_with_jsonschema() {
        let schema = order_schema();
        let fast = FastSchema::compile(&schema).unwrap();
        let full = jsonschema::validator_for(&schema).unwrap();
        let scalar = prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(Value::from),
            (-5i64..2000).prop_map(Value::from),
            (-5.0f64..1500.0).prop_map(Value::from),
            Just(json!(1000)),
            Just(json!(0)),
            Just(json!(1e3)),
            prop::sample::select(vec![
                "USD",
                "EUR",
                "A-1",
                "o",
                "o-1",
                "ééé",
                "a\"b",
                "\u{1F600}x"
            ])
            .prop_map(Value::from),
        ];
        let value = scalar.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec!["sku".to_string(), "x".to_string()]),
                    inner,
                    0..3
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        let keys = prop::sample::select(vec![
            "order_id",
            "amount",
            "qty",
            "currency",
            "note",
            "paid",
            "items",
            "other",
            "status",
            "meta",
            "fifteen_chars_x",
            "fifteen_chars_",
            "sixteen_chars_xx",
            "a_long_property_name",
            "a_long_property_nam",
        ]);
        let doc = prop::collection::btree_map(keys, value, 0..8);
        proptest!(|(doc in doc)| {
            let doc = Value::Object(doc.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            let text = serde_json::to_string(&doc).unwrap();
            let verdict = fast.valid(&text);
            if verdict {
                prop_assert!(full.is_valid(&doc), "fast path vouched for {text}");
            }
            // The check of the decoder's recorded fields gives the same verdict.
            let mut spans = Vec::new();
            prop_assert!(crate::scan::scan_object(&text, |s| spans.push(s)));
            prop_assert_eq!(fast.valid_object(text.as_bytes(), &spans), verdict, "{}", text);
        });
    }
}
