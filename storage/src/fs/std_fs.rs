//! [`Fs`] on the real disk through `std::fs`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{DirLock, Fs, FsFile, Mapping, MappingInner};

/// Name of the lock file [`StdFs::lock_dir`] keeps in a data directory.
pub const LOCK_FILE: &str = "cairn.lock";

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile(File);

impl FsFile for StdFile {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.0).write(buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    // O_APPEND: every write lands at the end, whatever set_len did before.
    OpenOptions::new().append(true).create(true).open(path)
}

impl Fs for StdFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let file = open_append(path)?;
        file.set_len(0)?;
        Ok(Box::new(StdFile(file)))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(StdFile(open_append(path)?)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut file = File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        file.read(buf)
    }

    fn map(&self, path: &Path) -> io::Result<Mapping> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            // Zero-length mappings are an error on Linux.
            return Ok(Mapping::from_bytes(Vec::new()));
        }
        // SAFETY: the mapping is read-only and Cairn never truncates a file it
        // has mapped; the data-directory lock keeps other Cairn processes out.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapping(MappingInner::Mmap(map)))
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let mut names = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open lock file {}: {e}", path.display()),
                )
            })?;
        // flock(2): released by the kernel when the process dies, so a crashed
        // server never leaves a stale lock behind.
        if let Err(e) = fs2::FileExt::try_lock_exclusive(&file) {
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = match holder.trim() {
                "" => "another process".to_string(),
                h => format!("another process ({h})"),
            };
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is locked by {holder}; is another Cairn server using it?",
                    dir.display()
                ),
            ));
        }
        file.set_len(0)?;
        (&file).write_all(format!("pid {}\n", std::process::id()).as_bytes())?;
        Ok(DirLock::new(file))
    }
}
