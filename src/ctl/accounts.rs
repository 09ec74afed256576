//! The account commands (`register`, `unregister`, `change_password`,
//! `check_account`, `check_password`, `registered_users`), implemented once
//! over `&dyn Store` for both the daemon and the direct-to-store path, and
//! the host and user checks they share with `register_bulk` and
//! `kick_session`.

use super::commands::Command;
use super::Outcome;
use crate::config::Config;
use crate::jid::{normalize_node, Jid};
use crate::storage::{Store, StoreError};

/// The normalised domain if `host` is served here.
pub fn served_host(config: &Config, host: &str) -> Option<String> {
    let j = Jid::parse(host).ok()?;
    (j.node().is_none() && j.resource().is_none() && config.serves(j.domain())).then(|| j.domain().to_string())
}

/// `Error: <condition>: Unknown virtual host: HOST`.
pub fn unknown_host(condition: &str, host: &str) -> Outcome {
    Outcome::error(format!("Error: {condition}: Unknown virtual host: {host}"))
}

fn no_such_user(user: &str, host: &str) -> Outcome {
    Outcome::error(format!("Error: not_found: User {user}@{host} does not exist"))
}

fn backend(e: &StoreError) -> Outcome {
    Outcome::error(format!("Error: internal: {e}"))
}

/// Normalise `user@host` for a command on an existing account. `Err` is the
/// outcome to return (unknown host; a malformed user cannot exist).
fn account(config: &Config, user: &str, host: &str) -> Result<(String, String), Outcome> {
    let h = served_host(config, host).ok_or_else(|| unknown_host("not_found", host))?;
    let u = normalize_node(user).map_err(|_| no_such_user(user, &h))?;
    Ok((u, h))
}

