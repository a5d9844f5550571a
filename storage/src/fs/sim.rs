//! A simulated, deterministic [`Fs`] for crash and fault tests.
//!
//! Each file keeps two images: `disk` (what survives a power loss) and `cache`
//! (what reads see), plus the range of `cache` not yet written back. Each
//! directory keeps its durable and its current entries. `sync_data` and
//! `sync_dir` copy current to durable; [`SimFs::crash`] builds the file system
//! a restart would see from the durable parts, optionally keeping some
//! unsynced bytes and tearing the write in flight.
//!
//! Every state-changing call is one numbered operation, so a test can run a
//! workload, read [`SimFs::op_count`], then replay it with
//! [`SimFs::halt_after`]`(k)` for every k and check what recovery makes of
//! [`SimFs::crash`].

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{DirLock, Fs, FsFile, Mapping};

/// Size of the unit a disk writes atomically, at best.
pub const SECTOR: usize = 512;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;

/// The kinds of counted (state-changing) operations; faults target one kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// `create` or `open_append`.
    Open,
    Write,
    Sync,
    SetLen,
    Rename,
    Remove,
    CreateDir,
    SyncDir,
}

const KINDS: usize = 8;

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with EIO. On `sync_data` the unsynced data is dropped (fsyncgate).
    Eio,
    /// Fail with ENOSPC (same effect as `Eio` otherwise).
    Enospc,
    /// A `write` stores and reports only a random non-empty prefix. Ignored
    /// for other kinds.
    ShortWrite,
}

/// How a crash treats data that was not yet durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashOptions {
    /// Keep a random prefix of each file's unsynced bytes, and for each
    /// directory randomly keep either its durable or its current entries.
    /// Without it, everything not synced is lost.
    pub keep_unsynced: bool,
    /// Damage each file's write in flight: the rest of the 512-byte sector at
    /// the point where the surviving bytes end (only bytes not yet durable).
    pub torn: Option<Torn>,
}

/// Contents of a torn sector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Torn {
    Zeros,
    Garbage,
}

/// The simulated file system. Clones share state; thread-safe.
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

type Ino = usize;
const ROOT: Ino = 0;

struct State {
    /// Inodes are never reused; a crash compacts them.
    nodes: Vec<Node>,
    rng: SplitMix64,
    ops: u64,
    ops_by_kind: [u64; KINDS],
    halt_after: Option<u64>,
    halted: bool,
    rules: Vec<Rule>,
    locks: BTreeSet<Vec<OsString>>,
}

enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Default)]
struct FileNode {
    disk: Vec<u8>,
    cache: Vec<u8>,
    /// `cache[dirty_from..]` has not been written back. Writes only append, so
    /// the unsynced bytes are always one range running to the end.
    dirty_from: Option<usize>,
}

#[derive(Default)]
struct DirNode {
    disk: BTreeMap<OsString, Ino>,
    cache: BTreeMap<OsString, Ino>,
}

struct Rule {
    kind: OpKind,
    /// Absolute per-kind operation number the rule fires at.
    at: u64,
    /// Fire on every later operation of the kind too (a full disk stays full).
    sticky: bool,
    fault: Fault,
}

/// Small, fast and stable across dependency upgrades, so seeds reproduce.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-enough in `0..n`; `n` must be > 0.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn os_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn halted_error() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

/// Path components, with `.`, `..` and the root resolved; relative paths start
/// at the root.
fn components(path: &Path) -> Vec<OsString> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn write_at(out: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if out.len() < offset + bytes.len() {
        out.resize(offset + bytes.len(), 0);
    }
    out[offset..offset + bytes.len()].copy_from_slice(bytes);
}

impl FileNode {
    fn append(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.dirty_from.get_or_insert(self.cache.len());
        self.cache.extend_from_slice(bytes);
    }

    fn set_len(&mut self, len: usize) {
        if len > self.cache.len() {
            self.dirty_from.get_or_insert(self.cache.len());
        } else if self.dirty_from.is_some_and(|d| d >= len) {
            self.dirty_from = None;
        }
        self.cache.resize(len, 0);
    }

