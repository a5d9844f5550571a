//! The file-system seam: every file operation of the storage layer goes through
//! [`Fs`] (paths, directories, locks) and [`FsFile`] (an open file), so tests can
//! swap the real disk ([`StdFs`]) for a simulated one ([`SimFs`]) that loses
//! unsynced data, tears writes and injects faults on demand.
//!
//! Like redb's `StorageBackend` and SQLite's VFS, the seam is deliberately small:
//! files are append-only handles (RDB, AOF and manifests are all written
//! front to back), reads go by path, and durability is explicit: data is
//! durable after [`FsFile::sync_data`], a directory entry (create, rename,
//! remove) after [`Fs::sync_dir`] of its directory. See docs/fs-seam.md.

mod sim;
mod std_fs;

use std::ffi::OsString;
use std::io;
use std::ops::Deref;
use std::path::Path;

pub use sim::{CrashOptions, Fault, OpKind, SimFs, Torn, SECTOR};
pub use std_fs::{StdFs, LOCK_FILE};

/// A file system as the storage layer sees it. Object safe: the server holds an
/// `Arc<dyn Fs>`.
pub trait Fs: Send + Sync {
    /// Creates `path`, or empties it if it exists, for appending.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Opens `path` for appending, creating it empty if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Reads at `offset` into `buf`; returns the bytes read (0 at end of file).
    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
    /// A read-only view of the whole file (mmap on a real disk). The file must
    /// not be truncated while the mapping lives.
    fn map(&self, path: &Path) -> io::Result<Mapping>;
    fn file_size(&self, path: &Path) -> io::Result<u64>;
    /// Atomically replaces `to` with `from`. Durable only after
    /// [`sync_dir`](Fs::sync_dir): use [`durable_rename`](Fs::durable_rename).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file (not a directory).
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`, sorted.
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Makes the entries of `dir` (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on a data directory, held until the guard drops.
    /// Fails with [`io::ErrorKind::WouldBlock`] and a message naming the
    /// directory when someone else holds it.
    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock>;

    /// Rename that survives a crash once it returns: the rename, then an fsync
    /// of the directories involved. The source must already be synced.
    fn durable_rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.rename(from, to)?;
        let (from_dir, to_dir) = (parent_dir(from), parent_dir(to));
        self.sync_dir(to_dir)?;
        if from_dir != to_dir {
            self.sync_dir(from_dir)?;
        }
        Ok(())
    }

    /// Makes the name of a newly created or removed `path` durable.
    fn sync_parent(&self, path: &Path) -> io::Result<()> {
        self.sync_dir(parent_dir(path))
    }
}

/// An open file. Writes always append. Methods take `&self` so one thread can
/// append while another fsyncs (group commit): wrap the box in an `Arc`.
pub trait FsFile: Send + Sync {
    /// Appends some prefix of `buf`; returns its length (a short write is
    /// legal, as with `write(2)`).
    fn write(&self, buf: &[u8]) -> io::Result<usize>;
    /// Makes every byte written so far durable. After an error the file's
    /// unsynced data may be gone for good while a later call reports success
    /// (Linux "fsyncgate"): treat a failed `sync_data` as poisoning the file.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or zero-extends; durable after `sync_data`.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length, including unsynced writes.
    fn size(&self) -> io::Result<u64>;

    /// Appends all of `buf`, retrying short writes.
    fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// `std::io::Write` over an [`FsFile`], for encoders that write to a stream.
pub struct FileWriter<'a>(pub &'a dyn FsFile);

impl io::Write for FileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Read-only bytes of a whole file: an mmap, or an owned copy.
pub struct Mapping(MappingInner);

enum MappingInner {
    Mmap(memmap2::Mmap),
    Bytes(Vec<u8>),
}

impl Mapping {
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Mapping(MappingInner::Bytes(bytes))
    }
}

impl Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.0 {
            MappingInner::Mmap(m) => m,
            MappingInner::Bytes(b) => b,
        }
    }
}

/// Holds a data-directory lock; dropping it releases the lock.
pub struct DirLock {
    _held: Box<dyn Send + Sync>,
}

impl DirLock {
    /// Wraps whatever keeps the lock alive (a locked file, a guard).
    pub fn new<T: Send + Sync + 'static>(held: T) -> Self {
        DirLock {
            _held: Box::new(held),
        }
    }
}

/// The directory holding `path`; "." for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
