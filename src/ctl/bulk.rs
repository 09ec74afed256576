//! `register_bulk FILE`: one `user host password` a line (the password is
//! the rest of the line; blank lines and `#` comments are skipped).
//!
//! The client reads and validates the whole file first (nothing is written
//! if any line is wrong), derives the SCRAM credentials on every core, then
//! either writes them in one transaction
//! ([`SqliteStore::create_accounts_bulk`](crate::storage::sqlite::SqliteStore::create_accounts_bulk))
//! when the daemon is down, or sends them to the daemon in batches of
//! [`BATCH`] accounts. Existing accounts are skipped and counted.

use super::accounts::served_host;
use super::Outcome;
use crate::config::Config;
use crate::jid::normalize_node;
use crate::storage::{Credentials, ScramKeys, Store};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::collections::HashSet;

/// Accounts per batch sent to the daemon.
pub const BATCH: usize = 1000;
/// Fields per account in a batch.
const FIELDS: usize = 10;
/// Errors listed before the rest are only counted.
const MAX_LISTED_ERRORS: usize = 20;

/// One valid line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based line number.
    pub line: usize,
    /// Normalised local part.
    pub user: String,
    /// Normalised served domain.
    pub host: String,
    /// The password.
    pub password: String,
}

/// A validated file.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Accounts to create, first occurrence of each `user@host`.
    pub entries: Vec<Entry>,
    /// Lines repeating an earlier `user@host` (counted as already existing).
    pub duplicates: usize,
}

/// An account ready to store: `(user, host, credentials)`.
pub type Row = (String, String, Credentials);

/// Validate the file's text; `name` is used in error messages.
pub fn parse_text(text: &str, config: &Config, name: &str) -> Result<Parsed, Outcome> {
    let mut parsed = Parsed::default();
    let mut seen = HashSet::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut err = |msg: String| errors.push(format!("Error: bad_argument: {name}:{}: {msg}", i + 1));
        let mut parts = line.splitn(2, char::is_whitespace);
        let user = parts.next().unwrap_or_default();
        let rest = parts.next().unwrap_or_default().trim_start();
        let mut parts = rest.splitn(2, char::is_whitespace);
        let host = parts.next().unwrap_or_default();
        let password = parts.next().unwrap_or_default().trim_start();
        if host.is_empty() || password.is_empty() {
            err("expected `user host password`".into());
            continue;
        }
        // RFC 8265 §4.2 OpaqueString (see `sasl::password`).
        if let Err(e) = crate::sasl::prepare_password(password) {
            err(e.to_string());
            continue;
        }
        let Some(h) = served_host(config, host) else {
            err(format!("Unknown virtual host: {host}"));
            continue;
        };
        let u = match normalize_node(user) {
            Ok(u) => u,
            Err(e) => {
                err(format!("Malformed username: {user} ({})", e.0));
                continue;
            }
        };
        if seen.insert((u.clone(), h.clone())) {
            parsed.entries.push(Entry { line: i + 1, user: u, host: h, password: password.to_string() });
        } else {
            parsed.duplicates += 1;
        }
    }
    if errors.is_empty() {
        return Ok(parsed);
    }
    let n = errors.len();
    let mut msg = errors.into_iter().take(MAX_LISTED_ERRORS).collect::<Vec<_>>().join("\n");
    if n > MAX_LISTED_ERRORS {
        msg.push_str(&format!("\n... and {} more errors", n - MAX_LISTED_ERRORS));
    }
    msg.push_str(&format!("\nNo account was registered ({n} bad line{}).", if n == 1 { "" } else { "s" }));
    Err(Outcome::error(msg))
}

/// Derive credentials for every entry, on all cores; order is kept.
pub fn derive(entries: &[Entry], policy: crate::sasl::KeyPolicy) -> Vec<Row> {
    crate::piefxis::par_map(entries, |e| {
        (e.user.clone(), e.host.clone(), crate::sasl::derive_credentials_with(&e.password, policy))
    })
}

/// Read, validate and derive: the rows to store and the in-file duplicates.
pub fn prepare(file: &std::path::Path, config: &Config) -> Result<(Vec<Row>, usize), Outcome> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file).map_err(|e| Outcome::error(format!("Error: cannot read {name}: {e}")))?;
    let parsed = parse_text(&text, config, &name)?;
    Ok((derive(&parsed.entries, config.auth.key_policy()), parsed.duplicates))
}

/// `N users registered, M already existed`.
pub fn summary(created: usize, existed: usize) -> Outcome {
    Outcome::ok(format!("{created} users registered, {existed} already existed\n"))
}

fn push_keys(out: &mut Vec<String>, k: &ScramKeys) {
    out.push(k.iterations.to_string());
    out.push(B64.encode(&k.salt));
    out.push(B64.encode(&k.stored_key));
    out.push(B64.encode(&k.server_key));
}

/// Encode rows as batch fields (10 per account).
pub fn encode_batch(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::with_capacity(rows.len() * FIELDS);
    for (u, h, c) in rows {
        out.push(u.clone());
        out.push(h.clone());
        push_keys(&mut out, &c.sha1);
        push_keys(&mut out, &c.sha256);
    }
    out
}

