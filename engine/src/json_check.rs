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

use crate::decode::FieldSpan;
use crate::scan::{scan_array, scan_object};
use serde_json::Value;

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

/// One compiled (sub)schema of the subset.
#[derive(Debug, Default)]
pub(crate) struct FastSchema {
    /// Allowed types (`INTEGER` alone admits integers written without a fraction or exponent).
    types: u8,
    /// `false` schema: nothing is certainly valid.
    never: bool,
    /// `properties`, with whether each is `required`.
    properties: Vec<(String, FastSchema, bool)>,
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
    /// `enum` / `const`: the JSON text of each allowed value (scalars only).
    one_of_texts: Option<Vec<String>>,
}

impl FastSchema {
    /// Compiles `schema` when every keyword in it is in the subset; `None` otherwise.
    pub(crate) fn compile(schema: &Value) -> Option<FastSchema> {
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
                        "minimum" | "exclusiveMinimum" => s.lower.push(bound(value)?),
                        "maximum" | "exclusiveMaximum" => s.upper.push(bound(value)?),
                        "enum" => s.one_of_texts = Some(texts(value.as_array()?)?),
                        "const" => s.one_of_texts = Some(texts(std::slice::from_ref(value))?),
                        k if ANNOTATIONS.contains(&k) => {}
                        _ => return None,
                    }
                }
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
        scanned && self.valid_value(text.as_bytes())
    }

    /// Whether an object whose top-level fields lie at `fields` in `text` (as the decoder's
    /// scanner recorded them: the text is valid JSON in UTF-8 and the keys have no escapes) is
    /// certainly valid.
    pub(crate) fn valid_object(&self, text: &[u8], fields: &[FieldSpan]) -> bool {
        if self.never || self.types & OBJECT == 0 {
            return false;
        }
        let mut check = ObjectCheck::new(self);
        for &[k0, k1, v0, v1] in fields {
            check.field(
                &text[k0 as usize..k1 as usize],
                &text[v0 as usize..v1 as usize],
            );
        }
        check.finish(|name| {
            fields
                .iter()
                .any(|&[k0, k1, _, _]| &text[k0 as usize..k1 as usize] == name.as_bytes())
        })
    }

    /// A nested object of valid JSON, checked while walking it.
    fn valid_nested_object(&self, text: &[u8]) -> bool {
        if self.never || self.types & OBJECT == 0 {
            return false;
        }
        let mut check = ObjectCheck::new(self);
        walk_object(text, |key, value| check.field(key, value))
            && check.finish(|name| {
                let mut found = false;
                walk_object(text, |key, _| found |= key == name.as_bytes());
                found
            })
    }

    /// The declared property named `key`, with its position: the one at `hint` first (fields
    /// usually come in the schema's order), then the others.
    #[inline]
    fn property(&self, key: &[u8], hint: usize) -> Option<(usize, &FastSchema)> {
        if let Some((n, s, _)) = self.properties.get(hint)
            && same(n.as_bytes(), key)
        {
            return Some((hint, s));
        }
        let last = key.last();
        self.properties
            .iter()
            .enumerate()
            .find(|(_, (n, _, _))| {
                n.len() == key.len() && n.as_bytes().last() == last && same(n.as_bytes(), key)
            })
            .map(|(i, (_, s, _))| (i, s))
    }

    /// Whether one value (valid JSON, as the scanner found it) is certainly valid.
    fn valid_value(&self, text: &[u8]) -> bool {
        if self.never {
            return false;
        }
        if let Some(allowed) = &self.one_of_texts {
            // Same text, same value; a different spelling of an allowed value is left to
            // jsonschema.
            if !allowed.iter().any(|a| same(a.as_bytes(), text)) {
                return false;
            }
        }
        match text.first() {
            Some(b'{') => self.valid_nested_object(text),
            Some(b'[') => self.valid_array(text),
            Some(b'"') => self.types & STRING != 0 && self.valid_string(text),
            Some(b't') | Some(b'f') => self.types & BOOLEAN != 0,
            Some(b'n') => self.types & NULL != 0,
            Some(_) => self.valid_number(text),
            None => false,
        }
    }

    fn valid_array(&self, text: &[u8]) -> bool {
        if self.types & ARRAY == 0 {
            return false;
        }
        let mut count = 0u64;
        let mut ok = true;
        walk_array(text, |value| {
            count += 1;
            if ok && let Some(items) = &self.items {
                ok = items.valid_value(value);
            }
        });
        ok && self.min_items.is_none_or(|m| count >= m) && self.max_items.is_none_or(|m| count <= m)
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

    /// A number token. Integers are the ones written without a fraction or exponent; bounds
    /// are compared in f64 only where that is exact (at most 15 significant digits), and a
    /// value on a bound is left to jsonschema.
    fn valid_number(&self, text: &[u8]) -> bool {
        let integral = !text.iter().any(|b| matches!(b, b'.' | b'e' | b'E'));
        let allowed = self.types & NUMBER != 0 || (self.types & INTEGER != 0 && integral);
        if !allowed {
            return false;
        }
        if self.lower.is_empty() && self.upper.is_empty() {
            return true;
        }
        let within = |lo: f64, hi: f64| {
            self.lower.iter().all(|&m| lo > m) && self.upper.iter().all(|&m| hi < m)
        };
        // Most tokens are a plain decimal: the integer part brackets the value, which is
        // often enough to decide without parsing the number.
        if let Some((lo, hi)) = bracket(text) {
            return within(lo, hi);
        }
        let digits = text.iter().filter(|b| b.is_ascii_digit()).count();
        if digits > 15 {
            return false;
        }
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|n| within(n, n))
    }
}

