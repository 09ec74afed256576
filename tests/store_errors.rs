//! A store the daemon cannot trust or write (issue 5 item 7) stops
//! `xmppd serve` at start with a message naming the path and a non-zero
//! exit: never a panic, never a silent start on an empty store. Each case
//! runs the real binary.

mod common;
use common::daemon::{serve_expecting_failure, write_config};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use xmppd::storage::sqlite::{SqliteStore, DB_FILE_NAME};
use xmppd::storage::AccountStore;

/// Assert a clean refusal: exit status 1, the path and `what` in stderr,
/// no panic message or backtrace.
fn assert_refused(out: &Output, path: &Path, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "exit status {:?}; stderr: {err}", out.status);
    assert!(err.contains(&path.display().to_string()), "path {} not named: {err}", path.display());
    assert!(err.to_lowercase().contains(what), "{what:?} not in: {err}");
    assert!(!err.contains("panicked") && !err.contains("stack backtrace"), "panic: {err}");
}

/// A data dir with a real store holding 200 accounts (several pages).
fn populated(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let store = SqliteStore::open(&data).unwrap();
    let creds = xmppd::sasl::derive_credentials_with_salt("p", b"s1", b"s2", 4096);
    for i in 0..200 {
        store.create_account(&format!("user{i:03}-with-a-longer-name"), "localhost", &creds).unwrap();
    }
    xmppd::storage::Store::flush(&store).unwrap();
    drop(store);
    let db = data.join(DB_FILE_NAME);
    assert!(std::fs::metadata(&db).unwrap().len() >= 4 * 4096, "store too small to damage meaningfully");
    db
}

fn run(dir: &Path, data: &Path) -> Output {
    serve_expecting_failure(&write_config(dir, data, common::daemon::free_port()), None)
}

#[test]
fn garbage_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let db = data.join(DB_FILE_NAME);
    // Pseudo-random bytes, no SQLite header.
    let junk: Vec<u8> = (0..16384u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&db, &junk).unwrap();
    assert_refused(&run(dir.path(), &data), &db, "not an sqlite database");
    assert_eq!(std::fs::read(&db).unwrap(), junk, "the damaged file was modified");
}

#[test]
fn garbage_inside_a_valid_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    // Overwrite the middle pages: the header stays valid, the b-tree does not.
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2;
    for (i, b) in bytes[mid - 4096..mid + 4096].iter_mut().enumerate() {
        *b = (i * 131 % 251) as u8;
    }
    std::fs::write(&db, &bytes).unwrap();
    assert_refused(&run(dir.path(), &dir.path().join("data")), &db, "malformed");
}

#[test]
fn truncated_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    let len = std::fs::metadata(&db).unwrap().len();
    // Cut in the middle of a page, as an interrupted copy would.
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(len / 2 + 100).unwrap();
    let out = run(dir.path(), &dir.path().join("data"));
    assert_refused(&out, &db, "");
}

#[test]
fn store_file_truncated_to_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = populated(dir.path());
    std::fs::OpenOptions::new().write(true).open(&db).unwrap().set_len(0).unwrap();
    assert_refused(&run(dir.path(), &dir.path().join("data")), &db, "empty");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "the file was reinitialised");
}

#[test]
fn a_file_where_the_data_dir_should_be() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"not a directory").unwrap();
    assert_refused(&run(dir.path(), &data), &data, "data directory");
    // And a data dir below a file.
    let below = data.join("sub");
    assert_refused(&run(dir.path(), &below), &below, "data directory");
}

/// An unwritable data dir: mode 0500 for a normal user; as root (who
/// ignores modes) the daemon runs as `nobody` on a root-owned directory.
#[test]
fn unwritable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = euid_is_root();
    for existing in [false, true] {
        let data = dir.path().join(if existing { "old" } else { "new" });
        if existing {
            SqliteStore::open(&data).unwrap();
            std::fs::set_permissions(data.join(DB_FILE_NAME), std::fs::Permissions::from_mode(0o644)).unwrap();
        } else {
            std::fs::create_dir(&data).unwrap();
        }
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(if root { 0o755 } else { 0o500 })).unwrap();
        let cfg = write_config(dir.path(), &data, common::daemon::free_port());
        let out = serve_expecting_failure(&cfg, root.then_some(65534));
        assert_refused(&out, &data.join(DB_FILE_NAME), "writable");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Whether this process runs as root, read from /proc (no libc binding).
fn euid_is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)) == Some("0")
}
