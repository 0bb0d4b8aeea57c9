//! Accepted connections, bounded: at most CONNECTIONS_MAX open at once (the
//! next waits in the kernel's backlog), TCP_NODELAY set (answers are small
//! and a client waits for each), and a connection that sends nothing for
//! CONNECTION_IDLE_MAX is closed, so idle or slow clients cannot hold
//! every slot.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, Instant, Sleep};

/// Connections open at once.
pub const CONNECTIONS_MAX: usize = 1024;
/// A connection that neither sends nor is sent anything for this long is closed.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(300);

pub struct BoundedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_max: Duration,
}

impl BoundedListener {
    pub fn new(inner: TcpListener) -> Self {
        Self::with_limits(inner, CONNECTIONS_MAX, CONNECTION_IDLE_MAX)
    }

    pub fn with_limits(inner: TcpListener, connections_max: usize, idle_max: Duration) -> Self {
        BoundedListener {
            inner,
            slots: Arc::new(Semaphore::new(connections_max)),
            idle_max,
        }
    }
}

impl Listener for BoundedListener {
    type Io = Connection;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Connection, Self::Addr) {
        // The semaphore is never closed, so a slot always comes.
        let slot = Arc::clone(&self.slots).acquire_owned().await;
        // axum's own accept retries on errors (EMFILE included, after a pause).
        let (stream, address) = Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stream,
            _slot: slot.ok(),
            idle: Box::pin(sleep(self.idle_max)),
            idle_max: self.idle_max,
        };
        (connection, address)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One accepted connection; its slot is given back when it is dropped.
pub struct Connection {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Pin<Box<Sleep>>,
    idle_max: Duration,
}

impl Connection {
    fn touched(&mut self) {
        self.idle.as_mut().reset(Instant::now() + self.idle_max);
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.touched();
                Poll::Ready(result)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write(cx, data);
        if written.is_ready() {
            this.touched();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, data);
        if written.is_ready() {
            this.touched();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connections_are_bounded_and_idle_ones_closed() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = inner.local_addr().unwrap();
        let mut listener = BoundedListener::with_limits(inner, 1, Duration::from_millis(200));
        let mut first_client = TcpStream::connect(address).await.unwrap();
        let (mut first, _) = listener.accept().await;
        // The only slot is taken: a second connection is not accepted yet.
        let _second_client = TcpStream::connect(address).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
        assert!(waiting.is_err());

        first_client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        first.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        // Nothing more comes: the connection is closed as idle.
        let e = first.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // Its slot comes back once it is dropped.
        drop(first);
        let accepted = tokio::time::timeout(Duration::from_secs(5), listener.accept()).await;
        assert!(accepted.is_ok());
    }
}