fn keys(f: &[String]) -> Result<ScramKeys, String> {
    let b = |s: &str| B64.decode(s).map_err(|e| format!("bad base64: {e}"));
    Ok(ScramKeys {
        iterations: f[0].parse().map_err(|_| format!("bad iteration count {:?}", f[0]))?,
        salt: b(&f[1])?,
        stored_key: b(&f[2])?,
        server_key: b(&f[3])?,
    })
}

/// Decode batch fields.
pub fn decode_batch(fields: &[String]) -> Result<Vec<Row>, String> {
    if fields.len() % FIELDS != 0 {
        return Err(format!("{} fields is not a whole number of accounts", fields.len()));
    }
    fields
        .chunks(FIELDS)
        .map(|f| Ok((f[0].clone(), f[1].clone(), Credentials { sha1: keys(&f[2..6])?, sha256: keys(&f[6..10])? })))
        .collect()
}

/// Daemon side: store one batch in one transaction. Stdout is
/// `CREATED EXISTED`; any invalid account rejects the batch before writing.
pub fn store_batch(fields: &[String], store: &dyn Store, config: &Config) -> Outcome {
    let rows = match decode_batch(fields) {
        Ok(r) => r,
        Err(e) => return Outcome::error(format!("Error: bad_argument: invalid batch: {e}")),
    };
    for (u, h, _) in &rows {
        if served_host(config, h).as_deref() != Some(h.as_str()) {
            return super::accounts::unknown_host("cannot_register", h);
        }
        if normalize_node(u).ok().as_deref() != Some(u.as_str()) {
            return Outcome::error(format!("Error: cannot_register: Can't register user {u}@{h}: Malformed username"));
        }
    }
    // One transaction per batch (one fsync), not one per account.
    match store.create_accounts(&rows) {
        Ok(created) => Outcome::ok(format!("{created} {}\n", rows.len() - created)),
        Err(e) => Outcome::error(format!("Error: internal: {e} (no account of this batch was registered)")),
    }
}

/// Client side: parse a [`store_batch`] answer.
pub fn parse_batch_answer(stdout: &str) -> Option<(usize, usize)> {
    let mut it = stdout.split_whitespace().map(str::parse::<usize>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(c)), Some(Ok(e)), None) => Some((c, e)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::SqliteStore;
    use crate::storage::AccountStore;

    fn config(dir: &std::path::Path) -> Config {
        let toml = format!(
            "hosts = [\"localhost\", \"example.org\"]\ndata_dir = \"{}\"\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            dir.display()
        );
        Config::parse(&toml, "test").unwrap()
    }

    #[test]
    fn parses_lines() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let text = "# accounts\n\n  Alice localhost  pass word \nbob\tEXAMPLE.org\tpw\nalice localhost again\r\n";
        let p = parse_text(text, &cfg, "f").unwrap();
        assert_eq!(p.duplicates, 1);
        assert_eq!(
            p.entries,
            vec![
                Entry { line: 3, user: "alice".into(), host: "localhost".into(), password: "pass word".into() },
                Entry { line: 4, user: "bob".into(), host: "example.org".into(), password: "pw".into() },
            ]
        );
        let e =
            parse_text("a localhost\nb nowhere pw\nc/d localhost pw\nok localhost pw\n", &cfg, "f.txt").unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.stderr.contains("Error: bad_argument: f.txt:1: expected `user host password`"), "{}", e.stderr);
        assert!(e.stderr.contains("f.txt:2: Unknown virtual host: nowhere"), "{}", e.stderr);
        assert!(e.stderr.contains("f.txt:3: Malformed username: c/d"), "{}", e.stderr);
        assert!(e.stderr.ends_with("No account was registered (3 bad lines).\n"), "{}", e.stderr);
    }

    #[test]
    fn derives_in_parallel_and_batches_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let text: String = (0..12).map(|i| format!("user{i} localhost pw{i}\n")).collect();
        let p = parse_text(&text, &cfg, "f").unwrap();
        let rows = derive(&p.entries, cfg.auth.key_policy());
        assert_eq!(rows.len(), 12);
        for (i, (u, h, c)) in rows.iter().enumerate() {
            assert_eq!((u.as_str(), h.as_str()), (format!("user{i}").as_str(), "localhost"));
            assert!(crate::sasl::verify_password(&format!("pw{i}"), c));
        }
        let decoded = decode_batch(&encode_batch(&rows)).unwrap();
        assert_eq!(decoded, rows);
        assert!(decode_batch(&["x".to_string()]).is_err());

        // Daemon-side storing counts existing accounts.
        let store = SqliteStore::open(dir.path()).unwrap();
        store.create_account("user3", "localhost", &rows[3].2).unwrap();
        let o = store_batch(&encode_batch(&rows), &store, &cfg);
        assert_eq!(o, Outcome::ok("11 1\n"));
        assert_eq!(parse_batch_answer(&o.stdout), Some((11, 1)));
        assert_eq!(store.count_users("localhost").unwrap(), 12);
        // A batch naming an unserved host is refused as a whole.
        let mut bad = rows[..2].to_vec();
        bad[1].1 = "nowhere".into();
        bad[0].0 = "fresh".into();
        assert_eq!(store_batch(&encode_batch(&bad), &store, &cfg).code, 1);
        assert!(store.get_credentials("fresh", "localhost").unwrap().is_none());
    }
}
