//! Property test: random operation sequences on SimFs against a model that
//! keeps, per file, the synced and the current bytes and, for the directory,
//! the durable and the current names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_storage::fs::{CrashOptions, Fs, SimFs};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Append(usize, Vec<u8>),
    Sync(usize),
    SetLen(usize, usize),
    Rename(usize, usize),
    Remove(usize),
    SyncDir,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    prop_oneof![
        1 => name.clone().prop_map(Op::Create),
        4 => (name.clone(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(n, b)| Op::Append(n, b)),
        3 => name.clone().prop_map(Op::Sync),
        1 => (name.clone(), 0..60usize).prop_map(|(n, l)| Op::SetLen(n, l)),
        1 => (name.clone(), name.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => name.prop_map(Op::Remove),
        2 => Just(Op::SyncDir),
        1 => Just(Op::Crash),
    ]
}

#[derive(Clone, Default)]
struct ModelFile {
    synced: Vec<u8>,
    current: Vec<u8>,
}

#[derive(Clone, Default)]
struct Model {
    now: BTreeMap<usize, usize>,
    durable: BTreeMap<usize, usize>,
    files: Vec<ModelFile>,
}

impl Model {
    fn file(&mut self, name: usize) -> Option<&mut ModelFile> {
        let id = *self.now.get(&name)?;
        Some(&mut self.files[id])
    }

    fn open(&mut self, name: usize) -> &mut ModelFile {
        if !self.now.contains_key(&name) {
            self.files.push(ModelFile::default());
            self.now.insert(name, self.files.len() - 1);
        }
        self.file(name).unwrap()
    }

    fn crash(&self) -> Model {
        let mut out = Model::default();
        for (&name, &id) in &self.durable {
            let synced = self.files[id].synced.clone();
            out.files.push(ModelFile {
                current: synced.clone(),
                synced,
            });
            out.now.insert(name, out.files.len() - 1);
        }
        out.durable = out.now.clone();
        out
    }

    fn visible(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.now
            .iter()
            .map(|(&n, &id)| (path(n), self.files[id].current.clone()))
            .collect()
    }
}

fn path(name: usize) -> PathBuf {
    Path::new("/d").join(NAMES[name])
}

fn run(seed: u64, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut fs = SimFs::new(seed);
    fs.create_dir_all(Path::new("/d")).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Create(n) => {
                fs.create(&path(*n)).unwrap();
                model.open(*n).current.clear();
            }
            Op::Append(n, bytes) => {
                fs.open_append(&path(*n)).unwrap().write_all(bytes).unwrap();
                model.open(*n).current.extend_from_slice(bytes);
            }
            Op::Sync(n) => {
                if let Some(f) = model.file(*n) {
                    fs.open_append(&path(*n)).unwrap().sync_data().unwrap();
                    f.synced = f.current.clone();
                }
            }
            Op::SetLen(n, len) => {
                if let Some(f) = model.file(*n) {
                    fs.open_append(&path(*n))
                        .unwrap()
                        .set_len(*len as u64)
                        .unwrap();
                    f.current.resize(*len, 0);
                }
            }
            Op::Rename(a, b) => {
                if let Some(&id) = model.now.get(a) {
                    fs.rename(&path(*a), &path(*b)).unwrap();
                    model.now.remove(a);
                    model.now.insert(*b, id);
                }
            }
            Op::Remove(n) => {
                if model.now.remove(n).is_some() {
                    fs.remove(&path(*n)).unwrap();
                }
            }
            Op::SyncDir => {
                fs.sync_dir(Path::new("/d")).unwrap();
                model.durable = model.now.clone();
            }
            Op::Crash => {
                fs = fs.crash(CrashOptions::default());
                model = model.crash();
            }
        }
        prop_assert_eq!(fs.files(), model.visible(), "after {:?}", op);
    }

    // A lenient crash keeps, per directory, the durable or the current names,
    // and for a file that only grew since its sync, a prefix between the two.
    let lenient = CrashOptions {
        keep_unsynced: true,
        torn: None,
    };
    let after = fs.crash(lenient);
    let names: Vec<usize> = (0..NAMES.len())
        .filter(|&n| after.file_size(&path(n)).is_ok())
        .collect();
    let fits = |dir: &BTreeMap<usize, usize>| {
        names == dir.keys().copied().collect::<Vec<_>>()
            && names.iter().all(|n| {
                let f = &model.files[dir[n]];
                let got = after.read(&path(*n)).unwrap();
                !f.current.starts_with(&f.synced)
                    || (got.starts_with(&f.synced) && f.current.starts_with(&got))
            })
    };
    prop_assert!(fits(&model.durable) || fits(&model.now));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn sim_matches_model(seed in any::<u64>(), ops in prop::collection::vec(op(), 1..40)) {
        run(seed, &ops)?;
    }
}
