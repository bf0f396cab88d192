//! Reading a file that someone else controls (a guest, its settings, anything in the folder of
//! guests): only a regular file (after following links), opened without blocking, read up to a
//! size cap. A FIFO named `x.wasm` would otherwise block the reading thread until someone writes
//! to it, and then feed it whatever is written; a device (`/dev/zero`) would be read without end.
//!
//! Hand-rolled because it is a few system calls on `std::fs::File`; no crate does just this.

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening, stat-ing or reading failed (it does not exist, no permission…).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A FIFO, a device, a socket or a folder: refused, not waited on.
    #[error("it is a {0}, not a regular file")]
    NotRegular(&'static str),
    /// Larger than the cap.
    #[error("it is {size} bytes, more than the {cap} bytes allowed ({flag})")]
    TooLarge {
        size: u64,
        cap: u64,
        flag: &'static str,
    },
}

/// What identifies a file's content without reading it: when none of these changed, neither
/// did the bytes (the kubelet's ConfigMap update replaces files, which changes the inode).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub device: u64,
    pub inode: u64,
    pub size: u64,
    pub modified_ns: i128,
}

impl FileStamp {
    pub fn of(metadata: &Metadata) -> Self {
        Self {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified_ns: i128::from(metadata.mtime()) * 1_000_000_000
                + i128::from(metadata.mtime_nsec()),
        }
    }
}

/// The stamp of the regular file at `path` (following links), without opening it.
///
/// # Errors
/// It cannot be stat-ed, or it is not a regular file.
pub fn stamp(path: &Path) -> Result<FileStamp, FileError> {
    let metadata = std::fs::metadata(path)?;
    check_regular(&metadata)?;
    Ok(FileStamp::of(&metadata))
}

/// Reads the regular file at `path` (following links), at most `cap` bytes; `flag` names the
/// setting that raises the cap, for the error message.
///
/// # Errors
/// A [`FileError`]; a file that grows past the cap while it is read is refused too.
pub fn read(path: &Path, cap: u64, flag: &'static str) -> Result<(Vec<u8>, FileStamp), FileError> {
    // O_NONBLOCK: opening a FIFO for reading otherwise waits for a writer. The flag does not
    // change how a regular file is read.
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    check_regular(&metadata)?;
    let too_large = |size| FileError::TooLarge { size, cap, flag };
    if metadata.size() > cap {
        return Err(too_large(metadata.size()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.size()).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64));
    }
    Ok((bytes, FileStamp::of(&metadata)))
}

/// Reads the regular file at `path` as UTF-8 text, at most `cap` bytes.
///
/// # Errors
/// As [`read`], and text that is not UTF-8.
pub fn read_text(path: &Path, cap: u64, flag: &'static str) -> Result<String, FileError> {
    let (bytes, _) = read(path, cap, flag)?;
    String::from_utf8(bytes)
        .map_err(|e| FileError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Refuses anything but a regular file.
///
/// # Errors
/// [`FileError::NotRegular`], naming what it is.
pub fn check_regular(metadata: &Metadata) -> Result<(), FileError> {
    use std::os::unix::fs::FileTypeExt;
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    Err(FileError::NotRegular(if kind.is_dir() {
        "folder"
    } else if kind.is_fifo() {
        "FIFO"
    } else if kind.is_char_device() || kind.is_block_device() {
        "device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("x.wasm");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        let error = read(&fifo, 1 << 20, "--flag").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(error.to_string(), "it is a FIFO, not a regular file");
        assert!(matches!(stamp(&fifo), Err(FileError::NotRegular("FIFO"))));
    }

    #[test]
    fn a_device_or_a_folder_is_refused() {
        assert!(matches!(
            read(Path::new("/dev/zero"), 1 << 20, "--flag"),
            Err(FileError::NotRegular("device"))
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read(dir.path(), 1 << 20, "--flag"),
            Err(FileError::NotRegular("folder"))
        ));
    }

    #[test]
    fn a_file_over_the_cap_is_refused_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![0u8; 2048]).unwrap();
        let error = read(&path, 1024, "--guest-max-file-mib").unwrap_err();
        assert_eq!(
            error.to_string(),
            "it is 2048 bytes, more than the 1024 bytes allowed (--guest-max-file-mib)"
        );
        let (bytes, stamp) = read(&path, 4096, "--flag").unwrap();
        assert_eq!((bytes.len(), stamp.size), (2048, 2048));
    }

    #[test]
    fn a_link_is_followed_to_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "hello").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_text(&link, 100, "--flag").unwrap(), "hello");
        assert_eq!(stamp(&link).unwrap(), stamp(&target).unwrap());
    }

    #[test]
    fn a_replaced_file_has_a_new_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g");
        std::fs::write(&path, "one").unwrap();
        let first = stamp(&path).unwrap();
        let next = dir.path().join("g.new");
        std::fs::write(&next, "two").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_ne!(stamp(&path).unwrap(), first);
    }
}
