//! Test guest: one batch function per way a guest can fail. Each passes every message through
//! unchanged, except a message whose payload contains `poison`, on which it fails its way.
//! `noop` passes everything (the overhead benchmark); `fail` returns an ABI error.

use std::hint::black_box;
use weir_guest::{Error, Message, Outputs, Result};

weir_guest::export! {
    noop => noop,
    unreachable => unreachable,
    oob => oob,
    spin => spin,
    grow => grow,
    recurse => recurse,
    fail => fail,
    fan_out => fan_out,
}

fn poisoned(m: &Message<'_>) -> bool {
    m.payload.windows(6).any(|w| w == b"poison")
}

fn noop(_: &Message<'_>) -> Result<Outputs> {
    Ok(Outputs::pass())
}

fn unreachable(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        core::arch::wasm32::unreachable();
    }
    Ok(Outputs::pass())
}

fn oob(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        // An address far past the end of linear memory.
        let p = black_box(0xFFFF_FFF0usize) as *const u64;
        // SAFETY: it is not; that is the point (the host must trap, not crash).
        let v = unsafe { core::ptr::read_volatile(p) };
        black_box(v);
    }
    Ok(Outputs::pass())
}

fn spin(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        let mut x = 0u64;
        loop {
            x = black_box(x.wrapping_add(1));
        }
    }
    Ok(Outputs::pass())
}

fn grow(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            black_box(&hoard);
        }
    }
    Ok(Outputs::pass())
}

/// Where the recursion would stop: never (opaque to the optimiser, so the call stays a call).
static LIMIT: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(u32::MAX);

/// Recursion that keeps nothing in linear memory (no shadow-stack frame), so it exhausts
/// wasmtime's native WebAssembly stack (`call stack exhausted`), not the guest's shadow stack
/// (which would be an out-of-bounds access instead). The rotate keeps it from becoming a loop.
#[inline(never)]
fn depth(n: u32) -> u32 {
    if n == LIMIT.load(core::sync::atomic::Ordering::Relaxed) {
        return 0;
    }
    depth(n + 1).rotate_left(n & 31) ^ n
}

fn recurse(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        black_box(depth(0));
    }
    Ok(Outputs::pass())
}

fn fail(m: &Message<'_>) -> Result<Outputs> {
    if poisoned(m) {
        return Err(Error("refused: the payload is poisoned".into()));
    }
    Ok(Outputs::pass())
}

/// Two outputs per message: the input and a copy with subject `copies.<subject>` and header
/// `X-Copy: 1`.
fn fan_out(m: &Message<'_>) -> Result<Outputs> {
    Ok(Outputs(vec![
        weir_guest::Output::unchanged(),
        weir_guest::Output::payload(m.payload.to_vec())
            .with_subject(format!("copies.{}", m.subject))
            .with_header("X-Copy", "1"),
    ]))
}

/// Malformed results: for a batch holding a poisoned message, a results pointer far outside
/// memory; else the batch passes.
#[unsafe(no_mangle)]
pub extern "C" fn malformed(ptr: i32, len: i32) -> i64 {
    let poisoned = weir_guest::abi::batch(ptr, len).is_ok_and(|(n, mut r)| {
        (0..n).any(|_| r.message().is_ok_and(|m| poisoned(&m)))
    });
    if poisoned {
        return (0x7FFF_0000i64 << 32) | 64;
    }
    weir_guest::abi::run(ptr, len, noop)
}
