//! The TCP socket under a TLS stream, holding back the TLS 1.3 session
//! ticket (RFC 8446 §4.6.1) that rustls writes as the server's handshake
//! ends, so that it leaves in front of the first reply instead of in a
//! write (and a wake-up of the client) of its own: one syscall per login.
//!
//! What is held is recognised by its first byte: while the handshake runs,
//! a write that starts with an encrypted record (type 23, RFC 8446 §5.2)
//! can only be the ticket flight, or an alert after a failure (sent by
//! [`HoldTicket::release_now`]). TLS 1.2's last flight starts with a
//! handshake or ChangeCipherSpec record and is never held: its client waits
//! for it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// TLS 1.3's outer content type of every encrypted record.
const APPLICATION_DATA: u8 = 23;

/// A TCP stream that may hold back the ticket flight (see the module docs).
pub struct HoldTicket {
    tcp: TcpStream,
    /// Handshake in progress: encrypted-record writes are held.
    holding: bool,
    /// Bytes held, written in front of the next write.
    held: Vec<u8>,
}

impl HoldTicket {
    /// Wrap a socket about to start a server handshake.
    pub fn new(tcp: TcpStream) -> HoldTicket {
        HoldTicket { tcp, holding: true, held: Vec::new() }
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The handshake is over: nothing more is held; what is held goes out
    /// with the next write.
    pub fn handshake_done(&mut self) {
        self.holding = false;
    }

    /// Write what is held now, without waiting (a failed handshake's alert).
    pub fn release_now(&mut self) {
        self.holding = false;
        if !self.held.is_empty() {
            let _ = self.tcp.try_write(&self.held);
            self.held = Vec::new();
        }
    }

    /// Write the held bytes in front of `bufs`; how many bytes of `bufs`
    /// went out. Partial writes of the held part are kept track of.
    fn poll_write_held(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&self.held));
            all.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = std::task::ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            if n >= self.held.len() {
                let ours = n - self.held.len();
                // Freed: an idle connection keeps no buffer.
                self.held = Vec::new();
                if ours > 0 || bufs.iter().all(|b| b.is_empty()) {
                    return Poll::Ready(Ok(ours));
                }
            } else {
                self.held.drain(..n);
            }
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
}

impl AsyncRead for HoldTicket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for HoldTicket {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty()).map(|b| b[0]);
        if this.holding && first == Some(APPLICATION_DATA) {
            let n = bufs.iter().map(|b| b.len()).sum();
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return Poll::Ready(Ok(n));
        }
        this.poll_write_held(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Held bytes wait for the next write, even through a flush (the
        // handshake's own flush as it ends); otherwise they go out now.
        if !this.holding && !this.held.is_empty() {
            std::task::ready!(this.poll_write_held(cx, &[]))?;
        }
        Pin::new(&mut this.tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.holding = false;
        if !this.held.is_empty() {
            std::task::ready!(this.poll_write_held(cx, &[]))?;
        }
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (HoldTicket, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (HoldTicket::new(s), c)
    }

    async fn read_now(c: &mut TcpStream) -> Vec<u8> {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut b = vec![0u8; 1024];
        match tokio::time::timeout(std::time::Duration::from_millis(50), c.read(&mut b)).await {
            Ok(Ok(n)) => b[..n].to_vec(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn an_encrypted_record_during_the_handshake_waits_for_the_next_write() {
        let (mut s, mut c) = pair().await;
        // The first flight (a handshake record) goes out at once.
        s.write_all(&[22, 3, 3, 0, 1, 9]).await.unwrap();
        assert_eq!(read_now(&mut c).await, [22, 3, 3, 0, 1, 9]);
        // The ticket (an encrypted record) is held, through a flush.
        s.write_all(&[23, 3, 3, 0, 1, 7]).await.unwrap();
        s.flush().await.unwrap();
        assert_eq!(read_now(&mut c).await, Vec::<u8>::new());
        s.handshake_done();
        // The first reply takes it along, in front.
        s.write_all(&[23, 3, 3, 0, 1, 8]).await.unwrap();
        assert_eq!(read_now(&mut c).await, [23, 3, 3, 0, 1, 7, 23, 3, 3, 0, 1, 8]);
        assert!(s.held.capacity() == 0);
    }

    #[tokio::test]
    async fn tls12_final_flight_and_failure_alerts_are_not_kept() {
        let (mut s, mut c) = pair().await;
        // TLS 1.2: ChangeCipherSpec first: written at once.
        s.write_all(&[20, 3, 3, 0, 1, 1]).await.unwrap();
        assert_eq!(read_now(&mut c).await, [20, 3, 3, 0, 1, 1]);
        // A held alert of a failed handshake goes out on release_now.
        s.write_all(&[23, 3, 3, 0, 1, 5]).await.unwrap();
        s.release_now();
        assert_eq!(read_now(&mut c).await, [23, 3, 3, 0, 1, 5]);
        // Held bytes also go out on shutdown.
        let (mut s, mut c) = pair().await;
        s.write_all(&[23, 1]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut all = Vec::new();
        c.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, [23, 1]);
    }
}