/// `[lo, hi]` around the value of a token `-?[0-9]{1,15}(\.[0-9]+)?`: its integer part and
/// the next integer away from zero (the same integer when there is no fraction); `None` for
/// any other token.
fn bracket(text: &[u8]) -> Option<(f64, f64)> {
    let (negative, rest) = match text.split_first() {
        Some((b'-', r)) => (true, r),
        _ => (false, text),
    };
    let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, frac) = rest.split_at(int_len);
    let fraction = match frac {
        [] => false,
        [b'.', digits @ ..] if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => true,
        _ => return None,
    };
    if int.is_empty() || int.len() > 15 {
        return None;
    }
    let whole = int.iter().fold(0u64, |n, b| n * 10 + u64::from(b - b'0')) as f64;
    let next = if fraction { whole + 1.0 } else { whole };
    Some(if negative {
        (-next, -whole)
    } else {
        (whole, next)
    })
}

/// Calls `field(key, value)` for each field of `text`, an object of valid JSON; false when a
/// key has escapes (it is then not its bytes, and the caller does not know).
fn walk_object(text: &[u8], mut field: impl FnMut(&[u8], &[u8])) -> bool {
    let mut i = skip_ws(text, 1);
    while i < text.len() && text[i] == b'"' {
        let k1 = string_end(text, i) - 1;
        let key = &text[i + 1..k1];
        if key.contains(&b'\\') {
            return false;
        }
        let v0 = skip_ws(text, skip_ws(text, k1 + 1) + 1);
        let v1 = value_end(text, v0);
        field(key, &text[v0..v1]);
        // `,` then the next key, or `}`.
        i = skip_ws(text, skip_ws(text, v1) + 1);
    }
    true
}

/// Calls `element(value)` for each element of `text`, an array of valid JSON.
fn walk_array(text: &[u8], mut element: impl FnMut(&[u8])) {
    let mut i = skip_ws(text, 1);
    while i < text.len() && text[i] != b']' {
        let end = value_end(text, i);
        element(&text[i..end]);
        i = skip_ws(text, skip_ws(text, end) + 1);
    }
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\t' | b'\r') = text.get(i) {
        i += 1;
    }
    i
}

/// The end of the string opening at `i` (after its closing quote), in valid JSON.
fn string_end(text: &[u8], mut i: usize) -> usize {
    i += 1;
    while let Some(&b) = text.get(i) {
        match b {
            b'"' => return i + 1,
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    i
}

/// The end of the value starting at `i`, in valid JSON.
fn value_end(text: &[u8], i: usize) -> usize {
    match text.get(i) {
        Some(b'"') => string_end(text, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while let Some(&b) = text.get(j) {
                match b {
                    b'"' => {
                        j = string_end(text, j);
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

/// Byte equality of short strings, inline: keys and enum values are a few bytes, where a
/// call to `memcmp` costs more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// The check of one object's fields, one at a time.
struct ObjectCheck<'s> {
    schema: &'s FastSchema,
    /// Which declared properties were seen (a bit each; past 64, required ones are looked up
    /// by name at the end).
    seen: u64,
    /// Where the next field's property is looked for first.
    next: usize,
    count: u64,
    ok: bool,
}

impl<'s> ObjectCheck<'s> {
    fn new(schema: &'s FastSchema) -> Self {
        ObjectCheck {
            schema,
            seen: 0,
            next: 0,
            count: 0,
            ok: true,
        }
    }

    #[inline]
    fn field(&mut self, key: &[u8], value: &[u8]) {
        if !self.ok {
            return;
        }
        self.count += 1;
        let schema = match self.schema.property(key, self.next) {
            Some((i, s)) => {
                if i < 64 {
                    self.seen |= 1 << i;
                }
                self.next = i + 1;
                s
            }
            None => match &self.schema.additional {
                Some(s) => s,
                None => return,
            },
        };
        self.ok = schema.valid_value(value);
    }

    /// The verdict once every field was seen; `has(name)` says whether a key is present.
    fn finish(self, has: impl Fn(&str) -> bool) -> bool {
        let s = self.schema;
        let n = self.count;
        self.ok
            && s.min_properties.is_none_or(|m| n >= m)
            && s.max_properties.is_none_or(|m| n <= m)
            && s.properties
                .iter()
                .enumerate()
                .filter(|(_, (_, _, required))| *required)
                .all(|(i, (name, _, _))| {
                    if i < 64 {
                        self.seen & (1 << i) != 0
                    } else {
                        has(name)
                    }
                })
            && s.required_only.iter().all(|name| has(name))
    }
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
                "items": {"type": "array", "minItems": 1, "maxItems": 3,
                          "items": {"type": "object", "required": ["sku"],
                                    "properties": {"sku": {"const": "A-1"}}}}
            }
        })
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
            "order_id", "amount", "qty", "currency", "note", "paid", "items", "other",
        ]);
        let doc = prop::collection::btree_map(keys, value, 0..8);
        proptest!(|(doc in doc)| {
            let doc = Value::Object(doc.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
            let text = serde_json::to_string(&doc).unwrap();
            if fast.valid(&text) {
                prop_assert!(full.is_valid(&doc), "fast path vouched for {text}");
            }
        });
    }
}
