//! The command table and argument parsing. Help and usage texts are in
//! [`super::help`], the account commands in [`super::accounts`].
//!
//! Messages follow ejabberdctl (`ejabberd_ctl.erl`, `ejabberd_admin.erl`,
//! `mod_admin_extra.erl`): errors are `Error: <condition>: <text>`, e.g.
//! `Error: conflict: User alice@localhost already registered`.

use super::help::{unknown_command, usage_text, wrong_count};
use super::{Outcome, STATUS_USAGE};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
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
}
