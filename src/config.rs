//! Configuration: TOML, `load -> parse -> validate()`, defaults in one place.
//!
//! Unknown keys and bad types are errors that name the key and line (serde's
//! `deny_unknown_fields` with the toml crate's spans).

mod cidr;
mod host;

pub use cidr::{check_networks, in_networks};

pub use host::{HostConfig, RegistrationOverride};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Where the configuration came from (for logs and errors).
#[derive(Clone, Debug)]
pub enum Source {
    /// Read from this file.
    File(PathBuf),
    /// No file found: the embedded default.
    Embedded,
}

/// Paths searched when `--config` is not given, in order.
pub const SEARCH_PATHS: &[&str] = &["./config/xmppd.toml", "/etc/xmppd/xmppd.toml"];

/// The embedded default (used when no file is found).
pub const EMBEDDED_DEFAULT: &str = r#"
hosts = ["localhost"]
data_dir = "./data"
[[listen]]
kind = "c2s"
address = "0.0.0.0:5222"
"#;

/// The whole configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Served domains (RFC 6120 §4.7.2 `to` must name one).
    pub hosts: Vec<String>,
    /// Bare JIDs administering every host (XEP-0133 commands); per-host
    /// admins are in `[host."DOMAIN"]`. Checked by [`Config::is_admin_of`].
    #[serde(default)]
    pub admins: Vec<String>,
    /// Embedded store, generated certificates, admin socket.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Listeners.
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// Certificate and key; when absent a self-signed one is generated.
    #[serde(default)]
    pub tls: Option<TlsFiles>,
    /// Authentication policy.
    #[serde(default)]
    pub auth: Auth,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// Logging.
    #[serde(default)]
    pub log: Log,
    /// In-band registration (XEP-0077).
    #[serde(default)]
    pub registration: Registration,
    /// IM limits and timers (RFC 6121, XEP-0160, XEP-0199).
    #[serde(default)]
    pub im: Im,
    /// `[host."DOMAIN"]`: per virtual host certificate, admins, registration.
    #[serde(default)]
    pub host: BTreeMap<String, HostConfig>,
}

/// `[registration]`: XEP-0077 in-band registration, off by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    /// Allow new accounts to be created over XMPP.
    pub enabled: bool,
    /// Access rule: source networks (CIDR, e.g. "127.0.0.0/8", "::1/128")
    /// allowed to register; empty means anyone.
    pub allow_from: Vec<String>,
    /// Shortest password accepted for a new account or a password change.
    pub min_password_length: usize,
    /// Accounts one source address may create per `ip_window_secs`
    /// (ejabberd's `registration_timeout`, Prosody's
    /// `registration_throttle_max`); 0 = no limit, e.g. for a load test
    /// that registers its users in-band.
    pub max_per_ip: u32,
    /// The window of `max_per_ip`, seconds.
    pub ip_window_secs: u64,
}

impl Default for Registration {
    fn default() -> Self {
        Registration {
            enabled: false,
            allow_from: Vec::new(),
            min_password_length: 6,
            max_per_ip: 5,
            ip_window_secs: 60,
        }
    }
}

/// `[im]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Im {
    /// Most items in one roster (RFC 6121 §2.3.3 lets a server limit it).
    pub max_roster_items: usize,
    /// Most offline messages stored per user (XEP-0160); beyond it senders
    /// get `<service-unavailable/>`.
    pub max_offline_messages: usize,
    /// Seconds of silence after which the server pings a client (XEP-0199
    /// §4.1); 0 disables.
    pub ping_interval_secs: u64,
    /// Seconds to wait for the ping's answer before closing the session.
    pub ping_timeout_secs: u64,
}

impl Default for Im {
    fn default() -> Self {
        Im { max_roster_items: 1000, max_offline_messages: 500, ping_interval_secs: 300, ping_timeout_secs: 60 }
    }
}

/// Kinds of listener.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ListenKind {
    /// Client-to-server, STARTTLS offered (RFC 6120 §5); a TLS ClientHello
    /// arriving first is served as direct TLS.
    C2s,
    /// Client-to-server over direct TLS (XEP-0368).
    C2sDirectTls,
    /// HTTP: Prometheus `/metrics` (later WebSocket, BOSH, uploads).
    Http,
}

/// One `[[listen]]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// What is served.
    pub kind: ListenKind,
    /// Socket address, e.g. `0.0.0.0:5222`.
    pub address: SocketAddr,
}

/// `[tls]`: PEM files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[auth] scram_hashes` entries.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum ScramHash {
    /// SCRAM-SHA-1[-PLUS] (RFC 5802).
    #[serde(rename = "sha-1")]
    Sha1,
    /// SCRAM-SHA-256[-PLUS] (RFC 7677).
    #[serde(rename = "sha-256")]
    Sha256,
}

