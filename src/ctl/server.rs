//! The admin socket inside the daemon: `data_dir/admin.sock`, mode 0600,
//! one request per connection (see [`super::protocol`]).
//!
//! The socket is bound inside a fresh 0700 directory, made 0600, then renamed
//! into place, so it is never reachable with looser permissions. Peers whose
//! uid is neither the socket owner's nor root's are refused as well.

use super::commands::{self, Command, Kind};
use super::protocol::{self, KIND_BULK, KIND_COMMAND};
use super::{accounts, bulk, help, stats, Outcome};
use crate::jid::{normalize_node, Jid};
use crate::server::Shared;
use crate::stanza::StreamError;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};

/// Time a client has to send its whole request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time to write the response.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Create the admin Unix socket (mode 0600) at `config.admin_socket()`,
/// removing a stale one. If a live daemon answers on it, fails with
/// `AddrInUse`: "another xmppd is running with this data_dir".
pub fn bind(shared: &Arc<Shared>) -> io::Result<UnixListener> {
    let listener = bind_at(&shared.config().admin_socket())?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

/// Bind a 0600 Unix socket at `path` (see [`bind`]).
pub fn bind_at(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let ctx = |e: io::Error, what: &str| io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| ctx(e, "cannot create the directory of"))?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; move it away", path.display()),
            ));
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another xmppd is running with this data_dir (it answers on {})", path.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                tracing::info!(path = %path.display(), "removing a stale admin socket");
                match std::fs::remove_file(path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(ctx(e, "cannot remove the stale socket"))
                    }
                    _ => {}
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ctx(e, "cannot probe the existing socket")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ctx(e, "cannot inspect")),
    }
    // Bind in a private directory, restrict, then move into place.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(".ctl{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&tmp);
    let private = std::fs::DirBuilder::new().mode(0o700).create(&tmp).and_then(|()| {
        let inner = tmp.join("s");
        let l = std::os::unix::net::UnixListener::bind(&inner)?;
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&inner, path)?;
        Ok(l)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    match private {
        Ok(l) => Ok(l),
        // E.g. the temporary path is too long for a socket address while the
        // final one fits: bind in place and restrict at once.
        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
            let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| ctx(e, "cannot bind"))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| ctx(e, "cannot restrict"))?;
            Ok(l)
        }
        Err(e) => Err(ctx(e, "cannot bind")),
    }
}

