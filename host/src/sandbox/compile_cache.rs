//! An on-disk cache of compiled guests, keyed by the guest file's digest and by the engine's
//! compatibility hash, so a restart or a swap back to a known guest skips compilation
//! (tens of milliseconds for a Rust guest, seconds for a JavaScript or Python one).
//!
//! # Guarantees
//! - An entry is never trusted blindly: loading precompiled code is `unsafe` in wasmtime (it is
//!   machine code), so every entry carries the SHA-256 of its bytes in a sidecar file and is
//!   verified before use. An entry that does not match, or that wasmtime refuses (another wasmtime
//!   version or configuration), is recompiled and rewritten.
//! - Entries are written to a temporary file and renamed into place: a crash never leaves a
//!   half-written entry under a real name, and temporary files a crashed process left behind are
//!   removed when the cache is opened.
//! - The folder stays under a byte budget (`--compile-cache-max-mib`): after each write the least
//!   recently used entries (by modification time, refreshed on every hit) are removed until the
//!   rest fit. A guest whose code alone exceeds the budget is not cached. Without this, every
//!   new guest digest of a rollout history added an entry (0.9 MB for the default guest, 5 MB for
//!   a JavaScript one) until the pod's emptyDir filled and the kubelet evicted the pod.
//! - Entry names are stable across Rust and host releases: the engine's compatibility hash is
//!   folded into SHA-256, not `DefaultHasher` (whose output may change with any Rust release).
//!
//! # Assumptions
//! The cache folder is writable only by the host: whoever can write both an entry and its
//! checksum can make the host run their machine code. The host creates it with mode 0700, and
//! refuses (runs without a cache) a folder that another user owns or that group or others may
//! write: a planted entry would run under the digest of the guest it claims to be.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a loaded component's machine code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileOrigin {
    /// Compiled now; no cache configured or the cache could not be written.
    Compiled,
    /// Compiled now and stored in the cache.
    CompiledAndCached,
    /// Loaded from a verified cache entry.
    Cache,
    /// A cache entry existed but was stale or did not verify; compiled again and replaced.
    Rebuilt,
}

/// The default byte budget: half of the 256 MiB emptyDir the shipped Deployment gives the cache,
/// room for over a hundred Rust guests or twenty JavaScript ones.
pub const DEFAULT_MAX_BYTES: u64 = 128 << 20;

/// Where compiled guests are cached, and how much they may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileCacheConfig {
    pub dir: PathBuf,
    /// Most bytes of entries (code and checksums) kept.
    pub max_bytes: u64,
}

