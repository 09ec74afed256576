//! `xmppd-load provision --data-dir DIR`: register the load users straight
//! into an xmppd data directory through the crate's store API, with the
//! server stopped. A stopgap for runs where `xmppd ctl register_bulk` is
//! not available; it also fills `--password-cache` with the SaltedPassword
//! of each new account, so later runs do no PBKDF2 at all. With
//! `--contacts C` (even) each user also gets a roster of C mutual
//! (subscription both) contacts: the C/2 users before and after it on a
//! ring of the provisioned users, the topology bench/compare.sh gives every
//! server for the presence scenario.

use super::pwcache::PasswordCache;
use super::report::Report;
use super::Args;
use rand::RngCore;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;
use xmppd::sasl::client::{salted_password, SaltedPassword};
use xmppd::sasl::{derive_credentials_with_salt, Hash};
use xmppd::storage::{AccountStore, RosterItem, RosterStore, StoreError, Subscription};

/// Register users `--first` .. `--first + --users - 1`; existing ones are skipped.
pub fn provision(args: &Args) -> anyhow::Result<Report> {
    let dir = args.data_dir.as_ref().ok_or_else(|| anyhow::anyhow!("provision needs --data-dir"))?;
    let store = xmppd::storage::sqlite::SqliteStore::open(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cache = match &args.password_cache {
        Some(p) => PasswordCache::load(p)?,
        None => PasswordCache::default(),
    };
    let started = std::time::Instant::now();
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::sync_channel(256);
    let (mut created, mut existed) = (0u64, 0u64);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    std::thread::scope(|s| -> anyhow::Result<()> {
        // Key derivation (PBKDF2) on every core; SQLite writes on this thread.
        for _ in 0..threads {
            let tx = tx.clone();
            let next = &next;
            s.spawn(move || loop {
                let k = next.fetch_add(1, Relaxed);
                if k >= args.users {
                    break;
                }
                let i = args.first + k;
                let pw = args.password_of(i);
                let (mut s1, mut s256) = ([0u8; 16], [0u8; 16]);
                rand::thread_rng().fill_bytes(&mut s1);
                rand::thread_rng().fill_bytes(&mut s256);
                let creds = derive_credentials_with_salt(&pw, &s1, &s256, args.iterations);
                let sp = SaltedPassword {
                    hash: Hash::Sha256,
                    salt: s256.to_vec(),
                    iterations: args.iterations,
                    salted_password: salted_password(Hash::Sha256, &pw, &s256, args.iterations),
                };
                if tx.send((i, creds, sp)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, creds, sp) in rx {
            let user = args.user(i);
            match store.create_account(&user, &args.domain, &creds) {
                Ok(()) => {
                    created += 1;
                    cache.put(&format!("{user}@{}", args.domain), sp);
                }
                Err(StoreError::Conflict(_)) => existed += 1,
                Err(e) => anyhow::bail!("{user}: {e}"),
            }
        }
        Ok(())
    })?;
    if let Some(p) = &args.password_cache {
        cache.save(p)?;
    }
    let mut items = 0u64;
    if args.contacts > 0 {
        for k in 0..args.users {
            let user = args.user(args.first + k);
            for c in ring_contacts(k, args.users, args.contacts) {
                let contact = args.user(args.first + c);
                let item = RosterItem {
                    jid: format!("{contact}@{}", args.domain),
                    name: Some(contact),
                    subscription: Subscription::Both,
                    groups: vec!["bench".into()],
                    visible: true,
                    ..RosterItem::default()
                };
                store.put_roster_item(&user, &args.domain, &item).map_err(|e| anyhow::anyhow!("{user}: {e}"))?;
                items += 1;
            }
        }
    }
    let mut r = Report::default();
    r.set("scenario", "provision");
    r.set("created", created);
    r.set("already_registered", existed);
    r.set("roster_items", items);
    r.set("elapsed_s", started.elapsed().as_secs_f64());
    Ok(r)
}

/// The contacts of user `k` (0-based) of `n` on a ring: the `c/2` before and
/// the `c/2` after it (`c` is rounded down to even and to at most `n - 1`).
pub fn ring_contacts(k: u64, n: u64, c: u64) -> Vec<u64> {
    let half = (c / 2).min((n.saturating_sub(1)) / 2);
    (1..=half).flat_map(|d| [(k + n - d) % n, (k + d) % n]).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_is_mutual() {
        let (n, c) = (7, 4);
        for k in 0..n {
            let mine = super::ring_contacts(k, n, c);
            assert_eq!(mine.len(), 4);
            assert!(!mine.contains(&k));
            for o in mine {
                assert!(super::ring_contacts(o, n, c).contains(&k));
            }
        }
        assert_eq!(super::ring_contacts(0, 3, 10).len(), 2);
    }
}
