//! The `xmppd ctl` side: parse, then route the command to the daemon's admin
//! socket, or run it on the store when nothing listens there.

use super::commands::{self, Command, Kind};
use super::protocol::{self, KIND_BULK, KIND_COMMAND};
use super::{accounts, bulk, help, Outcome, STATUS_BADRPC};
use crate::config::Config;
use crate::storage::sqlite::SqliteStore;
use std::io::ErrorKind;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the client waits for the daemon's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the client may take to send its request.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the admin socket told us.
enum Daemon {
    /// Connected.
    Up(UnixStream),
    /// Nothing listens (no socket file, or a stale one).
    Down,
    /// Connecting failed otherwise (permissions, path too long, ...).
    Unreachable(std::io::Error),
}

fn connect(path: &Path) -> Daemon {
    match UnixStream::connect(path) {
        Ok(s) => {
            let _ = s.set_read_timeout(Some(READ_TIMEOUT));
            let _ = s.set_write_timeout(Some(WRITE_TIMEOUT));
            Daemon::Up(s)
        }
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => Daemon::Down,
        Err(e) => Daemon::Unreachable(e),
    }
}

/// Exit 3 with ejabberdctl's first line "Failed RPC connection to the node
/// xmppd: REASON", then what it means for xmppd.
fn badrpc(reason: impl std::fmt::Display, detail: String) -> Outcome {
    Outcome::fail(STATUS_BADRPC, format!("Failed RPC connection to the node xmppd: {reason}\n{detail}"))
}

/// The message when the daemon is not running (exit 3, like ejabberdctl's
/// "Failed RPC connection to the node ...: nodedown").
pub fn down(config: &Config) -> Outcome {
    badrpc(
        "nodedown",
        format!(
            "xmppd is not running: nothing listens on its admin socket {}\n\
             (start it with `xmppd serve`, using the same configuration and data_dir)",
            config.admin_socket().display()
        ),
    )
}

fn unreachable(config: &Config, e: &std::io::Error) -> Outcome {
    let socket = config.admin_socket();
    badrpc(
        e,
        format!("cannot connect to the admin socket {} (run xmppd ctl as the user that runs xmppd)", socket.display()),
    )
}

fn lost(config: &Config, e: &std::io::Error) -> Outcome {
    let socket = config.admin_socket();
    badrpc(
        e,
        format!("the daemon did not answer on {}; the command may or may not have taken effect", socket.display()),
    )
}

/// Parse and run a command line (without printing).
pub fn run(config_path: Option<&Path>, args: &[String]) -> Outcome {
    let cmd = match commands::parse(args) {
        Ok(c) => c,
        Err(o) => return o,
    };
    if let Command::Help { topic } = &cmd {
        return help::help(topic.as_deref());
    }
    let config = match Config::load(config_path) {
        Ok((c, _)) => c,
        Err(e) => return Outcome::error(format!("Error: {e}")),
    };
    if cmd.spec().kind == Kind::Store {
        return super::migrate::run(&cmd, &config);
    }
    match connect(&config.admin_socket()) {
        Daemon::Up(stream) => through_daemon(stream, &cmd, args, &config),
        Daemon::Down => without_daemon(&cmd, &config),
        Daemon::Unreachable(e) => unreachable(&config, &e),
    }
}

/// Send the command line (canonical name, arguments as given).
fn through_daemon(mut stream: UnixStream, cmd: &Command, args: &[String], config: &Config) -> Outcome {
    if let Command::RegisterBulk { file } = cmd {
        drop(stream);
        return register_bulk_via_daemon(file, config, bulk::BATCH);
    }
    let mut fields = vec![cmd.spec().name.to_string()];
    fields.extend(args[1..].iter().cloned());
    match protocol::exchange(&mut stream, KIND_COMMAND, &fields) {
        Ok(o) => o,
        Err(e) => lost(config, &e),
    }
}

/// `register_bulk` through a running daemon, `batch` accounts per request
/// (the CLI uses [`bulk::BATCH`]; tests use small batches).
pub fn register_bulk_via_daemon(file: &Path, config: &Config, batch: usize) -> Outcome {
    let (rows, duplicates) = match bulk::prepare(file, config) {
        Ok(r) => r,
        Err(o) => return o,
    };
    let (mut created, mut existed) = (0, duplicates);
    for batch in rows.chunks(batch.max(1)) {
        let answer = match connect(&config.admin_socket()) {
            Daemon::Up(mut s) => protocol::exchange(&mut s, KIND_BULK, &bulk::encode_batch(batch)),
            Daemon::Down => Err(std::io::Error::new(ErrorKind::ConnectionRefused, "the daemon stopped")),
            Daemon::Unreachable(e) => Err(e),
        };
        let partial = |mut o: Outcome| {
            o.stderr.push_str(&format!("{created} users registered, {existed} already existed before the error\n"));
            o
        };
        match answer {
            Ok(o) if o.code == 0 => match bulk::parse_batch_answer(&o.stdout) {
                Some((c, e)) => {
                    created += c;
                    existed += e;
                }
                None => return partial(Outcome::error(format!("Error: internal: unexpected answer {:?}", o.stdout))),
            },
            Ok(o) => return partial(o),
            Err(e) => return partial(lost(config, &e)),
        }
    }
    bulk::summary(created, existed)
}

/// The daemon is not running: account commands use the store directly.
fn without_daemon(cmd: &Command, config: &Config) -> Outcome {
    if cmd.spec().kind != Kind::Account {
        return down(config);
    }
    let store = match SqliteStore::open(&config.data_dir) {
        Ok(s) => s,
        Err(e) => return Outcome::error(format!("Error: internal: {e}")),
    };
    if let Command::RegisterBulk { file } = cmd {
        let (rows, duplicates) = match bulk::prepare(file, config) {
            Ok(r) => r,
            Err(o) => return o,
        };
        return match store.create_accounts_bulk(&rows) {
            Ok(created) => bulk::summary(created, rows.len() - created + duplicates),
            Err(e) => Outcome::error(format!("Error: internal: {e}\nNo account was registered.")),
        };
    }
    // No sessions to end: nobody is connected.
    accounts::execute_account(cmd, &store, config, &|_, _| {})
}