/// Run an account command against `store`. `end_sessions(bare, text)` is
/// called after an account is removed or its password changed, to close its
/// live sessions (a no-op when the daemon is not running).
///
/// Panics if `cmd` is not an account command or is `register_bulk` (which
/// the client splits into batches, see [`super::bulk`]).
pub fn execute_account(
    cmd: &Command,
    store: &dyn Store,
    config: &Config,
    end_sessions: &dyn Fn(&Jid, &str),
) -> Outcome {
    match cmd {
        Command::Register { user, host, password } => {
            let Some(h) = served_host(config, host) else {
                return unknown_host("cannot_register", host);
            };
            let u = match normalize_node(user) {
                Ok(u) => u,
                Err(e) => {
                    return Outcome::error(format!(
                        "Error: cannot_register: Can't register user {user}@{h}: Malformed username ({})",
                        e.0
                    ))
                }
            };
            // RFC 8265 §4.2 OpaqueString (see `sasl::password`).
            if let Err(e) = crate::sasl::prepare_password(password) {
                return Outcome::error(format!("Error: cannot_register: Can't register user {u}@{h}: {e}"));
            }
            // Skip the PBKDF2 work when the answer is already known.
            if let Ok(Some(_)) = store.get_credentials(&u, &h) {
                return Outcome::error(format!("Error: conflict: User {u}@{h} already registered"));
            }
            let creds = crate::sasl::derive_credentials_with(password, config.auth.key_policy());
            match store.create_account(&u, &h, &creds) {
                Ok(()) => Outcome::ok(format!("User {u}@{h} successfully registered\n")),
                Err(StoreError::Conflict(_)) => {
                    Outcome::error(format!("Error: conflict: User {u}@{h} already registered"))
                }
                Err(e) => Outcome::error(format!("Error: cannot_register: Can't register user {u}@{h}: {e}")),
            }
        }
        Command::Unregister { user, host } => {
            let (u, h) = match account(config, user, host) {
                Ok(a) => a,
                Err(o) => return o,
            };
            match store.remove_account(&u, &h) {
                Ok(()) => {
                    end_sessions(&Jid::new(Some(&u), &h, None), "account removed");
                    Outcome::ok("")
                }
                Err(StoreError::NotFound(_)) => no_such_user(&u, &h),
                Err(e) => backend(&e),
            }
        }
        Command::ChangePassword { user, host, password } => {
            let (u, h) = match account(config, user, host) {
                Ok(a) => a,
                Err(o) => return o,
            };
            // RFC 8265 §4.2 OpaqueString (see `sasl::password`).
            if let Err(e) = crate::sasl::prepare_password(password) {
                return Outcome::error(format!("Error: bad_argument: newpass: {e}"));
            }
            match store.get_credentials(&u, &h) {
                Ok(Some(_)) => {}
                Ok(None) => return no_such_user(&u, &h),
                Err(e) => return backend(&e),
            }
            let creds = crate::sasl::derive_credentials_with(password, config.auth.key_policy());
            match store.set_credentials(&u, &h, &creds) {
                Ok(()) => {
                    end_sessions(&Jid::new(Some(&u), &h, None), "password changed");
                    Outcome::ok("")
                }
                Err(StoreError::NotFound(_)) => no_such_user(&u, &h),
                Err(e) => backend(&e),
            }
        }
        Command::CheckAccount { user, host } => {
            let (u, h) = match account(config, user, host) {
                Ok(a) => a,
                Err(o) => return o,
            };
            match store.get_credentials(&u, &h) {
                Ok(Some(_)) => Outcome::ok(""),
                Ok(None) => no_such_user(&u, &h),
                Err(e) => backend(&e),
            }
        }
        Command::CheckPassword { user, host, password } => {
            let (u, h) = match account(config, user, host) {
                Ok(a) => a,
                Err(o) => return o,
            };
            match store.get_credentials(&u, &h) {
                Ok(Some(c)) if crate::sasl::verify_password(password, &c) => Outcome::ok(""),
                Ok(Some(_)) => Outcome::error(format!("Error: not_authorized: Wrong password for {u}@{h}")),
                Ok(None) => no_such_user(&u, &h),
                Err(e) => backend(&e),
            }
        }
        Command::RegisteredUsers { host } => {
            let Some(h) = served_host(config, host) else {
                return unknown_host("not_found", host);
            };
            match store.list_users(&h) {
                Ok(mut users) => {
                    users.sort();
                    Outcome::ok(users.iter().map(|u| format!("{u}\n")).collect::<String>())
                }
                Err(e) => backend(&e),
            }
        }
        other => panic!("{} is not a single account command", other.spec().name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::parse;
    use crate::storage::sqlite::SqliteStore;
    use crate::storage::AccountStore;
    use std::cell::RefCell;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn config(dir: &std::path::Path) -> Config {
        let toml = format!(
            "hosts = [\"localhost\", \"Example.ORG\"]\ndata_dir = \"{}\"\n[[listen]]\nkind = \"c2s\"\naddress = \"127.0.0.1:0\"\n",
            dir.display()
        );
        Config::parse(&toml, "test").unwrap()
    }

    #[test]
    fn account_commands_over_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let store = SqliteStore::open(dir.path()).unwrap();
        let ended = RefCell::new(Vec::<(String, String)>::new());
        let end = |j: &Jid, t: &str| ended.borrow_mut().push((j.to_string(), t.to_string()));
        let run = |s: &str| execute_account(&parse(&args(s)).unwrap(), &store, &cfg, &end);

        assert_eq!(
            run("register alice localhost secret"),
            Outcome::ok("User alice@localhost successfully registered\n")
        );
        assert_eq!(run("register Bob LOCALHOST pw2").stdout, "User bob@localhost successfully registered\n");
        let dup = run("register alice localhost other");
        assert_eq!((dup.code, dup.stderr.as_str()), (1, "Error: conflict: User alice@localhost already registered\n"));
        let unknown = run("register carol nowhere.example pw");
        assert_eq!(
            (unknown.code, unknown.stderr.as_str()),
            (1, "Error: cannot_register: Unknown virtual host: nowhere.example\n")
        );
        let bad = run("register a/b localhost pw");
        assert_eq!(bad.code, 1);
        assert!(bad
            .stderr
            .starts_with("Error: cannot_register: Can't register user a/b@localhost: Malformed username"));
        assert_eq!(run("register zed example.org pw").code, 0);

        // Only credentials are stored, and they verify.
        let c = store.get_credentials("alice", "localhost").unwrap().unwrap();
        assert_eq!(c.sha256.iterations, cfg.auth.scram_iterations);
        assert!(crate::sasl::verify_password("secret", &c));

        assert_eq!(run("check_account alice localhost"), Outcome::ok(""));
        assert_eq!(run("check_account ALICE localhost").code, 0);
        let missing = run("check_account nobody localhost");
        assert_eq!(
            (missing.code, missing.stderr.as_str()),
            (1, "Error: not_found: User nobody@localhost does not exist\n")
        );
        assert_eq!(run("check_account alice nowhere.example").code, 1);
        assert_eq!(run("check_password alice localhost secret"), Outcome::ok(""));
        let wrong = run("check_password alice localhost nope");
        assert_eq!(
            (wrong.code, wrong.stderr.as_str()),
            (1, "Error: not_authorized: Wrong password for alice@localhost\n")
        );
        assert_eq!(run("check_password nobody localhost x").code, 1);

        assert!(ended.borrow().is_empty());
        assert_eq!(run("change_password alice localhost new"), Outcome::ok(""));
        assert_eq!(ended.borrow().as_slice(), &[("alice@localhost".to_string(), "password changed".to_string())]);
        assert_eq!(run("check_password alice localhost secret").code, 1);
        assert_eq!(run("check_password alice localhost new").code, 0);
        assert_eq!(run("change_password nobody localhost x").code, 1);

        assert_eq!(run("registered_users localhost"), Outcome::ok("alice\nbob\n"));
        assert_eq!(run("registered_users example.org"), Outcome::ok("zed\n"));
        assert_eq!(
            run("registered_users nowhere.example").stderr,
            "Error: not_found: Unknown virtual host: nowhere.example\n"
        );

        assert_eq!(run("unregister alice localhost"), Outcome::ok(""));
        assert_eq!(ended.borrow().last().unwrap(), &("alice@localhost".to_string(), "account removed".to_string()));
        let gone = run("unregister alice localhost");
        assert_eq!((gone.code, gone.stderr.as_str()), (1, "Error: not_found: User alice@localhost does not exist\n"));
        assert_eq!(run("check_account alice localhost").code, 1);
        assert_eq!(run("registered_users localhost").stdout, "bob\n");
    }

    #[test]
    fn served_hosts_are_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        assert_eq!(served_host(&cfg, "LocalHost").as_deref(), Some("localhost"));
        assert_eq!(served_host(&cfg, "example.org.").as_deref(), Some("example.org"));
        assert_eq!(served_host(&cfg, "a@localhost"), None);
        assert_eq!(served_host(&cfg, "other"), None);
    }
}
