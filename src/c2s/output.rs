//! Writing to the client: queued stanzas coalesced into one write, presence
//! held back while the client is inactive (XEP-0352), writes bounded in
//! time, and the close of the stream (RFC 6120 §4.4, §4.9).

use super::{negotiate, Conn, Exit};
use crate::metrics::Metrics;
use crate::session::{Outbound, OutboundRx};
use crate::stanza::StreamError;
use std::future::{poll_fn, Future};
use std::task::Poll;
use std::time::Duration;

/// How long a single write may block before the peer is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Queued stanzas are coalesced into one write up to about this many bytes.
const BATCH_BYTES: usize = 16 * 1024;

impl Conn {
    /// Write one queued stanza and whatever else is queued now, as one TLS
    /// record and one `write` (up to [`BATCH_BYTES`]). While the client is
    /// inactive (XEP-0352) presence is held back. If the write fails (the
    /// peer is gone, or stopped reading and the session is cut), the batch
    /// is kept in `unsent` and routed again with the rest of the queue
    /// (requeue.rs): accepted stanzas are not dropped.
    pub(super) async fn write_batch(&mut self, first: bytes::Bytes) -> Result<(), Exit> {
        let next = |rx: &mut Option<OutboundRx>| match rx.as_mut().map(|r| r.try_recv()) {
            Some(Ok(Outbound::Stanza(b))) => Some(b),
            _ => None,
        };
        let mut pending = Some(first);
        let mut batch: Vec<bytes::Bytes> = Vec::new();
        let mut len = 0;
        while let Some(b) = pending.take() {
            if self.csi_inactive && b.starts_with(b"<presence") {
                self.hold(b);
            } else {
                if self.csi_inactive && !self.held.is_empty() {
                    for (_, p) in self.held.drain(..) {
                        self.shared.metrics.stanza_out(crate::router::Kind::Presence);
                        len += p.len();
                        batch.push(p);
                    }
                }
                self.shared.metrics.stanza_out_bytes(&b);
                len += b.len();
                batch.push(b);
            }
            if len < BATCH_BYTES {
                pending = next(&mut self.rx);
            }
        }
        let r = match batch.as_slice() {
            [] => return Ok(()),
            // The common case, one stanza: written without a copy.
            [one] => self.write(one).await,
            many => {
                let buf = many.concat();
                self.write(&buf).await
            }
        };
        if r.is_err() {
            self.unsent.extend(batch);
        } else if self.cork.is_some() {
            // Not on the wire yet: see `corked_written`.
            self.corked.extend(batch);
        }
        r
    }

    /// The cork was written (`ok`) or its write failed: the queued stanzas
    /// in it are done with, or are kept to be routed again.
    pub(crate) fn corked_written(&mut self, ok: bool) {
        if ok {
            // Freed, not cleared: an idle connection keeps no buffer.
            self.corked = Vec::new();
        } else {
            self.unsent.append(&mut self.corked);
        }
    }

    /// XEP-0352 §5: keep only the latest presence per sender.
    fn hold(&mut self, p: bytes::Bytes) {
        let from = crate::xml::StanzaHead::parse(&p, crate::xml::ns::CLIENT)
            .ok()
            .and_then(|h| h.attr("from").map(str::to_owned))
            .unwrap_or_default();
        self.held.retain(|(f, _)| *f != from);
        self.held.push((from, p));
    }

    /// Send what was held back.
    pub(crate) async fn flush_held_presence(&mut self) -> Result<(), Exit> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for (_, p) in self.held.drain(..) {
            self.shared.metrics.stanza_out(crate::router::Kind::Presence);
            buf.extend_from_slice(&p);
        }
        self.write(&buf).await
    }

    /// Write bytes, or gather them while the connection is corked (its
    /// read is being processed: `Conn::process_events`).
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), Exit> {
        if let Some(buf) = self.cork.as_mut() {
            buf.extend_from_slice(data);
            if buf.len() < BATCH_BYTES {
                return Ok(());
            }
            // A big answer (a large roster, say) is not held back.
            return self.flush_cork().await;
        }
        self.write_now(data).await
    }

    /// Write what the cork holds now (before a TLS upgrade, or when it is
    /// full); the connection stays corked.
    pub(crate) async fn flush_cork(&mut self) -> Result<(), Exit> {
        let Some(buf) = self.cork.as_mut().filter(|b| !b.is_empty()) else { return Ok(()) };
        let out = std::mem::take(buf);
        let r = self.write_now(&out).await;
        self.corked_written(r.is_ok());
        r
    }

    /// Write bytes, bounded in time. Most writes complete at once, and
    /// those arm no timer. A write blocked by a peer that stopped reading
    /// ends as soon as the session is told to close (e.g. its queue
    /// overflowed), so the task unregisters at once rather than after
    /// `WRITE_TIMEOUT`.
    async fn write_now(&mut self, data: &[u8]) -> Result<(), Exit> {
        let session = self.session.clone();
        let mut send = std::pin::pin!(self.io.send(data));
        let first = poll_fn(|cx| Poll::Ready(send.as_mut().poll(cx))).await;
        if let Poll::Ready(r) = first {
            return r.map_err(|_| Exit::Io);
        }
        let mut send = std::pin::pin!(tokio::time::timeout(WRITE_TIMEOUT, send));
        loop {
            let closing = async {
                match &session {
                    Some(s) => s.closing.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = &mut send => return match r {
                    Ok(Ok(())) => Ok(()),
                    _ => Err(Exit::Io),
                },
                _ = closing => {
                    if let Some(r) = session.as_ref().and_then(|s| s.close_reason()) {
                        return Err(Exit::Error(r.error, r.text));
                    }
                    // Not a close: an offline poke, which stays set for the
                    // connection loop; keep writing.
                }
            }
        }
    }

    /// Close the stream as `exit` says and unregister the session.
    pub(super) async fn finish(&mut self, exit: Exit) {
        let text = match &exit {
            Exit::Peer => Some("</stream:stream>".to_string()),
            Exit::Error(e, t) => {
                tracing::debug!(
                    conn = self.id,
                    error = e.condition(),
                    text = t.as_deref(),
                    "closing with stream error"
                );
                let mut s = String::new();
                if !self.header_sent {
                    // RFC 6120 §4.9.1.3: open a stream first, then the error.
                    let host =
                        if self.host.is_empty() { self.shared.config().hosts[0].clone() } else { self.host.clone() };
                    s.push_str(&negotiate::header_xml(&host, None, self.id));
                }
                s.push_str(&e.to_xml(t.as_deref()));
                s.push_str("</stream:stream>");
                Some(s)
            }
            Exit::Io => None,
        };
        match &exit {
            Exit::Error(StreamError::PolicyViolation, Some(t)) if t == crate::session::QUEUE_FULL => {
                Metrics::inc(&self.shared.metrics.slow_consumers_closed_total);
                tracing::info!(conn = self.id, peer = %self.peer, "closing a session that does not read");
            }
            // From the framer or a parser (`XmlError`'s texts).
            Exit::Error(StreamError::NotWellFormed | StreamError::RestrictedXml, _) => {
                Metrics::inc(&self.shared.metrics.xml_errors_total);
            }
            Exit::Error(StreamError::PolicyViolation, Some(t)) if t.starts_with("policy violation: ") => {
                Metrics::inc(&self.shared.metrics.xml_errors_total);
            }
            _ => {}
        }
        self.unbind();
        if let Some(t) = text {
            // A peer that stopped reading gets a short chance at the error.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.io.send_and_close(t.as_bytes())).await;
        }
        tracing::debug!(conn = self.id, peer = %self.peer, "disconnected");
    }
}
