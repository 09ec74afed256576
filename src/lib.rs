//! xmppd: an XMPP server daemon.
//!
//! Module map:
//! - [`abuse`]: connections per address, SASL failure delays and bans (mod_fail2ban).
//! - [`config`]: TOML configuration, defaults and validation.
//! - [`jid`]: JID parsing and normalisation (RFC 7622).
//! - [`xml`]: incremental stream framing over received bytes, element trees, escaping.
//! - [`stanza`]: stream and stanza errors (RFC 6120 §4.9, §8.3), stanza builders.
//! - [`sasl`]: SASL mechanisms without I/O (PLAIN, SCRAM-SHA-1/256[-PLUS]).
//! - [`tls`]: rustls server configuration, PEM loading, self-signed generation.
//! - [`certs`]: per-host certificates chosen by SNI, swapped on reload.
//! - [`storage`]: the `Store` trait and its SQLite backend.
//! - [`im`]: rosters, subscriptions, presence, offline messages (RFC 6121, XEP-0160).
//! - [`session`]: the handle a connection registers with the router.
//! - [`router`]: bare JID → sessions table and RFC 6121 §8 delivery rules.
//! - [`metrics`]: atomic counters of limits hit, failures, bans.
//! - [`modules`]: iq handlers addressed to the server (disco, ping, version, roster).
//! - [`c2s`]: one task per client connection: negotiation and the bound session.
//! - [`ctl`]: the admin socket (server side) and `xmppd ctl` (client side).
//! - [`piefxis`]: XEP-0227 import and export (`import_piefxis`, `export_piefxis`).
//! - [`server`]: `run()`: listeners, limits, signals; used by `main` and tests.
//! - [`reload`]: SIGHUP / `ctl reload_config`: what changes live, what needs a restart.
//! - [`metrics`]: atomic counters, OpenMetrics encoding for `/metrics`.
//! - [`http`]: the HTTP listener (hyper): `/metrics`.

pub mod abuse;
pub mod c2s;
pub mod certs;
pub mod config;
pub mod ctl;
pub mod http;
pub mod im;
pub mod jid;
pub mod memtrim;
pub mod metrics;
pub mod modules;
pub mod piefxis;
pub mod reload;
pub mod router;
pub mod sasl;
pub mod server;
pub mod session;
pub mod stanza;
pub mod storage;
pub mod tls;
pub mod xml;
