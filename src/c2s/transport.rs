//! The connection's byte stream: plain TCP, or TLS after STARTTLS or on a
//! direct-TLS port. Reads go through a per-thread scratch buffer straight
//! into the framer, so a connection waiting for data holds no read buffer
//! (shared/DESIGN.md, performance shape).

use super::ticket_hold::HoldTicket;
use crate::xml::Framer;
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

thread_local! {
    /// Scratch read buffer, one per worker thread.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; 16 * 1024].into_boxed_slice());
}

/// Plain or TLS.
pub enum Transport {
    /// Cleartext TCP (before STARTTLS).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<HoldTicket>>),
    /// Moved out during a TLS upgrade.
    Taken,
}

/// Outcome of a non-waiting read.
pub enum ReadOutcome {
    /// This many bytes went into the framer.
    Data(usize),
    /// The peer closed the connection.
    Eof,
    /// Nothing to read now.
    WouldBlock,
}

impl Transport {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Transport::Plain(t) => Some(t),
            Transport::Tls(t) => Some(t.get_ref().0.tcp()),
            Transport::Taken => None,
        }
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The rustls connection, when TLS.
    pub fn tls_conn(&self) -> Option<&rustls::ServerConnection> {
        match self {
            Transport::Tls(t) => Some(t.get_ref().1),
            _ => None,
        }
    }

    /// Wait until the socket may be readable.
    pub async fn readable(&self) -> io::Result<()> {
        match self.tcp() {
            Some(t) => t.readable().await,
            None => std::future::pending().await,
        }
    }

    /// Read what is available now into `framer`, without waiting.
    pub async fn read_now(&mut self, framer: &mut Framer) -> io::Result<ReadOutcome> {
        poll_fn(|cx| match self.poll_read_into(cx, framer) {
            Poll::Pending => Poll::Ready(Ok(ReadOutcome::WouldBlock)),
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(ReadOutcome::Eof)),
            Poll::Ready(Ok(n)) => Poll::Ready(Ok(ReadOutcome::Data(n))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        })
        .await
    }

    /// Read what the socket has into `framer`, registering for wake-up
    /// when there is nothing (`Ready(Ok(0))` is the end of the stream).
    pub fn poll_read_into(&mut self, cx: &mut Context<'_>, framer: &mut Framer) -> Poll<io::Result<usize>> {
        // A TLS connection with nothing decrypted or pending (a partial
        // record needs more bytes anyway) goes through the TLS read path
        // only once the socket is ready, not on every wake-up of the
        // connection, e.g. for each stanza it is sent: ~700 instructions
        // per routed message (callgrind, 320M vs 326M for 8,000 messages).
        if let Transport::Tls(t) = self {
            let (io, conn) = t.get_ref();
            if conn.wants_read() {
                match io.tcp().poll_read_ready(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Ready(Ok(())) => {}
                }
            }
        }
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let mut rb = ReadBuf::new(&mut s[..]);
            match Pin::new(&mut *self).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    framer.feed(rb.filled());
                    Poll::Ready(Ok(rb.filled().len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Write all of `data` and flush.
    pub async fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data).await?;
        self.flush().await
    }

    /// Write the last `data` of the stream and close: over TLS the data
    /// and the close_notify alert (RFC 8446 §6.1) leave in one write.
    pub async fn send_and_close(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        if let Transport::Tls(t) = self {
            // Into rustls's buffer without I/O; `shutdown` writes it all.
            // Short only when that buffer is full (a peer that stopped
            // reading): the rest goes the ordinary way, waiting for the peer.
            let n = io::Write::write(&mut t.get_mut().1.writer(), data).unwrap_or(0);
            rest = &data[n..];
        }
        if !rest.is_empty() {
            self.send(rest).await?;
        }
        self.shutdown().await
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Transport::Plain($s) => {
                let $s = Pin::new($s);
                $e
            }
            Transport::Tls($s) => {
                let $s = Pin::new(&mut **$s);
                $e
            }
            Transport::Taken => Poll::Ready(Err(io::Error::new(io::ErrorKind::NotConnected, "transport taken"))),
        }
    };
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        delegate!(self, s => s.poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => s.poll_shutdown(cx))
    }
}
