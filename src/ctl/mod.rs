//! `xmppd ctl`: administration commands with ejabberdctl's names, messages
//! and exit codes, and the admin socket that serves them inside the daemon.
//!
//! - [`commands`]: the command table and argument parsing; [`help`]: the
//!   help and usage texts.
//! - [`accounts`]: the one implementation of the account commands over any
//!   [`Store`](crate::storage::Store).
//! - [`client`]: what `xmppd ctl` runs. It first connects to the admin socket
//!   (`data_dir/admin.sock`); when the daemon answers every command goes
//!   through it, so account changes take effect at once and end sessions.
//!   When nothing listens, account commands open the store directly and the
//!   live commands report that xmppd is not running (exit 3).
//! - [`server`]: the admin socket inside the daemon (mode 0600).
//! - [`protocol`]: the wire format between the two.
//! - [`bulk`]: `register_bulk`: file parsing, parallel credential derivation.
//! - [`migrate`]: `import_piefxis` / `export_piefxis` (XEP-0227) on the store.
//!
//! Exit codes are ejabberdctl's: 0 success, 1 error, 2 usage (no command),
//! 3 the daemon cannot be reached ("Failed RPC connection").

pub mod accounts;
pub mod bulk;
pub mod client;
pub mod commands;
pub mod help;
pub mod migrate;
pub mod protocol;
pub mod server;
pub mod stats;

use std::io::Write;
use std::path::Path;

/// Exit code: success.
pub const STATUS_SUCCESS: i32 = 0;
/// Exit code: the command failed (or wrong arguments).
pub const STATUS_ERROR: i32 = 1;
/// Exit code: no command given, usage printed.
pub const STATUS_USAGE: i32 = 2;
/// Exit code: the daemon cannot be reached (ejabberdctl's `STATUS_BADRPC`).
pub const STATUS_BADRPC: i32 = 3;

/// What a command produced: the exit code and both output streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Process exit code.
    pub code: i32,
    /// Text for stdout (each line ends with `\n`).
    pub stdout: String,
    /// Text for stderr (each line ends with `\n`).
    pub stderr: String,
}

impl Outcome {
    /// Success with this stdout (may be empty).
    pub fn ok(stdout: impl Into<String>) -> Outcome {
        Outcome { code: STATUS_SUCCESS, stdout: stdout.into(), stderr: String::new() }
    }

    /// Failure with `code` and one message line on stderr.
    pub fn fail(code: i32, message: impl AsRef<str>) -> Outcome {
        let mut stderr = message.as_ref().to_string();
        if !stderr.ends_with('\n') {
            stderr.push('\n');
        }
        Outcome { code, stdout: String::new(), stderr }
    }

    /// [`STATUS_ERROR`] with one message line on stderr.
    pub fn error(message: impl AsRef<str>) -> Outcome {
        Outcome::fail(STATUS_ERROR, message)
    }
}

/// Run `xmppd ctl [--config FILE] COMMAND ARGS...` (`args` starts with the
/// command) and return the outcome without printing it.
pub fn run(config_path: Option<&Path>, args: &[String]) -> Outcome {
    client::run(config_path, args)
}

/// The CLI entry: run the command, print its output, return the exit code.
pub fn run_cli(config_path: Option<&Path>, args: Vec<String>) -> i32 {
    let outcome = run(config_path, &args);
    // Ignore write errors (a closed pipe must not turn into a panic).
    let _ = std::io::stdout().lock().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().lock().write_all(outcome.stderr.as_bytes());
    outcome.code
}
