use std::sync::Arc;

use super::*;

fn creds(seed: u8) -> Credentials {
    let keys = |len: usize, iterations: u32| ScramKeys {
        salt: vec![seed; 16],
        iterations,
        stored_key: vec![seed.wrapping_add(1); len],
        server_key: vec![seed.wrapping_add(2); len],
    };
    Credentials { sha1: keys(20, 4096), sha256: keys(32, 5000) }
}

#[test]
fn account_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.path(), dir.path().join(DB_FILE_NAME));

    assert_eq!(store.get_credentials("alice", "example.com").unwrap(), None);
    store.create_account("alice", "example.com", &creds(1)).unwrap();
    assert_eq!(store.get_credentials("alice", "example.com").unwrap(), Some(creds(1)));
    // Same user on another host is a different account.
    assert_eq!(store.get_credentials("alice", "other.org").unwrap(), None);

    match store.create_account("alice", "example.com", &creds(9)) {
        Err(StoreError::Conflict(j)) => assert_eq!(j, "alice@example.com"),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert_eq!(store.get_credentials("alice", "example.com").unwrap(), Some(creds(1)));

    store.set_credentials("alice", "example.com", &creds(2)).unwrap();
    assert_eq!(store.get_credentials("alice", "example.com").unwrap(), Some(creds(2)));
    match store.set_credentials("bob", "example.com", &creds(2)) {
        Err(StoreError::NotFound(j)) => assert_eq!(j, "bob@example.com"),
        other => panic!("expected not found, got {other:?}"),
    }

    for user in ["carol", "bob", "dave"] {
        store.create_account(user, "example.com", &creds(3)).unwrap();
    }
    store.create_account("zed", "other.org", &creds(3)).unwrap();
    assert_eq!(store.list_users("example.com").unwrap(), ["alice", "bob", "carol", "dave"]);
    assert_eq!(store.count_users("example.com").unwrap(), 4);
    assert_eq!(store.count_users("other.org").unwrap(), 1);
    assert_eq!(store.count_users("nowhere").unwrap(), 0);
    assert!(store.list_users("nowhere").unwrap().is_empty());

    store.remove_account("bob", "example.com").unwrap();
    assert_eq!(store.get_credentials("bob", "example.com").unwrap(), None);
    match store.remove_account("bob", "example.com") {
        Err(StoreError::NotFound(j)) => assert_eq!(j, "bob@example.com"),
        other => panic!("expected not found, got {other:?}"),
    }
    assert_eq!(store.list_users("example.com").unwrap(), ["alice", "carol", "dave"]);
    store.flush().unwrap();
}

#[test]
fn reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create_account("alice", "example.com", &creds(1)).unwrap();
    }
    // Simulate a crash: never close cleanly (the WAL is left behind).
    let crashed = SqliteStore::open(dir.path()).unwrap();
    crashed.create_account("bob", "example.com", &creds(2)).unwrap();
    std::mem::forget(crashed);

    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.list_users("example.com").unwrap(), ["alice", "bob"]);
    assert_eq!(store.get_credentials("bob", "example.com").unwrap(), Some(creds(2)));
    let conn = store.reader();
    assert_eq!(schema::version(&conn).unwrap(), SCHEMA_VERSION);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    // No plaintext password column, ever.
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('accounts')").unwrap();
    let cols: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert!(cols.contains(&"sha256_stored".to_owned()));
    assert!(!cols.iter().any(|c| c.contains("pass")), "{cols:?}");
}

#[test]
fn two_instances_see_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = SqliteStore::open(dir.path()).unwrap();
    let ctl = SqliteStore::open(dir.path()).unwrap();

    ctl.create_account("alice", "example.com", &creds(1)).unwrap();
    assert_eq!(daemon.get_credentials("alice", "example.com").unwrap(), Some(creds(1)));
    daemon.set_credentials("alice", "example.com", &creds(2)).unwrap();
    assert_eq!(ctl.get_credentials("alice", "example.com").unwrap(), Some(creds(2)));
    assert!(matches!(daemon.create_account("alice", "example.com", &creds(3)), Err(StoreError::Conflict(_))));
    daemon.remove_account("alice", "example.com").unwrap();
    assert_eq!(ctl.count_users("example.com").unwrap(), 0);
    ctl.flush().unwrap();
    daemon.flush().unwrap();
}

#[test]
fn bulk_create_skips_existing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.create_account("u1", "h", &creds(7)).unwrap();
    let rows: Vec<_> = (0..50).map(|i| (format!("u{i}"), "h".to_owned(), creds(i))).collect();
    assert_eq!(store.create_accounts_bulk(&rows).unwrap(), 49);
    assert_eq!(store.count_users("h").unwrap(), 50);
    // Existing account untouched.
    assert_eq!(store.get_credentials("u1", "h").unwrap(), Some(creds(7)));
    assert_eq!(store.create_accounts_bulk(&rows).unwrap(), 0);
    assert_eq!(store.create_accounts_bulk(&[]).unwrap(), 0);
}

#[test]
fn garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(DB_FILE_NAME);
    std::fs::write(&file, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{msg}");
    assert!(msg.contains(&file.display().to_string()), "{msg}");
    assert!(msg.contains("not a database"), "{msg}");
}

#[cfg(unix)]
#[test]
fn unwritable_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores permissions: nothing to test then.
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        return;
    }
    let err = SqliteStore::open(&ro).unwrap_err().to_string();
    assert!(err.contains(&ro.display().to_string()), "{err}");
    let err = SqliteStore::open(&ro.join("sub")).unwrap_err().to_string();
    assert!(err.contains("cannot create data directory"), "{err}");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn concurrent_creates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut won = 0;
                for i in 0..25 {
                    // Unique per thread, plus names every thread races for.
                    store.create_account(&format!("t{t}-{i}"), "h", &creds(t)).unwrap();
                    match store.create_account(&format!("shared{i}"), "h", &creds(t)) {
                        Ok(()) => won += 1,
                        Err(StoreError::Conflict(_)) => {}
                        Err(e) => panic!("{e}"),
                    }
                    assert_eq!(store.get_credentials(&format!("t{t}-{i}"), "h").unwrap(), Some(creds(t)));
                }
                won
            })
        })
        .collect();
    let won: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(won, 25);
    assert_eq!(store.count_users("h").unwrap(), 8 * 25 + 25);
    let users = store.list_users("h").unwrap();
    assert!(users.windows(2).all(|w| w[0] < w[1]));
}

/// Durability settings on every connection: WAL and `synchronous=FULL` (2),
/// so a commit that returned is on disk (SQLite docs, "PRAGMA synchronous":
/// FULL syncs the WAL at each commit), which the acknowledgements rely on.
#[test]
fn every_connection_syncs_fully() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let sync = |c: &rusqlite::Connection| c.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(sync(&store.writer()), 2);
    for _ in 0..READERS {
        assert_eq!(sync(&store.reader()), 2);
    }
    let mode: String = store.writer().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}
