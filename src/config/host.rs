//! `[host."DOMAIN"]` tables: per virtual host certificate, admins and
//! registration policy, over the server-wide defaults.
//!
//! ```toml
//! hosts = ["example.org", "example.net"]
//!
//! [host."example.org"]
//! cert = "/etc/letsencrypt/live/example.org/fullchain.pem"
//! key = "/etc/letsencrypt/live/example.org/privkey.pem"
//! admins = ["admin@example.org"]
//!
//! [host."example.org".registration]
//! enabled = true
//! allow_from = ["10.0.0.0/8"]
//! ```
//!
//! Each key of a host's `registration` table overrides the same key of the
//! top-level `[registration]`; a host without its own `cert`/`key` is served
//! with `[tls]` (or the generated certificate).

use super::{check_networks, Config, Registration};
use serde::Deserialize;
use std::path::PathBuf;

/// One `[host."DOMAIN"]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// PEM certificate chain for this domain, chosen by SNI (RFC 6066 §3).
    pub cert: Option<PathBuf>,
    /// PEM private key matching `cert`.
    pub key: Option<PathBuf>,
    /// Bare JIDs administering this host (XEP-0133 commands, `is_admin`).
    #[serde(default)]
    pub admins: Vec<String>,
    /// Overrides of the top-level `[registration]` keys.
    #[serde(default)]
    pub registration: RegistrationOverride,
}

/// `[host."DOMAIN".registration]`: every key optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegistrationOverride {
    /// Overrides `registration.enabled`.
    pub enabled: Option<bool>,
    /// Overrides `registration.allow_from`.
    pub allow_from: Option<Vec<String>>,
    /// Overrides `registration.min_password_length`.
    pub min_password_length: Option<usize>,
}

impl Config {
    /// The `[host."DOMAIN"]` table of a served domain, if any (matched
    /// case-insensitively).
    pub fn host_config(&self, domain: &str) -> Option<&HostConfig> {
        self.host.iter().find(|(k, _)| k.eq_ignore_ascii_case(domain)).map(|(_, v)| v)
    }

    /// The registration policy in force for `domain`: `[registration]` with
    /// that host's overrides applied.
    pub fn registration_for(&self, domain: &str) -> Registration {
        let mut r = self.registration.clone();
        if let Some(o) = self.host_config(domain).map(|h| &h.registration) {
            if let Some(v) = o.enabled {
                r.enabled = v;
            }
            if let Some(v) = &o.allow_from {
                r.allow_from = v.clone();
            }
            if let Some(v) = o.min_password_length {
                r.min_password_length = v;
            }
        }
        r
    }

    /// Whether the bare JID `jid` (already normalised) administers `domain`:
    /// listed in the top-level `admins` (every host) or in that host's
    /// `admins`. The one place the admin check is made.
    pub fn is_admin_of(&self, jid: &crate::jid::Jid, domain: &str) -> bool {
        let bare = jid.to_bare().to_string();
        let per_host = self.host_config(domain).into_iter().flat_map(|h| h.admins.iter());
        self.admins.iter().chain(per_host).any(|a| normalized(a).as_deref() == Some(&bare))
    }

    /// Whether `jid` administers the domain of its own account.
    pub fn is_admin(&self, jid: &crate::jid::Jid) -> bool {
        self.is_admin_of(jid, jid.domain())
    }

    /// Checks of the `host` tables (called from `validate`).
    pub(super) fn validate_hosts(&self) -> Result<(), String> {
        for (name, h) in &self.host {
            let key = format!("host.\"{name}\"");
            if !self.serves(name) {
                return Err(format!("key `{key}`: `{name}` is not listed in `hosts`"));
            }
            match (&h.cert, &h.key) {
                (Some(_), None) => return Err(format!("key `{key}.key`: required with `{key}.cert`")),
                (None, Some(_)) => return Err(format!("key `{key}.cert`: required with `{key}.key`")),
                (Some(c), Some(k)) => {
                    for (sub, p) in [("cert", c), ("key", k)] {
                        std::fs::File::open(p)
                            .map_err(|e| format!("key `{key}.{sub}`: cannot read {}: {e}", p.display()))?;
                    }
                }
                (None, None) => {}
            }
            for a in &h.admins {
                let ok = crate::jid::Jid::parse(a).is_ok_and(|j| j.node().is_some() && j.resource().is_none());
                if !ok {
                    return Err(format!("key `{key}.admins`: `{a}` is not a bare JID like admin@{name}"));
                }
            }
            check_networks(&format!("{key}.registration.allow_from"), h.registration.allow_from.iter().flatten())?;
        }
        Ok(())
    }
}

/// `s` as a normalised bare JID string, if it parses.
fn normalized(s: &str) -> Option<String> {
    crate::jid::Jid::parse(s).ok().map(|j| j.to_bare().to_string())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use crate::jid::Jid;

    const BASE: &str = "hosts = ['a.example', 'b.example']\n[[listen]]\nkind='c2s'\naddress='127.0.0.1:1'\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}{extra}"), "t").map_err(|e| e.to_string())
    }

    #[test]
    fn overrides_apply_per_host() {
        let c = parse(
            "[registration]\nenabled = false\nmin_password_length = 8\n\
             [host.\"b.example\"]\nadmins = ['Boss@B.example']\n\
             [host.\"b.example\".registration]\nenabled = true\nallow_from = ['10.0.0.0/8']\n",
        )
        .unwrap();
        let a = c.registration_for("a.example");
        assert!(!a.enabled && a.allow_from.is_empty() && a.min_password_length == 8);
        let b = c.registration_for("B.EXAMPLE");
        assert!(b.enabled && b.allow_from == ["10.0.0.0/8"] && b.min_password_length == 8);
        assert!(c.is_admin(&Jid::parse("boss@b.example/phone").unwrap()));
        assert!(!c.is_admin_of(&Jid::parse("boss@b.example").unwrap(), "a.example"));
        assert!(!c.is_admin(&Jid::parse("other@b.example").unwrap()));
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse("[host.\"c.example\"]\nadmins = []\n").unwrap_err();
        assert!(e.contains("key `host.\"c.example\"`") && e.contains("not listed in `hosts`"), "{e}");
        let e = parse("[host.\"a.example\"]\ncert = '/nonexistent.pem'\n").unwrap_err();
        assert!(e.contains("key `host.\"a.example\".key`: required"), "{e}");
        let e = parse("[host.\"a.example\"]\nadmins = ['a.example']\n").unwrap_err();
        assert!(e.contains("key `host.\"a.example\".admins`"), "{e}");
        let e = parse("[host.\"a.example\".registration]\nallow_from = ['x']\n").unwrap_err();
        assert!(e.contains("host.\"a.example\".registration.allow_from"), "{e}");
        let e = parse("[host.\"a.example\"]\nregister = true\n").unwrap_err();
        assert!(e.contains("register") && e.contains("line"), "{e}");
    }
}
