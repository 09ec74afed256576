//! One client connection: login (STARTTLS, SASL, bind, roster, presence)
//! and the session loop that writes what the scenario hands it and counts
//! what arrives. One task per connection; reads go through a per-thread
//! scratch buffer straight into the framer.

use super::Ctx;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use xmppd::sasl::client::{plain_message, salted_password, SaltedPassword, ScramClient};
use xmppd::sasl::Hash;
use xmppd::xml::{Event, Framer};

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Most commands written in one batch.
const BATCH: usize = 64;

/// Work a scenario hands a connection.
#[derive(Debug)]
pub enum Cmd {
    /// Send a chat message to user `to` carrying `seq` and the send time `ts` (µs).
    Chat { to: u64, seq: u64, ts: u64 },
    /// Broadcast a presence update (away or available) carrying `seq` and `ts`.
    Presence { seq: u64, ts: u64, away: bool },
}

/// A finished login.
#[derive(Debug)]
pub struct LoginOk {
    /// Items in the roster the server returned.
    pub roster_items: u64,
}

/// What a connection reports when its login ends: (its number, outcome).
pub type LoginResult = (u64, Result<LoginOk, String>);

thread_local! {
    /// Scratch read buffer, one per worker thread.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; 64 * 1024].into_boxed_slice());
}

