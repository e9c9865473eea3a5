//! A connection's write side: WebSocket frames the gateway encodes itself,
//! written straight to the socket.
//!
//! The gateway sends only server frames, which are never masked (RFC 6455
//! §5.1), so encoding one is a header in front of the payload
//! ([`FrameBuf`]). tungstenite still reads the client's frames, through
//! [`ReadOnly`], which drops what tungstenite would write back (its
//! automatic pong and close replies): the session answers those itself, so
//! only this module writes to a socket.
//!
//! A plain TCP connection's write half is a [`Wire`], shared by the
//! client's writer task and the hub. When nobody is writing to the client
//! and nothing is left over from an earlier write, the hub writes the
//! client's queued events itself, in its own task, with one non-blocking
//! `send`: delivering a live event costs no task wake-up. What the socket
//! does not take at once is kept, in order, and written by the writer task,
//! which waits for the socket to become writable. A TLS connection is
//! written only by its writer task ([`WriteSide::Stream`]).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// The opcodes of the frames the gateway sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opcode {
    Text = 0x1,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// The longest frame header: two bytes, and eight more for a 64-bit length.
const MAX_HEADER: usize = 10;

/// A buffer that builds one server frame at a time (FIN set, unmasked).
#[derive(Default)]
pub(crate) struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// Builds a frame whose payload `fill` appends, and returns its bytes.
    pub(crate) fn build(&mut self, opcode: Opcode, fill: impl FnOnce(&mut Vec<u8>)) -> &[u8] {
        self.buf.clear();
        self.buf.resize(MAX_HEADER, 0);
        fill(&mut self.buf);
        let len = self.buf.len() - MAX_HEADER;
        let mut header = [0u8; MAX_HEADER];
        header[0] = 0x80 | opcode as u8;
        let size = if len < 126 {
            header[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            header[1] = 126;
            header[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_HEADER - size;
        self.buf[start..MAX_HEADER].copy_from_slice(&header[..size]);
        &self.buf[start..]
    }

    /// A close frame: the code, then the reason.
    pub(crate) fn close(&mut self, code: u16, reason: &str) -> &[u8] {
        self.build(Opcode::Close, |b| {
            b.extend_from_slice(&code.to_be_bytes());
            b.extend_from_slice(reason.as_bytes());
        })
    }
}

/// A connection's read half as tungstenite's stream. Writes are dropped:
/// tungstenite queues automatic pong and close replies, and the session
/// sends its own instead (through the client's send queue, in order).
pub(crate) struct ReadOnly<R>(pub R);

impl<R: AsyncRead + Unpin> AsyncRead for ReadOnly<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for ReadOnly<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A connection's stream, split into what tungstenite reads and where the
/// writer writes.
pub(crate) trait IntoWire {
    type Read: AsyncRead + Unpin + Send + 'static;
    fn into_wire(self) -> (Self::Read, WriteSide);
}

impl IntoWire for TcpStream {
    type Read = OwnedReadHalf;

    fn into_wire(self) -> (OwnedReadHalf, WriteSide) {
        let (read, write) = self.into_split();
        (read, WriteSide::Tcp(Arc::new(Wire::new(write))))
    }
}

impl<S> IntoWire for TlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Read = ReadHalf<TlsStream<S>>;

    fn into_wire(self) -> (Self::Read, WriteSide) {
        let (read, write) = tokio::io::split(self);
        (read, WriteSide::Stream(Box::new(write)))
    }
}

/// Why a write did not complete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WriteError {
    /// The socket failed or the connection is closing.
    Broken,
    /// The socket took nothing within the write timeout: the client stopped
    /// reading.
    Stalled,
}

/// A plain TCP connection's write half, shared by the client's writer task
/// and the hub.
pub(crate) struct Wire {
    socket: OwnedWriteHalf,
    state: Mutex<WireState>,
}

/// Who may write, and what is left to write. Every write to the socket
/// happens under this lock and never waits, so it is held for one `send`.
#[derive(Default)]
pub(crate) struct WireState {
    /// Bytes the socket has not taken yet: they go before anything else.
    pending: Vec<u8>,
    /// The writer task has taken frames off the send queue and is writing
    /// them: nobody else writes until it is done.
    writer_active: bool,
    /// A close frame went out, or the socket failed: nothing more is written.
    closed: bool,
}

/// Pending bytes above this are given back once written.
const KEEP_PENDING: usize = 64 * 1024;

