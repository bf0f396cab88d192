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
//!   half-written entry under a real name.
//!
//! # Assumptions
//! The cache folder is writable only by the host (it is created with mode 0700): whoever can
//! write both an entry and its checksum can make the host run their machine code.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// The cache folder and this engine's compatibility key.
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating with mode 0700 if needed) a cache folder for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
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
                    Ok(component) => return Ok((component, CompileOrigin::Cache)),
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
        // The checksum first: an entry without a valid checksum is never used, so a crash
        // between the two renames only costs a recompile.
        write_atomically(&checksum_path(entry), checksum.as_bytes())?;
        write_atomically(entry, code)
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
        let cache = CompileCache::open(&dir.path().join("cache"), &engine).unwrap();
        (dir, engine, cache, wat::parse_str(WAT).unwrap())
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
    fn the_cache_folder_is_private() {
        let (dir, _engine, _cache, _wasm) = setup();
        let mode = fs::metadata(dir.path().join("cache"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
