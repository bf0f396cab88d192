//! The guest sandbox. Every wasmtime decision lives here: one `Engine` per process, each guest
//! compiled and linked once (`InstancePre`), and a fresh, limited `Store` for every call so that
//! no state leaks between calls and a store that trapped is never reused.
//!
//! # Guarantees
//! - A call never runs longer than [`GuestLimits::timeout`] (plus one epoch tick): epoch
//!   interruption traps it.
//! - A guest's linear memory never grows past [`GuestLimits::max_memory_bytes`].
//! - A guest sees no filesystem, network, environment variables, arguments or stdio: it is linked
//!   against an empty WASI context (Rust's std still imports a few WASI interfaces, e.g. a random
//!   seed for `HashMap`, which must exist to instantiate).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{self, Desired, LogLevel, Manifest, Observed, ReconcilerPre, WIT_PACKAGE};
use crate::compile_cache::{CompileCache, CompileCacheConfig, CompileOrigin};
use crate::guest_log::{CallLog, LogBudget, MAX_GUEST_ERROR_BYTES, guest_text};
pub use crate::manifest::GuestManifest;
use crate::manifest::check_manifest;

/// How often the epoch advances; the granularity of guest deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-call limits of a guest.
#[derive(Clone, Copy, Debug)]
pub struct GuestLimits {
    /// Wall time one call may take.
    pub timeout: Duration,
    /// Largest linear memory a guest instance may have.
    pub max_memory_bytes: usize,
    /// Most children one reconcile may return.
    pub max_children: usize,
    /// Most bytes of JSON (children and status together) one reconcile may return.
    pub max_output_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_memory_bytes: 64 << 20,
            max_children: 1000,
            max_output_bytes: 16 << 20,
        }
    }
}

/// Why a guest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The guest file does not exist or cannot be read.
    #[error("cannot read guest file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error("{path} is not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm { path: PathBuf },
    /// The file is a core WebAssembly module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component: build guests for the wasm32-wasip2 \
         target (which emits components) or wrap the module with `wasm-tools component new`"
    )]
    CoreModule { path: PathBuf },
    /// The file is not a WebAssembly component that wasmtime can compile.
    #[error(
        "{path} is not a usable WebAssembly component (build guests with \
         `cargo build --target wasm32-wasip2 --release` or `cargo component build --release`)"
    )]
    Compile {
        path: PathBuf,
        #[source]
        source: wasmtime::Error,
    },
    /// The component's imports or exports do not match the WIT package this host implements.
    #[error("{path} is not compatible with this host, which implements {WIT_PACKAGE}")]
    Incompatible {
        path: PathBuf,
        #[source]
        source: wasmtime::Error,
    },
    /// The guest failed while describing itself.
    #[error("{path} failed in describe()")]
    Describe {
        path: PathBuf,
        #[source]
        source: GuestError,
    },
    /// The guest's self-description cannot be used.
    #[error("{path} describes itself unusably: {reason}")]
    Manifest { path: PathBuf, reason: String },
}

/// Why a call into a guest produced no desired state.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GuestError {
    /// The guest judged the parent's spec invalid; retrying before the parent changes is useless.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The guest reported a temporary failure; retry with backoff.
    #[error("guest reported a transient failure: {0}")]
    Transient(String),
    /// The call ran past its deadline and was interrupted.
    #[error("guest call exceeded its {0:?} deadline and was interrupted")]
    Timeout(Duration),
    /// The guest tried to grow its memory past the limit and was stopped.
    #[error("guest exceeded its {} MiB memory limit and was stopped", .0 >> 20)]
    OutOfMemory(usize),
    /// The guest returned more children or bytes than the limits allow.
    #[error("guest output exceeds the limits: {0}")]
    OutputTooLarge(String),
    /// The guest trapped: a panic, an out-of-bounds access, an unreachable instruction.
    #[error("guest trapped: {0}")]
    Trap(String),
}

/// The process-wide wasmtime engine, its epoch ticker, and the linker every guest is linked with.
pub struct GuestEngine {
    engine: Engine,
    linker: Linker<GuestState>,
    cache: Option<CompileCache>,
    log_budget: Arc<LogBudget>,
}

