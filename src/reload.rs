//! Live reload (SIGHUP, `xmppd ctl reload_config`): read the configuration
//! file again, reload every certificate, and put the new configuration in
//! force without touching established sessions.
//!
//! Reloaded: certificates (`[tls]`, `[host."DOMAIN"] cert`/`key`, the
//! generated one), `[auth]`, `[limits]`, `[registration]`, `[im]`,
//! `log.level`, `admins`, and every `[host."DOMAIN"]` table (admins,
//! registration).
//! New limits apply to new connections and to each check made afterwards
//! (a session bound before keeps its outbound queue size).
//!
//! Not reloaded — they need a restart, and each change is reported (a
//! warning in the log and in the ctl answer) while the running value stays:
//! `listen` (sockets are bound once), `data_dir` (the open store and admin
//! socket), `hosts` (the routing table and the generated certificate's
//! names), `log.format` (the installed log writer).
//!
//! A configuration that fails to parse, validate, or whose certificates do
//! not load is refused whole: nothing changes.

use crate::config::{Config, EMBEDDED_DEFAULT};
use crate::server::Shared;
use std::fmt::Debug;

/// What a reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Where the configuration was read from.
    pub source: String,
    /// Sections whose new values are in force.
    pub applied: Vec<String>,
    /// Changes that need a restart (the running value stays).
    pub restart_needed: Vec<String>,
}

impl Report {
    /// The text for `xmppd ctl reload_config`: stdout, stderr warnings.
    pub fn texts(&self) -> (String, String) {
        let changed = if self.applied.is_empty() { "none".to_string() } else { self.applied.join(", ") };
        let out = format!("Configuration reloaded from {}\nCertificates reloaded\nChanged: {changed}\n", self.source);
        let err: String = self.restart_needed.iter().map(|w| format!("Warning: {w}\n")).collect();
        (out, err)
    }
}

/// Read the configuration file again (the one the daemon started with;
/// the embedded default if it started without one) and apply it.
pub fn reload(shared: &Shared) -> Result<Report, String> {
    let parsed = match shared.config_file.get() {
        Some(p) => Config::load(Some(p)).map(|(c, _)| (c, p.display().to_string())),
        None => Config::parse(EMBEDDED_DEFAULT, "embedded default").map(|c| (c, "embedded default".to_string())),
    };
    let result = parsed.map_err(|e| e.to_string()).and_then(|(c, source)| apply(shared, c, source));
    match &result {
        Ok(r) => {
            crate::metrics::Metrics::inc(&shared.metrics.config_reloads_total);
            tracing::info!(source = %r.source, changed = ?r.applied, "configuration reloaded");
            for w in &r.restart_needed {
                tracing::warn!("configuration reload: {w}");
            }
        }
        Err(e) => {
            crate::metrics::Metrics::inc(&shared.metrics.config_reload_failures_total);
            tracing::error!("configuration reload refused, nothing changed: {e}");
        }
    }
    result
}

fn differs<T: Debug>(a: &T, b: &T) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// Put `new` in force (see the module doc for what changes live).
pub fn apply(shared: &Shared, mut new: Config, source: String) -> Result<Report, String> {
    let old = shared.config();
    let mut report = Report { source, ..Report::default() };
    let restart = |key: &str, a: &dyn Debug, b: &dyn Debug| {
        format!("key `{key}` changed from {a:?} to {b:?}; restart xmppd to apply it (the running value stays)")
    };
    let old_listen: Vec<_> = old.listen.iter().map(|l| (l.kind, l.address)).collect();
    let new_listen: Vec<_> = new.listen.iter().map(|l| (l.kind, l.address)).collect();
    if old_listen != new_listen {
        report.restart_needed.push(restart("listen", &old_listen, &new_listen));
        new.listen = old.listen.clone();
    }
    if old.data_dir != new.data_dir {
        report.restart_needed.push(restart("data_dir", &old.data_dir, &new.data_dir));
        new.data_dir = old.data_dir.clone();
    }
    if old.hosts != new.hosts {
        report.restart_needed.push(restart("hosts", &old.hosts, &new.hosts));
        new.hosts = old.hosts.clone();
        new.host.retain(|name, _| old.serves(name));
    }
    if old.log.format != new.log.format {
        report.restart_needed.push(restart("log.format", &old.log.format, &new.log.format));
        new.log.format = old.log.format;
    }
    // Certificates first: if one fails to load, nothing changes.
    shared.certs.reload(&new).map_err(|e| e.to_string())?;
    if old.log.level != new.log.level {
        if let Some(set) = shared.log_filter.get() {
            set(&new.log.level).map_err(|e| format!("key `log.level`: {e}"))?;
        }
        report.applied.push("log.level".into());
    }
    for (name, changed) in [
        ("tls", differs(&old.tls, &new.tls)),
        ("admins", differs(&old.admins, &new.admins)),
        ("auth", differs(&old.auth, &new.auth)),
        ("limits", differs(&old.limits, &new.limits)),
        ("registration", differs(&old.registration, &new.registration)),
        ("im", differs(&old.im, &new.im)),
        ("host", differs(&old.host, &new.host)),
    ] {
        if changed {
            report.applied.push(name.into());
        }
    }
    drop(old);
    shared.set_config(new);
    Ok(report)
}