/// Read what is available into `framer` (waits for data); 0 at end of stream.
async fn read_into<S: AsyncRead + Unpin>(s: &mut S, framer: &mut Framer) -> io::Result<usize> {
    poll_fn(|cx: &mut Context<'_>| {
        SCRATCH.with(|buf| {
            let mut buf = buf.borrow_mut();
            let mut rb = ReadBuf::new(&mut buf[..]);
            match Pin::new(&mut *s).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    framer.feed(rb.filled());
                    Poll::Ready(Ok(rb.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

/// The next complete top-level element (stream headers are skipped).
async fn next_stanza<S: AsyncRead + Unpin>(s: &mut S, framer: &mut Framer) -> Result<Vec<u8>, String> {
    loop {
        match framer.next_event() {
            Ok(Some(Event::Stanza(b))) => {
                if b.starts_with(b"<stream:error") {
                    return Err(format!("stream error: {}", String::from_utf8_lossy(&b)));
                }
                return Ok(b);
            }
            Ok(Some(Event::StreamOpen(_))) => continue,
            Ok(Some(Event::StreamClose)) => return Err("server closed the stream".into()),
            Ok(None) => {}
            Err(e) => return Err(format!("bad XML from server: {e}")),
        }
        match read_into(s, framer).await {
            Ok(0) => return Err("connection closed by server".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, data: &[u8]) -> Result<(), String> {
    s.write_all(data).await.map_err(|e| format!("write: {e}"))?;
    s.flush().await.map_err(|e| format!("write: {e}"))
}

/// The value of attribute `name` in the start tag of `st`.
pub fn attr<'a>(st: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let end = st.iter().position(|&b| b == b'>').unwrap_or(st.len());
    let tag = &st[..end];
    let n = name.as_bytes();
    let mut i = 0;
    while i + n.len() + 2 < tag.len() {
        if tag[i].is_ascii_whitespace() && tag[i + 1..].starts_with(n) {
            let mut j = i + 1 + n.len();
            while j < tag.len() && tag[j].is_ascii_whitespace() {
                j += 1;
            }
            if j < tag.len() && tag[j] == b'=' {
                j += 1;
                while j < tag.len() && tag[j].is_ascii_whitespace() {
                    j += 1;
                }
                let q = *tag.get(j)?;
                if q == b'\'' || q == b'"' {
                    let rest = &tag[j + 1..];
                    let len = rest.iter().position(|&b| b == q)?;
                    return Some(&rest[..len]);
                }
            }
        }
        i += 1;
    }
    None
}

/// Character data of a simple element `<x ...>text</x>` (empty for `<x/>`).
fn inner_text(st: &[u8]) -> &[u8] {
    let Some(open) = st.iter().position(|&b| b == b'>') else { return b"" };
    if open > 0 && st[open - 1] == b'/' {
        return b"";
    }
    let close = st.iter().rposition(|&b| b == b'<').unwrap_or(st.len());
    if close <= open {
        return b"";
    }
    st[open + 1..close].trim_ascii()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `#lt{ts}.{seq}#` stamp the tool puts in bodies and statuses.
pub fn stamp(st: &[u8]) -> Option<(u64, u64)> {
    let i = find(st, b"#lt")? + 3;
    let rest = &st[i..];
    let dot = rest.iter().position(|&b| b == b'.')?;
    let end = rest.iter().position(|&b| b == b'#')?;
    let ts = std::str::from_utf8(&rest[..dot]).ok()?.parse().ok()?;
    let seq = std::str::from_utf8(rest.get(dot + 1..end)?).ok()?.parse().ok()?;
    Some((ts, seq))
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{domain}' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>"
    )
}

/// The `<mechanism>` names in a features element.
fn mechanisms(features: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = features;
    while let Some(i) = find(rest, b"<mechanism>") {
        rest = &rest[i + 11..];
        let Some(j) = find(rest, b"</mechanism>") else { break };
        out.push(String::from_utf8_lossy(&rest[..j]).trim().to_owned());
        rest = &rest[j..];
    }
    out
}

/// Salt and iteration count of a SCRAM server-first-message (RFC 5802 §7).
fn salt_and_iterations(server_first: &[u8]) -> Result<(Vec<u8>, u32), String> {
    let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
    let mut salt = None;
    let mut iterations = None;
    for a in text.split(',') {
        if let Some(s) = a.strip_prefix("s=") {
            salt = STANDARD.decode(s).ok();
        } else if let Some(i) = a.strip_prefix("i=") {
            iterations = i.parse().ok();
        }
    }
    match (salt, iterations) {
        (Some(s), Some(i)) => Ok((s, i)),
        _ => Err(format!("bad server-first-message {text:?}")),
    }
}

/// A logged-in connection.
struct Session {
    tls: Tls,
    framer: Framer,
    /// Bare JID, to tell our own reflected presence from contacts'.
    bare: String,
}

/// The first SASL stanza for `mech`, and the SCRAM client that made it
/// (none for PLAIN).
fn auth_start(mech: &str, user: &str, password: &str) -> (String, Option<(ScramClient, Hash)>) {
    if mech == "PLAIN" {
        let msg = STANDARD.encode(plain_message("", user, password));
        return (format!("<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{msg}</auth>"), None);
    }
    let hash = if mech == "SCRAM-SHA-256" { Hash::Sha256 } else { Hash::Sha1 };
    let mut sc = ScramClient::new(hash, user, password, None);
    let first = STANDARD.encode(sc.first_message());
    (format!("<auth xmlns='{NS_SASL}' mechanism='{mech}'>{first}</auth>"), Some((sc, hash)))
}

/// RFC 5802 §5 from the server-first-message on: the salted password from
/// the cache (or PBKDF2 once), the proof, and the server signature check.
async fn scram_finish(
    ctx: &Ctx,
    tls: &mut Tls,
    framer: &mut Framer,
    (mut sc, hash): (ScramClient, Hash),
    bare: &str,
    password: &str,
) -> Result<(), String> {
    let st = next_stanza(tls, framer).await?;
    if !st.starts_with(b"<challenge") {
        return Err(format!("authentication failed: {}", String::from_utf8_lossy(&st)));
    }
    let challenge = STANDARD.decode(inner_text(&st)).map_err(|_| "challenge is not base64")?;
    let (salt, iterations) = salt_and_iterations(&challenge)?;
    let sp = match ctx.pw_cache.get(bare, hash, &salt, iterations) {
        Some(sp) => sp,
        None => {
            // PBKDF2 on the blocking pool, at most one per CPU at once.
            let _slot = ctx.pbkdf2_slots.acquire().await.map_err(|_| "closing")?;
            let t = Instant::now();
            let (pw, s) = (password.to_owned(), salt.clone());
            let salted = tokio::task::spawn_blocking(move || salted_password(hash, &pw, &s, iterations))
                .await
                .map_err(|e| format!("PBKDF2: {e}"))?;
            ctx.stats.pbkdf2_runs.fetch_add(1, Relaxed);
            ctx.stats.pbkdf2_us.fetch_add(t.elapsed().as_micros() as u64, Relaxed);
            let sp = SaltedPassword { hash, salt, iterations, salted_password: salted };
            ctx.pw_cache.put(bare, sp.clone());
            sp
        }
    };
    sc = sc.with_salted_password(sp);
    let fin = STANDARD.encode(sc.handle_challenge(&challenge)?);
    send(tls, format!("<response xmlns='{NS_SASL}'>{fin}</response>").as_bytes()).await?;
    let st = next_stanza(tls, framer).await?;
    if !st.starts_with(b"<success") {
        return Err(format!("authentication failed: {}", String::from_utf8_lossy(&st)));
    }
    let data = STANDARD.decode(inner_text(&st)).map_err(|_| "success data is not base64")?;
    sc.verify_success(&data)
}

/// Connect, negotiate and log user `idx` in (connection number `n`).
async fn login(ctx: &Ctx, idx: u64, n: u64) -> Result<(Session, LoginOk), String> {
    let a = &ctx.args;
    let sock = if ctx.server.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|e| format!("socket: {e}"))?;
    let _ = sock.set_reuseaddr(true);
    if let Some(src) = ctx.source(n) {
        sock.bind(std::net::SocketAddr::new(src, 0)).map_err(|e| format!("bind {src}: {e}"))?;
    }
    let mut tcp = sock.connect(ctx.server).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let mut framer = Framer::new(1 << 20, 64);
    let header = stream_header(&a.domain);
    // Pipelining (XEP-0305 §4, as fast clients do): with the mechanism known
    // in advance, each request goes out with the one before it where no
    // answer is needed in between: the stream header with <starttls/>, the
    // new header and <auth/> with the TLS Finished, the header after SASL
    // with bind, roster get and presence. 5 round trips instead of 8.
    let pipeline = !a.no_pipeline && a.mech != super::Mech::Auto;

    // RFC 6120 §5: STARTTLS.
    let starttls = format!("<starttls xmlns='{NS_TLS}'/>");
    if pipeline {
        send(&mut tcp, format!("{header}{starttls}").as_bytes()).await?;
    } else {
        send(&mut tcp, header.as_bytes()).await?;
    }
    let features = next_stanza(&mut tcp, &mut framer).await?;
    if !contains(&features, NS_TLS.as_bytes()) {
        return Err("server does not offer STARTTLS".into());
    }
    if !pipeline {
        send(&mut tcp, starttls.as_bytes()).await?;
    }
    let proceed = next_stanza(&mut tcp, &mut framer).await?;
    if !proceed.starts_with(b"<proceed") {
        return Err(format!("STARTTLS refused: {}", String::from_utf8_lossy(&proceed)));
    }
    framer.reset();

    // RFC 6120 §6: SASL.
    let user = a.user(idx);
    let password = a.password_of(idx);
    let bare = format!("{user}@{}", a.domain);
    let mut early_auth = None;
    let mut tls = if pipeline {
        let (auth, sc) = auth_start(a.mech.name(), &user, &password);
        early_auth = Some(sc);
        let early = format!("{header}{auth}");
        // Written by rustls right after the client Finished (RFC 8446 §4.4.4),
        // in the same flight.
        ctx.tls
            .connect_with(ctx.tls_name.clone(), tcp, |c| {
                let _ = io::Write::write_all(&mut c.writer(), early.as_bytes());
            })
            .await
            .map_err(|e| format!("TLS: {e}"))?
    } else {
        let mut tls = ctx.tls.connect(ctx.tls_name.clone(), tcp).await.map_err(|e| format!("TLS: {e}"))?;
        send(&mut tls, header.as_bytes()).await?;
        tls
    };
    let features = next_stanza(&mut tls, &mut framer).await?;
    let offered = mechanisms(&features);
    let has = |m: &str| offered.iter().any(|o| o == m);
    let mech = match a.mech {
        super::Mech::Auto if has("SCRAM-SHA-256") => "SCRAM-SHA-256",
        super::Mech::Auto if has("SCRAM-SHA-1") => "SCRAM-SHA-1",
        super::Mech::Auto => "PLAIN",
        m => m.name(),
    };
    if !has(mech) {
        return Err(format!("server does not offer {mech} (offers {offered:?})"));
    }
    {
        let mut used = ctx.mech_used.lock().unwrap();
        if used.is_none() {
            *used = Some(mech.to_owned());
        }
    }
    let sc = match early_auth {
        Some(sc) => sc,
        None => {
            let (auth, sc) = auth_start(mech, &user, &password);
            send(&mut tls, auth.as_bytes()).await?;
            sc
        }
    };
    match sc {
        None => {
            let st = next_stanza(&mut tls, &mut framer).await?;
            if !st.starts_with(b"<success") {
                return Err(format!("authentication failed: {}", String::from_utf8_lossy(&st)));
            }
        }
        Some(sc) => scram_finish(ctx, &mut tls, &mut framer, sc, &bare, &password).await?,
    }
    framer.reset();

    // RFC 6120 §7: bind (and the legacy session where it is not optional).
    let bind =
        format!("<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>", a.resource);
    // RFC 6121 §2.2, §4.2: roster get, then initial presence.
    let rest = "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq><presence/>";
    let restart = if pipeline { format!("{header}{bind}{rest}") } else { header.clone() };
    send(&mut tls, restart.as_bytes()).await?;
    let features = next_stanza(&mut tls, &mut framer).await?;
    if !contains(&features, NS_BIND.as_bytes()) {
        return Err(format!("no resource binding offered: {}", String::from_utf8_lossy(&features)));
    }
    let needs_session = contains(&features, NS_SESSION.as_bytes()) && !contains(&features, b"<optional");
    let session = if needs_session {
        format!("<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>")
    } else {
        String::new()
    };
    // Pipelined, an old server that wants RFC 3921 sessions gets one, late.
    let late = if pipeline { session } else { format!("{bind}{session}{rest}") };
    if !late.is_empty() {
        send(&mut tls, late.as_bytes()).await?;
    }
    let mut s = Session { tls, framer, bare };
    let mut replies = Vec::new();
    // Logged in once the roster has come and the server has echoed our
    // initial presence (RFC 6121 §4.2.2): from then on the server treats the
    // session as available and routes bare-JID messages to it (§8.5.2.1.1).
    let (mut roster, mut echoed) = (None, false);
    loop {
        let st = next_stanza(&mut s.tls, &mut s.framer).await?;
        if st.starts_with(b"<presence") && attr(&st, "type").is_none() {
            let from = attr(&st, "from").unwrap_or_default();
            echoed |= from.split(|&b| b == b'/').next() == Some(s.bare.as_bytes());
        }
        if let Some((id, ok, items)) = s.handle(ctx, &st, &mut replies)? {
            match (id.as_str(), ok) {
                ("bind" | "sess", true) => {}
                ("roster", true) => roster = Some(items),
                _ => return Err(format!("iq {id} failed: {}", String::from_utf8_lossy(&st))),
            }
        }
        if !replies.is_empty() {
            send(&mut s.tls, &std::mem::take(&mut replies)).await?;
        }
        if let (Some(items), true) = (roster, echoed) {
            return Ok((s, LoginOk { roster_items: items }));
        }
    }
}

impl Session {
    /// Handle every stanza the framer holds; `Err` when the stream failed.
    fn drain(&mut self, ctx: &Ctx, idx: u64, out: &mut Vec<u8>) -> Result<(), ()> {
        loop {
            match self.framer.next_event() {
                Ok(Some(Event::Stanza(st))) => {
                    if st.starts_with(b"<stream:error") {
                        ctx.stats.error(format!("{}: {}", ctx.args.user(idx), String::from_utf8_lossy(&st)));
                        return Err(());
                    }
                    self.handle(ctx, &st, out).map_err(|_| ())?;
                }
                Ok(Some(Event::StreamOpen(_))) => {}
                Ok(Some(Event::StreamClose)) | Err(_) => return Err(()),
                Ok(None) => return Ok(()),
            }
        }
    }

    /// Account for one received stanza; an iq result or error is returned as
    /// (id, is-result, roster items), requests addressed to us are answered into `out`.
    fn handle(&self, ctx: &Ctx, st: &[u8], out: &mut Vec<u8>) -> Result<Option<(String, bool, u64)>, String> {
        let s = &ctx.stats;
        if st.starts_with(b"<message") {
            if attr(st, "type") == Some(b"error") {
                s.bounced.fetch_add(1, Relaxed);
                s.progressed();
            } else if let Some((ts, _)) = stamp(st) {
                let now = ctx.now_us();
                s.msg_hist.lock().unwrap().record(now.saturating_sub(ts));
                s.delivered.fetch_add(1, Relaxed);
                s.last_delivery_us.fetch_max(now, Relaxed);
                s.progressed();
            }
        } else if st.starts_with(b"<presence") {
            let from = attr(st, "from").unwrap_or_default();
            let from_bare = from.split(|&b| b == b'/').next().unwrap_or_default();
            if from_bare != self.bare.as_bytes() && attr(st, "type") != Some(b"error") {
                s.presence_rx.fetch_add(1, Relaxed);
                let now = ctx.now_us();
                s.last_delivery_us.fetch_max(now, Relaxed);
                if let Some((ts, _)) = stamp(st) {
                    s.presence_timed.fetch_add(1, Relaxed);
                    s.presence_hist.lock().unwrap().record(now.saturating_sub(ts));
                }
                s.progressed();
            }
        } else if st.starts_with(b"<iq") {
            let id = String::from_utf8_lossy(attr(st, "id").unwrap_or_default()).into_owned();
            match attr(st, "type").unwrap_or_default() {
                b"get" | b"set" => {
                    // A request to this client (e.g. a server ping): an empty result.
                    let to =
                        attr(st, "from").map(|f| format!(" to='{}'", String::from_utf8_lossy(f))).unwrap_or_default();
                    out.extend_from_slice(format!("<iq type='result' id='{id}'{to}/>").as_bytes());
                }
                b"result" => {
                    let items = st.windows(5).filter(|w| w == b"<item").count() as u64;
                    return Ok(Some((id, true, items)));
                }
                _ => return Ok(Some((id, false, 0))),
            }
        }
        Ok(None)
    }
}

fn write_cmd(ctx: &Ctx, cmd: &Cmd, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let a = &ctx.args;
    match cmd {
        Cmd::Chat { to, seq, ts } => {
            let _ = write!(
                out,
                "<message to='{}{}@{}' type='chat' id='m{seq}'><body>#lt{ts}.{seq}# {:x<pad$}</body></message>",
                a.prefix,
                to,
                a.domain,
                "",
                pad = a.body_size
            );
        }
        Cmd::Presence { seq, ts, away } => {
            let show = if *away { "<show>away</show>" } else { "" };
            let _ = write!(out, "<presence>{show}<status>#lt{ts}.{seq}#</status></presence>");
        }
    }
}

/// One connection's whole life: wait for nothing but the permit it was
/// given, log in, report, then serve commands until the channel closes.
pub async fn connection(
    ctx: Arc<Ctx>,
    idx: u64,
    n: u64,
    mut rx: mpsc::Receiver<Cmd>,
    results: mpsc::UnboundedSender<LoginResult>,
    permit: OwnedSemaphorePermit,
) {
    let t = Instant::now();
    let r = match tokio::time::timeout(Duration::from_secs(ctx.args.timeout), login(&ctx, idx, n)).await {
        Ok(r) => r,
        Err(_) => Err("login timed out".into()),
    };
    drop(permit);
    let s = &ctx.stats;
    let mut session = match r {
        Ok((session, ok)) => {
            s.login_hist.lock().unwrap().record(t.elapsed().as_micros() as u64);
            s.logins_ok.fetch_add(1, Relaxed);
            s.roster_items.fetch_add(ok.roster_items, Relaxed);
            let _ = results.send((n, Ok(ok)));
            session
        }
        Err(e) => {
            s.logins_failed.fetch_add(1, Relaxed);
            s.error(format!("{}: {e}", ctx.args.user(idx)));
            let _ = results.send((n, Err(e)));
            return;
        }
    };
    drop(results);
    let mut out = Vec::new();
    let closed_by_us = loop {
        // What is framed (also what the login read ahead), then wait for more.
        if session.drain(&ctx, idx, &mut out).is_err() {
            break false;
        }
        if !out.is_empty() {
            if send(&mut session.tls, &out).await.is_err() {
                break false;
            }
            out = Vec::new();
        }
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break true };
                let (mut chats, mut presences) = (0, 0);
                let mut count = |c: &Cmd| match c {
                    Cmd::Chat { .. } => chats += 1,
                    Cmd::Presence { .. } => presences += 1,
                };
                write_cmd(&ctx, &cmd, &mut out);
                count(&cmd);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(c) => {
                            write_cmd(&ctx, &c, &mut out);
                            count(&c);
                        }
                        Err(_) => break,
                    }
                }
                if send(&mut session.tls, &out).await.is_err() {
                    break false;
                }
                out = Vec::new();
                s.sent.fetch_add(chats, Relaxed);
                s.presence_sent.fetch_add(presences, Relaxed);
            }
            r = read_into(&mut session.tls, &mut session.framer) => {
                match r {
                    Ok(0) | Err(_) => break false,
                    Ok(_) => {}
                }
            }
        }
    };
    if closed_by_us {
        // RFC 6120 §4.4: close the stream; do not wait for the server's answer.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = session.tls.write_all(b"</stream:stream>").await;
            let _ = session.tls.shutdown().await;
        })
        .await;
    } else {
        s.disconnects.fetch_add(1, Relaxed);
        s.error(format!("{}: connection lost after login", ctx.args.user(idx)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes() {
        let st = b"<message from='a@b/c' to=\"x@y\" type = 'error' id='1'><body>to='no'</body></message>";
        assert_eq!(attr(st, "from"), Some(&b"a@b/c"[..]));
        assert_eq!(attr(st, "to"), Some(&b"x@y"[..]));
        assert_eq!(attr(st, "type"), Some(&b"error"[..]));
        assert_eq!(attr(st, "xml:lang"), None);
        assert_eq!(attr(b"<presence/>", "type"), None);
    }

    #[test]
    fn stamps_and_text() {
        assert_eq!(stamp(b"<message><body>#lt123.45# xxx</body></message>"), Some((123, 45)));
        assert_eq!(stamp(b"<message><body>hi</body></message>"), None);
        assert_eq!(inner_text(b"<challenge xmlns='x'> abc= </challenge>"), b"abc=");
        assert_eq!(inner_text(b"<success xmlns='x'/>"), b"");
        assert_eq!(
            mechanisms(b"<stream:features><mechanisms xmlns='x'><mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism></mechanisms></stream:features>"),
            vec!["PLAIN".to_string(), "SCRAM-SHA-1".to_string()]
        );
        assert_eq!(salt_and_iterations(b"r=abc,s=AAEC,i=4096").unwrap(), (vec![0, 1, 2], 4096));
    }
}