impl GuestEngine {
    /// Builds the engine and starts the epoch ticker thread (which stops when the engine drops).
    /// With `cache`, compiled guests are cached (see [`CompileCache`]); a folder that cannot be
    /// created is logged and compilation goes uncached.
    pub fn new(cache: Option<&CompileCacheConfig>) -> Result<Arc<Self>, wasmtime::Error> {
        let mut config = Config::new();
        config
            // Guests are components (WIT interfaces), never bare core modules.
            .wasm_component_model(true)
            // Deadlines: a ticker advances the epoch; a store traps when its deadline passes.
            // Cheaper than fuel metering and measures wall time, which is what callers wait on.
            .epoch_interruption(true);
        // For profiling guests: `perf` names JIT-compiled guest functions from /tmp/perf-<pid>.map.
        if std::env::var_os("RECONCILER_GUEST_PERFMAP").is_some_and(|v| v == "1") {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // WASI with an empty context: satisfies the imports std adds, grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        bindings::Reconciler::add_to_linker::<GuestState, HasSelf<GuestState>>(
            &mut linker,
            |state| state,
        )?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("guest-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        let cache = cache.and_then(|config| match CompileCache::open(config, &engine) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(dir = %config.dir.display(), %error, "cannot use the compiled-guest cache folder; compiling guests every time");
                None
            }
        });
        Ok(Arc::new(Self {
            engine,
            linker,
            cache,
            log_budget: Arc::default(),
        }))
    }

    /// Compiles (or loads from the compile cache), links and describes a guest.
    ///
    /// # Errors
    /// A [`LoadError`] saying what is wrong with the file and what to do about it.
    pub fn load(
        self: &Arc<Self>,
        file: &GuestFile,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        let compiled = self.compile(file)?;
        self.link(file, compiled, limits)
    }

    /// Compiles a guest file to machine code, or takes it from the compile cache.
    ///
    /// # Errors
    /// [`LoadError::Compile`] when the file is not a component wasmtime accepts.
    pub fn compile(&self, file: &GuestFile) -> Result<CompiledGuest, LoadError> {
        let compiled = match &self.cache {
            Some(cache) => cache.component(&self.engine, &file.bytes, &file.digest),
            None => Component::new(&self.engine, &file.bytes).map(|c| (c, CompileOrigin::Compiled)),
        };
        let (component, origin) = compiled.map_err(|source| LoadError::Compile {
            path: file.path.clone(),
            source,
        })?;
        Ok(CompiledGuest { component, origin })
    }

    /// The names a compiled guest imports and exports (e.g.
    /// `wasm-reconciler:reconciler/guest@0.1.0`), for telling users what a guest was built
    /// against.
    pub fn interfaces(&self, compiled: &CompiledGuest) -> GuestInterfaces {
        let component_type = compiled.component.component_type();
        GuestInterfaces {
            imports: component_type
                .imports(&self.engine)
                .map(|(name, _)| name.to_string())
                .collect(),
            exports: component_type
                .exports(&self.engine)
                .map(|(name, _)| name.to_string())
                .collect(),
        }
    }

    /// Links a compiled guest and asks it to describe itself.
    ///
    /// # Errors
    /// [`LoadError::Incompatible`], [`LoadError::Describe`] or [`LoadError::Manifest`].
    pub fn link(
        self: &Arc<Self>,
        file: &GuestFile,
        compiled: CompiledGuest,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        let path = file.path.as_path();
        let CompiledGuest { component, origin } = compiled;
        let incompatible = |source| LoadError::Incompatible {
            path: path.into(),
            source,
        };
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let pre = ReconcilerPre::new(instance_pre).map_err(incompatible)?;

        let mut guest = LoadedGuest {
            engine: Arc::clone(self),
            pre,
            limits,
            digest: file.digest.clone(),
            origin,
            manifest: GuestManifest {
                name: String::new(),
                version: String::new(),
                parent: kube::api::GroupVersionKind::gvk("", "", ""),
                children: Vec::new(),
            },
        };
        let manifest = guest.describe().map_err(|source| LoadError::Describe {
            path: path.into(),
            source,
        })?;
        guest.manifest = check_manifest(&manifest).map_err(|reason| LoadError::Manifest {
            path: path.into(),
            reason,
        })?;
        Ok(guest)
    }

    /// [`GuestFile::read`] then [`Self::load`].
    pub fn load_path(
        self: &Arc<Self>,
        path: &Path,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        self.load(&GuestFile::read(path)?, limits)
    }
}

/// A guest compiled to machine code, not yet linked.
pub struct CompiledGuest {
    component: Component,
    origin: CompileOrigin,
}

/// What a guest component imports and exports, by name.
#[derive(Clone, Debug, Default)]
pub struct GuestInterfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

/// A guest file's bytes and digest, read once.
pub struct GuestFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl GuestFile {
    /// Reads a guest file (following symlinks, as a mounted ConfigMap needs) and checks that it
    /// is a WebAssembly component.
    ///
    /// # Errors
    /// [`LoadError::Read`], [`LoadError::NotWasm`] or [`LoadError::CoreModule`].
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.into(),
            source,
        })?;
        // The preamble: magic bytes, a 16-bit version, then a 16-bit layer (0 = core module,
        // 1 = component).
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', _, _, 0, 0]) => {
                return Err(LoadError::CoreModule { path: path.into() });
            }
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm { path: path.into() }),
        }
        let digest = format!("sha256:{:x}", Sha256::digest(&bytes));
        Ok(Self {
            path: path.into(),
            bytes,
            digest,
        })
    }
}

/// A compiled, linked guest, ready to be called. Cheap to share; each call gets its own store.
pub struct LoadedGuest {
    engine: Arc<GuestEngine>,
    pre: ReconcilerPre<GuestState>,
    limits: GuestLimits,
    digest: String,
    origin: CompileOrigin,
    manifest: GuestManifest,
}