impl CompileCacheConfig {
    /// A cache in `dir` with the default budget.
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// The cache folder, its budget and this engine's compatibility key.
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating with mode 0700 if needed) a cache folder for `engine`, and removes the
    /// temporary files of writers that are gone.
    pub fn open(config: &CompileCacheConfig, engine: &Engine) -> std::io::Result<Self> {
        let dir = &config.dir;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        check_private(dir)?;
        let mut hasher = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:x}", hasher.0.finalize());
        let cache = Self {
            dir: dir.clone(),
            max_bytes: config.max_bytes,
            engine_key: engine_key[..16].to_string(),
        };
        cache.remove_leftover_temporary_files();
        Ok(cache)
    }

    fn entry_path(&self, digest: &str) -> PathBuf {
        let digest = digest.trim_start_matches("sha256:");
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The component for `wasm` (whose digest is `digest`), from the cache when a verified entry
    /// exists, else compiled (and cached).
    ///
    /// # Errors
    /// Only compilation errors; cache read and write failures are logged and skipped.
    pub fn component(
        &self,
        engine: &Engine,
        wasm: &[u8],
        digest: &str,
    ) -> Result<(Component, CompileOrigin), wasmtime::Error> {
        let entry = self.entry_path(digest);
        let stale = match self.read_verified(&entry) {
            Ok(Some(code)) => {
                // SAFETY: the bytes are what this host wrote (checksum verified above), and
                // wasmtime checks that they were compiled by a compatible engine.
                match unsafe { Component::deserialize(engine, &code) } {
                    Ok(component) => {
                        touch(&entry);
                        return Ok((component, CompileOrigin::Cache));
                    }
                    Err(error) => {
                        tracing::warn!(entry = %entry.display(), error = %format!("{error:#}"), "compiled-guest cache entry refused by wasmtime; recompiling");
                        true
                    }
                }
            }
            Ok(None) => false,
            Err(reason) => {
                tracing::warn!(entry = %entry.display(), %reason, "compiled-guest cache entry does not verify; recompiling");
                true
            }
        };
        let code = engine.precompile_component(wasm)?;
        // SAFETY: `code` was produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &code)? };
        let origin = match self.write(&entry, &code) {
            Ok(()) if stale => CompileOrigin::Rebuilt,
            Ok(()) => CompileOrigin::CompiledAndCached,
            Err(error) => {
                tracing::warn!(dir = %self.dir.display(), %error, "could not write the compiled-guest cache; continuing without it");
                CompileOrigin::Compiled
            }
        };
        Ok((component, origin))
    }

    /// The entry's bytes if it exists and matches its checksum; `Err` with a reason when it exists
    /// but cannot be trusted.
    fn read_verified(&self, entry: &Path) -> Result<Option<Vec<u8>>, String> {
        let code = match fs::read(entry) {
            Ok(code) => code,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(format!("unreadable: {error}")),
        };
        let expected = fs::read_to_string(checksum_path(entry))
            .map_err(|e| format!("no readable checksum: {e}"))?;
        let actual = format!("{:x}", Sha256::digest(&code));
        if expected.trim() != actual {
            return Err("checksum mismatch".into());
        }
        Ok(Some(code))
    }

    fn write(&self, entry: &Path, code: &[u8]) -> std::io::Result<()> {
        let checksum = format!("{:x}\n", Sha256::digest(code));
        if (code.len() + checksum.len()) as u64 > self.max_bytes {
            return Err(std::io::Error::other(format!(
                "the compiled guest ({} bytes) is larger than the cache's budget ({} bytes, \
                 --compile-cache-max-mib)",
                code.len(),
                self.max_bytes
            )));
        }
        // The checksum first: an entry without a valid checksum is never used, so a crash
        // between the two renames only costs a recompile.
        write_atomically(&checksum_path(entry), checksum.as_bytes())?;
        write_atomically(entry, code)?;
        self.evict_beyond_budget(entry);
        Ok(())
    }

    /// Removes the least recently used entries (never `keep`) until the rest fit the budget.
    fn evict_beyond_budget(&self, keep: &Path) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = listing
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
            .filter_map(|path| {
                let meta = fs::metadata(&path).ok()?;
                let checksum = fs::metadata(checksum_path(&path)).map_or(0, |m| m.len());
                Some((meta.modified().ok()?, meta.len() + checksum, path))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, bytes, _)| bytes).sum();
        entries.sort();
        for (_, bytes, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            // The entry first: a checksum without its entry is harmless.
            if fs::remove_file(&path).is_ok() {
                let _ = fs::remove_file(checksum_path(&path));
                total -= bytes;
                tracing::info!(entry = %path.display(), bytes, "removed the least recently used compiled guest (cache over its budget)");
            }
        }
    }

    /// Removes `*.tmp<pid>` files whose writing process no longer runs (a crash between create
    /// and rename); a live writer's file is left alone.
    fn remove_leftover_temporary_files(&self) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        for path in listing.filter_map(Result::ok).map(|e| e.path()) {
            let Some(pid) = path
                .extension()
                .and_then(|ext| ext.to_str())
                .and_then(|ext| ext.strip_prefix("tmp"))
            else {
                continue;
            };
            let writer_alive = pid
                .parse::<u32>()
                .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !writer_alive && fs::remove_file(&path).is_ok() {
                tracing::info!(file = %path.display(), "removed a temporary file left by an earlier run");
            }
        }
    }
}

/// The folder belongs to this process's user and only that user may write it.
fn check_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(std::io::Error::other(format!(
            "{} is owned by uid {}, not this process's uid {me}: refusing to load machine code \
             from it; point --compile-cache-dir at a folder of this user's",
            dir.display(),
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} may be written by group or others (mode {:o}): refusing to load machine code \
             from it; make it 0700, or point --compile-cache-dir at a folder that does not exist \
             yet (the host creates it private)",
            dir.display(),
            meta.mode() & 0o777
        )));
    }
    Ok(())
}

/// Marks an entry as just used (its modification time orders eviction). Best effort: an entry
/// whose time cannot be set is only evicted earlier than it should be.
fn touch(entry: &Path) {
    if let Ok(file) = fs::File::options().append(true).open(entry) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// Feeds `Hash` input into SHA-256, so a key derived from a `Hash` value is the same in every
/// build (`DefaultHasher` promises no such thing).
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Not used for the key (which takes the whole digest); the first 8 bytes of it so far.
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
    }
}

