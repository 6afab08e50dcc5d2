//! A connection as actix-http reads it: the client's bytes pass through
//! a [`Scanner`] first, and a refused request head never reaches
//! actix-http (see [`crate::framing`]).
//!
//! When a head is refused, the bytes before it still go to actix-http,
//! which then sees the end of the stream: it finishes the requests it has
//! (their answers are written first), shuts down, and drops the
//! connection. The refusal is written at that drop, by a task that then
//! closes the connection and reads (and drops) what the client still
//! sends for a bounded time, so that the close does not reset the
//! connection before the client has read the answer.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::framing::{Scanner, Step};

/// Room kept for each read from the socket.
const READ_CHUNK: usize = 16 * 1024;

/// How long, and how much, is read after a refusal before closing.
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: usize = 4 << 20;

/// A TCP connection whose request heads are checked before actix-http
/// reads them.
#[derive(Debug)]
pub struct Checked {
    /// Taken by `Drop` to write a refusal.
    io: Option<TcpStream>,
    /// Read from the socket, not yet handed to actix-http.
    held: BytesMut,
    /// How many bytes at the front of `held` were judged and may go.
    passable: usize,
    scanner: Scanner,
    /// The answer to a refused head, written when actix-http is done.
    refusal: Option<Vec<u8>>,
    /// The client closed its side.
    eof: bool,
}

impl Checked {
    pub fn new(io: TcpStream) -> Self {
        Self::with_held(io, BytesMut::new())
    }

    /// A connection of which `held` was read already (by the express
    /// lane, [`crate::express`]): those bytes come first, judged as any.
    pub fn with_held(io: TcpStream, held: BytesMut) -> Self {
        let mut checked = Self {
            io: Some(io),
            held,
            passable: 0,
            scanner: Scanner::default(),
            refusal: None,
            eof: false,
        };
        checked.judge();
        checked
    }

    fn io(&mut self) -> io::Result<&mut TcpStream> {
        self.io
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "connection taken"))
    }

    /// Judges the held bytes not judged yet, as far as they go.
    fn judge(&mut self) {
        while self.refusal.is_none() && self.passable < self.held.len() {
            match self.scanner.step(&self.held[self.passable..]) {
                Step::Pass(n) => self.passable += n,
                Step::More => break,
                Step::Refuse(refusal) => {
                    self.refusal = Some(refusal.to_bytes());
                    self.held.truncate(self.passable);
                }
            }
        }
    }
}

impl AsyncRead for Checked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.passable > 0 {
                let n = this.passable.min(buf.remaining());
                buf.put_slice(&this.held[..n]);
                this.held.advance(n);
                this.passable -= n;
                return Poll::Ready(Ok(()));
            }
            // A refused head, or the client's end: actix-http sees the end
            // of the stream (a head cut short by the client is dropped,
            // as actix-http would drop it).
            if this.refusal.is_some() || this.eof {
                return Poll::Ready(Ok(()));
            }
            // Bounded: unjudged bytes are a head under `MAX_HEAD`.
            this.held.reserve(READ_CHUNK);
            let Some(io) = this.io.as_mut() else {
                return Poll::Ready(Ok(()));
            };
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(io),
                cx,
                &mut this.held
            )) {
                Ok(0) => this.eof = true,
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            this.judge();
        }
    }
}

impl AsyncWrite for Checked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.io()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.is_write_vectored())
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.io()?).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // With a refusal to write, the connection stays open for it.
        if self.refusal.is_some() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(self.io()?).poll_shutdown(cx)
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        let (Some(reply), Some(io)) = (self.refusal.take(), self.io.take()) else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(refuse(io, reply));
        }
    }
}

/// Writes `reply`, closes the sending side, and reads what the client
/// still sends (bounded) before the connection is dropped.
async fn refuse(mut io: TcpStream, reply: Vec<u8>) {
    if io.write_all(&reply).await.is_err() {
        return;
    }
    let _ = io.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 16 * 1024];
        let mut left = DRAIN_BYTES;
        while left > 0 {
            match tokio::io::AsyncReadExt::read(&mut io, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}
