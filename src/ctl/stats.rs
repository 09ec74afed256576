//! `stats`, `stats_host` (ejabberdctl's names and output: the bare number)
//! and `reload_config`, run inside the daemon.

use super::accounts::{served_host, unknown_host};
use super::Outcome;
use crate::server::Shared;

/// `stats NAME` (host `None`) or `stats_host NAME HOST`.
pub fn stats(shared: &Shared, name: &str, host: Option<&str>) -> Outcome {
    let cfg = shared.config();
    let hosts: Vec<String> = match host {
        None => cfg.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        Some(h) => match served_host(&cfg, h) {
            Some(h) => vec![h],
            None => return unknown_host("not_found", h),
        },
    };
    let value = match (name, host) {
        ("registeredusers", _) => {
            let mut total = 0;
            for h in &hosts {
                match shared.store.count_users(h) {
                    Ok(n) => total += n,
                    Err(e) => return Outcome::error(format!("Error: internal: counting the users of {h}: {e}")),
                }
            }
            total
        }
        ("onlineusers", Some(_)) => hosts.iter().map(|h| shared.metrics.sessions_on(h).max(0) as u64).sum(),
        // One node: the node's sessions are all the sessions.
        ("onlineusers" | "onlineusersnode", None) => shared.router.session_count() as u64,
        ("uptimeseconds", None) => shared.metrics.uptime().as_secs(),
        _ => {
            let names = if host.is_some() {
                "registeredusers, onlineusers"
            } else {
                "registeredusers, onlineusers, onlineusersnode, uptimeseconds"
            };
            return Outcome::error(format!("Error: bad_argument: unknown statistic '{name}' (one of: {names})"));
        }
    };
    Outcome::ok(format!("{value}\n"))
}

/// `reload_config`: what was applied on stdout, what needs a restart as
/// `Warning:` lines on stderr (exit 0); a refused configuration is exit 1.
pub fn reload_config(shared: &Shared) -> Outcome {
    match crate::reload::reload(shared) {
        Ok(report) => {
            let (stdout, stderr) = report.texts();
            Outcome { code: super::STATUS_SUCCESS, stdout, stderr }
        }
        Err(e) => Outcome::error(format!("Error: configuration not reloaded, nothing changed: {e}")),
    }
}
