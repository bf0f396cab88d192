//! The folder of guests as untrusted input: whoever writes the guests' ConfigMap (or the volume)
//! chooses what is in it. Listing it never opens a file; each guest is known by the stamps of its
//! `.wasm` and its settings file (`regular_file::FileStamp`), so a file is read again only when
//! one of them changed: 300 refused files, or one of 200 MB, cost a `stat` each per pass, not a
//! read and a hash.
//!
//! # Guarantees
//! - Only `*.wasm` names that are not hidden are guests (the kubelet keeps a ConfigMap's real
//!   files in `..data/` and `..<timestamp>/`); a link to nothing is a file on its way out and is
//!   skipped.
//! - Something that is not a regular file after following links (a FIFO, a device, a folder) is
//!   listed with its refusal and never opened, so it cannot block a thread.
//! - Listing and reading run off the async threads with a deadline ([`off_thread`]).
//! - `NAME.candidate.wasm` is no guest: it is the shadow candidate of `NAME.wasm`, listed with
//!   that guest's stamps; one with no guest beside it is listed as an orphan, never loaded.
//! - At most [`MAX_GUESTS`] names are listed: the number of guests, and of everything kept per
//!   guest (metric series, refusals), is bounded whatever the folder holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::regular_file::{self, FileStamp};

use super::settings::settings_path;
use super::{candidate_of, name_of};

/// Most guest files a folder may hold; names past it (in name order) are refused as one.
pub const MAX_GUESTS: usize = 256;

/// One guest file of the folder, as listed.
#[derive(Clone, Debug)]
pub struct GuestEntry {
    /// The guest's name: its file name without `.wasm`.
    pub name: String,
    pub path: PathBuf,
    /// What the `.wasm` and the settings file are now, to tell whether either changed.
    pub stamps: Stamps,
    /// Why the `.wasm` cannot be a guest before it is even read (not a regular file).
    pub unreadable: Option<String>,
}

/// The stamps of a guest's files (of whatever they are, regular or not); `settings` is `None`
/// when there is no settings file, `candidate` when there is no shadow candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamps {
    pub guest: FileStamp,
    pub settings: Option<FileStamp>,
    pub candidate: Option<FileStamp>,
}

/// A listing of the folder.
#[derive(Debug, Default)]
pub struct Listing {
    pub guests: Vec<GuestEntry>,
    /// Guest files past [`MAX_GUESTS`], not served.
    pub over_limit: usize,
    /// Names that could not be `stat`-ed (no permission): skipped.
    pub unlistable: usize,
    /// Candidate files (`NAME.candidate.wasm`) with no `NAME.wasm` beside them, by name (at
    /// most [`MAX_GUESTS`]): not served.
    pub orphan_candidates: Vec<String>,
}

/// Lists `folder`'s guests in name order, opening no file. Blocking (it `stat`s each one): call
/// it off the async threads.
///
/// # Errors
/// The folder cannot be read.
pub fn list(folder: &Path) -> std::io::Result<Listing> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|e| e == "wasm")
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    paths.sort();
    let (candidates, paths): (Vec<PathBuf>, Vec<PathBuf>) = paths
        .into_iter()
        .partition(|path| candidate_of(path).is_some());
    let mut listing = Listing::default();
    for path in paths {
        // `metadata` follows links and opens nothing, whatever the file is.
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            // A link to nothing: the kubelet is replacing the ConfigMap's files.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                listing.unlistable += 1;
                tracing::debug!(path = %path.display(), %error, "cannot stat a guest file");
                continue;
            }
        };
        if listing.guests.len() == MAX_GUESTS {
            listing.over_limit += 1;
            continue;
        }
        let unreadable = regular_file::check_regular(&metadata)
            .err()
            .map(|error| format!("{}: {error}", path.display()));
        let settings = std::fs::metadata(settings_path(&path))
            .ok()
            .map(|m| FileStamp::of(&m));
        let candidate = std::fs::metadata(super::candidate_path(&path))
            .ok()
            .map(|m| FileStamp::of(&m));
        listing.guests.push(GuestEntry {
            name: name_of(&path),
            path,
            stamps: Stamps {
                guest: FileStamp::of(&metadata),
                settings,
                candidate,
            },
            unreadable,
        });
    }
    listing.orphan_candidates = candidates
        .iter()
        .filter_map(|path| candidate_of(path))
        .filter(|name| !listing.guests.iter().any(|guest| &guest.name == name))
        .take(MAX_GUESTS)
        .collect();
    Ok(listing)
}

