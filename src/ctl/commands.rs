//! The command table, argument parsing, help texts, and the account
//! commands, implemented once over `&dyn Store` for both the daemon and the
//! direct-to-store path.
//!
//! Messages follow ejabberdctl (`ejabberd_ctl.erl`, `ejabberd_admin.erl`,
//! `mod_admin_extra.erl`): errors are `Error: <condition>: <text>`, e.g.
//! `Error: conflict: User alice@localhost already registered`.

use super::{Outcome, STATUS_USAGE};
use crate::config::Config;
use crate::jid::{normalize_node, Jid};
use crate::storage::{Store, StoreError};
use std::path::PathBuf;

/// Where a command runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Account commands: through the daemon when it runs, else on the store.
    Account,
    /// Needs the running daemon (sessions, status, stop); exit 3 when down.
    Live,
    /// Runs in the client alone (help).
    Local,
    /// Opens the store directly, whether or not the daemon runs (SQLite
    /// serialises the writers): XEP-0227 import and export.
    Store,
}

/// One command of the table.
#[derive(Debug)]
pub struct Spec {
    /// Canonical name (underscores).
    pub name: &'static str,
    /// Argument names, for usage texts; the count is checked.
    pub args: &'static [&'static str],
    /// One-line description.
    pub desc: &'static str,
    /// Where it runs.
    pub kind: Kind,
}

/// Every command, sorted by name.
pub const COMMANDS: &[Spec] = &[
    Spec {
        name: "change_password",
        args: &["USER", "HOST", "NEWPASS"],
        desc: "Change the password of an account (ends its sessions)",
        kind: Kind::Account,
    },
    Spec {
        name: "check_account",
        args: &["USER", "HOST"],
        desc: "Check if an account exists (exit 0) or not (exit 1)",
        kind: Kind::Account,
    },
    Spec {
        name: "check_password",
        args: &["USER", "HOST", "PASSWORD"],
        desc: "Check if a password is correct (exit 0) or not (exit 1)",
        kind: Kind::Account,
    },
    Spec {
        name: "connected_users",
        args: &[],
        desc: "List the full JIDs of the established sessions",
        kind: Kind::Live,
    },
    Spec { name: "connected_users_number", args: &[], desc: "Number of established sessions", kind: Kind::Live },
    Spec {
        name: "export_piefxis",
        args: &["DIR"],
        desc: "Export all accounts, rosters, vCards, private XML and offline messages to DIR (XEP-0227)",
        kind: Kind::Store,
    },
    Spec { name: "help", args: &["[COMMAND]"], desc: "Show the commands, or the usage of one", kind: Kind::Local },
    Spec {
        name: "import_piefxis",
        args: &["FILE"],
        desc: "Import a XEP-0227 file (ejabberd's or Prosody's export); existing accounts are skipped",
        kind: Kind::Store,
    },
    Spec {
        name: "kick_session",
        args: &["USER", "HOST", "RESOURCE", "REASON"],
        desc: "Kick a user session, with REASON as the stream error text",
        kind: Kind::Live,
    },
    Spec { name: "register", args: &["USER", "HOST", "PASSWORD"], desc: "Register a user", kind: Kind::Account },
    Spec {
        name: "register_bulk",
        args: &["FILE"],
        desc: "Register the accounts in FILE, one `user host password` a line (# comments)",
        kind: Kind::Account,
    },
    Spec {
        name: "registered_users",
        args: &["HOST"],
        desc: "List the users registered in HOST, sorted",
        kind: Kind::Account,
    },
    Spec {
        name: "reload_config",
        args: &[],
        desc: "Reload the configuration file and certificates; sessions stay (changes needing a restart are listed)",
        kind: Kind::Live,
    },
    Spec {
        name: "stats",
        args: &["NAME"],
        desc: "Statistic: registeredusers, onlineusers, onlineusersnode or uptimeseconds",
        kind: Kind::Live,
    },
    Spec {
        name: "stats_host",
        args: &["NAME", "HOST"],
        desc: "Statistic of one host: registeredusers or onlineusers",
        kind: Kind::Live,
    },
    Spec { name: "status", args: &[], desc: "Get the status of the xmppd daemon", kind: Kind::Live },
    Spec { name: "stop", args: &[], desc: "Stop the xmppd daemon gracefully", kind: Kind::Live },
    Spec {
        name: "unregister",
        args: &["USER", "HOST"],
        desc: "Unregister a user (ends its sessions)",
        kind: Kind::Account,
    },
];

