//! `pii-redact`: masks email addresses and card numbers in every string value of a JSON
//! payload (object keys are left alone; a payload that is not JSON is masked as one text).
//! An email keeps its domain (`jane.doe@example.com` → `********@example.com`); a card number
//! (13 to 19 digits, spaces or dashes between them, passing the Luhn check) keeps its last
//! four digits (`4111 1111 1111 1111` → `**** **** **** 1111`). Masking keeps every byte's
//! place, so the payload's length and layout do not change; a message with nothing to mask
//! leaves with its original bytes. Counts masked values in the counter `masked`.

extern crate alloc;

use alloc::vec::Vec;
use weir_guest::{Message, Output, Outputs, Result, host};

weir_guest::export! { redact => redact }

/// The batch function.
pub fn redact(m: &Message<'_>) -> Result<Outputs> {
    let mut out: Option<Vec<u8>> = None;
    let masked = mask_payload(m.payload, &mut out);
    if masked > 0 {
        host::counter("masked", masked as i64);
    }
    Ok(match out {
        Some(bytes) => Output::payload(bytes).into(),
        None => Outputs::pass(),
    })
}

/// Masks `payload`; `out` gets the changed copy when something was masked. Returns how many
/// values were masked.
pub fn mask_payload(payload: &[u8], out: &mut Option<Vec<u8>>) -> usize {
    let first = payload.iter().find(|b| !b.is_ascii_whitespace());
    if !matches!(first, Some(b'{' | b'[' | b'"')) {
        return mask_text(payload, 0, payload.len(), payload, out);
    }
    let mut masked = 0;
    let mut i = 0;
    while i < payload.len() {
        if payload[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut j = start;
        while j < payload.len() && payload[j] != b'"' {
            j += if payload[j] == b'\\' { 2 } else { 1 };
        }
        let end = j.min(payload.len());
        let mut k = end + 1;
        while k < payload.len() && payload[k].is_ascii_whitespace() {
            k += 1;
        }
        let is_key = payload.get(k) == Some(&b':');
        if !is_key {
            masked += mask_text(payload, start, end, payload, out);
        }
        i = end + 1;
    }
    masked
}

fn buf<'a>(out: &'a mut Option<Vec<u8>>, original: &[u8]) -> &'a mut Vec<u8> {
    out.get_or_insert_with(|| original.to_vec())
}

/// Masks emails and card numbers in `text[start..end]`.
fn mask_text(
    text: &[u8],
    start: usize,
    end: usize,
    original: &[u8],
    out: &mut Option<Vec<u8>>,
) -> usize {
    let s = &text[start..end];
    let mut masked = 0;
    // Emails: for each `@`, the local part before it and a domain with a dot after it.
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'@' {
            let local = s[..i].iter().rev().take_while(|&&b| is_local(b)).count();
            let domain = s[i + 1..].iter().take_while(|&&b| is_domain(b)).count();
            let d = &s[i + 1..i + 1 + domain];
            let d = d.strip_suffix(b".").unwrap_or(d);
            let dot = d.iter().rposition(|&b| b == b'.');
            if local > 0 && dot.is_some_and(|p| p > 0 && d.len() - p > 2) {
                let o = buf(out, original);
                for b in &mut o[start + i - local..start + i] {
                    *b = b'*';
                }
                masked += 1;
            }
            i += 1 + domain;
        } else {
            i += 1;
        }
    }
    // Card numbers: runs of digits with single spaces or dashes between them.
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_digit() || (i > 0 && (s[i - 1].is_ascii_digit())) {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = 0;
        let mut last_digit = i;
        while j < s.len() {
            if s[j].is_ascii_digit() {
                digits += 1;
                last_digit = j;
                j += 1;
            } else if matches!(s[j], b' ' | b'-') && s.get(j + 1).is_some_and(u8::is_ascii_digit)
            {
                j += 1;
            } else {
                break;
            }
        }
        let run = &s[i..=last_digit];
        if (13..=19).contains(&digits) && luhn(run) {
            let o = buf(out, original);
            let mut keep = 4;
            for p in (start + i..=start + last_digit).rev() {
                if o[p].is_ascii_digit() {
                    if keep > 0 {
                        keep -= 1;
                    } else {
                        o[p] = b'*';
                    }
                }
            }
            masked += 1;
        }
        i = last_digit + 1;
    }
    masked
}

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn luhn(run: &[u8]) -> bool {
    let mut sum = 0u32;
    for (n, d) in run
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if n % 2 == 1 {
            let x = d * 2;
            if x > 9 { x - 9 } else { x }
        } else {
            d
        };
    }
    sum % 10 == 0
}