impl Wire {
    pub(crate) fn new(socket: OwnedWriteHalf) -> Wire {
        Wire {
            socket,
            state: Mutex::new(WireState::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WireState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, if nobody is writing and nothing is pending: the caller
    /// may write now, with [`Wire::write_now`].
    pub(crate) fn try_idle(&self) -> Option<MutexGuard<'_, WireState>> {
        let state = self.state.try_lock().ok()?;
        (!state.writer_active && state.pending.is_empty() && !state.closed).then_some(state)
    }

    /// Writes as much of `bytes` as the socket takes now, after anything
    /// pending; keeps the rest for [`Wire::flush`]. Returns whether
    /// everything has been written.
    pub(crate) fn write_now(&self, state: &mut WireState, bytes: &[u8]) -> io::Result<bool> {
        if state.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if !self.drain(state)? {
            state.pending.extend_from_slice(bytes);
            return Ok(false);
        }
        let written = self.send(state, bytes)?;
        state.pending.extend_from_slice(&bytes[written..]);
        Ok(written == bytes.len())
    }

    /// Writes what is pending as far as the socket takes it; true once
    /// nothing is left.
    fn drain(&self, state: &mut WireState) -> io::Result<bool> {
        if state.pending.is_empty() {
            return Ok(true);
        }
        let pending = std::mem::take(&mut state.pending);
        let written = self.send(state, &pending);
        state.pending = pending;
        let written = written?;
        state.pending.drain(..written);
        if state.pending.is_empty() && state.pending.capacity() > KEEP_PENDING {
            state.pending = Vec::new();
        }
        Ok(state.pending.is_empty())
    }

    /// Sends without waiting; how many bytes the socket took.
    fn send(&self, state: &mut WireState, bytes: &[u8]) -> io::Result<usize> {
        let mut at = 0;
        while at < bytes.len() {
            match self.socket.try_write(&bytes[at..]) {
                Ok(0) => {
                    state.closed = true;
                    return Err(io::ErrorKind::WriteZero.into());
                }
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    state.closed = true;
                    return Err(e);
                }
            }
        }
        Ok(at)
    }

    /// Writes everything pending, waiting for the socket. Fails as stalled
    /// only once the socket has taken nothing for `timeout`: a client that
    /// keeps reading, however far behind, is never cut off for being slow.
    async fn flush(&self, timeout: Duration) -> Result<(), WriteError> {
        let mut deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let mut state = self.lock();
                let before = state.pending.len();
                if self.drain(&mut state).map_err(|_| WriteError::Broken)? {
                    return Ok(());
                }
                if state.pending.len() < before {
                    deadline = tokio::time::Instant::now() + timeout;
                }
            }
            match tokio::time::timeout_at(deadline, self.socket.writable()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(WriteError::Broken),
                Err(_) => return Err(WriteError::Stalled),
            }
        }
    }
}

/// Where a client's writer task writes.
pub(crate) enum WriteSide {
    /// Plain TCP, shared with the hub.
    Tcp(Arc<Wire>),
    /// Any other stream (TLS), written by the writer task alone.
    Stream(Box<dyn AsyncWrite + Send + Unpin>),
}

impl WriteSide {
    /// The wire the hub may write to directly, if any.
    pub(crate) fn wire(&self) -> Option<Arc<Wire>> {
        match self {
            WriteSide::Tcp(wire) => Some(wire.clone()),
            WriteSide::Stream(_) => None,
        }
    }

    /// Marks the writer task as writing (true) or done (false): while it
    /// writes, the hub leaves the client's queue to it.
    pub(crate) fn set_active(&self, active: bool) {
        if let WriteSide::Tcp(wire) = self {
            wire.lock().writer_active = active;
        }
    }

    /// Writes `bytes` after anything pending; stalled once the socket has
    /// taken nothing for `timeout`.
    pub(crate) async fn write(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<(), WriteError> {
        match self {
            WriteSide::Tcp(wire) => {
                wire.write_now(&mut wire.lock(), bytes)
                    .map_err(|_| WriteError::Broken)?;
                wire.flush(timeout).await
            }
            WriteSide::Stream(stream) => {
                // Each write that takes something is progress (see `Wire::flush`).
                let mut at = 0;
                while at < bytes.len() {
                    match tokio::time::timeout(timeout, stream.write(&bytes[at..])).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return Err(WriteError::Broken),
                        Ok(Ok(n)) => at += n,
                        Err(_) => return Err(WriteError::Stalled),
                    }
                }
                match tokio::time::timeout(timeout, stream.flush()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(WriteError::Broken),
                    Err(_) => Err(WriteError::Stalled),
                }
            }
        }
    }

    /// Writes whatever the hub left pending; stalled once the socket has
    /// taken nothing for `timeout`.
    pub(crate) async fn flush(&mut self, timeout: Duration) -> Result<(), WriteError> {
        match self {
            WriteSide::Tcp(wire) => wire.flush(timeout).await,
            WriteSide::Stream(_) => Ok(()),
        }
    }