    fn sync(&mut self) {
        // Bytes dropped by an earlier failed sync stay old on disk, or read
        // as zeros where the file grew: the fsyncgate outcome.
        self.disk.resize(self.cache.len(), 0);
        if let Some(d) = self.dirty_from.take() {
            self.disk[d..].copy_from_slice(&self.cache[d..]);
        }
    }

    fn after_crash(&self, opts: CrashOptions, rng: &mut SplitMix64) -> Vec<u8> {
        let mut out = self.disk.clone();
        let Some(dirty) = self.dirty_from else {
            return out;
        };
        let end = self.cache.len();
        let cut = if opts.keep_unsynced {
            dirty + rng.below(end - dirty + 1)
        } else {
            dirty
        };
        write_at(&mut out, dirty, &self.cache[dirty..cut]);
        if let (Some(torn), true) = (opts.torn, cut < end) {
            let sector_end = ((cut / SECTOR + 1) * SECTOR).min(end);
            let damage: Vec<u8> = match torn {
                Torn::Zeros => vec![0; sector_end - cut],
                Torn::Garbage => (cut..sector_end).map(|_| rng.next() as u8).collect(),
            };
            write_at(&mut out, cut, &damage);
        }
        out
    }
}

impl State {
    fn new(seed: u64) -> Self {
        State {
            nodes: vec![Node::Dir(DirNode::default())],
            rng: SplitMix64(seed),
            ops: 0,
            ops_by_kind: [0; KINDS],
            halt_after: None,
            halted: false,
            rules: Vec::new(),
            locks: BTreeSet::new(),
        }
    }

    fn alive(&self) -> io::Result<()> {
        if self.halted {
            Err(halted_error())
        } else {
            Ok(())
        }
    }

    /// Counts one state-changing operation; returns the fault to apply, if any.
    fn begin(&mut self, kind: OpKind) -> io::Result<Option<Fault>> {
        self.alive()?;
        if self.halt_after.is_some_and(|limit| self.ops >= limit) {
            self.halted = true;
            return Err(halted_error());
        }
        self.ops += 1;
        let n = &mut self.ops_by_kind[kind as usize];
        *n += 1;
        let n = *n;
        Ok(self
            .rules
            .iter()
            .find(|r| r.kind == kind && (r.at == n || (r.sticky && n > r.at)))
            .map(|r| r.fault))
    }

    /// `begin` for kinds where only error faults apply.
    fn begin_plain(&mut self, kind: OpKind) -> io::Result<()> {
        match self.begin(kind)? {
            Some(Fault::Eio) => Err(os_error(EIO)),
            Some(Fault::Enospc) => Err(os_error(ENOSPC)),
            Some(Fault::ShortWrite) | None => Ok(()),
        }
    }

    fn dir(&self, ino: Ino) -> Option<&DirNode> {
        match &self.nodes[ino] {
            Node::Dir(d) => Some(d),
            Node::File(_) => None,
        }
    }

    fn child(&self, dir: Ino, name: &OsString) -> Option<Ino> {
        self.dir(dir).and_then(|d| d.cache.get(name).copied())
    }

    fn dir_mut(&mut self, ino: Ino) -> &mut DirNode {
        match &mut self.nodes[ino] {
            Node::Dir(d) => d,
            Node::File(_) => unreachable!("checked to be a directory"),
        }
    }

