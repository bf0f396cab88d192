//! Why a guest could not be loaded ([`LoadError`]) and why a call produced no decision
//! ([`GuestError`]): each variant says what is wrong and, for a file, what to do about it.

use std::path::PathBuf;
use std::time::Duration;

use super::bindings::packages;

/// The WebAssembly engine could not be built (a wasmtime configuration this platform refuses, or
/// no thread for the epoch ticker).
#[derive(Debug, thiserror::Error)]
#[error("creating the WebAssembly engine")]
pub struct EngineError(#[source] pub(super) wasmtime::Error);

/// Why a guest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The guest file does not exist, cannot be read, is not a regular file (a FIFO, a device)
    /// or is larger than `--guest-max-file-mib`.
    #[error("cannot read guest file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: crate::regular_file::FileError,
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
    /// The component's imports or exports do not match any version of the WIT package this host
    /// implements.
    #[error(
        "{path} is not compatible with this host, which implements {}",
        packages()
    )]
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
    /// The guest failed while checking its configuration.
    #[error("{path} failed in configure()")]
    Configure {
        path: PathBuf,
        #[source]
        source: GuestError,
    },
    /// The guest refused its configuration; `reason` is the guest's own message.
    #[error("{path} refused its configuration: {reason}")]
    Config { path: PathBuf, reason: String },
    /// The guest's self-description cannot be used.
    #[error("{path} describes itself unusably: {reason}")]
    Manifest { path: PathBuf, reason: String },
}

/// Why a call into a guest produced no decision.
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
