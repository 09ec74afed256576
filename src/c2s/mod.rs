//! Client-to-server connections (RFC 6120): one task per connection.
//!
//! [`Conn`] owns the transport, the framer and the state; `negotiate`
//! handles the stream header, STARTTLS, SASL and binding, and `bound`
//! handles stanzas of a bound session. The loop first drains what the socket
//! has, then waits for readability, an outbound stanza, a close request or
//! shutdown, so an idle connection holds no read buffer.

mod bound;
mod legacy_auth;
mod negotiate;
mod output;
mod requeue;
mod sasl;
mod shaper;
pub mod ticket_hold;
pub mod transport;

use crate::config::ListenKind;
use crate::metrics::Metrics;
use crate::server::{ConnGuard, Shared};
use crate::session::{Outbound, OutboundRx, SessionHandle};
use crate::stanza::StreamError;
use crate::xml::{Event, Framer};
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use transport::Transport;

/// What woke the connection loop.
enum Wake {
    /// The server is shutting down.
    Shutdown,
    /// The session was asked to close.
    Closing,
    /// Bytes went into the framer (0: end of stream).
    Read(std::io::Result<usize>),
    /// A stanza from the outbound queue (`None`: queue closed).
    Outbound(Option<Outbound>),
    /// A shaper pause ended.
    Resume,
    /// The timer fired.
    Timer,
}

/// Where the connection is in RFC 6120's negotiation.
pub(crate) enum State {
    /// Waiting for the (re)started stream header.
    Header,
    /// Header received, features sent: STARTTLS, SASL or bind expected.
    Negotiating,
    /// Inside a SASL exchange.
    Sasl(Box<crate::sasl::SaslSession>),
    /// A session is bound: stanzas flow.
    Bound,
}

/// Why the connection loop ended.
pub(crate) enum Exit {
    /// The peer closed the stream or the socket.
    Peer,
    /// We close with this stream error.
    Error(StreamError, Option<String>),
    /// I/O failed; nothing more can be written.
    Io,
}

impl From<crate::xml::XmlError> for Exit {
    fn from(e: crate::xml::XmlError) -> Exit {
        Exit::Error(e.clone().into(), Some(e.to_string()))
    }
}

/// One client connection.
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) io: Transport,
    pub(crate) framer: Framer,
    pub(crate) id: u64,
    pub(crate) peer: SocketAddr,
    pub(crate) state: State,
    /// The served domain this stream is for (the header's `to`).
    pub(crate) host: String,
    /// Our stream header has been sent for the current stream.
    pub(crate) header_sent: bool,
    /// The authenticated local part.
    pub(crate) user: Option<String>,
    /// SASL failures on this connection.
    pub(crate) auth_failures: u32,
    /// The bound session.
    pub(crate) session: Option<Arc<SessionHandle>>,
    /// Its outbound queue.
    pub(crate) rx: Option<OutboundRx>,
    /// RFC 6121 §4.6: entities that got directed presence from this session.
    pub(crate) directed: Vec<crate::jid::Jid>,
    /// XEP-0352: the client said it is inactive.
    pub(crate) csi_inactive: bool,
    /// XEP-0352: presence held back while inactive, the latest per sender.
    pub(crate) held: Vec<(String, bytes::Bytes)>,
    /// Stanzas of a batch whose write failed, routed again at unbind.
    pub(crate) unsent: Vec<bytes::Bytes>,
    /// When the client last sent anything (XEP-0199 server pings).
    pub(crate) last_rx: Instant,
    /// A server ping is outstanding since then.
    pub(crate) ping_sent: Option<Instant>,
    /// Status text of the client's last unavailable presence (XEP-0012).
    pub(crate) last_status: Option<String>,
    /// Byte and stanza rate limits on what the client sends.
    shaper: shaper::Shaper,
    /// Reading is paused by the shaper until then.
    pause: Option<Instant>,
    /// While the stanzas of one read are processed, what they answer is
    /// gathered here and written once at the end (see `output::write`).
    pub(crate) cork: Option<Vec<u8>>,
    /// Queued stanzas that went into the cork: if its write fails they
    /// join `unsent`, so they are routed again rather than lost.
    pub(crate) corked: Vec<bytes::Bytes>,
}