/// Look a command up by name; `-` is accepted for `_` (`check-account`).
pub fn spec(name: &str) -> Option<&'static Spec> {
    let name = name.replace('-', "_");
    COMMANDS.iter().find(|s| s.name == name)
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `register USER HOST PASSWORD`.
    Register {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
        /// Password.
        password: String,
    },
    /// `unregister USER HOST`.
    Unregister {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
    },
    /// `change_password USER HOST NEWPASS`.
    ChangePassword {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
        /// The new password.
        password: String,
    },
    /// `check_account USER HOST`.
    CheckAccount {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
    },
    /// `check_password USER HOST PASSWORD`.
    CheckPassword {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
        /// The password to check.
        password: String,
    },
    /// `registered_users HOST`.
    RegisteredUsers {
        /// Domain as given.
        host: String,
    },
    /// `register_bulk FILE`.
    RegisterBulk {
        /// The file, relative to the client's working directory.
        file: PathBuf,
    },
    /// `import_piefxis FILE`.
    ImportPiefxis {
        /// The main file, relative to the client's working directory.
        file: PathBuf,
    },
    /// `export_piefxis DIR`.
    ExportPiefxis {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
    /// `connected_users`.
    ConnectedUsers,
    /// `connected_users_number`.
    ConnectedUsersNumber,
    /// `kick_session USER HOST RESOURCE REASON`.
    KickSession {
        /// Local part as given.
        user: String,
        /// Domain as given.
        host: String,
        /// Resource, exact.
        resource: String,
        /// Stream error text (empty: "Kicked by administrator").
        reason: String,
    },
    /// `reload_config`.
    ReloadConfig,
    /// `stats NAME`.
    Stats {
        /// registeredusers, onlineusers, onlineusersnode, uptimeseconds.
        name: String,
    },
    /// `stats_host NAME HOST`.
    StatsHost {
        /// registeredusers or onlineusers.
        name: String,
        /// Domain as given.
        host: String,
    },
    /// `status`.
    Status,
    /// `stop`.
    Stop,
    /// `help [COMMAND]`.
    Help {
        /// The command asked about.
        topic: Option<String>,
    },
}

impl Command {
    /// The table entry.
    pub fn spec(&self) -> &'static Spec {
        let name = match self {
            Command::Register { .. } => "register",
            Command::Unregister { .. } => "unregister",
            Command::ChangePassword { .. } => "change_password",
            Command::CheckAccount { .. } => "check_account",
            Command::CheckPassword { .. } => "check_password",
            Command::RegisteredUsers { .. } => "registered_users",
            Command::RegisterBulk { .. } => "register_bulk",
            Command::ImportPiefxis { .. } => "import_piefxis",
            Command::ExportPiefxis { .. } => "export_piefxis",
            Command::ConnectedUsers => "connected_users",
            Command::ConnectedUsersNumber => "connected_users_number",
            Command::KickSession { .. } => "kick_session",
            Command::ReloadConfig => "reload_config",
            Command::Stats { .. } => "stats",
            Command::StatsHost { .. } => "stats_host",
            Command::Status => "status",
            Command::Stop => "stop",
            Command::Help { .. } => "help",
        };
        spec(name).expect("every command is in the table")
    }
}