fn checksum_path(entry: &Path) -> PathBuf {
    entry.with_extension("cwasm.sha256")
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = fs::File::create(&tmp)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(component (core module (func (export "f"))))"#;

    fn setup() -> (tempfile::TempDir, Engine, CompileCache, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let config = CompileCacheConfig::new(dir.path().join("cache"));
        let cache = CompileCache::open(&config, &engine).unwrap();
        (dir, engine, cache, wat::parse_str(WAT).unwrap())
    }

    /// A component whose code differs by `n` (so each has its own digest and entry).
    fn component_wat(n: usize) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(component (core module (func (export "f") (result i32) i32.const {n})))"#
        ))
        .unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cwasm"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_cache_keeps_to_its_budget_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let probe = engine.precompile_component(&component_wat(0)).unwrap();
        // Room for three entries (code + checksum), not four.
        let per_entry = probe.len() as u64 + 65;
        let config = CompileCacheConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: per_entry * 3 + per_entry / 2,
        };
        let cache = CompileCache::open(&config, &engine).unwrap();
        for n in 1..=3 {
            cache
                .component(&engine, &component_wat(n), &format!("sha256:{n:02}"))
                .unwrap();
            // Modification times order eviction; make them distinct on coarse clocks.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // A hit makes 1 the most recently used, so 2 is the one to go.
        assert_eq!(
            cache
                .component(&engine, &component_wat(1), "sha256:01")
                .unwrap()
                .1,
            CompileOrigin::Cache
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache
            .component(&engine, &component_wat(4), "sha256:04")
            .unwrap();
        let kept = entries(dir.path());
        assert_eq!(kept.len(), 3, "{kept:?}");
        assert!(!kept.iter().any(|n| n.starts_with("02-")), "{kept:?}");
        assert!(
            !dir.path()
                .join(format!("02-{}.cwasm.sha256", cache.engine_key))
                .exists()
        );
        let total: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= config.max_bytes, "{total} > {}", config.max_bytes);
    }

    #[test]
    fn a_guest_larger_than_the_budget_is_compiled_but_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let config = CompileCacheConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 64,
        };
        let cache = CompileCache::open(&config, &engine).unwrap();
        let wasm = component_wat(1);
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:01").unwrap().1,
            CompileOrigin::Compiled
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn temporary_files_of_gone_writers_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        // pid_max is at most 2^22: this writer cannot be running.
        let stale = dir.path().join("aa-0123.tmp99999999");
        let live = dir
            .path()
            .join(format!("bb-0123.tmp{}", std::process::id()));
        fs::write(&stale, b"half").unwrap();
        fs::write(&live, b"being written").unwrap();
        CompileCache::open(&CompileCacheConfig::new(dir.path().to_path_buf()), &engine).unwrap();
        assert!(!stale.exists());
        assert!(live.exists(), "a running writer's file is left alone");
    }

    #[test]
    fn entry_names_are_sha256_of_the_hashed_bytes() {
        // `str`'s `Hash` writes its bytes and a 0xff terminator; SHA-256 of exactly those bytes
        // is what a key must be, in every build.
        let mut hasher = Sha256Hasher::default();
        "abc".hash(&mut hasher);
        assert_eq!(
            format!("{:x}", hasher.0.finalize()),
            format!("{:x}", Sha256::digest(b"abc\xff"))
        );
        let (_dir, _engine, cache, _wasm) = setup();
        assert_eq!(cache.engine_key.len(), 16);
    }

    #[test]
    fn second_load_comes_from_the_cache() {
        let (_dir, engine, cache, wasm) = setup();
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:aa").unwrap().1,
            CompileOrigin::CompiledAndCached
        );
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:aa").unwrap().1,
            CompileOrigin::Cache
        );
    }

    #[test]
    fn a_tampered_entry_is_rebuilt_not_trusted() {
        let (_dir, engine, cache, wasm) = setup();
        cache.component(&engine, &wasm, "sha256:aa").unwrap();
        let entry = cache.entry_path("sha256:aa");
        let mut code = fs::read(&entry).unwrap();
        let last = code.len() - 1;
        code[last] ^= 0xff;
        fs::write(&entry, &code).unwrap();
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:aa").unwrap().1,
            CompileOrigin::Rebuilt
        );
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:aa").unwrap().1,
            CompileOrigin::Cache
        );
    }

    #[test]
    fn an_entry_from_an_incompatible_engine_is_rebuilt() {
        let (_dir, engine, cache, wasm) = setup();
        // Another engine's code stored, with a valid checksum, under this engine's key.
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let foreign = other.precompile_component(&wasm).unwrap();
        cache
            .write(&cache.entry_path("sha256:aa"), &foreign)
            .unwrap();
        assert_eq!(
            cache.component(&engine, &wasm, "sha256:aa").unwrap().1,
            CompileOrigin::Rebuilt
        );
    }

    #[test]
    fn a_folder_others_may_write_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let error =
            CompileCache::open(&CompileCacheConfig::new(shared.clone()), &Engine::default())
                .err()
                .expect("refused");
        assert!(error.to_string().contains("mode 777"), "{error}");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(CompileCache::open(&CompileCacheConfig::new(shared), &Engine::default()).is_ok());
    }

    #[test]
    fn the_cache_folder_is_private() {
        let (dir, _engine, _cache, _wasm) = setup();
        let mode = fs::metadata(dir.path().join("cache"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
