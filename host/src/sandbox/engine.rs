//! The process-wide wasmtime engine: its configuration (each setting says why), the linker every
//! guest is linked with, the epoch ticker that enforces deadlines, and compiling (or taking from
//! the compile cache). Linking and describing a compiled guest is `load.rs`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::bindings;
use super::compile_cache::{CompileCache, CompileCacheConfig, CompileOrigin};
use super::imports::GuestState;
use super::log::LogBudget;
use super::{EngineError, GuestFile, LoadError};

/// How often the epoch advances; the granularity of guest deadlines.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The process-wide wasmtime engine, its epoch ticker, and the linker every guest is linked with.
pub struct GuestEngine {
    pub(super) engine: Engine,
    pub(super) linker: Linker<GuestState>,
    cache: Option<CompileCache>,
    pub(super) log_budget: Arc<LogBudget>,
}

/// A guest compiled to machine code, not yet linked.
pub struct CompiledGuest {
    pub(super) component: Component,
    pub(super) origin: CompileOrigin,
}

/// What a guest component imports and exports, by name.
#[derive(Clone, Debug, Default)]
pub struct GuestInterfaces {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl GuestEngine {
    /// Builds the engine and starts the epoch ticker thread (which stops when the engine drops).
    /// With `cache`, compiled guests are cached (see [`CompileCache`]); a folder that cannot be
    /// used is logged and compilation goes uncached.
    pub fn new(cache: Option<&CompileCacheConfig>) -> Result<Arc<Self>, EngineError> {
        Self::with_perf_map(cache, false)
    }

    /// [`Self::new`]; with `perf_map`, wasmtime writes `/tmp/perf-<pid>.map` so that `perf` names
    /// JIT-compiled guest functions (`--guest-perf-map`, for profiling guests).
    pub fn with_perf_map(
        cache: Option<&CompileCacheConfig>,
        perf_map: bool,
    ) -> Result<Arc<Self>, EngineError> {
        Self::build(cache, perf_map).map_err(EngineError)
    }

    fn build(
        cache: Option<&CompileCacheConfig>,
        perf_map: bool,
    ) -> Result<Arc<Self>, wasmtime::Error> {
        let mut config = Config::new();
        config
            // Guests are components (WIT interfaces), never bare core modules.
            .wasm_component_model(true)
            // Deadlines: a ticker advances the epoch; a store traps when its deadline passes.
            // Cheaper than fuel metering and measures wall time, which is what callers wait on.
            .epoch_interruption(true);
        if perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        // WASI with an empty context: satisfies the imports std adds, grants nothing.
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        // Every contract version's imports, side by side: each guest links to the one it was
        // built against.
        bindings::add_to_linker(&mut linker)?;

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
}