/// Longest a listing of the folder, or a read of one file in it, may take before it is given up
/// (the file system may hang: a network volume); the next pass tries again.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// The folder of guests cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the guest folder {folder} (--guests): {source}")]
pub struct FolderError {
    folder: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Checks at start that `folder` can be read, so a wrong `--guests` fails at once.
///
/// # Errors
/// The folder cannot be read.
pub fn check_readable(folder: &Path) -> Result<(), FolderError> {
    list(folder).map(drop).map_err(|source| FolderError {
        folder: folder.to_path_buf(),
        source,
    })
}

/// Runs blocking file work on a blocking thread, given up after [`READ_DEADLINE`] (the thread
/// is left to finish on its own: nothing waits for it, not even shutdown).
///
/// # Errors
/// A message when the deadline passed or the thread panicked.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    match tokio::time::timeout(READ_DEADLINE, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("reading the file failed: {error}")),
        Err(_) => Err(format!(
            "reading the file took longer than {READ_DEADLINE:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn guests_are_listed_by_name_without_hidden_files_or_dangling_links() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.wasm", "a.wasm", ".hidden.wasm", "notes.txt", "a.yaml"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("c.wasm")).unwrap();
        let listing = list(dir.path()).unwrap();
        let names: Vec<&str> = listing.guests.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(listing.guests[0].stamps.settings.is_some());
        assert!(listing.guests[1].stamps.settings.is_none());
    }

    // Attack: a FIFO named x.wasm froze the folder watch and, once written to, fed the host
    // 1.6 GB.
    #[test]
    fn a_fifo_is_listed_as_unreadable_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join("x.wasm"));
        mkfifo(&dir.path().join("y.yaml"));
        std::fs::write(dir.path().join("y.wasm"), "x").unwrap();
        let listing = list(dir.path()).unwrap();
        let x = &listing.guests[0];
        assert!(
            x.unreadable
                .as_deref()
                .unwrap()
                .ends_with("it is a FIFO, not a regular file"),
            "{x:?}"
        );
        assert!(listing.guests[1].unreadable.is_none());
        assert!(
            listing.guests[1].stamps.settings.is_some(),
            "a FIFO settings file has a stamp, and is refused when read"
        );
    }

    #[test]
    fn a_folder_holds_at_most_max_guests() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..MAX_GUESTS + 3 {
            std::fs::write(dir.path().join(format!("g{i:04}.wasm")), "x").unwrap();
        }
        let listing = list(dir.path()).unwrap();
        assert_eq!((listing.guests.len(), listing.over_limit), (MAX_GUESTS, 3));
    }

    #[test]
    fn a_candidate_belongs_to_the_guest_it_is_named_after_and_is_no_guest_itself() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "g.wasm",
            "g.candidate.wasm",
            "h.wasm",
            "lone.candidate.wasm",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let listing = list(dir.path()).unwrap();
        let names: Vec<&str> = listing.guests.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["g", "h"]);
        assert!(listing.guests[0].stamps.candidate.is_some());
        assert!(listing.guests[1].stamps.candidate.is_none());
        assert_eq!(listing.orphan_candidates, ["lone"]);
    }

    #[test]
    fn a_rewritten_settings_file_changes_the_stamps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("g.wasm"), "x").unwrap();
        let before = list(dir.path()).unwrap().guests[0].stamps;
        std::fs::write(dir.path().join("g.yaml"), "timeout: 1s\n").unwrap();
        let after = list(dir.path()).unwrap().guests[0].stamps;
        assert_ne!(before, after);
        assert_eq!(before.guest, after.guest);
    }
}