impl Auth {
    /// How new passwords become stored keys.
    pub fn key_policy(&self) -> crate::sasl::KeyPolicy {
        crate::sasl::KeyPolicy {
            iterations: self.scram_iterations,
            sha1: self.offers(crate::sasl::Hash::Sha1),
            sha256: self.offers(crate::sasl::Hash::Sha256),
        }
    }

    /// Whether SCRAM mechanisms over `hash` are offered.
    pub fn offers(&self, hash: crate::sasl::Hash) -> bool {
        self.scram_hashes.contains(&match hash {
            crate::sasl::Hash::Sha1 => ScramHash::Sha1,
            crate::sasl::Hash::Sha256 => ScramHash::Sha256,
        })
    }
}

/// `[auth]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Allow SASL on unencrypted streams (RFC 6120 §5.3.1 makes TLS
    /// mandatory-to-negotiate; only for loopback tests).
    pub allow_plaintext: bool,
    /// Offer XEP-0078 Non-SASL Authentication (`jabber:iq:auth`, plaintext
    /// password over TLS) besides SASL, for old clients and load tools
    /// such as tsung's `auth_get`/`auth_set_plain` (ejabberd's
    /// mod_legacy_auth, Prosody's mod_legacyauth; off by default in both).
    pub legacy_auth: bool,
    /// PBKDF2 iterations for newly stored SCRAM credentials.
    pub scram_iterations: u32,
    /// SCRAM hash families stored for new passwords and offered as
    /// mechanisms (ejabberd's `auth_scram_hash`, but any set of them).
    pub scram_hashes: Vec<ScramHash>,
    /// SASL failures from one source address within `ban_secs` after which
    /// the address is banned for `ban_secs` (ejabberd mod_fail2ban's
    /// `c2s_max_auth_failures`); 0 disables banning.
    pub max_failures_per_ip: u32,
    /// Ban length and failure-counting window, seconds (mod_fail2ban's
    /// `c2s_auth_ban_lifetime`).
    pub ban_secs: u64,
    /// Base delay before a `<failure/>` is answered, milliseconds; it
    /// doubles with each further failure of the address or account within
    /// the window (the first failure is not delayed), capped at ten times
    /// this value. 0 disables delays.
    pub failure_delay_ms: u64,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            allow_plaintext: false,
            legacy_auth: false,
            scram_iterations: 4096,
            scram_hashes: vec![ScramHash::Sha1, ScramHash::Sha256],
            max_failures_per_ip: 20,
            ban_secs: 3600,
            failure_delay_ms: 500,
        }
    }
}

/// `[limits] session_limit`: what happens when an account binds one
/// resource more than `max_sessions_per_account`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionLimit {
    /// Close the account's oldest session with `<conflict/>` (what
    /// ejabberd's `max_user_sessions` does).
    ReplaceOldest,
    /// Refuse the new bind with `<resource-constraint/>` (RFC 6120 §7.6.2.1).
    Refuse,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest stanza accepted, bytes (`<policy-violation/>` beyond).
    pub max_stanza_size: usize,
    /// Deepest element nesting inside a stanza.
    pub max_depth: usize,
    /// Most simultaneous client connections.
    pub max_connections: usize,
    /// Outbound queue per session, stanzas.
    pub outbound_queue: usize,
    /// Seconds a connection may take to authenticate.
    pub auth_timeout_secs: u64,
    /// SASL failures allowed on one connection before it is closed.
    pub max_auth_failures: u32,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest attribute value, bytes (as written, before unescaping).
    pub max_attribute_size: usize,
    /// Most simultaneous connections from one source address; 0 = no limit.
    pub max_connections_per_ip: usize,
    /// Most bound sessions (resources) of one account.
    pub max_sessions_per_account: usize,
    /// What a bind beyond `max_sessions_per_account` does.
    pub session_limit: SessionLimit,
    /// Bytes queued for one session (besides `outbound_queue` stanzas)
    /// before it counts as not reading and is closed with `<policy-violation/>`.
    pub outbound_queue_bytes: usize,
    /// Per-connection read rate, bytes per second (a token bucket holding
    /// `max_stanza_size` plus one second's worth, like ejabberd's shapers):
    /// over it the server stops reading until tokens refill; 0 = off.
    pub shaper_bytes_per_sec: u64,
    /// Per-connection stanza rate, stanzas per second (bucket of two
    /// seconds' worth); over it the server stops reading; 0 = off.
    pub stanzas_per_sec: u64,
    /// Networks (CIDR) the per-address limits skip: `max_connections_per_ip`,
    /// the `auth.max_failures_per_ip` ban and per-address failure delay, and
    /// `registration.max_per_ip`. Loopback by default: behind a local TLS
    /// terminator or gateway every client arrives from it, and one address's
    /// limits would cap or ban them all (a local load test likewise).
    pub exempt_networks: Vec<String>,
}

