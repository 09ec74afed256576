//! Time the store's per-login reads (credentials, roster, offline) on an
//! existing data directory: `cargo run --release --example store_speed DIR N`.
use std::time::Instant;
use xmppd::storage::sqlite::SqliteStore;
use xmppd::storage::{AccountStore, OfflineStore, RosterStore, UserDataStore};

fn main() {
    let mut a = std::env::args().skip(1);
    let dir = a.next().expect("DATA_DIR");
    let n: u64 = a.next().map(|s| s.parse().unwrap()).unwrap_or(100_000);
    let store = SqliteStore::open(std::path::Path::new(&dir)).unwrap();
    let user = |i: u64| format!("u{}", 1 + i % 20_000);
    let time = |name: &str, f: &dyn Fn(u64)| {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        println!("{name:<20} {:.2} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    };
    time("get_credentials", &|i| drop(store.get_credentials(&user(i), "localhost").unwrap()));
    time("roster", &|i| drop(store.roster(&user(i), "localhost").unwrap()));
    time("offline", &|i| drop(store.offline(&user(i), "localhost").unwrap()));
    time("get_data", &|i| drop(store.get_data(&user(i), "localhost", "blocklist").unwrap()));
}
