//! The wasmtime side: one engine per process (pooling allocator, epoch interruption), modules
//! compiled once per content hash, and a [`Runner`] per `wasm` node that calls a function on a
//! batch inside a store with the node's limits (deadline, memory cap, fuel), reusing warm
//! instances and throwing away any that failed.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use wasmtime::{
    Caller, Config, Engine, Extern, InstanceAllocationStrategy, InstancePre, Linker, Memory,
    Module, PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap, TypedFunc,
};
use weir_pipelines::wasm_abi::{
    ABI_VERSION, EXPORT_ALLOC, EXPORT_INIT, EXPORT_MEMORY, EXPORT_VERSION, HOST_MODULE,
};

/// How often the epoch advances: the granularity of batch deadlines.
const TICK: Duration = Duration::from_millis(5);
/// WebAssembly stack per call.
const MAX_STACK: usize = 512 << 10;
/// Log lines a batch may write.
const MAX_LOG_LINES: u32 = 100;
/// Counters a node may keep, and the longest name.
const MAX_COUNTERS: usize = 64;
const MAX_COUNTER_NAME: usize = 64;
/// Instances and memories the pool holds across all modules of the process.
const POOL_SIZE: u32 = 512;

/// A node's limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limits {
    pub(crate) timeout: Duration,
    pub(crate) max_memory: u64,
    pub(crate) fuel: Option<u64>,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallError {
    /// The guest failed on this batch (trap, deadline, fuel, malformed result): retry the
    /// messages one by one to find the one that fails.
    Guest(String),
    /// No instance could be made (pool exhausted, init failed): nothing to do with the
    /// messages.
    Instance(String),
}

/// A node's named counters (`weir.counter`).
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<String, i64>>);

impl Counters {
    /// The counters' values now.
    pub fn snapshot(&self) -> BTreeMap<String, i64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn add(&self, name: &str, delta: i64) {
        let Ok(mut m) = self.0.lock() else { return };
        if let Some(v) = m.get_mut(name) {
            *v = v.saturating_add(delta);
        } else if m.len() < MAX_COUNTERS && name.len() <= MAX_COUNTER_NAME {
            m.insert(name.to_string(), delta);
        }
    }
}

/// What a store carries: its limits and what the host functions write to.
struct HostState {
    limits: StoreLimits,
    logs_left: u32,
    counters: Arc<Counters>,
    node: Arc<str>,
}

fn engine(fuel: bool) -> Result<&'static Engine, String> {
    static PLAIN: OnceLock<Result<Engine, String>> = OnceLock::new();
    static FUEL: OnceLock<Result<Engine, String>> = OnceLock::new();
    let cell = if fuel { &FUEL } else { &PLAIN };
    cell.get_or_init(|| {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(POOL_SIZE)
            .total_memories(POOL_SIZE)
            .total_tables(POOL_SIZE)
            .max_memory_size(weir_pipelines::plan::WASM_MAX_MEMORY as usize);
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .consume_fuel(fuel)
            .max_wasm_stack(MAX_STACK)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| format!("wasmtime: {e}"))?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("weir-wasm-epoch".into())
            .spawn(move || {
                while let Some(e) = ticker.upgrade() {
                    drop(e);
                    std::thread::sleep(TICK);
                    if let Some(e) = ticker.upgrade() {
                        e.increment_epoch();
                    }
                }
            })
            .map_err(|e| format!("epoch thread: {e}"))?;
        Ok(engine)
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A module compiled and linked, ready to instantiate.
pub(crate) struct Compiled {
    pre: InstancePre<HostState>,
    fuel: bool,
}

/// Compiles `bytes` (or takes the compiled module of the same content from the cache).
pub(crate) fn compile(hash: &str, bytes: &[u8], fuel: bool) -> Result<Arc<Compiled>, String> {
    type Cache = Mutex<HashMap<(String, bool), Weak<Compiled>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Cache::default);
    let key = (hash.to_string(), fuel);
    if let Some(c) = cache.lock().ok().and_then(|m| m.get(&key)?.upgrade()) {
        return Ok(c);
    }
    let engine = engine(fuel)?;
    let module =
        Module::new(engine, bytes).map_err(|e| format!("the module does not compile: {e}"))?;
    let pre = linker(engine)?
        .instantiate_pre(&module)
        .map_err(|e| format!("the module does not link: {e}"))?;
    let compiled = Arc::new(Compiled { pre, fuel });
    if let Ok(mut m) = cache.lock() {
        m.retain(|_, w| w.strong_count() > 0);
        m.insert(key, Arc::downgrade(&compiled));
    }
    Ok(compiled)
}