/// Serve one accepted connection to its end.
pub async fn handle(tcp: TcpStream, peer: SocketAddr, kind: ListenKind, shared: Arc<Shared>, _guard: ConnGuard) {
    let (deadline, framer, shaper) = {
        let limits = &shared.config().limits;
        (
            Instant::now() + Duration::from_secs(limits.auth_timeout_secs),
            Framer::new(limits.max_stanza_size, limits.max_depth)
                .with_attr_limits(limits.max_attributes, limits.max_attribute_size),
            shaper::Shaper::from_limits(limits, Instant::now()),
        )
    };
    let mut conn = Conn {
        framer,
        id: shared.next_id(),
        io: Transport::Plain(tcp),
        peer,
        state: State::Header,
        host: String::new(),
        header_sent: false,
        user: None,
        auth_failures: 0,
        session: None,
        rx: None,
        directed: Vec::new(),
        csi_inactive: false,
        held: Vec::new(),
        unsent: Vec::new(),
        last_rx: Instant::now(),
        ping_sent: None,
        last_status: None,
        shaper,
        pause: None,
        cork: None,
        corked: Vec::new(),
        shared,
    };
    tracing::debug!(conn = conn.id, %peer, "connected");
    // XEP-0368 direct TLS; on a STARTTLS port, a TLS ClientHello (first byte
    // 0x16, a handshake record) is served as direct TLS too.
    let direct = kind == ListenKind::C2sDirectTls || conn.starts_with_tls_record(deadline).await;
    if direct && !Box::pin(conn.upgrade_tls(deadline)).await {
        return;
    }
    let exit = conn.run(deadline).await;
    Box::pin(conn.finish(exit)).await;
}

/// Refuse a connection over a limit with `<resource-constraint/>`
/// (RFC 6120 §4.9.3.17) and `why` as text.
pub async fn refuse(tcp: TcpStream, shared: Arc<Shared>, _guard: ConnGuard, why: &'static str) {
    let host = shared.config().hosts[0].clone();
    let mut io = Transport::Plain(tcp);
    let text = format!(
        "{}{}</stream:stream>",
        negotiate::header_xml(&host, None, 0),
        StreamError::ResourceConstraint.to_xml(Some(why))
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), io.send(text.as_bytes())).await;
}

