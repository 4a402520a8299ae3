//! The host side of the batch wire format (`docs/wasm-abi.md`): batches written straight into
//! guest memory, results parsed strictly (anything off is a malformed result).

use bytes::Bytes;

const OUTPUTS: u8 = 0;
const FILTERED: u8 = 1;
const ERROR: u8 = 2;
const HAS_SUBJECT: u8 = 1;
const HAS_HEADERS: u8 = 2;
const UNCHANGED: u8 = 4;

/// One message as the guest sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GuestInput<'a> {
    pub(crate) subject: &'a str,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) payload: &'a [u8],
}

/// One output the guest returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct GuestOutput {
    pub(crate) subject: Option<String>,
    pub(crate) headers: Vec<(String, String)>,
    /// `None`: the input's payload, unchanged.
    pub(crate) payload: Option<Bytes>,
}

impl GuestOutput {
    /// The input as it was: nothing to re-decode.
    pub(crate) fn is_passthrough(&self) -> bool {
        self.subject.is_none() && self.headers.is_empty() && self.payload.is_none()
    }
}

/// One message's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GuestResult {
    Outputs(Vec<GuestOutput>),
    Filtered,
    Error(String),
}

/// The encoded size of a batch.
pub(crate) fn batch_len(messages: &[GuestInput<'_>]) -> usize {
    4 + messages
        .iter()
        .map(|m| {
            12 + m.subject.len()
                + m.payload.len()
                + m.headers
                    .iter()
                    .map(|(k, v)| 8 + k.len() + v.len())
                    .sum::<usize>()
        })
        .sum::<usize>()
}

/// Writes a batch into `out`, which is exactly [`batch_len`] bytes.
pub(crate) fn encode_batch(messages: &[GuestInput<'_>], out: &mut [u8]) {
    let mut at = 0usize;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let u32le = |n: usize| (n as u32).to_le_bytes();
    put(&u32le(messages.len()));
    for m in messages {
        put(&u32le(m.subject.len()));
        put(m.subject.as_bytes());
        put(&u32le(m.headers.len()));
        for (k, v) in m.headers {
            put(&u32le(k.len()));
            put(k.as_bytes());
            put(&u32le(v.len()));
            put(v.as_bytes());
        }
        put(&u32le(m.payload.len()));
        put(m.payload);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(format!(
                "results end early at byte {} (wanted {n} more bytes)",
                self.at
            ));
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<usize, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()?;
        self.take(n)
    }

    fn str(&mut self, what: &str) -> Result<String, String> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?)
            .map(str::to_string)
            .map_err(|_| format!("{what} at byte {at} is not UTF-8"))
    }
}

/// Parses the results of a batch of `count` messages; any deviation from the format is an
/// error that says where.
pub(crate) fn decode_results(buf: &[u8], count: usize) -> Result<Vec<GuestResult>, String> {
    let mut r = Reader { buf, at: 0 };
    let n = r.u32()?;
    if n != count {
        return Err(format!("{n} results for a batch of {count} messages"));
    }
    let mut results = Vec::with_capacity(count);
    for _ in 0..count {
        let tag_at = r.at;
        results.push(match r.u8()? {
            OUTPUTS => {
                let n = r.u32()?;
                if n > buf.len() {
                    return Err(format!("{n} outputs at byte {tag_at} cannot fit"));
                }
                let mut outputs = Vec::with_capacity(n);
                for _ in 0..n {
                    outputs.push(output(&mut r)?);
                }
                GuestResult::Outputs(outputs)
            }
            FILTERED => GuestResult::Filtered,
            ERROR => GuestResult::Error(r.str("error text")?),
            other => return Err(format!("unknown result tag {other} at byte {tag_at}")),
        });
    }
    if r.at != buf.len() {
        return Err(format!(
            "{} trailing bytes after the last result",
            buf.len() - r.at
        ));
    }
    Ok(results)
}

fn output(r: &mut Reader<'_>) -> Result<GuestOutput, String> {
    let at = r.at;
    let flags = r.u8()?;
    if flags & !(HAS_SUBJECT | HAS_HEADERS | UNCHANGED) != 0 {
        return Err(format!("unknown output flags {flags:#04x} at byte {at}"));
    }
    let mut o = GuestOutput::default();
    if flags & HAS_SUBJECT != 0 {
        let s = r.str("subject")?;
        weir_pipelines::subject::check_subject(&s).map_err(|e| format!("output subject: {e}"))?;
        o.subject = Some(s);
    }
    if flags & HAS_HEADERS != 0 {
        let n = r.u32()?;
        for _ in 0..n {
            let k = r.str("header name")?;
            let v = r.str("header value")?;
            if k.is_empty() || k.contains([':', ' ', '\r', '\n']) || v.contains(['\r', '\n']) {
                return Err(format!("invalid header `{k}` at byte {at}"));
            }
            o.headers.push((k, v));
        }
    }
    if flags & UNCHANGED == 0 {
        o.payload = Some(Bytes::copy_from_slice(r.bytes()?));
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_through_the_format() {
        let headers = vec![("a".to_string(), "1".to_string())];
        let msgs = [GuestInput {
            subject: "s.x",
            headers: &headers,
            payload: b"{}",
        }];
        let mut buf = vec![0; batch_len(&msgs)];
        encode_batch(&msgs, &mut buf);
        assert_eq!(
            buf,
            b"\x01\0\0\0\x03\0\0\0s.x\x01\0\0\0\x01\0\0\0a\x01\0\0\x001\x02\0\0\0{}"
        );
    }

    #[test]
    fn results_parse_strictly() {
        let ok = b"\x03\0\0\0\x00\x01\0\0\0\x04\x01\x02\x02\0\0\0no";
        assert_eq!(
            decode_results(ok, 3).unwrap(),
            vec![
                GuestResult::Outputs(vec![GuestOutput::default()]),
                GuestResult::Filtered,
                GuestResult::Error("no".into())
            ]
        );
        assert!(decode_results(ok, 2).unwrap_err().contains("3 results"));
        assert!(
            decode_results(&ok[..ok.len() - 1], 3)
                .unwrap_err()
                .contains("end early")
        );
        let mut extra = ok.to_vec();
        extra.push(0);
        assert!(decode_results(&extra, 3).unwrap_err().contains("trailing"));
        assert!(
            decode_results(b"\x01\0\0\0\x09", 1)
                .unwrap_err()
                .contains("tag 9")
        );
    }
}
