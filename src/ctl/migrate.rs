//! `import_piefxis FILE` and `export_piefxis DIR` (XEP-0227, see
//! [`crate::piefxis`]). Both open the store directly, whether or not the
//! daemon runs: export only reads, and import only creates accounts that did
//! not exist (so no session or cache of the daemon refers to them), writing
//! in transactions of [`IMPORT_BATCH`] users so a running daemon's writers
//! wait at most a moment (SQLite's `busy_timeout` covers it).

use super::accounts::served_host;
use super::commands::Command;
use super::Outcome;
use crate::config::Config;
use crate::piefxis::{self, ImportStats};
use crate::storage::sqlite::SqliteStore;
use std::path::Path;

/// Users written per transaction.
pub const IMPORT_BATCH: usize = 500;

/// Run an import or export command.
pub fn run(cmd: &Command, config: &Config) -> Outcome {
    match cmd {
        Command::ImportPiefxis { file } => import(file, config),
        Command::ExportPiefxis { dir } => export(dir, config),
        other => Outcome::error(format!("Error: internal: {} is not a migration command", other.spec().name)),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `import_piefxis FILE`.
pub fn import(file: &Path, config: &Config) -> Outcome {
    let served = |d: &str| served_host(config, d);
    let mut imported = match piefxis::import::read(file, &served) {
        Ok(i) => i,
        Err(e) => return Outcome::error(format!("Error: bad_argument: {e}\nNo account was imported.")),
    };
    let store = match SqliteStore::open(&config.data_dir) {
        Ok(s) => s,
        Err(e) => return Outcome::error(format!("Error: internal: {e}")),
    };
    // Skip the PBKDF2 work for accounts that exist (they are skipped anyway).
    let mut existed = 0;
    imported.records.retain(|r| match crate::storage::AccountStore::get_credentials(&store, &r.user, &r.host) {
        Ok(Some(_)) => {
            existed += 1;
            false
        }
        _ => true,
    });
    piefxis::derive_missing(&mut imported.records, config.auth.key_policy());
    let mut notes = imported.skipped;
    for r in imported.records.iter().filter(|r| r.creds.is_none()) {
        notes.push(format!(
            "{}: user {}@{} has no password or SCRAM credentials: set one with `xmppd ctl change_password`",
            r.origin, r.user, r.host
        ));
    }
    let mut total = ImportStats { existed, ..ImportStats::default() };
    for batch in imported.records.chunks(IMPORT_BATCH) {
        match store.import_users(batch) {
            Ok(s) => {
                total.created += s.created;
                total.existed += s.existed;
                total.roster_items += s.roster_items;
                total.offline += s.offline;
                total.vcards += s.vcards;
                total.private += s.private;
            }
            Err(e) => {
                return Outcome::error(format!(
                    "Error: internal: {e}\n{} were imported before the error",
                    plural(total.created, "user", "users")
                ))
            }
        }
    }
    let mut o = Outcome::ok(format!(
        "Imported {}: {} created, {} already existed (skipped); {}, {}, {}, {}\n",
        file.display(),
        plural(total.created, "user", "users"),
        total.existed,
        plural(total.roster_items, "roster item", "roster items"),
        plural(total.offline, "offline message", "offline messages"),
        plural(total.vcards, "vCard", "vCards"),
        plural(total.private, "private XML namespace", "private XML namespaces"),
    ));
    for n in notes {
        o.stderr.push_str(&format!("Note: {n}\n"));
    }
    o
}

/// `export_piefxis DIR`.
pub fn export(dir: &Path, config: &Config) -> Outcome {
    let store = match SqliteStore::open(&config.data_dir) {
        Ok(s) => s,
        Err(e) => return Outcome::error(format!("Error: internal: {e}")),
    };
    let hosts: Vec<String> = config.hosts.iter().filter_map(|h| served_host(config, h)).collect();
    match piefxis::export::export(&store, &hosts, dir) {
        Ok(e) => {
            let per_host: Vec<String> = e.users.iter().map(|(h, n)| format!("{h}: {n}")).collect();
            Outcome::ok(format!("Exported to {} (users per host: {})\n", e.main.display(), per_host.join(", ")))
        }
        Err(e) => Outcome::error(format!("Error: internal: {e}")),
    }
}
