//! The wire format of batches and results (`docs/wasm-abi.md`) and the ABI entry points the
//! [`export!`](crate::export) macro wires up.

use crate::{CONFIG, Error, Global, Message, Outputs};
use alloc::string::String;
use alloc::vec::Vec;

/// The ABI version this SDK speaks.
pub const VERSION: i32 = 1;

const OUTPUTS: u8 = 0;
const FILTERED: u8 = 1;
const ERROR: u8 = 2;
const HAS_SUBJECT: u8 = 1;
const HAS_HEADERS: u8 = 2;
const UNCHANGED: u8 = 4;

static INPUT: Global<Vec<u8>> = Global::new(Vec::new());
static OUTPUT: Global<Vec<u8>> = Global::new(Vec::new());

/// `weir_alloc`: room for the next batch (the previous one's buffer is reused).
pub fn alloc(len: i32) -> i32 {
    let input = INPUT.get();
    input.clear();
    input.resize(len.max(0) as usize, 0);
    input.as_mut_ptr() as i32
}

/// `weir_init`: keeps the config JSON for [`crate::config`].
pub fn init(ptr: i32, len: i32) -> i32 {
    let bytes = input_slice(ptr, len);
    match core::str::from_utf8(bytes) {
        Ok(text) => {
            *CONFIG.get() = Some(String::from(text));
            0
        }
        Err(_) => 1,
    }
}

fn input_slice<'a>(ptr: i32, len: i32) -> &'a [u8] {
    // SAFETY: the host wrote `len` bytes at `ptr`, inside the buffer `weir_alloc` returned.
    unsafe { core::slice::from_raw_parts(ptr as usize as *const u8, len as usize) }
}

/// A reader of the batch format.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, Error> {
        let (head, rest) = self
            .buf
            .split_at_checked(4)
            .ok_or_else(|| Error(String::from("batch ends early")))?;
        self.buf = rest;
        Ok(u32::from_le_bytes([head[0], head[1], head[2], head[3]]))
    }

    /// `len:u32` then `len` bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = self.u32()? as usize;
        let (head, rest) = self
            .buf
            .split_at_checked(n)
            .ok_or_else(|| Error(String::from("batch ends early")))?;
        self.buf = rest;
        Ok(head)
    }

    /// `len:u32` then `len` bytes of UTF-8.
    pub fn str(&mut self) -> Result<&'a str, Error> {
        core::str::from_utf8(self.bytes()?).map_err(|_| Error(String::from("not UTF-8")))
    }

    /// One message.
    pub fn message(&mut self) -> Result<Message<'a>, Error> {
        let subject = self.str()?;
        let n_headers = self.u32()?;
        let start = self.buf;
        for _ in 0..n_headers {
            self.bytes()?;
            self.bytes()?;
        }
        let headers = &start[..start.len() - self.buf.len()];
        let payload = self.bytes()?;
        Ok(Message {
            subject,
            payload,
            headers,
            n_headers,
        })
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

/// Encodes one message's result.
pub fn put_result(out: &mut Vec<u8>, result: &Result<Outputs, Error>) {
    match result {
        Ok(outputs) if outputs.0.is_empty() => out.push(FILTERED),
        Ok(outputs) => {
            out.push(OUTPUTS);
            put_u32(out, outputs.0.len() as u32);
            for o in &outputs.0 {
                let mut flags = 0;
                if o.subject.is_some() {
                    flags |= HAS_SUBJECT;
                }
                if !o.headers.is_empty() {
                    flags |= HAS_HEADERS;
                }
                if o.payload.is_none() {
                    flags |= UNCHANGED;
                }
                out.push(flags);
                if let Some(s) = &o.subject {
                    put_bytes(out, s.as_bytes());
                }
                if !o.headers.is_empty() {
                    put_u32(out, o.headers.len() as u32);
                    for (k, v) in &o.headers {
                        put_bytes(out, k.as_bytes());
                        put_bytes(out, v.as_bytes());
                    }
                }
                if let Some(p) = &o.payload {
                    put_bytes(out, p);
                }
            }
        }
        Err(e) => {
            out.push(ERROR);
            put_bytes(out, e.0.as_bytes());
        }
    }
}

/// The messages of the batch at `[ptr, ptr+len)`.
pub fn batch<'a>(ptr: i32, len: i32) -> Result<(u32, Reader<'a>), Error> {
    let mut r = Reader::new(input_slice(ptr, len));
    let count = r.u32()?;
    Ok((count, r))
}

/// Runs `f` over the batch at `[ptr, ptr+len)` and returns where the results lie.
pub fn run(ptr: i32, len: i32, f: impl Fn(&Message<'_>) -> Result<Outputs, Error>) -> i64 {
    let out = OUTPUT.get();
    out.clear();
    match batch(ptr, len) {
        Ok((count, mut r)) => {
            put_u32(out, count);
            for _ in 0..count {
                let result = r.message().and_then(|m| f(&m));
                put_result(out, &result);
            }
        }
        Err(_) => put_u32(out, u32::MAX),
    }
    ((out.as_ptr() as i64) << 32) | out.len() as i64
}