impl Limits {
    /// Whether the per-address limits skip `ip` (`exempt_networks`).
    pub fn exempt(&self, ip: std::net::IpAddr) -> bool {
        in_networks(&self.exempt_networks, ip)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_size: 256 * 1024,
            max_depth: 64,
            max_connections: 100_000,
            outbound_queue: 1024,
            auth_timeout_secs: 60,
            max_auth_failures: 3,
            max_attributes: 64,
            max_attribute_size: 16 * 1024,
            max_connections_per_ip: 1000,
            max_sessions_per_account: 10,
            session_limit: SessionLimit::ReplaceOldest,
            outbound_queue_bytes: 2 * 1024 * 1024,
            shaper_bytes_per_sec: 64 * 1024,
            stanzas_per_sec: 200,
            exempt_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
        }
    }
}

/// `[log]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// Filter in tracing's EnvFilter syntax (`info`, `xmppd=debug`, ...);
    /// `RUST_LOG` overrides it.
    pub level: String,
    /// Line format on stderr.
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line (tracing-subscriber's JSON formatter).
    Json,
}

impl Default for Log {
    fn default() -> Self {
        Log { level: "info".into(), format: LogFormat::Text }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// A configuration error, with the file and the key or line it is about.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct ConfigError {
    /// The file (or "embedded default").
    pub origin: String,
    /// What is wrong, naming the key or line.
    pub message: String,
}

impl Config {
    /// Find and load the configuration: `path` if given, else the first of
    /// [`SEARCH_PATHS`] that exists, else [`EMBEDDED_DEFAULT`].
    pub fn load(path: Option<&Path>) -> Result<(Config, Source), ConfigError> {
        let file = match path {
            Some(p) => Some(p.to_path_buf()),
            None => SEARCH_PATHS.iter().map(PathBuf::from).find(|p| p.exists()),
        };
        match file {
            Some(p) => {
                let text = std::fs::read_to_string(&p).map_err(|e| ConfigError {
                    origin: p.display().to_string(),
                    message: format!("cannot read file: {e}"),
                })?;
                let cfg = Config::parse(&text, &p.display().to_string())?;
                Ok((cfg, Source::File(p)))
            }
            None => Ok((Config::parse(EMBEDDED_DEFAULT, "embedded default")?, Source::Embedded)),
        }
    }

    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError { origin: origin.to_string(), message };
        let cfg: Config = toml::from_str(text).map_err(|e| {
            // The line number and, for a value error, the line itself, so
            // the message names the key.
            let line = e
                .span()
                .map(|s| {
                    let at = s.start.min(text.len());
                    let n = text.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count() + 1;
                    match text.lines().nth(n - 1).map(str::trim).filter(|l| l.contains('=')) {
                        Some(l) => format!("line {n} (`{l}`): "),
                        None => format!("line {n}: "),
                    }
                })
                .unwrap_or_default();
            err(format!("{line}{}", e.message()))
        })?;
        cfg.validate().map_err(err)?;
        Ok(cfg)
    }