/// The guest's bytes at `[ptr, ptr+len)`, if they lie inside its memory.
fn guest_bytes<'a>(
    caller: &'a mut Caller<'_, HostState>,
    ptr: i32,
    len: i32,
) -> Option<(&'a [u8], &'a mut HostState)> {
    let memory = caller
        .get_export(EXPORT_MEMORY)
        .and_then(Extern::into_memory)?;
    let (data, state) = memory.data_and_store_mut(caller);
    let data: &'a [u8] = data;
    let start = ptr as u32 as usize;
    let bytes = data.get(start..start.checked_add(len as u32 as usize)?)?;
    Some((bytes, state))
}

fn linker(engine: &Engine) -> Result<Linker<HostState>, String> {
    let mut linker = Linker::new(engine);
    linker
        .func_wrap(
            HOST_MODULE,
            "log",
            |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
                let Some((bytes, state)) = guest_bytes(&mut caller, ptr, len.min(1024)) else {
                    return;
                };
                if state.logs_left == 0 {
                    return;
                }
                state.logs_left -= 1;
                let text = String::from_utf8_lossy(bytes);
                let node = &*state.node;
                match level {
                    0 => tracing::error!(target: "weir::wasm", node, "{text}"),
                    1 => tracing::warn!(target: "weir::wasm", node, "{text}"),
                    2 => tracing::info!(target: "weir::wasm", node, "{text}"),
                    3 => tracing::debug!(target: "weir::wasm", node, "{text}"),
                    _ => tracing::trace!(target: "weir::wasm", node, "{text}"),
                }
            },
        )
        .and_then(|l| {
            l.func_wrap(
                HOST_MODULE,
                "counter",
                |mut caller: Caller<'_, HostState>, ptr: i32, len: i32, delta: i64| {
                    if let Some((bytes, state)) = guest_bytes(&mut caller, ptr, len)
                        && let Ok(name) = std::str::from_utf8(bytes)
                    {
                        state.counters.add(name, delta);
                    }
                },
            )
        })
        .map_err(|e| format!("linking the host functions: {e}"))?;
    Ok(linker)
}

/// A warm instance.
struct Live {
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    call: TypedFunc<(i32, i32), i64>,
}

/// Calls one function of one module with one node's limits.
pub(crate) struct Runner {
    compiled: Arc<Compiled>,
    function: String,
    config: Vec<u8>,
    limits: Limits,
    counters: Arc<Counters>,
    node: Arc<str>,
    idle: Mutex<Vec<Live>>,
}

/// The text of a failed call.
fn describe(err: &wasmtime::Error, limits: &Limits) -> String {
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => format!(
            "wasm trap: interrupted: the batch ran past its deadline of {:?}",
            limits.timeout
        ),
        Some(Trap::OutOfFuel) => format!(
            "wasm trap: out of fuel: the batch used more than {} units",
            limits.fuel.unwrap_or_default()
        ),
        Some(trap) => trap.to_string(),
        None => {
            let root = err.root_cause().to_string();
            if root.starts_with("forcing trap when growing memory") {
                format!(
                    "wasm trap: memory past the cap of {} bytes ({root})",
                    limits.max_memory
                )
            } else {
                format!("wasm error: {root}")
            }
        }
    }
}

impl Runner {
    pub(crate) fn new(
        compiled: Arc<Compiled>,
        function: &str,
        config: Vec<u8>,
        limits: Limits,
        node: Arc<str>,
    ) -> Runner {
        Runner {
            compiled,
            function: function.to_string(),
            config,
            limits,
            counters: Arc::default(),
            node,
            idle: Mutex::default(),
        }
    }