/// One instance of a guest in a store of its own, good for one call: a store is never entered
/// twice, so no state (or trap) of one reconcile reaches the next.
pub struct GuestInstance<'a> {
    guest: &'a LoadedGuest,
    store: Store<GuestState>,
    exports: bindings::Reconciler,
}

impl GuestInstance<'_> {
    /// Calls `reconcile` and checks the size of the answer. Blocking.
    pub fn reconcile(mut self, observed: &Observed) -> Result<Desired, GuestError> {
        let guest = self.guest;
        let answer = self
            .exports
            .wasm_reconciler_reconciler_guest()
            .call_reconcile(&mut self.store, observed)
            .map_err(|e| guest.call_failure(e, &self.store))?;
        let desired = answer.map_err(|e| match e {
            // Bounded here, once: the message reaches the status, an Event and the logs.
            bindings::ReconcileError::InvalidSpec(reason) => {
                GuestError::InvalidSpec(guest_text(&reason, MAX_GUEST_ERROR_BYTES))
            }
            bindings::ReconcileError::Transient(reason) => {
                GuestError::Transient(guest_text(&reason, MAX_GUEST_ERROR_BYTES))
            }
        })?;
        guest.check_output(&desired)?;
        Ok(desired)
    }
}

impl LoadedGuest {
    /// What the guest reconciles.
    pub fn manifest(&self) -> &GuestManifest {
        &self.manifest
    }

    /// SHA-256 of the guest file, identifying exactly which logic runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Whether the machine code was compiled now or came from the compile cache.
    pub fn origin(&self) -> CompileOrigin {
        self.origin
    }

    /// Calls `reconcile` in a fresh store. Blocking: call it from a blocking thread.
    pub fn reconcile(&self, observed: &Observed, parent_key: &str) -> Result<Desired, GuestError> {
        self.instantiate(parent_key)?.reconcile(observed)
    }

    fn check_output(&self, desired: &Desired) -> Result<(), GuestError> {
        let count = desired.children.len();
        if count > self.limits.max_children {
            return Err(GuestError::OutputTooLarge(format!(
                "{count} children, at most {} allowed",
                self.limits.max_children
            )));
        }
        let bytes = desired.children.iter().map(String::len).sum::<usize>()
            + desired.status.as_ref().map_or(0, String::len);
        if bytes > self.limits.max_output_bytes {
            return Err(GuestError::OutputTooLarge(format!(
                "{bytes} bytes of JSON, at most {} allowed",
                self.limits.max_output_bytes
            )));
        }
        Ok(())
    }

    fn describe(&self) -> Result<Manifest, GuestError> {
        let GuestInstance {
            guest,
            mut store,
            exports,
        } = self.instantiate("describe")?;
        exports
            .wasm_reconciler_reconciler_guest()
            .call_describe(&mut store)
            .map_err(|e| guest.call_failure(e, &store))
    }

    /// A fresh store and instance for one call, limits armed; `parent_key` labels its log lines.
    /// [`Self::reconcile`] is this and [`GuestInstance::reconcile`]; apart they let a benchmark
    /// time the two halves.
    pub fn instantiate(&self, parent_key: &str) -> Result<GuestInstance<'_>, GuestError> {
        let state = GuestState {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits: CallLimits {
                max_memory_bytes: self.limits.max_memory_bytes,
                memory_denied: false,
            },
            log: CallLog::new(
                self.manifest.name.clone(),
                parent_key.to_string(),
                Arc::clone(&self.engine.log_budget),
            ),
        };
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks = self
            .limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        match self.pre.instantiate(&mut store) {
            Ok(exports) => Ok(GuestInstance {
                guest: self,
                store,
                exports,
            }),
            Err(error) => Err(self.call_failure(error, &store)),
        }
    }

    /// Classifies a failed call. The store is dropped afterwards: one that trapped is never
    /// entered again.
    fn call_failure(&self, error: wasmtime::Error, store: &Store<GuestState>) -> GuestError {
        if store.data().limits.memory_denied {
            return GuestError::OutOfMemory(self.limits.max_memory_bytes);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => GuestError::Timeout(self.limits.timeout),
            _ => GuestError::Trap(format!("{error:#}")),
        }
    }
}

/// Most table elements (function references) a guest may have; far above what compilers emit.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The per-call resource limiter: caps each linear memory and table, and remembers whether a
/// memory growth was refused so the failure can be reported as what it is.
struct CallLimits {
    max_memory_bytes: usize,
    memory_denied: bool,
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_denied = true;
            // Trapping (rather than letting memory.grow return -1) stops the guest at once,
            // instead of leaving it to an allocator's abort path.
            return Err(wasmtime::Error::msg(format!(
                "memory limit: growing to {desired} bytes exceeds {} bytes",
                self.max_memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Per-call state of a store.
struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: CallLimits,
    log: CallLog,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl bindings::wasm_reconciler::reconciler::types::Host for GuestState {}

impl bindings::wasm_reconciler::reconciler::log::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.log(level, message);
    }
}