/// Parse `COMMAND ARGS...`. Errors are ready to print: unknown command or
/// wrong argument count (exit 1), no command at all (usage, exit 2).
pub fn parse(args: &[String]) -> Result<Command, Outcome> {
    let Some((name, rest)) = args.split_first() else {
        return Err(Outcome { code: STATUS_USAGE, stdout: String::new(), stderr: usage_text() });
    };
    let Some(spec) = spec(name) else {
        return Err(unknown_command(name));
    };
    if spec.name == "help" {
        return match rest {
            [] => Ok(Command::Help { topic: None }),
            [topic] => Ok(Command::Help { topic: Some(topic.clone()) }),
            _ => Err(wrong_count(spec, name, rest.len())),
        };
    }
    if rest.len() != spec.args.len() {
        return Err(wrong_count(spec, name, rest.len()));
    }
    let a = |i: usize| rest[i].clone();
    Ok(match spec.name {
        "register" => Command::Register { user: a(0), host: a(1), password: a(2) },
        "unregister" => Command::Unregister { user: a(0), host: a(1) },
        "change_password" => Command::ChangePassword { user: a(0), host: a(1), password: a(2) },
        "check_account" => Command::CheckAccount { user: a(0), host: a(1) },
        "check_password" => Command::CheckPassword { user: a(0), host: a(1), password: a(2) },
        "registered_users" => Command::RegisteredUsers { host: a(0) },
        "register_bulk" => Command::RegisterBulk { file: PathBuf::from(a(0)) },
        "import_piefxis" => Command::ImportPiefxis { file: PathBuf::from(a(0)) },
        "export_piefxis" => Command::ExportPiefxis { dir: PathBuf::from(a(0)) },
        "connected_users" => Command::ConnectedUsers,
        "connected_users_number" => Command::ConnectedUsersNumber,
        "kick_session" => Command::KickSession { user: a(0), host: a(1), resource: a(2), reason: a(3) },
        "reload_config" => Command::ReloadConfig,
        "stats" => Command::Stats { name: a(0) },
        "stats_host" => Command::StatsHost { name: a(0), host: a(1) },
        "status" => Command::Status,
        "stop" => Command::Stop,
        other => unreachable!("command {other} has no parser"),
    })
}

/// `Usage: xmppd ctl register USER HOST PASSWORD` plus the description.
pub fn command_usage(spec: &Spec) -> String {
    let mut line = format!("Usage: xmppd ctl {}", spec.name);
    for a in spec.args {
        line.push(' ');
        line.push_str(a);
    }
    format!("{line}\n  {}\n", spec.desc)
}

/// The full usage text: every command with its arguments.
pub fn usage_text() -> String {
    let shown: Vec<(String, &str)> = COMMANDS
        .iter()
        .map(|s| {
            let mut call = s.name.to_string();
            for a in s.args {
                call.push(' ');
                call.push_str(a);
            }
            (call, s.desc)
        })
        .collect();
    let width = shown.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    let mut out = String::from("Usage: xmppd ctl [--config FILE] COMMAND [ARGUMENTS]\n\nAvailable commands:\n");
    for (call, desc) in shown {
        out.push_str(&format!("  {call:<width$}  {desc}\n"));
    }
    out.push_str(
        "\nHyphenated spellings (check-account) work too.\n\
         Exit codes: 0 success, 1 error, 2 usage, 3 xmppd is not running.\n",
    );
    out
}

/// `help [COMMAND]`: on stdout, exit 0.
pub fn help(topic: Option<&str>) -> Outcome {
    match topic {
        None => Outcome::ok(usage_text()),
        Some(t) => match spec(t) {
            Some(s) => Outcome::ok(command_usage(s)),
            None => Outcome::error(format!("Error: no command found that matches '{t}'")),
        },
    }
}

fn wrong_count(spec: &Spec, given_name: &str, given: usize) -> Outcome {
    let wanted = if spec.name == "help" { 1 } else { spec.args.len() };
    let (n, what) = if given < wanted { (wanted - given, "more") } else { (given - wanted, "less") };
    let plural = if n == 1 { "argument" } else { "arguments" };
    Outcome::error(format!("Error: the command '{given_name}' requires {n} {what} {plural}.\n{}", command_usage(spec)))
}

fn unknown_command(name: &str) -> Outcome {
    let best = COMMANDS
        .iter()
        .map(|s| (edit_distance(&name.replace('-', "_"), s.name), s.name))
        .min()
        .filter(|(d, _)| *d <= 3)
        .map(|(_, n)| n);
    let mut msg = format!("Error: unknown command '{name}'.");
    if let Some(b) = best {
        msg = format!("Error: unknown command '{name}'. Did you mean '{b}'?");
    }
    Outcome::error(format!("{msg}\nRun 'xmppd ctl help' for the list of commands."))
}