    /// The node's counters.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Checks that the module instantiates (ABI version, exports, `weir_init`), at compile time.
    pub(crate) fn warm_up(&self) -> Result<(), String> {
        let live = self.instantiate().map_err(|e| match e {
            CallError::Guest(e) | CallError::Instance(e) => e,
        })?;
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(live);
        }
        Ok(())
    }

    fn arm(&self, store: &mut Store<HostState>) -> Result<(), String> {
        store.set_epoch_deadline((self.limits.timeout.as_micros() / TICK.as_micros()) as u64 + 1);
        store.data_mut().logs_left = MAX_LOG_LINES;
        if let Some(f) = self.limits.fuel
            && self.compiled.fuel
        {
            store.set_fuel(f).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn instantiate(&self) -> Result<Live, CallError> {
        let engine = self.compiled.pre.module().engine();
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory as usize)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            logs_left: MAX_LOG_LINES,
            counters: self.counters.clone(),
            node: self.node.clone(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        let inst_err = |e: String| CallError::Instance(e);
        self.arm(&mut store).map_err(inst_err)?;
        let instance = self.compiled.pre.instantiate(&mut store).map_err(|e| {
            CallError::Instance(format!(
                "instantiating the module: {}",
                describe(&e, &self.limits)
            ))
        })?;
        let version = instance
            .get_typed_func::<(), i32>(&mut store, EXPORT_VERSION)
            .and_then(|f| f.call(&mut store, ()))
            .map_err(|e| CallError::Instance(format!("{EXPORT_VERSION}: {e}")))?;
        if version != ABI_VERSION {
            return Err(CallError::Instance(format!(
                "the module speaks ABI version {version}; this worker speaks {ABI_VERSION}"
            )));
        }
        let memory = instance
            .get_memory(&mut store, EXPORT_MEMORY)
            .ok_or_else(|| CallError::Instance("the module exports no memory".into()))?;
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, EXPORT_ALLOC)
            .map_err(|e| CallError::Instance(format!("{EXPORT_ALLOC}: {e}")))?;
        let call = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, &self.function)
            .map_err(|e| CallError::Instance(format!("function `{}`: {e}", self.function)))?;
        let mut live = Live {
            store,
            memory,
            alloc,
            call,
        };
        if let Ok(init) = instance.get_typed_func::<(i32, i32), i32>(&mut live.store, EXPORT_INIT) {
            let ptr = self
                .write(&mut live, self.config.len(), |buf| {
                    buf.copy_from_slice(&self.config)
                })
                .map_err(CallError::Instance)?;
            let rc = init
                .call(&mut live.store, (ptr, self.config.len() as i32))
                .map_err(|e| {
                    CallError::Instance(format!("{EXPORT_INIT}: {}", describe(&e, &self.limits)))
                })?;
            if rc != 0 {
                return Err(CallError::Instance(format!(
                    "{EXPORT_INIT} refused the node's config (it returned {rc})"
                )));
            }
        }
        Ok(live)
    }

    /// Asks the guest for `len` bytes and fills them; returns the guest pointer.
    fn write(
        &self,
        live: &mut Live,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<i32, String> {
        let len32 = i32::try_from(len).map_err(|_| "the batch exceeds 2 GiB".to_string())?;
        let ptr = live
            .alloc
            .call(&mut live.store, len32)
            .map_err(|e| describe(&e, &self.limits))?;
        let start = ptr as u32 as usize;
        let data = live.memory.data_mut(&mut live.store);
        let Some(buf) = data.get_mut(start..start + len) else {
            return Err(format!(
                "malformed result: {EXPORT_ALLOC}({len}) returned {ptr:#x}, outside the module's memory"
            ));
        };
        fill(buf);
        Ok(ptr)
    }

    /// Calls the function on a batch of `len` bytes written by `fill`, and parses its results
    /// with `parse` straight from guest memory.
    pub(crate) fn call<T>(
        &self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let idle = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut live = match idle {
            Some(l) => l,
            None => self.instantiate()?,
        };
        self.arm(&mut live.store).map_err(CallError::Instance)?;
        let result = self.call_on(&mut live, len, fill, parse);
        if result.is_ok()
            && let Ok(mut idle) = self.idle.lock()
        {
            idle.push(live);
        }
        result.map_err(CallError::Guest)
    }

    fn call_on<T>(
        &self,
        live: &mut Live,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
        parse: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Result<T, String> {
        let ptr = self.write(live, len, fill)?;
        let packed = live
            .call
            .call(&mut live.store, (ptr, len as i32))
            .map_err(|e| describe(&e, &self.limits))?;
        let (out_ptr, out_len) = ((packed >> 32) as u32 as usize, packed as u32 as usize);
        let data = live.memory.data(&live.store);
        let Some(results) = data.get(out_ptr..out_ptr + out_len) else {
            return Err(format!(
                "malformed result: results at {out_ptr:#x}+{out_len} lie outside the module's memory ({} bytes)",
                data.len()
            ));
        };
        parse(results).map_err(|e| format!("malformed result: {e}"))
    }
}
