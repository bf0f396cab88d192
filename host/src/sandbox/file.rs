//! Reading a guest file: its bytes, a first sniff of what it is, and its digest.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::LoadError;
use crate::regular_file;

/// The largest guest file read unless the caller says otherwise (`--guest-max-file-mib`): a
/// ConfigMap holds at most 1 MiB, but a guest from an image volume may be larger (a Python
/// guest is about 18 MiB).
pub const GUEST_FILE_MAX_BYTES: u64 = 64 << 20;

/// A guest file's bytes and digest, read once.
pub struct GuestFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes.
    pub digest: String,
}

impl GuestFile {
    /// Reads a guest file of at most [`GUEST_FILE_MAX_BYTES`]; see [`Self::read_capped`].
    ///
    /// # Errors
    /// As [`Self::read_capped`].
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        Self::read_capped(path, GUEST_FILE_MAX_BYTES)
    }

    /// Reads a guest file (following symlinks, as a mounted ConfigMap needs; only a regular file,
    /// never waiting on a FIFO; at most `cap` bytes) and checks that it is a WebAssembly
    /// component.
    ///
    /// # Errors
    /// [`LoadError::Read`], [`LoadError::NotWasm`] or [`LoadError::CoreModule`].
    pub fn read_capped(path: &Path, cap: u64) -> Result<Self, LoadError> {
        let (bytes, _) =
            regular_file::read(path, cap, "--guest-max-file-mib").map_err(|source| {
                LoadError::Read {
                    path: path.into(),
                    source,
                }
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