impl Conn {
    /// The connection loop. One `poll_fn` waits on everything at once; the
    /// futures it polls (shutdown, the session's close request, the timer)
    /// are created once, not on every pass, and reads go straight from the
    /// socket into the framer (no separate readiness wait). What runs only
    /// on an event (processing stanzas, writing, the timer, the TLS
    /// upgrade, the close) is boxed while it runs, so the future every idle
    /// connection keeps is ~1.2 KB rather than ~2.7 KB (the largest of its
    /// await points, `size_of_val`).
    async fn run(&mut self, deadline: Instant) -> Exit {
        let shutdown = self.shared.shutdown.clone().cancelled_owned();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut closing: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
        let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline));
        // Wakes the loop when a shaper pause ends.
        let mut resume = std::pin::pin!(tokio::time::sleep_until(deadline));
        loop {
            // XEP-0160: a message was stored offline after this session's
            // initial presence (im::offline::wake_recipient).
            if self.session.as_ref().is_some_and(|s| s.take_offline_poke()) {
                if let Err(e) = self.deliver_offline().await {
                    return e;
                }
            }
            // The shaper's pause ran out: process what it left framed (the
            // stanza shaper stops mid-buffer), then read again.
            if let Some(t) = self.pause {
                if t <= Instant::now() {
                    self.pause = None;
                    if let Some(exit) = Box::pin(self.process_events()).await {
                        return exit;
                    }
                    continue;
                }
                if t != resume.deadline() {
                    resume.as_mut().reset(t);
                }
            }
            let bound = matches!(self.state, State::Bound);
            if closing.is_none() {
                if let Some(s) = self.session.clone() {
                    closing = Some(Box::pin(async move { s.closing.notified().await }));
                }
            }
            // The timer is moved earlier at once, later only when it fires
            // (so that every received stanza does not re-arm it).
            let want = self.next_timer(bound, deadline);
            if let Some(w) = want {
                if w < timer.deadline() {
                    timer.as_mut().reset(w);
                }
            }
            let paused = self.pause.is_some();
            let (io, framer, rx) = (&mut self.io, &mut self.framer, &mut self.rx);
            let wake = poll_fn(|cx| {
                if shutdown.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
                if let Some(c) = closing.as_mut() {
                    if c.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Closing);
                    }
                }
                // While paused, the socket is not polled: the client's data
                // waits in the kernel and TCP pushes back on it.
                if paused {
                    if resume.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Resume);
                    }
                } else if let Poll::Ready(r) = io.poll_read_into(cx, framer) {
                    return Poll::Ready(Wake::Read(r));
                }
                if let Some(rx) = rx.as_mut() {
                    if let Poll::Ready(m) = rx.poll_recv(cx) {
                        return Poll::Ready(Wake::Outbound(m));
                    }
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Wake::Timer);
                }
                Poll::Pending
            })
            .await;
            match wake {
                Wake::Shutdown => return Exit::Error(StreamError::SystemShutdown, None),
                Wake::Closing => {
                    if let Some(r) = self.session.as_ref().and_then(|s| s.close_reason()) {
                        return Exit::Error(r.error, r.text);
                    }
                    // Not a close: an offline poke, handled at the loop's top.
                    closing = None;
                }
                Wake::Read(Ok(0)) => return Exit::Peer,
                Wake::Read(Ok(n)) => {
                    self.last_rx = Instant::now();
                    self.ping_sent = None;
                    if let Some(t) = self.shaper.bytes.take(n as u64, self.last_rx) {
                        self.pause_until(t);
                    }
                    if let Some(exit) = Box::pin(self.process_events()).await {
                        return exit;
                    }
                }
                Wake::Read(Err(_)) => return Exit::Io,
                Wake::Outbound(Some(Outbound::Stanza(b))) => {
                    if let Err(e) = Box::pin(self.write_batch(b)).await {
                        return e;
                    }
                }
                Wake::Outbound(None) => return Exit::Io,
                Wake::Resume => {}
                Wake::Timer => match self.next_timer(bound, deadline) {
                    Some(t) if t <= Instant::now() => {
                        if let Err(e) = Box::pin(self.on_timer(bound)).await {
                            return e;
                        }
                    }
                    Some(t) => timer.as_mut().reset(t),
                    None => timer.as_mut().reset(Instant::now() + Duration::from_secs(86_400)),
                },
            }
        }
    }

    /// When the loop must wake up without I/O: the authentication deadline
    /// before binding; afterwards the XEP-0199 ping schedule.
    fn next_timer(&self, bound: bool, deadline: Instant) -> Option<Instant> {
        if !bound {
            return Some(deadline);
        }
        let cfg = self.shared.config();
        let im = &cfg.im;
        if im.ping_interval_secs == 0 {
            return None;
        }
        Some(match self.ping_sent {
            Some(t) => t + Duration::from_secs(im.ping_timeout_secs),
            None => self.last_rx + Duration::from_secs(im.ping_interval_secs),
        })
    }

    async fn on_timer(&mut self, bound: bool) -> Result<(), Exit> {
        if !bound {
            Metrics::inc(&self.shared.metrics.auth_timeouts_total);
            return Err(Exit::Error(StreamError::ConnectionTimeout, Some("authentication timed out".into())));
        }
        if self.ping_sent.is_some() {
            // XEP-0199 §4.1: no answer to our ping.
            return Err(Exit::Error(StreamError::ConnectionTimeout, Some("no answer to ping".into())));
        }
        let to = self.session.as_ref().map(|s| s.jid.to_string()).unwrap_or_default();
        let ping = format!(
            "<iq from='{}' to='{}' type='get' id='s2c-ping-{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            crate::xml::escape(&self.host),
            crate::xml::escape(&to),
            self.id
        );
        self.ping_sent = Some(Instant::now());
        self.write(ping.as_bytes()).await
    }

    /// Handle everything framed so far. The replies go out as one write
    /// (one TLS record, one syscall) at the end rather than one each: a
    /// client that pipelines, e.g. bind, roster get and initial presence
    /// (RFC 6120 §7, RFC 6121 §2.2, §4.2), gets its three answers at once.
    async fn process_events(&mut self) -> Option<Exit> {
        self.cork = Some(Vec::new());
        let mut exit = self.process_framed().await;
        // When there are replies to write anyway, what the processing queued
        // for this session itself (the echo of initial presence, RFC 6121
        // §4.2.2) goes in the same write, after them, as it would right
        // after. Without replies (a client sending messages) the queue is
        // left to the loop: draining it here costs ~10% in flat-out chat.
        if exit.is_none() && self.cork.as_ref().is_some_and(|c| !c.is_empty()) {
            if let Some(Ok(Outbound::Stanza(b))) = self.rx.as_mut().map(|r| r.try_recv()) {
                exit = Box::pin(self.write_batch(b)).await.err();
            }
        }
        let out = self.cork.take().unwrap_or_default();
        if !out.is_empty() {
            // On the way out (`exit` set) the replies still go first: a
            // stream error follows them (RFC 6120 §4.9), best effort.
            let r = self.write(&out).await;
            self.corked_written(r.is_ok());
            if let (Err(e), None) = (r, &exit) {
                return Some(e);
            }
        }
        exit
    }

    async fn process_framed(&mut self) -> Option<Exit> {
        loop {
            // The stanza shaper: leave further elements framed (or unread)
            // until the bucket refills.
            if let Some(t) = self.shaper.stanzas.ready_at(Instant::now()) {
                self.pause_until(t);
                return None;
            }
            let ev = match self.framer.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => return None,
                Err(e) => return Some(e.into()),
            };
            if matches!(ev, Event::Stanza(_)) {
                self.shaper.stanzas.take(1, Instant::now());
            }
            let r = match ev {
                Event::StreamOpen(tag) => self.on_header(&tag).await,
                Event::Stanza(bytes) => match self.state {
                    State::Bound => self.on_bound_stanza(bytes).await,
                    _ => self.on_negotiation(&bytes).await,
                },
                // RFC 6120 §4.4: answer the closing tag with ours.
                Event::StreamClose => Err(Exit::Peer),
            };
            if let Err(exit) = r {
                return Some(exit);
            }
        }
    }

    /// Stop reading until `t` (the shaper ran dry).
    fn pause_until(&mut self, t: Instant) {
        if self.pause.map_or(true, |p| p < t) {
            if self.pause.is_none() {
                Metrics::inc(&self.shared.metrics.shaper_pauses_total);
            }
            self.pause = Some(t);
        }
    }
}
