//! `--password-cache FILE`: SCRAM SaltedPasswords (RFC 5802 §3) per user,
//! kept from earlier runs so that PBKDF2 — thousands of HMACs per login —
//! does not make the load tool the bottleneck. An entry is used only when
//! the server offers the same hash, salt and iteration count; otherwise the
//! tool computes a new one (on the blocking pool) and the file is rewritten.
//!
//! Format: one line per user, `jid hash iterations salt-base64 salted-base64`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use xmppd::sasl::client::SaltedPassword;
use xmppd::sasl::Hash;

/// The in-memory cache, keyed by bare JID.
#[derive(Default)]
pub struct PasswordCache {
    map: Mutex<HashMap<String, SaltedPassword>>,
    dirty: std::sync::atomic::AtomicBool,
}

fn hash_name(h: Hash) -> &'static str {
    match h {
        Hash::Sha1 => "sha1",
        Hash::Sha256 => "sha256",
    }
}

impl PasswordCache {
    /// Load `path`; a missing file is an empty cache.
    pub fn load(path: &Path) -> anyhow::Result<PasswordCache> {
        let cache = PasswordCache::default();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cache),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let mut map = cache.map.lock().unwrap();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [jid, hash, iterations, salt, salted] = f[..] else { continue };
            let hash = match hash {
                "sha1" => Hash::Sha1,
                "sha256" => Hash::Sha256,
                _ => continue,
            };
            let (Ok(iterations), Ok(salt), Ok(salted_password)) =
                (iterations.parse(), STANDARD.decode(salt), STANDARD.decode(salted))
            else {
                continue;
            };
            map.insert(jid.to_owned(), SaltedPassword { hash, salt, iterations, salted_password });
        }
        drop(map);
        Ok(cache)
    }

    /// The entry for `jid` if it fits these parameters.
    pub fn get(&self, jid: &str, hash: Hash, salt: &[u8], iterations: u32) -> Option<SaltedPassword> {
        let map = self.map.lock().unwrap();
        map.get(jid).filter(|c| c.hash == hash && c.salt == salt && c.iterations == iterations).cloned()
    }

    /// Remember a freshly computed entry.
    pub fn put(&self, jid: &str, sp: SaltedPassword) {
        self.map.lock().unwrap().insert(jid.to_owned(), sp);
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Write the cache to `path` if anything was added (via a temporary file).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let map = self.map.lock().unwrap();
        let tmp = path.with_extension("tmp");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in keys {
            let e = &map[k];
            writeln!(
                f,
                "{k} {} {} {} {}",
                hash_name(e.hash),
                e.iterations,
                STANDARD.encode(&e.salt),
                STANDARD.encode(&e.salted_password)
            )?;
        }
        f.into_inner()?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("xmppd-load-pwcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cache");
        let c = PasswordCache::load(&path).unwrap();
        let sp =
            SaltedPassword { hash: Hash::Sha256, salt: vec![1, 2, 3], iterations: 4096, salted_password: vec![9; 32] };
        c.put("u1@localhost", sp.clone());
        c.save(&path).unwrap();
        let d = PasswordCache::load(&path).unwrap();
        assert_eq!(d.get("u1@localhost", Hash::Sha256, &[1, 2, 3], 4096), Some(sp));
        assert_eq!(d.get("u1@localhost", Hash::Sha256, &[1, 2, 4], 4096), None);
        assert_eq!(d.get("u1@localhost", Hash::Sha1, &[1, 2, 3], 4096), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