/// Serve admin requests until `shared.shutdown` is cancelled.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>) {
    let path = shared.config().admin_socket();
    tracing::info!(path = %path.display(), "admin socket listening");
    let owner = std::fs::metadata(&path).ok().map(|m| m.uid());
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                if let (Some(owner), Ok(cred)) = (owner, stream.peer_cred()) {
                    if cred.uid() != owner && cred.uid() != 0 {
                        tracing::warn!(uid = cred.uid(), "admin connection from another user refused");
                        continue;
                    }
                }
                tokio::spawn(handle(stream, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn handle(mut stream: UnixStream, shared: Arc<Shared>) {
    let request = match tokio::time::timeout(REQUEST_TIMEOUT, protocol::read_request(&mut stream)).await {
        Ok(Ok(Some(r))) => Ok(r),
        // Closed without a request: a liveness probe.
        Ok(Ok(None)) => return,
        Ok(Err(e)) => Err(format!("Error: bad_request: {e}")),
        Err(_) => Err("Error: bad_request: request not received in time".to_string()),
    };
    let (outcome, stop) = match request {
        Ok((kind, fields)) => execute(kind, fields, &shared).await,
        Err(msg) => {
            tracing::warn!("admin request refused: {msg}");
            (Outcome::error(msg), false)
        }
    };
    let bytes = protocol::encode_response(&outcome);
    let _ = tokio::time::timeout(RESPONSE_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    if stop {
        tracing::info!("stop requested through the admin socket");
        shared.shutdown.cancel();
    }
}

/// Run one request; the flag asks for shutdown once the answer is sent.
async fn execute(kind: u8, fields: Vec<String>, shared: &Arc<Shared>) -> (Outcome, bool) {
    if kind == KIND_BULK {
        tracing::info!(accounts = fields.len() / 10, "admin command register_bulk (batch)");
        let s = shared.clone();
        return (blocking(move || bulk::store_batch(&fields, &*s.store, &s.config())).await, false);
    }
    debug_assert_eq!(kind, KIND_COMMAND);
    let cmd = match commands::parse(&fields) {
        Ok(c) => c,
        Err(o) => return (o, false),
    };
    // Never log arguments: they may hold passwords.
    tracing::info!(command = cmd.spec().name, "admin command");
    match cmd {
        Command::Help { topic } => (help::help(topic.as_deref()), false),
        Command::Status => (Outcome::ok(status_text()), false),
        Command::ReloadConfig => {
            let s = shared.clone();
            (blocking(move || stats::reload_config(&s)).await, false)
        }
        Command::Stats { name } => {
            let s = shared.clone();
            (blocking(move || stats::stats(&s, &name, None)).await, false)
        }
        Command::StatsHost { name, host } => {
            let s = shared.clone();
            (blocking(move || stats::stats(&s, &name, Some(&host))).await, false)
        }
        Command::Stop => (Outcome::ok(""), true),
        Command::ConnectedUsers => {
            let out: String = shared.router.connected_full_jids().into_iter().map(|j| j + "\n").collect();
            (Outcome::ok(out), false)
        }
        Command::ConnectedUsersNumber => (Outcome::ok(format!("{}\n", shared.router.session_count())), false),
        Command::KickSession { user, host, resource, reason } => {
            (kick(shared, &user, &host, &resource, &reason), false)
        }
        Command::ImportPiefxis { .. } | Command::ExportPiefxis { .. } => {
            (Outcome::error("Error: bad_request: import_piefxis and export_piefxis run in xmppd ctl"), false)
        }
        Command::RegisterBulk { .. } => {
            (Outcome::error("Error: bad_request: register_bulk is sent in batches by xmppd ctl"), false)
        }
        cmd => {
            debug_assert_eq!(cmd.spec().kind, Kind::Account);
            let s = shared.clone();
            let out = blocking(move || {
                // After unregister or change_password: the sessions end (and
                // an unregistered account's caches go, see Shared::forget_account).
                let end = |bare: &Jid, text: &str| {
                    s.forget_account(bare);
                    let n = s.router.kick(bare, None, StreamError::NotAuthorized, Some(text));
                    if n > 0 {
                        tracing::info!(jid = %bare, sessions = n, reason = text, "sessions closed");
                    }
                };
                accounts::execute_account(&cmd, &*s.store, &s.config(), &end)
            })
            .await;
            (out, false)
        }
    }
}

/// Run store work (and PBKDF2) off the async workers.
async fn blocking(f: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Outcome::error(format!("Error: internal: the command failed: {e}")))
}

/// ejabberdctl's status text, adapted.
pub fn status_text() -> String {
    format!(
        "The node xmppd is started with status: started\nxmppd {} is running in that node\n",
        env!("CARGO_PKG_VERSION")
    )
}

fn kick(shared: &Shared, user: &str, host: &str, resource: &str, reason: &str) -> Outcome {
    let Some(h) = accounts::served_host(&shared.config(), host) else {
        return accounts::unknown_host("not_found", host);
    };
    let reason = if reason.is_empty() { "Kicked by administrator" } else { reason };
    let n = match normalize_node(user) {
        Ok(u) => shared.router.kick(&Jid::new(Some(&u), &h, None), Some(resource), StreamError::Kicked, Some(reason)),
        Err(_) => 0,
    };
    if n == 0 {
        return Outcome::error(format!("Error: not_found: No active session for {user}@{h}/{resource}"));
    }
    Outcome::ok("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_0600_and_replaces_stale_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/admin.sock");
        let l = bind_at(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // No temporary directory is left behind.
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("data")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("admin.sock")]);
        // Someone answers: refused.
        let e = bind_at(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("another xmppd is running with this data_dir"), "{e}");
        // Stale (listener gone): replaced.
        drop(l);
        let _l = bind_at(&path).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        std::fs::write(&path, "x").unwrap();
        let e = bind_at(&path).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
    }
}