    /// Nothing more is written: the hub stops, and a TLS stream sends its
    /// close notification (a TCP socket is shut down when the connection's
    /// halves are dropped).
    pub(crate) async fn finish(&mut self, timeout: Duration) {
        match self {
            WriteSide::Tcp(wire) => wire.lock().closed = true,
            WriteSide::Stream(stream) => {
                let _ = tokio::time::timeout(timeout, stream.shutdown()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_shortest_length_encoding() {
        let mut f = FrameBuf::default();
        assert_eq!(
            f.build(Opcode::Text, |b| b.extend_from_slice(b"hi")),
            b"\x81\x02hi"
        );
        let medium = f
            .build(Opcode::Text, |b| b.resize(b.len() + 300, b'x'))
            .to_vec();
        assert_eq!(&medium[..4], &[0x81, 126, 0x01, 0x2c]);
        assert_eq!(medium.len(), 4 + 300);
        let large = f
            .build(Opcode::Text, |b| b.resize(b.len() + 70_000, b'x'))
            .to_vec();
        assert_eq!(&large[..2], &[0x81, 127]);
        assert_eq!(&large[2..10], &70_000u64.to_be_bytes());
        assert_eq!(large.len(), 10 + 70_000);
        assert_eq!(f.close(4008, "slow"), b"\x88\x06\x0f\xa8slow");
        assert_eq!(f.build(Opcode::Ping, |_| {}), b"\x89\x00");
    }

    /// The write timeout runs from the last byte the socket took, not from
    /// the start of a write: a client that keeps reading, however far
    /// behind, is not cut off; one that stops reading is.
    #[tokio::test]
    async fn a_slow_reader_is_not_stalled_and_a_stopped_one_is() {
        use tokio::io::AsyncReadExt;
        // Small buffers (accepted sockets inherit the listener's), so the
        // socket fills at once and every read makes room.
        let listen = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        let _ = listen.set_send_buffer_size(16 * 1024);
        let _ = listen.set_recv_buffer_size(16 * 1024);
        listen
            .bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|e| panic!("{e}"));
        let listener = listen.listen(8).unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let timeout = Duration::from_millis(500);
        let data = vec![b'x'; 512 * 1024];

        let mut slow = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (socket, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_read, write) = socket.into_split();
        let mut side = WriteSide::Tcp(Arc::new(Wire::new(write)));
        // 8 KiB every 10 ms: the 512 KiB take longer than the timeout in all.
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 8 * 1024];
            let mut total = 0;
            while total < 512 * 1024 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                match slow.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            total
        });
        assert!(matches!(side.write(&data, timeout).await, Ok(())));
        assert_eq!(reader.await.unwrap_or(0), 512 * 1024);

        // Connected, never reading.
        let _stopped = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (socket, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_read, write) = socket.into_split();
        let mut side = WriteSide::Tcp(Arc::new(Wire::new(write)));
        assert!(matches!(
            side.write(&data, timeout).await,
            Err(WriteError::Stalled)
        ));
    }

    /// The gateway's frames read back as tungstenite reads them.
    #[tokio::test]
    async fn tungstenite_reads_what_the_wire_writes() {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::protocol::Role;
        use tokio_tungstenite::tungstenite::Message;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let Ok(listener) = listener else {
            panic!("cannot bind loopback");
        };
        let addr = listener.local_addr().ok();
        let client = tokio::spawn(async move {
            let Some(addr) = addr else { return Vec::new() };
            let Ok(tcp) = tokio::net::TcpStream::connect(addr).await else {
                return Vec::new();
            };
            let mut ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
            let mut got = Vec::new();
            while let Some(Ok(m)) = ws.next().await {
                let end = m.is_close();
                got.push(m);
                if end {
                    break;
                }
            }
            got
        });
        let Ok((socket, _)) = listener.accept().await else {
            panic!("no connection");
        };
        let (_read, write) = socket.into_split();
        let mut side = WriteSide::Tcp(Arc::new(Wire::new(write)));
        let mut f = FrameBuf::default();
        let big = "y".repeat(200_000);
        for frame in [
            f.build(Opcode::Text, |b| b.extend_from_slice(b"small"))
                .to_vec(),
            f.build(Opcode::Text, |b| b.extend_from_slice(big.as_bytes()))
                .to_vec(),
            f.build(Opcode::Ping, |_| {}).to_vec(),
            f.close(1001, "bye").to_vec(),
        ] {
            assert_eq!(side.write(&frame, Duration::from_secs(5)).await, Ok(()));
        }
        side.finish(Duration::from_secs(1)).await;
        let got = client.await.unwrap_or_default();
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Message::text("small"));
        assert_eq!(got[1], Message::text(big));
        assert!(got[2].is_ping());
        let Message::Close(Some(close)) = &got[3] else {
            panic!("expected a close frame, got {:?}", got[3]);
        };
        assert_eq!(u16::from(close.code), 1001);
        assert_eq!(close.reason.as_str(), "bye");
    }
}