    /// Checks serde cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err("key `hosts`: at least one host is required".into());
        }
        for h in &self.hosts {
            if crate::jid::Jid::parse(h).map(|j| j.node().is_some() || j.resource().is_some()).unwrap_or(true) {
                return Err(format!("key `hosts`: `{h}` is not a valid domain name"));
            }
        }
        for a in &self.admins {
            match crate::jid::Jid::parse(a) {
                Ok(j) if j.node().is_some() && j.resource().is_none() => {}
                _ => return Err(format!("key `admins`: `{a}` is not a bare JID like admin@example.org")),
            }
        }
        if self.listen.is_empty() {
            return Err("key `listen`: at least one [[listen]] table is required".into());
        }
        if self.limits.max_stanza_size < 1024 {
            return Err("key `limits.max_stanza_size`: must be at least 1024".into());
        }
        if self.limits.outbound_queue == 0 {
            return Err("key `limits.outbound_queue`: must be at least 1".into());
        }
        let l = &self.limits;
        for (key, v, min) in [
            ("limits.max_depth", l.max_depth, 1),
            ("limits.max_attributes", l.max_attributes, 1),
            ("limits.max_attribute_size", l.max_attribute_size, 64),
            ("limits.max_sessions_per_account", l.max_sessions_per_account, 1),
            ("limits.outbound_queue_bytes", l.outbound_queue_bytes, l.max_stanza_size),
        ] {
            if v < min {
                return Err(format!("key `{key}`: must be at least {min}"));
            }
        }
        if l.auth_timeout_secs == 0 {
            return Err("key `limits.auth_timeout_secs`: must be at least 1".into());
        }
        if l.max_auth_failures == 0 {
            return Err("key `limits.max_auth_failures`: must be at least 1".into());
        }
        if l.shaper_bytes_per_sec != 0 && l.shaper_bytes_per_sec < 512 {
            return Err("key `limits.shaper_bytes_per_sec`: must be 0 (off) or at least 512".into());
        }
        if self.auth.max_failures_per_ip != 0 && self.auth.ban_secs == 0 {
            return Err("key `auth.ban_secs`: must be at least 1 when auth.max_failures_per_ip is set".into());
        }
        if !(1..=1_000_000).contains(&self.auth.scram_iterations) || self.auth.scram_iterations < 4096 {
            return Err("key `auth.scram_iterations`: must be between 4096 and 1000000".into());
        }
        if self.auth.scram_hashes.is_empty() {
            return Err("key `auth.scram_hashes`: must list at least one of \"sha-1\", \"sha-256\"".into());
        }
        check_networks("limits.exempt_networks", &l.exempt_networks)?;
        check_networks("registration.allow_from", &self.registration.allow_from)?;
        if self.im.max_roster_items == 0 {
            return Err("key `im.max_roster_items`: must be at least 1".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(format!(
                "key `log.level`: `{}` is not a tracing filter like \"info\" or \"xmppd=debug\"",
                self.log.level
            ));
        }
        self.validate_hosts()?;
        if let Some(tls) = &self.tls {
            for (key, p) in [("tls.cert", &tls.cert), ("tls.key", &tls.key)] {
                std::fs::File::open(p).map_err(|e| format!("key `{key}`: cannot read {}: {e}", p.display()))?;
            }
        }
        Ok(())
    }

    /// Whether `domain` (already normalised) is served here.
    pub fn serves(&self, domain: &str) -> bool {
        self.hosts.iter().any(|h| h.eq_ignore_ascii_case(domain))
    }

    /// The admin socket path.
    pub fn admin_socket(&self) -> PathBuf {
        self.data_dir.join("admin.sock")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid() {
        let c = Config::parse(EMBEDDED_DEFAULT, "embedded").unwrap();
        assert_eq!(c.hosts, vec!["localhost"]);
        assert_eq!(c.listen[0].kind, ListenKind::C2s);
        assert_eq!(c.listen[0].address.port(), 5222);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse("hosts = [\"a\"]\nbogus = 1\n[[listen]]\nkind='c2s'\naddress='127.0.0.1:1'\n", "t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../config/xmppd.example.toml");
        let c = Config::parse(text, "config/xmppd.example.toml").unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.limits.max_stanza_size, Limits::default().max_stanza_size);
    }

    #[test]
    fn bad_type_names_key() {
        let e = Config::parse("hosts = \"a\"\n", "t").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("sequence"), "{e}");
    }

    #[test]
    fn unreadable_cert_is_an_error() {
        let e = Config::parse(
            "hosts=['a']\n[[listen]]\nkind='c2s'\naddress='127.0.0.1:1'\n[tls]\ncert='/nonexistent/c.pem'\nkey='/nonexistent/k.pem'\n",
            "t",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tls.cert"), "{e}");
    }

    #[test]
    fn loopback_is_exempt_by_default() {
        let l = Limits::default();
        for ip in ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"] {
            assert!(l.exempt(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "192.0.2.1", "2001:db8::1", "::2"] {
            assert!(!l.exempt(ip.parse().unwrap()), "{ip}");
        }
        let none = Limits { exempt_networks: Vec::new(), ..Limits::default() };
        assert!(!none.exempt("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn limit_errors_name_the_key() {
        let base = "hosts=['a']\n[[listen]]\nkind='c2s'\naddress='127.0.0.1:1'\n";
        for (extra, key) in [
            ("[limits]\nmax_attributes = 0\n", "limits.max_attributes"),
            ("[limits]\nshaper_bytes_per_sec = 10\n", "limits.shaper_bytes_per_sec"),
            ("[limits]\noutbound_queue_bytes = 1000\n", "limits.outbound_queue_bytes"),
            ("[limits]\nsession_limit = 'bogus'\n", "session_limit"),
            ("[auth]\nban_secs = 0\n", "auth.ban_secs"),
            ("[limits]\nexempt_networks = ['127.0.0.1/99']\n", "limits.exempt_networks"),
        ] {
            let e = Config::parse(&format!("{base}{extra}"), "t").unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
    }
}
