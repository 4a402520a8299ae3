//! JSON text of scalar values as serde_json writes them, for the transcoders that write a
//! binary payload's values as JSON without building a `serde_json::Value`: the same bytes,
//! with fast paths for the common shapes (plain ASCII strings, prices).

use base64::Engine as _;

/// Writes `bytes` as a JSON string when they are UTF-8; `None` when not.
pub(super) fn write_str(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    // Printable ASCII without quotes or backslashes is its own JSON text (and valid UTF-8);
    // anything else is checked and escaped as serde_json does.
    if plain_json(bytes) {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        let text = std::str::from_utf8(bytes).ok()?;
        serde_json::to_writer(&mut *out, text).ok()?;
    }
    Some(())
}

/// Writes a double as serde_json does (a non-finite one as `null`).
pub(super) fn write_f64(v: f64, out: &mut Vec<u8>) {
    if !write_cents(v, out) {
        // Writing to a vector does not fail; serde_json writes a non-finite double as null.
        let _ = serde_json::to_writer(&mut *out, &v);
    }
}

/// Writes `bytes` as a JSON string of their standard base64.
pub(super) fn write_base64(bytes: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.push(b'"');
    let start = out.len();
    out.resize(start + base64::encoded_len(bytes.len(), true)?, 0);
    base64::engine::general_purpose::STANDARD
        .encode_slice(bytes, &mut out[start..])
        .ok()?;
    out.push(b'"');
    Some(())
}

/// Whether `bytes` is printable ASCII without quotes or backslashes: its own JSON string
/// text. Eight bytes at a time (the usual bit tricks: a byte's high bit, a byte below 0x20,
/// a byte equal to `"` or `\`), since order-like records are mostly short strings.
pub(super) fn plain_json(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Some byte of `x` is below `n` (n ≤ 0x80); exact for "some", borrows notwithstanding.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH;
    let bad = |w: u64| {
        (w & HIGH)
            | below(w, 0x20)
            | below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            != 0
    };
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    let n = bytes.len();
    if n < 8 {
        return bytes
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\');
    }
    // The last word overlaps the one before when `n` is not a multiple of eight (copying
    // the tail into a padded word instead stalls on the store).
    (0..n - 8).step_by(8).all(|at| !bad(word(at))) && !bad(word(n - 8))
}

/// Writes `v` as serde_json does (its shortest round-trip text) when it is a decimal with at
/// most two fractional digits below 10^9 in magnitude — prices, amounts, rates — and says
/// whether it did. Such a value is written from its integer count of hundredths, far cheaper
/// than the general shortest-digits search: `c / 100.0 == v` (one correctly rounded division
/// of exact operands) says that decimal rounds to `v`, and below 10^9 a double's neighbours
/// lie much closer than 0.01, so no shorter decimal does.
pub(super) fn write_cents(v: f64, out: &mut Vec<u8>) -> bool {
    // Zero is left to serde_json (its sign).
    if !v.is_finite() || v.abs() >= 1e9 || v == 0.0 {
        return false;
    }
    let c = (v * 100.0).round();
    if c / 100.0 != v {
        return false;
    }
    let c = c.abs() as u64;
    if v < 0.0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut n = digits.len();
    let mut whole = c / 100;
    loop {
        n -= 1;
        digits[n] = b'0' + (whole % 10) as u8;
        whole /= 10;
        if whole == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[n..]);
    let (tenths, hundredths) = ((c / 10 % 10) as u8, (c % 10) as u8);
    out.extend_from_slice(&[b'.', b'0' + tenths]);
    if hundredths != 0 {
        out.push(b'0' + hundredths);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_json_is_printable_ascii_without_quotes_or_backslashes() {
        let slow = |b: &[u8]| {
            b.iter()
                .all(|&b| (0x20..0x80).contains(&b) && b != b'"' && b != b'\\')
        };
        for b in 0..=255u8 {
            for at in 0..12 {
                let mut text = [b'a'; 12];
                text[at] = b;
                for len in [at + 1, 12] {
                    assert_eq!(plain_json(&text[..len]), slow(&text[..len]), "{b} at {at}");
                }
            }
        }
        proptest!(|(text in prop::collection::vec(any::<u8>(), 0..40))| {
            prop_assert_eq!(plain_json(&text), slow(&text));
        });
    }

    #[test]
    fn cents_are_written_as_serde_json_writes_them() {
        let check = |v: f64| {
            let mut out = Vec::new();
            if write_cents(v, &mut out) {
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&v).unwrap()
                );
            }
        };
        for v in [
            0.01,
            0.1,
            0.5,
            1.0,
            10.0,
            99.99,
            100.0,
            123.45,
            999_999_999.99,
            -0.07,
            -12.3,
        ] {
            let mut out = Vec::new();
            assert!(write_cents(v, &mut out), "{v}");
            check(v);
        }
        for v in [0.0, -0.0, 0.001, 1e9, f64::NAN, f64::INFINITY, 1.0 / 3.0] {
            assert!(!write_cents(v, &mut Vec::new()), "{v}");
        }
        proptest!(|(c in -100_000_000_000i64..100_000_000_000, v in any::<f64>())| {
            check(c as f64 / 100.0);
            check(c as f64 / 10.0);
            check(v);
        });
    }
}