/// Levenshtein distance (for "Did you mean").
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

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
            let creds = crate::sasl::derive_credentials(password, config.auth.scram_iterations);
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
            let creds = crate::sasl::derive_credentials(password, config.auth.scram_iterations);
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
    fn parses_every_command() {
        assert_eq!(
            parse(&args("register alice localhost pw")).unwrap(),
            Command::Register { user: "alice".into(), host: "localhost".into(), password: "pw".into() }
        );
        assert_eq!(
            parse(&args("check-account alice localhost")).unwrap(),
            Command::CheckAccount { user: "alice".into(), host: "localhost".into() }
        );
        assert_eq!(parse(&args("connected-users-number")).unwrap(), Command::ConnectedUsersNumber);
        assert_eq!(
            parse(&args("kick_session a localhost res bye")).unwrap(),
            Command::KickSession {
                user: "a".into(),
                host: "localhost".into(),
                resource: "res".into(),
                reason: "bye".into()
            }
        );
        assert_eq!(parse(&args("help")).unwrap(), Command::Help { topic: None });
        assert_eq!(parse(&args("help register")).unwrap(), Command::Help { topic: Some("register".into()) });
        assert_eq!(parse(&args("register_bulk f.txt")).unwrap(), Command::RegisterBulk { file: "f.txt".into() });
        // Every table entry parses with the right number of arguments.
        for s in COMMANDS {
            let mut a = vec![s.name.to_string()];
            if s.name != "help" {
                a.extend(s.args.iter().map(|x| x.to_lowercase()));
            }
            assert_eq!(parse(&a).unwrap().spec().name, s.name);
        }
        // Passwords keep their spaces and leading dashes.
        let a = vec!["register".into(), "a".into(), "localhost".into(), "-x y".into()];
        assert!(matches!(parse(&a).unwrap(), Command::Register { password, .. } if password == "-x y"));
    }

    #[test]
    fn usage_errors() {
        let o = parse(&[]).unwrap_err();
        assert_eq!(o.code, STATUS_USAGE);
        assert!(o.stderr.starts_with("Usage: xmppd ctl"), "{}", o.stderr);

        let o = parse(&args("register alice localhost")).unwrap_err();
        assert_eq!(o.code, 1);
        assert!(o.stderr.starts_with("Error: the command 'register' requires 1 more argument.\n"), "{}", o.stderr);
        assert!(o.stderr.contains("Usage: xmppd ctl register USER HOST PASSWORD"), "{}", o.stderr);

        let o = parse(&args("check-account a b c d")).unwrap_err();
        assert!(o.stderr.starts_with("Error: the command 'check-account' requires 2 less arguments."), "{}", o.stderr);
        assert!(o.stderr.contains("Usage: xmppd ctl check_account USER HOST"), "{}", o.stderr);

        let o = parse(&args("regster a b c")).unwrap_err();
        assert_eq!(o.code, 1);
        assert!(o.stderr.starts_with("Error: unknown command 'regster'. Did you mean 'register'?"), "{}", o.stderr);
        let o = parse(&args("frobnicate")).unwrap_err();
        assert!(o.stderr.starts_with("Error: unknown command 'frobnicate'.\n"), "{}", o.stderr);

        assert_eq!(parse(&args("help a b")).unwrap_err().code, 1);
        assert!(parse(&args("status now")).is_err());
    }

    #[test]
    fn help_texts() {
        let h = help(None);
        assert_eq!(h.code, 0);
        for s in COMMANDS {
            assert!(h.stdout.contains(s.name), "{}", s.name);
        }
        let h = help(Some("change-password"));
        assert_eq!(h.stdout, "Usage: xmppd ctl change_password USER HOST NEWPASS\n  Change the password of an account (ends its sessions)\n");
        assert_eq!(help(Some("nope")).code, 1);
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("stauts", "status"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kick_session", "kick_session"), 0);
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