    fn file_mut(&mut self, ino: Ino) -> &mut FileNode {
        match &mut self.nodes[ino] {
            Node::File(f) => f,
            Node::Dir(_) => unreachable!("handles only point at files"),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<Ino> {
        let mut ino = ROOT;
        for name in components(path) {
            let dir = self.dir(ino).ok_or_else(|| os_error(ENOTDIR))?;
            ino = *dir.cache.get(&name).ok_or_else(|| not_found(path))?;
        }
        Ok(ino)
    }

    /// The directory that holds `path`, and the name in it.
    fn lookup_parent(&self, path: &Path) -> io::Result<(Ino, OsString)> {
        let mut parts = components(path);
        let name = parts
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the root has no parent"))?;
        let parent: PathBuf = parts.iter().collect();
        let dir = self.lookup(&parent)?;
        if self.dir(dir).is_none() {
            return Err(os_error(ENOTDIR));
        }
        Ok((dir, name))
    }

    fn lookup_file(&self, path: &Path) -> io::Result<&FileNode> {
        match &self.nodes[self.lookup(path)?] {
            Node::File(f) => Ok(f),
            Node::Dir(_) => Err(os_error(EISDIR)),
        }
    }

    fn open(&mut self, path: &Path, truncate: bool) -> io::Result<Ino> {
        self.begin_plain(OpKind::Open)?;
        let (dir, name) = self.lookup_parent(path)?;
        if let Some(ino) = self.child(dir, &name) {
            match &mut self.nodes[ino] {
                Node::Dir(_) => return Err(os_error(EISDIR)),
                Node::File(f) if truncate => f.set_len(0),
                Node::File(_) => {}
            }
            return Ok(ino);
        }
        let ino = self.nodes.len();
        self.nodes.push(Node::File(FileNode::default()));
        self.dir_mut(dir).cache.insert(name, ino);
        Ok(ino)
    }

    /// The file system a restart sees: durable directory entries, each file's
    /// durable bytes (plus what `opts` lets survive). Inodes are renumbered and
    /// unreachable ones dropped.
    fn after_crash(&mut self, opts: CrashOptions, seed: u64) -> State {
        let mut out = State::new(seed);
        self.copy_dir(ROOT, ROOT, &mut out, opts);
        out
    }

    fn copy_dir(&mut self, from: Ino, to: Ino, out: &mut State, opts: CrashOptions) {
        let keep_current = opts.keep_unsynced && self.rng.below(2) == 1;
        let dir = self.dir(from).expect("directory");
        let entries = if keep_current { &dir.cache } else { &dir.disk };
        let entries: Vec<(OsString, Ino)> = entries.iter().map(|(n, &i)| (n.clone(), i)).collect();
        for (name, child) in entries {
            let new = out.nodes.len();
            match &self.nodes[child] {
                Node::File(f) => {
                    let data = f.after_crash(opts, &mut self.rng);
                    out.nodes.push(Node::File(FileNode {
                        disk: data.clone(),
                        cache: data,
                        dirty_from: None,
                    }));
                }
                Node::Dir(_) => out.nodes.push(Node::Dir(DirNode::default())),
            }
            let parent = out.dir_mut(to);
            parent.disk.insert(name.clone(), new);
            parent.cache.insert(name, new);
            if matches!(self.nodes[child], Node::Dir(_)) {
                self.copy_dir(child, new, out, opts);
            }
        }
    }

    /// Every file under the root as (path, content), by current entries.
    fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![(ROOT, PathBuf::from("/"))];
        while let Some((ino, path)) = stack.pop() {
            match &self.nodes[ino] {
                Node::File(f) => {
                    out.insert(path, f.cache.clone());
                }
                Node::Dir(d) => {
                    for (name, &child) in &d.cache {
                        stack.push((child, path.join(name)));
                    }
                }
            }
        }
        out
    }
}

impl SimFs {
    /// An empty file system (just the root); `seed` drives every random choice.
    pub fn new(seed: u64) -> Self {
        SimFs {
            state: Arc::new(Mutex::new(State::new(seed))),
        }
    }

    /// Power loss now: this file system stops (every later call fails) and the
    /// returned one holds what a restart finds. Call it again for another
    /// random outcome of the same crash.
    pub fn crash(&self, opts: CrashOptions) -> SimFs {
        let mut state = self.state.lock();
        state.halted = true;
        let seed = state.rng.next();
        SimFs {
            state: Arc::new(Mutex::new(state.after_crash(opts, seed))),
        }
    }

