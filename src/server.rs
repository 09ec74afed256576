//! `Server::bind` then `Server::run`: listeners, the connection limit, the
//! admin socket, graceful shutdown. `main` and every integration test use it.

use crate::config::{Config, ListenKind};
use crate::modules::Modules;
use crate::router::Router;
use crate::stanza::StreamError;
use crate::storage::Store;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Sets a new log filter (tracing EnvFilter syntax).
pub type LogFilterSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// State shared by every connection task.
pub struct Shared {
    /// The configuration in force; swapped whole by [`crate::reload`].
    config: ArcSwap<Config>,
    /// The file it was read from (reload reads it again), if any.
    pub config_file: OnceLock<PathBuf>,
    /// Per-host certificates chosen by SNI, swapped on reload.
    pub certs: Arc<crate::certs::CertResolver>,
    /// Counters for `/metrics` and `ctl stats`.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Changes the log filter (set by `main`, used by reload).
    pub log_filter: OnceLock<LogFilterSetter>,
    /// Cancelled once every listener and the admin socket accept.
    pub ready: CancellationToken,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The routing table.
    pub router: Router,
    /// Server-side iq handlers.
    pub modules: Modules,
    /// XEP-0191 blocklists (cache over the store), for routing.
    pub blocklists: crate::modules::blocking::Blocklists,
    /// TLS for STARTTLS and direct TLS.
    pub tls: TlsAcceptor,
    /// Cancelled to shut down.
    pub shutdown: CancellationToken,
    /// Connections per address, SASL failures and bans.
    pub guard: crate::abuse::Guard,
    /// Connection ids.
    next_id: AtomicU64,
    /// Open client connections.
    connections: AtomicUsize,
}

impl Shared {
    /// Drop what is cached for account `bare` (its blocklist, its sessions'
    /// roster): call when the account is removed, so that a new account of
    /// the same name starts clean.
    pub fn forget_account(&self, bare: &crate::jid::Jid) {
        self.blocklists.forget(bare);
        crate::im::presence::forget_roster(self, bare);
    }

    /// The configuration in force (cheap; hold it only briefly).
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// Put a new configuration in force (see [`crate::reload`]).
    pub fn set_config(&self, c: Config) {
        self.config.store(Arc::new(c));
    }

    /// A fresh connection id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Open client connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The admin socket could not be created.
    #[error("admin socket: {0}")]
    Admin(std::io::Error),
}

/// A bound, not yet running server.
pub struct Server {
    /// The shared state (tests use it to reach the router and store).
    pub shared: Arc<Shared>,
    listeners: Vec<(ListenKind, TcpListener)>,
}

impl Server {
    /// Set up TLS and bind every listener (port 0 picks a free port).
    pub async fn bind(config: Config, store: Arc<dyn Store>) -> Result<Server, ServerError> {
        let certs = Arc::new(crate::certs::CertResolver::new(&config)?);
        let tls = crate::tls::server_config_with(certs.clone()).map_err(crate::tls::TlsError::Rustls)?;
        let mut listeners = Vec::new();
        for l in &config.listen {
            let sock =
                TcpListener::bind(l.address).await.map_err(|source| ServerError::Bind { addr: l.address, source })?;
            listeners.push((l.kind, sock));
        }
        let shared = Arc::new(Shared {
            router: Router::new(&config.hosts),
            metrics: Arc::new(crate::metrics::Metrics::new(&config.hosts)),
            config: ArcSwap::from_pointee(config),
            config_file: OnceLock::new(),
            certs,
            log_filter: OnceLock::new(),
            ready: CancellationToken::new(),
            store,
            modules: Modules::new(),
            blocklists: crate::modules::blocking::Blocklists::new(),
            tls: TlsAcceptor::from(tls),
            shutdown: CancellationToken::new(),
            guard: crate::abuse::Guard::default(),
            next_id: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
        });
        Ok(Server { shared, listeners })
    }

    /// The bound addresses, in configuration order.
    pub fn local_addrs(&self) -> Vec<(ListenKind, SocketAddr)> {
        self.listeners.iter().filter_map(|(k, l)| l.local_addr().ok().map(|a| (*k, a))).collect()
    }

