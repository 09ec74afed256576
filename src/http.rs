//! The HTTP listener (`[[listen]] kind = "http"`): Prometheus `/metrics`.
//!
//! Built on hyper 1.x (HTTP/1.1, keep-alive, header read timeout) with
//! hyper-util's tokio glue rather than axum: today's routes are a match on
//! the path, and the protocols this listener will carry next (WebSocket,
//! RFC 7395; BOSH, XEP-0124; HTTP upload, XEP-0363) need hyper's upgrades and
//! streaming bodies directly, which axum would only wrap.

use crate::metrics::{Snapshot, CONTENT_TYPE};
use crate::server::Shared;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

/// Simultaneous HTTP connections; more are closed at once.
const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send the request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept HTTP connections until shutdown.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    let open = Arc::new(AtomicUsize::new(0));
    while let Some((tcp, peer)) = crate::server::next_connection(&listener, &shared, "http").await {
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, "http connection limit reached");
            continue;
        }
        let (shared, open) = (shared.clone(), open.clone());
        tracker.spawn(async move {
            serve_connection(tcp, shared).await;
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn serve_connection(tcp: tokio::net::TcpStream, shared: Arc<Shared>) {
    let shutdown = shared.shutdown.clone();
    let svc = hyper::service::service_fn(move |req| {
        let s = shared.clone();
        async move { Ok::<_, Infallible>(route(req, s).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), svc);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { tracing::debug!(error = %e, "http connection") },
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(CT, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn route(req: Request<Incoming>, shared: Arc<Shared>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path != "/metrics" && path != "/health" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/health" {
        return text(StatusCode::OK, "ok\n");
    }
    let body = tokio::task::spawn_blocking(move || snapshot(&shared).encode()).await;
    match body {
        Ok(body) => {
            let mut r = Response::new(Full::new(Bytes::from(body)));
            r.headers_mut().insert(CT, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n"),
    }
}

/// Read every counter now (the registered-account counts query the store).
pub fn snapshot(shared: &Shared) -> Snapshot {
    Snapshot::take(&shared.metrics, shared.connection_count(), shared.store.latency(), |h| {
        shared.store.count_users(h).ok()
    })
}
