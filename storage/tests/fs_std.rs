//! StdFs against a real temporary directory.

use std::io::ErrorKind;
use std::path::Path;

use cairn_storage::fs::{Fs, StdFs, LOCK_FILE};

#[test]
fn append_read_map_truncate_rename_remove() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StdFs;
    let a = dir.path().join("a.aof");
    let f = fs.open_append(&a).unwrap();
    f.write_all(b"hello ").unwrap();
    f.write_all(b"world").unwrap();
    f.sync_data().unwrap();
    assert_eq!(f.size().unwrap(), 11);
    assert_eq!(fs.read(&a).unwrap(), b"hello world");
    assert_eq!(&*fs.map(&a).unwrap(), b"hello world");
    let mut buf = [0u8; 16];
    assert_eq!(fs.read_at(&a, 6, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");
    assert_eq!(fs.read_at(&a, 11, &mut buf).unwrap(), 0);

    // Writes after a truncation land at the new end (append mode).
    f.set_len(5).unwrap();
    f.write_all(b"!").unwrap();
    assert_eq!(fs.read(&a).unwrap(), b"hello!");
    drop(f);

    // Reopening appends; create empties.
    fs.open_append(&a).unwrap().write_all(b"?").unwrap();
    assert_eq!(fs.read(&a).unwrap(), b"hello!?");
    let b = dir.path().join("b.rdb");
    fs.create(&b).unwrap().write_all(b"old").unwrap();
    fs.create(&b).unwrap().write_all(b"new").unwrap();
    assert_eq!(fs.read(&b).unwrap(), b"new");

    fs.durable_rename(&b, &a).unwrap();
    assert_eq!(fs.read(&a).unwrap(), b"new");
    assert_eq!(fs.file_size(&a).unwrap(), 3);
    assert_eq!(fs.list_dir(dir.path()).unwrap(), vec!["a.aof"]);
    fs.remove(&a).unwrap();
    assert_eq!(fs.file_size(&a).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(fs.list_dir(dir.path()).unwrap().is_empty());

    let empty = dir.path().join("sub/dir/empty");
    fs.create_dir_all(empty.parent().unwrap()).unwrap();
    fs.create(&empty).unwrap();
    assert!(fs.map(&empty).unwrap().is_empty());
    fs.sync_parent(&empty).unwrap();
}

#[test]
fn second_lock_on_a_data_dir_fails_naming_dir_and_holder() {
    let dir = tempfile::tempdir().unwrap();
    let fs = StdFs;
    let lock = fs.lock_dir(dir.path()).unwrap();
    // flock(2) conflicts between two open files even within one process, which
    // stands in for a second server here.
    let err = fs
        .lock_dir(dir.path())
        .err()
        .expect("second lock must fail");
    assert_eq!(err.kind(), ErrorKind::WouldBlock);
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(lock);
    let _again = fs.lock_dir(dir.path()).expect("released on drop");
    assert!(dir.path().join(LOCK_FILE).exists());
}

#[test]
fn lock_on_missing_dir_names_the_lock_file() {
    let err = StdFs
        .lock_dir(Path::new("/nonexistent-cairn-dir"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err
        .to_string()
        .contains("/nonexistent-cairn-dir/cairn.lock"));
}
