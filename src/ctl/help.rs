//! `xmppd ctl help` and the usage texts of the command table
//! ([`super::commands::COMMANDS`]), with ejabberdctl's wording for wrong
//! argument counts and unknown commands.

use super::commands::{spec, Spec, COMMANDS};
use super::Outcome;

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

pub(super) fn wrong_count(spec: &Spec, given_name: &str, given: usize) -> Outcome {
    let wanted = if spec.name == "help" { 1 } else { spec.args.len() };
    let (n, what) = if given < wanted { (wanted - given, "more") } else { (given - wanted, "less") };
    let plural = if n == 1 { "argument" } else { "arguments" };
    Outcome::error(format!("Error: the command '{given_name}' requires {n} {what} {plural}.\n{}", command_usage(spec)))
}

pub(super) fn unknown_command(name: &str) -> Outcome {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