    /// Lets operations up to number `k` (counted from the file system's
    /// creation) run; operation `k + 1` and everything after it fail as if the
    /// power went out. Pair with [`crash`](Self::crash).
    pub fn halt_after(&self, k: u64) {
        let mut state = self.state.lock();
        state.halt_after = Some(k);
        if state.ops >= k {
            state.halted = true;
        }
    }

    /// True once the simulated machine is off.
    pub fn is_halted(&self) -> bool {
        self.state.lock().halted
    }

    /// State-changing operations so far (all kinds).
    pub fn op_count(&self) -> u64 {
        self.state.lock().ops
    }

    /// Operations of one kind so far.
    pub fn op_count_of(&self, kind: OpKind) -> u64 {
        self.state.lock().ops_by_kind[kind as usize]
    }

    /// The `nth` (1-based, counted from now) operation of `kind` fails with
    /// `fault`.
    pub fn fail(&self, kind: OpKind, nth: u64, fault: Fault) {
        self.add_rule(kind, nth, fault, false);
    }

    /// Like [`fail`](Self::fail), and every later operation of `kind` too.
    pub fn fail_from(&self, kind: OpKind, nth: u64, fault: Fault) {
        self.add_rule(kind, nth, fault, true);
    }

    fn add_rule(&self, kind: OpKind, nth: u64, fault: Fault, sticky: bool) {
        assert!(nth >= 1, "operations are counted from 1");
        let mut state = self.state.lock();
        let at = state.ops_by_kind[kind as usize] + nth;
        state.rules.push(Rule {
            kind,
            at,
            sticky,
            fault,
        });
    }

    /// Drops every fault rule.
    pub fn clear_faults(&self) {
        self.state.lock().rules.clear();
    }

    /// Flips one bit of a file's stored bytes, durable and cached alike (media
    /// corruption). Works on a halted file system too.
    pub fn flip_bit(&self, path: &Path, offset: usize, bit: u8) -> io::Result<()> {
        let mut state = self.state.lock();
        let ino = state.lookup(path)?;
        let Node::File(f) = &mut state.nodes[ino] else {
            return Err(os_error(EISDIR));
        };
        if offset >= f.cache.len().max(f.disk.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "offset past the end of the file",
            ));
        }
        for image in [&mut f.disk, &mut f.cache] {
            if let Some(byte) = image.get_mut(offset) {
                *byte ^= 1 << (bit % 8);
            }
        }
        Ok(())
    }

    /// Every file with the content reads see now, by absolute path.
    pub fn files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.state.lock().files()
    }

    /// Every file a restart would see if the power went out now and nothing
    /// unsynced survived. Changes nothing.
    pub fn durable_files(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        // Without options the crash draws no random numbers.
        self.state
            .lock()
            .after_crash(CrashOptions::default(), 0)
            .files()
    }
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock();
        f.debug_struct("SimFs")
            .field("ops", &state.ops)
            .field("halted", &state.halted)
            .finish_non_exhaustive()
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    ino: Ino,
}

impl FsFile for SimFile {
    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.state.lock();
        let n = match state.begin(OpKind::Write)? {
            Some(Fault::Eio) => return Err(os_error(EIO)),
            Some(Fault::Enospc) => return Err(os_error(ENOSPC)),
            Some(Fault::ShortWrite) if buf.len() > 1 => 1 + state.rng.below(buf.len() - 1),
            _ => buf.len(),
        };
        state.file_mut(self.ino).append(&buf[..n]);
        Ok(n)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        let fault = state.begin(OpKind::Sync)?;
        let file = state.file_mut(self.ino);
        let code = match fault {
            Some(Fault::Eio) => EIO,
            Some(Fault::Enospc) => ENOSPC,
            Some(Fault::ShortWrite) | None => {
                file.sync();
                return Ok(());
            }
        };
        // fsyncgate: the kernel marks the failed pages clean. Reads still see
        // them; the disk never will, and the next sync_data reports success.
        file.dirty_from = None;
        Err(os_error(code))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        state.begin_plain(OpKind::SetLen)?;
        state.file_mut(self.ino).set_len(len as usize);
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut state = self.state.lock();
        state.alive()?;
        Ok(state.file_mut(self.ino).cache.len() as u64)
    }
}