    /// Serve until `shared.shutdown` is cancelled, then close every session
    /// with `<system-shutdown/>` (RFC 6120 §4.9.3.19) and flush the store.
    pub async fn run(self) -> Result<(), ServerError> {
        let shared = self.shared;
        let tracker = TaskTracker::new();
        let admin = crate::ctl::server::bind(&shared).map_err(ServerError::Admin)?;
        tracker.spawn(crate::ctl::server::serve(admin, shared.clone()));
        tracker.spawn(crate::memtrim::run(shared.clone()));
        for (kind, listener) in self.listeners {
            if let Ok(a) = listener.local_addr() {
                tracing::info!(kind = ?kind, address = %a, "listening");
            }
            if kind == ListenKind::Http {
                tracker.spawn(crate::http::accept_loop(listener, shared.clone(), tracker.clone()));
            } else {
                tracker.spawn(accept_loop(kind, listener, shared.clone(), tracker.clone()));
            }
        }
        shared.ready.cancel();
        shared.shutdown.cancelled().await;
        tracing::info!("shutting down");
        shared.router.close_all(StreamError::SystemShutdown);
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(3), tracker.wait()).await.is_err() {
            tracing::warn!("some connections did not close in time");
        }
        if let Err(e) = shared.store.flush() {
            tracing::error!(error = %e, "flushing the store");
        }
        let _ = std::fs::remove_file(shared.config().admin_socket());
        Ok(())
    }
}

/// Decrements the connection counts (total, and per address when it was
/// counted) when a connection task ends.
pub struct ConnGuard(Arc<Shared>, Option<std::net::IpAddr>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.1 {
            self.0.guard.disconnect(ip);
        }
    }
}

/// The next connection on `listener`, or `None` once shutdown is requested.
/// Accept errors (EMFILE and friends) are logged, then retried after a pause
/// instead of spinning. Shared by the XMPP and HTTP listeners.
pub(crate) async fn next_connection(
    listener: &TcpListener,
    shared: &Shared,
    what: &'static str,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(a) => return Some(a),
            Err(e) => {
                tracing::warn!(error = %e, listener = what, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept_loop(kind: ListenKind, listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    while let Some((tcp, peer)) = next_connection(&listener, &shared, "xmpp").await {
        let _ = tcp.set_nodelay(true);
        let n = shared.connections.fetch_add(1, Ordering::Relaxed);
        crate::metrics::Metrics::inc(&shared.metrics.connections_accepted_total);
        let mut guard = ConnGuard(shared.clone(), None);
        let config = shared.config();
        let limits = &config.limits;
        // The client is told why; the log also names the setting.
        let refused = if n >= limits.max_connections {
            Some(("too many connections", "limits.max_connections", limits.max_connections))
        } else if !shared
            .guard
            .connect(peer.ip(), if limits.exempt(peer.ip()) { 0 } else { limits.max_connections_per_ip })
        {
            Some((
                "too many connections from your address",
                "limits.max_connections_per_ip",
                limits.max_connections_per_ip,
            ))
        } else {
            guard.1 = Some(peer.ip());
            None
        };
        if let Some((why, key, limit)) = refused {
            // Rate-limited log: one line per refused connection would let a
            // flood fill the disk.
            if shared.metrics.connections_refused_total.fetch_add(1, Ordering::Relaxed) % 1000 == 0 {
                tracing::warn!(%peer, reason = why, setting = key, limit, "connection limit reached");
            }
            if kind == ListenKind::C2sDirectTls {
                // XEP-0368 §3: on this port TLS comes before any XML, so a
                // plaintext stream error (RFC 6120 §4.9.3.17) would be
                // garbage to the client's TLS stack; and a handshake only to
                // say "go away" costs the server a key exchange and a
                // signature per refused connection, which under a flood is
                // the wrong trade. RFC 6120 §4.9 has stream errors sent on
                // the stream; there is none yet, so the connection is just
                // closed (the client sees a failed connection and may try
                // another address, XEP-0368 §3 / RFC 6120 §3.2.1).
                drop((tcp, guard));
                continue;
            }
            tracker.spawn(crate::c2s::refuse(tcp, shared.clone(), guard, why));
            continue;
        }
        tracker.spawn(crate::c2s::handle(tcp, peer, kind, shared.clone(), guard));
    }
}
