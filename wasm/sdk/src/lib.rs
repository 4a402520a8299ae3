//! The Rust guest SDK of Weir's WebAssembly batch ABI (`docs/wasm-abi.md`). `#![no_std]` with
//! `alloc`: write `fn(&Message) -> Result<Outputs>` and export it with [`export!`]; the macro
//! adds the ABI's exports (`weir_abi_version`, `weir_alloc`, `weir_init`) and the batch loop.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;

pub mod abi;
pub mod host;

/// One message of the batch, borrowed from the host's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The subject.
    pub subject: &'a str,
    /// The payload bytes.
    pub payload: &'a [u8],
    headers: &'a [u8],
    n_headers: u32,
}

impl<'a> Message<'a> {
    /// The headers in order (a name may repeat).
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let mut r = abi::Reader::new(self.headers);
        (0..self.n_headers).map_while(move |_| Some((r.str().ok()?, r.str().ok()?)))
    }

    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The payload as UTF-8 text, if it is.
    pub fn text(&self) -> Option<&'a str> {
        core::str::from_utf8(self.payload).ok()
    }
}

/// One message a function emits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// New payload; `None` keeps the input's bytes (no copy back to the host).
    pub payload: Option<Vec<u8>>,
    /// New subject, if any.
    pub subject: Option<String>,
    /// Headers to set (each replaces a header of the same name).
    pub headers: Vec<(String, String)>,
}

impl Output {
    /// The input message unchanged.
    pub fn unchanged() -> Output {
        Output::default()
    }

    /// A message with this payload (subject and headers stay the input's).
    pub fn payload(bytes: impl Into<Vec<u8>>) -> Output {
        Output {
            payload: Some(bytes.into()),
            ..Output::default()
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Output {
        self.subject = Some(subject.into());
        self
    }

    /// Sets a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Output {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a function does with one message: emit outputs (none = filtered).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outputs(pub Vec<Output>);

impl Outputs {
    /// Drop the message (counted as filtered).
    pub fn filtered() -> Outputs {
        Outputs(Vec::new())
    }

    /// One output.
    pub fn one(output: Output) -> Outputs {
        Outputs(alloc::vec![output])
    }

    /// The input, unchanged.
    pub fn pass() -> Outputs {
        Outputs::one(Output::unchanged())
    }
}

impl From<Output> for Outputs {
    fn from(o: Output) -> Outputs {
        Outputs::one(o)
    }
}

/// Why a message failed: it goes to the DLQ with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl<T: core::fmt::Display> From<T> for Error {
    fn from(e: T) -> Error {
        Error(alloc::format!("{e}"))
    }
}

/// A function's result for one message.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// A cell for the guest's globals: a WebAssembly instance runs one thread.
pub(crate) struct Global<T>(UnsafeCell<T>);

// SAFETY: wasm32-unknown-unknown guests are single-threaded; the host never calls in
// concurrently on one instance.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub(crate) const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }

    /// The value. Callers never hold two references at once (each ABI entry point takes it
    /// once).
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn get(&self) -> &mut T {
        // SAFETY: single-threaded, and see above.
        unsafe { &mut *self.0.get() }
    }
}

static CONFIG: Global<Option<String>> = Global::new(None);

/// The node's `config` as JSON text (`null` when the node gives none).
pub fn config() -> &'static str {
    CONFIG.get().as_deref().unwrap_or("null")
}

/// Exports batch functions under the ABI: `export! { name => path::to::fn, ... }`, each fn a
/// `fn(&Message) -> Result<Outputs>` (or anything convertible into `Outputs`). Also exports
/// `weir_abi_version`, `weir_alloc` and `weir_init`; use it once per module.
#[macro_export]
macro_rules! export {
    ($($name:ident => $f:path),+ $(,)?) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_abi_version() -> i32 {
            $crate::abi::VERSION
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_alloc(len: i32) -> i32 {
            $crate::abi::alloc(len)
        }
        #[unsafe(no_mangle)]
        pub extern "C" fn weir_init(ptr: i32, len: i32) -> i32 {
            $crate::abi::init(ptr, len)
        }
        $(
            const _: () = {
                #[unsafe(export_name = stringify!($name))]
                extern "C" fn __weir_batch(ptr: i32, len: i32) -> i64 {
                    $crate::abi::run(ptr, len, |m| $f(m).map(::core::convert::Into::into))
                }
            };
        )+
    };
}