struct SimLock {
    state: Arc<Mutex<State>>,
    key: Vec<OsString>,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.key);
    }
}

impl Fs for SimFs {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.state.lock().open(path, true)?;
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let ino = self.state.lock().open(path, false)?;
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.state.lock();
        state.alive()?;
        Ok(state.lookup_file(path)?.cache.clone())
    }

    fn read_at(&self, path: &Path, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let state = self.state.lock();
        state.alive()?;
        let data = &state.lookup_file(path)?.cache;
        let start = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn map(&self, path: &Path) -> io::Result<Mapping> {
        self.read(path).map(Mapping::from_bytes)
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        let state = self.state.lock();
        state.alive()?;
        Ok(state.lookup_file(path)?.cache.len() as u64)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.begin_plain(OpKind::Rename)?;
        let (from_dir, from_name) = state.lookup_parent(from)?;
        let (to_dir, to_name) = state.lookup_parent(to)?;
        let ino = state
            .child(from_dir, &from_name)
            .ok_or_else(|| not_found(from))?;
        if (from_dir, &from_name) == (to_dir, &to_name) {
            return Ok(());
        }
        let is_dir = matches!(state.nodes[ino], Node::Dir(_));
        if is_dir && components(to).starts_with(&components(from)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot move a directory into itself",
            ));
        }
        if let Some(target) = state.child(to_dir, &to_name) {
            if matches!(state.nodes[target], Node::Dir(_)) {
                return Err(os_error(EISDIR));
            }
        }
        state.dir_mut(from_dir).cache.remove(&from_name);
        state.dir_mut(to_dir).cache.insert(to_name, ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.begin_plain(OpKind::Remove)?;
        let (dir, name) = state.lookup_parent(path)?;
        match state.child(dir, &name) {
            None => Err(not_found(path)),
            Some(ino) if matches!(state.nodes[ino], Node::Dir(_)) => Err(os_error(EISDIR)),
            Some(_) => {
                state.dir_mut(dir).cache.remove(&name);
                Ok(())
            }
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.begin_plain(OpKind::CreateDir)?;
        let mut ino = ROOT;
        for name in components(path) {
            let existing = state
                .dir(ino)
                .ok_or_else(|| os_error(ENOTDIR))?
                .cache
                .get(&name);
            ino = match existing {
                Some(&child) => child,
                None => {
                    let child = state.nodes.len();
                    state.nodes.push(Node::Dir(DirNode::default()));
                    state.dir_mut(ino).cache.insert(name, child);
                    child
                }
            };
        }
        state.dir(ino).map(|_| ()).ok_or_else(|| os_error(ENOTDIR))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        let state = self.state.lock();
        state.alive()?;
        let ino = state.lookup(dir)?;
        let dir = state.dir(ino).ok_or_else(|| os_error(ENOTDIR))?;
        Ok(dir.cache.keys().cloned().collect())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.begin_plain(OpKind::SyncDir)?;
        let ino = state.lookup(dir)?;
        if state.dir(ino).is_none() {
            return Err(os_error(ENOTDIR));
        }
        let dir = state.dir_mut(ino);
        dir.disk = dir.cache.clone();
        Ok(())
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        let mut state = self.state.lock();
        state.alive()?;
        if state.dir(state.lookup(dir)?).is_none() {
            return Err(os_error(ENOTDIR));
        }
        let key = components(dir);
        if !state.locks.insert(key.clone()) {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "data directory {} is locked by another holder",
                    dir.display()
                ),
            ));
        }
        Ok(DirLock::new(SimLock {
            state: self.state.clone(),
            key,
        }))
    }
}
