//! A small WebSocket client (RFC 6455) for the bench's clients half.
//!
//! The clients half is the load generator: its CPU competes with the server
//! on the same machine, so it reads frames as cheaply as a client can.
//! tokio-tungstenite zero-fills its whole read buffer on every read and
//! goes through the `Stream`/`Sink` machinery per message; this client does
//! neither. It only supports what the bench needs, and that correctly:
//!
//! - `ws://` URLs, no TLS, no extensions, no subprotocols;
//! - the opening handshake (§4.1): a random `Sec-WebSocket-Key`, status
//!   101, `Upgrade`, `Connection` and the `Sec-WebSocket-Accept` check
//!   (tungstenite's key helpers). Bytes after the response head are the
//!   start of the frame stream;
//! - reading (§5): one reusable buffer per connection, filled with
//!   `read_buf` into its spare capacity (never zeroed), 4 KiB to start and
//!   grown only for a larger frame. Every complete frame the buffer holds is
//!   parsed before the next read. Text messages may be fragmented; binary
//!   messages and pongs are skipped; pings are answered with a pong of the
//!   same payload; a close is answered with a close and ends the
//!   connection; [`Connection::close`] starts the closing handshake;
//! - writing: every frame the client sends is masked (§5.3) with the
//!   connection's random key.
//!
//! Frames and messages over 16 MiB (`MAX_MESSAGE`) are refused before any
//! room is made for them, and anything malformed (a masked server frame,
//! reserved bits or opcodes, bad fragmentation, a control frame that is too
//! long or fragmented, text that is not UTF-8, a bad close code) ends the
//! connection with a [`ProtocolError`] — nothing here panics on input.
//!
//! `FrameReader` does the parsing with no I/O, so it is tested on bytes;
//! [`Connection`] puts it on a `TcpStream`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::ops::Range;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest frame, and the largest assembled message, accepted.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;
/// A connection's read buffer to start with, and the least room a read gets.
const INITIAL_BUFFER: usize = 4 * 1024;
/// An empty buffer grown past this (for a rare large frame) goes back to
/// [`INITIAL_BUFFER`], so one large frame does not pin its memory.
const SHRINK_ABOVE: usize = 256 * 1024;
/// The longest handshake response head accepted.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// The longest payload of a control frame (§5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Where to connect: parsed from a `ws://host[:port][/path]` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `host:port`, for the TCP connection.
    address: String,
    /// The URL's authority, for the `Host` header.
    host: String,
    /// The request target, at least `/`.
    path: String,
}

impl Target {
    /// Parses a `ws://` URL. Anything else (`wss://`, user info, no host) is
    /// an error saying why.
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("{url}: the bench clients take ws:// URLs only"))?;
        let rest = rest.split('#').next().unwrap_or_default();
        let (host, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if host.is_empty() || host.contains('@') {
            return Err(format!("{url}: expected ws://HOST:PORT/PATH"));
        }
        let has_port = match host.strip_prefix('[') {
            Some(v6) => v6.contains("]:"),
            None => host.contains(':'),
        };
        Ok(Target {
            address: if has_port {
                host.to_string()
            } else {
                format!("{host}:80")
            },
            host: host.to_string(),
            path: if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_string()
            },
        })
    }
}

/// Why the server's bytes are not a valid WebSocket stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the server sent a masked frame")]
    MaskedFrame,
    #[error("a frame with reserved bits set (no extension was agreed)")]
    ReservedBits,
    #[error("a frame with the reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("a frame or message of {len} bytes, over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("a control frame that is fragmented or longer than 125 bytes")]
    BadControlFrame,
    #[error("a continuation frame with no message to continue")]
    UnexpectedContinuation,
    #[error("a new message before the fragmented one was finished")]
    UnfinishedMessage,
    #[error("a text message that is not UTF-8")]
    NotUtf8,
    #[error("a close frame with a malformed payload")]
    BadClosePayload,
    #[error("a close frame with the code {0}, which may not be sent")]
    BadCloseCode(u16),
}

/// A frame header, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    /// Bytes of the header itself: 2, 4 or 10 (server frames carry no mask).
    len: usize,
    payload_len: usize,
}

/// What the start of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete(Header),
    /// Not a whole header yet: at least this many bytes are needed in all.
    Need(usize),
}

/// Parses the frame header at the start of `bytes`. Refuses what no valid
/// server frame has, and any length over `max`, before the payload is read.
fn parse_header(bytes: &[u8], max: usize) -> Result<Head, ProtocolError> {
    let [b0, b1, rest @ ..] = bytes else {
        return Ok(Head::Need(2));
    };
    if b0 & 0x70 != 0 {
        return Err(ProtocolError::ReservedBits);
    }
    if b1 & 0x80 != 0 {
        return Err(ProtocolError::MaskedFrame);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(ProtocolError::ReservedOpcode(opcode));
    }
    let (len, payload_len) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (4, u64::from(u16::from_be_bytes([*a, *b]))),
            _ => return Ok(Head::Need(4)),
        },
        127 => match rest.first_chunk::<8>() {
            Some(bytes) => (10, u64::from_be_bytes(*bytes)),
            None => return Ok(Head::Need(10)),
        },
        short => (2, u64::from(short)),
    };
    let payload_len = usize::try_from(payload_len)
        .ok()
        .filter(|&n| n <= max)
        .ok_or(ProtocolError::TooLarge {
            len: payload_len,
            max,
        })?;
    if opcode >= OP_CLOSE && (!fin || payload_len > MAX_CONTROL_PAYLOAD) {
        return Err(ProtocolError::BadControlFrame);
    }
    Ok(Head::Complete(Header {
        fin,
        opcode,
        len,
        payload_len,
    }))
}

/// The kind of a fragmented message being assembled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fragmented {
    Text,
    /// Skipped: only its end is tracked.
    Binary,
}

/// Where a complete message's payload lies in a [`FrameReader`]. It holds
/// no borrow, so the reader can be used again before it is looked at.
#[derive(Debug, PartialEq, Eq)]
enum Ready {
    Text(TextAt),
    /// A ping's payload: a range of the read buffer.
    Ping(Range<usize>),
    /// A close frame's payload: a range of the read buffer.
    Close(Range<usize>),
}

/// Where a text message lies.
#[derive(Debug, PartialEq, Eq)]
enum TextAt {
    /// Whole in one frame: a range of the read buffer.
    Frame(Range<usize>),
    /// Assembled from fragments, in the message buffer.
    Assembled,
}

/// Parses server frames from a reusable buffer, with no I/O of its own.
#[derive(Debug)]
struct FrameReader {
    /// Bytes read and not yet consumed, from `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes from `start` the incomplete frame there needs in all.
    wanted: usize,
    /// The text message being assembled from fragments.
    message: Vec<u8>,
    fragmented: Option<Fragmented>,
    /// `message` was handed out and is cleared on the next call.
    message_taken: bool,
    max: usize,
}

impl FrameReader {
    /// A reader refusing frames and messages over `max` bytes.
    fn new(max: usize) -> FrameReader {
        FrameReader {
            buf: Vec::with_capacity(INITIAL_BUFFER),
            start: 0,
            wanted: 0,
            message: Vec::new(),
            fragmented: None,
            message_taken: false,
            max,
        }
    }

    /// The bytes read and not yet consumed.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Drops `n` bytes from the front of [`pending`](Self::pending).
    fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }

    /// Appends bytes as a read would (tests feed the reader this way).
    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Moves the unconsumed bytes to the front and makes room for the frame
    /// being read (at least [`INITIAL_BUFFER`] and always one byte more).
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > SHRINK_ABOVE {
            self.buf = Vec::with_capacity(INITIAL_BUFFER);
        }
        let room = self.wanted.max(self.buf.len() + 1).max(INITIAL_BUFFER);
        if self.buf.capacity() < room {
            self.buf.reserve(room - self.buf.len());
        }
    }

    /// Reads once from `source` into the buffer's spare room, without
    /// zeroing it. Returns the bytes read; 0 means the stream ended.
    async fn fill<R: AsyncRead + Unpin>(&mut self, source: &mut R) -> std::io::Result<usize> {
        self.make_room();
        source.read_buf(&mut self.buf).await
    }

    /// Parses frames until a message is complete. `None`: more bytes are
    /// needed. Pongs and binary messages are consumed and skipped.
    fn next_ready(&mut self) -> Result<Option<Ready>, ProtocolError> {
        if self.message_taken {
            self.message.clear();
            self.message_taken = false;
        }
        loop {
            let header = match parse_header(self.pending(), self.max)? {
                Head::Complete(header) => header,
                Head::Need(n) => {
                    self.wanted = n;
                    return Ok(None);
                }
            };
            let frame_len = header.len + header.payload_len;
            if self.pending().len() < frame_len {
                self.wanted = frame_len;
                return Ok(None);
            }
            let payload = self.start + header.len..self.start + frame_len;
            self.start += frame_len;
            self.wanted = 0;
            match header.opcode {
                OP_TEXT | OP_BINARY if self.fragmented.is_some() => {
                    return Err(ProtocolError::UnfinishedMessage)
                }
                OP_TEXT if header.fin => return Ok(Some(Ready::Text(TextAt::Frame(payload)))),
                OP_TEXT => {
                    self.message.extend_from_slice(&self.buf[payload]);
                    self.fragmented = Some(Fragmented::Text);
                }
                OP_BINARY if !header.fin => self.fragmented = Some(Fragmented::Binary),
                OP_CONTINUATION => match self.fragmented {
                    None => return Err(ProtocolError::UnexpectedContinuation),
                    Some(kind) => {
                        if kind == Fragmented::Text {
                            let total = self.message.len() + payload.len();
                            if total > self.max {
                                return Err(ProtocolError::TooLarge {
                                    len: total as u64,
                                    max: self.max,
                                });
                            }
                            self.message.extend_from_slice(&self.buf[payload]);
                        }
                        if header.fin {
                            self.fragmented = None;
                            if kind == Fragmented::Text {
                                self.message_taken = true;
                                return Ok(Some(Ready::Text(TextAt::Assembled)));
                            }
                        }
                    }
                },
                OP_PING => return Ok(Some(Ready::Ping(payload))),
                OP_CLOSE => return Ok(Some(Ready::Close(payload))),
                // A whole binary message, or a pong: nothing to do.
                _ => {}
            }
        }
    }

    /// A text message [`next_ready`](Self::next_ready) found, checked to
    /// be UTF-8.
    fn text(&self, at: TextAt) -> Result<&str, ProtocolError> {
        let bytes = match at {
            TextAt::Frame(range) => &self.buf[range],
            TextAt::Assembled => &self.message,
        };
        std::str::from_utf8(bytes).map_err(|_| ProtocolError::NotUtf8)
    }
}

/// A close frame's code and reason, if it has them, checked (§5.5.1).
fn close_status(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close_code_allowed(code) {
                return Err(ProtocolError::BadCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| ProtocolError::BadClosePayload)?;
            Ok(Some((code, reason)))
        }
        [_] => Err(ProtocolError::BadClosePayload),
    }
}

/// Whether an endpoint may send this close code (§7.4): the defined codes
/// other than 1004–1006 and 1015, and the registered and private ranges.
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// One frame from the client: final, masked with `mask` (§5.3).
fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}

/// Checks the server's handshake response head (without its final blank
/// line) against the key the request sent.
fn check_response(head: &[u8], key: &str) -> Result<(), String> {
    let head =
        std::str::from_utf8(head).map_err(|_| "the handshake response is not text".to_string())?;
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let mut parts = status.split(' ');
    let (version, code) = (parts.next(), parts.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) || code != Some("101") {
        return Err(format!("the server answered {status:?}, not 101"));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, None);
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("a malformed response header {line:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade = value.eq_ignore_ascii_case("websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection = value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions")
            || name.eq_ignore_ascii_case("sec-websocket-protocol")
        {
            return Err(format!(
                "the server chose {name}: {value}, which was not asked for"
            ));
        }
    }
    if !upgrade || !connection {
        return Err("the response does not upgrade the connection to websocket".into());
    }
    let expected = derive_accept_key(key.as_bytes());
    match accept {
        Some(accept) if accept == expected => Ok(()),
        Some(accept) => Err(format!(
            "Sec-WebSocket-Accept is {accept:?}, expected {expected:?}"
        )),
        None => Err("the response has no Sec-WebSocket-Accept".into()),
    }
}

/// A random mask key for one connection.
fn random_mask() -> [u8; 4] {
    let bits = RandomState::new().hash_one(0u8);
    (bits as u32).to_ne_bytes()
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The server closed it, with this code and reason if it gave them.
    Closed(Option<(u16, String)>),
    /// The stream ended with no close frame.
    Eof,
    Io(std::io::Error),
    Protocol(ProtocolError),
}

impl fmt::Display for Ended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ended::Closed(Some((code, reason))) => write!(f, "closed {code}: {reason}"),
            Ended::Closed(None) => f.write_str("closed"),
            Ended::Eof => f.write_str("connection ended"),
            Ended::Io(e) => write!(f, "I/O error: {e}"),
            Ended::Protocol(e) => write!(f, "protocol error: {e}"),
        }
    }
}

/// An open WebSocket connection, client side.
pub struct Connection {
    stream: TcpStream,
    reader: FrameReader,
    mask: [u8; 4],
    /// This side has sent its close frame: the server's is not answered.
    closing: bool,
}

impl Connection {
    /// Connects and does the opening handshake. The error says what failed.
    pub async fn open(target: &Target) -> Result<Connection, String> {
        let mut stream = TcpStream::connect(&target.address)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", target.address))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut reader = FrameReader::new(MAX_MESSAGE);
        let key = generate_key();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.host
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send the handshake: {e}"))?;
        loop {
            let pending = reader.pending();
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                check_response(&pending[..end], &key)?;
                reader.consume(end + 4);
                break;
            }
            if pending.len() > MAX_RESPONSE_HEAD {
                return Err(format!(
                    "the handshake response head is over {MAX_RESPONSE_HEAD} bytes"
                ));
            }
            match reader.fill(&mut stream).await {
                Ok(0) => return Err("the server closed the connection in the handshake".into()),
                Ok(_) => {}
                Err(e) => return Err(format!("handshake: {e}")),
            }
        }
        Ok(Connection {
            stream,
            reader,
            mask: random_mask(),
            closing: false,
        })
    }

    /// Starts the closing handshake with `code` and reads until the
    /// server's close frame, the end of the stream, or `patience`; messages
    /// that arrive meanwhile are dropped.
    pub async fn close(&mut self, code: u16, patience: std::time::Duration) {
        let frame = client_frame(OP_CLOSE, &code.to_be_bytes(), self.mask);
        if self.closing || self.stream.write_all(&frame).await.is_err() {
            return;
        }
        self.closing = true;
        let _ =
            tokio::time::timeout(patience, async { while self.next_text().await.is_ok() {} }).await;
    }

    /// Sends one text message.
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        let frame = client_frame(OP_TEXT, text.as_bytes(), self.mask);
        self.stream.write_all(&frame).await
    }

    /// The next text message, reading as needed. Pings are answered on the
    /// way. A close is answered, and ends the connection as an error does.
    pub async fn next_text(&mut self) -> Result<&str, Ended> {
        let at = loop {
            let Some(ready) = self.reader.next_ready().map_err(Ended::Protocol)? else {
                match self.reader.fill(&mut self.stream).await {
                    Ok(0) => return Err(Ended::Eof),
                    Ok(_) => continue,
                    Err(e) => return Err(Ended::Io(e)),
                }
            };
            match ready {
                Ready::Text(at) => break at,
                Ready::Ping(range) => {
                    let pong = client_frame(OP_PONG, &self.reader.buf[range], self.mask);
                    self.stream.write_all(&pong).await.map_err(Ended::Io)?;
                }
                Ready::Close(range) => {
                    let status = close_status(&self.reader.buf[range]).map_err(Ended::Protocol)?;
                    let code = status.map(|(code, _)| code.to_be_bytes());
                    let reply = client_frame(OP_CLOSE, code.as_ref().map_or(&[], |c| c), self.mask);
                    let ended = Ended::Closed(status.map(|(code, reason)| (code, reason.into())));
                    if !self.closing {
                        // The connection ends either way; a failed reply changes nothing.
                        let _ = self.stream.write_all(&reply).await;
                    }
                    return Err(ended);
                }
            }
        };
        self.reader.text(at).map_err(Ended::Protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message as the tests compare it.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Text(String),
        Ping(Vec<u8>),
        Close(Option<(u16, String)>),
    }

    /// The next message, owned, as the connection would see it.
    fn next(r: &mut FrameReader) -> Result<Option<Got>, ProtocolError> {
        Ok(match r.next_ready()? {
            None => None,
            Some(Ready::Text(at)) => Some(Got::Text(r.text(at)?.to_string())),
            Some(Ready::Ping(range)) => Some(Got::Ping(r.buf[range].to_vec())),
            Some(Ready::Close(range)) => Some(Got::Close(
                close_status(&r.buf[range])?.map(|(code, reason)| (code, reason.to_string())),
            )),
        })
    }

    /// Every message the reader holds now.
    fn drain(r: &mut FrameReader) -> Result<Vec<Got>, ProtocolError> {
        let mut got = Vec::new();
        while let Some(m) = next(r)? {
            got.push(m);
        }
        Ok(got)
    }

    /// A server frame (unmasked) with the given first byte, with the
    /// shortest length encoding.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xFFFF => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn text(s: &str) -> Vec<u8> {
        frame(0x80 | OP_TEXT, s.as_bytes())
    }

    fn close(code: u16, reason: &str) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        frame(0x80 | OP_CLOSE, &payload)
    }

    /// Removes a client frame's mask: (first byte, payload).
    fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
        let (len, at) = match frame[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
            127 => {
                let mut b = [0; 8];
                b.copy_from_slice(&frame[2..10]);
                (u64::from_be_bytes(b) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let mask = &frame[at..at + 4];
        let payload = &frame[at + 4..];
        assert_eq!(payload.len(), len);
        let clear = payload
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        (frame[0], clear)
    }

    /// A stream of frames of every kind the reader handles, with lengths in
    /// the 7-bit, 16-bit and (not minimal, but valid to read) 64-bit forms,
    /// and what it holds.
    fn mixed_stream() -> (Vec<u8>, Vec<Got>) {
        let long = "x".repeat(300);
        let mut stream = text("hello");
        stream.extend(frame(0x80 | OP_PING, b"p1"));
        stream.extend(text(&long));
        stream.extend([0x80 | OP_TEXT, 127, 0, 0, 0, 0, 0, 0, 0, 3]);
        stream.extend(b"abc");
        stream.extend([0x80 | OP_TEXT, 126, 0, 2]);
        stream.extend(b"de");
        stream.extend(frame(0x80 | OP_PONG, b"ignored"));
        stream.extend(frame(0x80 | OP_BINARY, &[0, 1, 2]));
        stream.extend(frame(OP_TEXT, b"fir"));
        stream.extend(frame(0x80 | OP_PING, b""));
        stream.extend(frame(0x80 | OP_CONTINUATION, "st \u{e9}".as_bytes()));
        stream.extend(close(1000, "bye"));
        let expected = vec![
            Got::Text("hello".into()),
            Got::Ping(b"p1".to_vec()),
            Got::Text(long),
            Got::Text("abc".into()),
            Got::Text("de".into()),
            Got::Ping(Vec::new()),
            Got::Text("first \u{e9}".into()),
            Got::Close(Some((1000, "bye".into()))),
        ];
        (stream, expected)
    }

    #[test]
    fn a_stream_cut_at_every_byte_parses_the_same() {
        let (stream, expected) = mixed_stream();
        for cut in 0..=stream.len() {
            let mut r = FrameReader::new(MAX_MESSAGE);
            r.push(&stream[..cut]);
            let mut got = drain(&mut r).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            r.push(&stream[cut..]);
            got.extend(drain(&mut r).unwrap_or_else(|e| panic!("cut {cut}: {e}")));
            assert_eq!(got, expected, "cut at {cut}");
            assert!(r.pending().is_empty());
        }
    }

    #[tokio::test]
    async fn reads_of_one_byte_at_a_time_parse_the_same() {
        let (stream, expected) = mixed_stream();
        let mut r = FrameReader::new(MAX_MESSAGE);
        let mut got = Vec::new();
        for byte in stream.chunks(1) {
            let mut source = byte;
            assert_eq!(r.fill(&mut source).await.ok(), Some(1));
            got.extend(drain(&mut r).unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(got, expected);
        assert!(
            r.buf.capacity() <= 2 * INITIAL_BUFFER,
            "no growth for small frames"
        );
    }

    #[tokio::test]
    async fn extended_lengths_and_a_frame_larger_than_the_buffer() {
        assert_eq!(
            parse_header(&[0x81, 126, 0x01, 0x2C], MAX_MESSAGE),
            Ok(Head::Complete(Header {
                fin: true,
                opcode: OP_TEXT,
                len: 4,
                payload_len: 300
            }))
        );
        assert_eq!(
            parse_header(&[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70], MAX_MESSAGE),
            Ok(Head::Complete(Header {
                fin: true,
                opcode: OP_TEXT,
                len: 10,
                payload_len: 70_000
            }))
        );
        assert_eq!(
            parse_header(&[0x81, 126, 1], MAX_MESSAGE),
            Ok(Head::Need(4))
        );
        assert_eq!(
            parse_header(&[0x81, 127, 0, 0], MAX_MESSAGE),
            Ok(Head::Need(10))
        );

        // 70,000 bytes (64-bit length), then 300 (16-bit), read in 1,000-byte pieces.
        let big = "y".repeat(70_000);
        let mut stream = text(&big);
        stream.extend(text(&"z".repeat(300)));
        let mut r = FrameReader::new(MAX_MESSAGE);
        let mut got = Vec::new();
        for piece in stream.chunks(1_000) {
            let mut source = piece;
            while !source.is_empty() {
                assert!(matches!(r.fill(&mut source).await, Ok(n) if n > 0));
            }
            got.extend(drain(&mut r).unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(got, vec![Got::Text(big), Got::Text("z".repeat(300))]);
    }

    #[test]
    fn a_masked_server_frame_is_refused() {
        let mut r = FrameReader::new(MAX_MESSAGE);
        r.push(&[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        assert_eq!(next(&mut r), Err(ProtocolError::MaskedFrame));
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_without_allocating_it() {
        for header in [
            vec![0x81, 127, 0, 0, 0x10, 0, 0, 0, 0, 0], // 16 TiB
            vec![0x81, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            vec![0x82, 127, 0, 0, 0, 0, 0x01, 0, 0, 1], // 16 MiB + 1, binary
        ] {
            let mut r = FrameReader::new(MAX_MESSAGE);
            let mut source = header.as_slice();
            assert!(r.fill(&mut source).await.is_ok());
            assert!(
                matches!(
                    next(&mut r),
                    Err(ProtocolError::TooLarge { len, max: MAX_MESSAGE }) if len > MAX_MESSAGE as u64
                ),
                "{header:?}"
            );
            assert!(r.buf.capacity() <= INITIAL_BUFFER, "{header:?}");
        }
        // A message assembled past the limit is refused as well.
        let mut r = FrameReader::new(10);
        r.push(&frame(OP_TEXT, b"123456"));
        r.push(&frame(0x80 | OP_CONTINUATION, b"789012"));
        assert_eq!(
            next(&mut r),
            Err(ProtocolError::TooLarge { len: 12, max: 10 })
        );
    }

    #[test]
    fn continuations_are_assembled_around_control_frames() {
        let mut r = FrameReader::new(MAX_MESSAGE);
        r.push(&frame(OP_TEXT, b"hel"));
        r.push(&frame(0x80 | OP_PING, b"?"));
        r.push(&frame(OP_CONTINUATION, b"lo "));
        r.push(&frame(0x80 | OP_CONTINUATION, b"world"));
        r.push(&frame(OP_BINARY, b"skipped"));
        r.push(&frame(0x80 | OP_CONTINUATION, b"too"));
        r.push(&text("after"));
        assert_eq!(
            drain(&mut r),
            Ok(vec![
                Got::Ping(b"?".to_vec()),
                Got::Text("hello world".into()),
                Got::Text("after".into()),
            ])
        );
    }

    #[test]
    fn malformed_frames_end_the_stream_with_a_reason() {
        let cases: [(Vec<u8>, ProtocolError); 9] = [
            (
                frame(0x80 | OP_CONTINUATION, b"x"),
                ProtocolError::UnexpectedContinuation,
            ),
            (
                [frame(OP_TEXT, b"a"), text("b")].concat(),
                ProtocolError::UnfinishedMessage,
            ),
            (frame(0xC1, b"x"), ProtocolError::ReservedBits),
            (frame(0x83, b"x"), ProtocolError::ReservedOpcode(3)),
            (frame(OP_PING, b"x"), ProtocolError::BadControlFrame),
            (
                frame(0x80 | OP_PING, &[0; 126]),
                ProtocolError::BadControlFrame,
            ),
            (frame(0x80 | OP_TEXT, &[0xFF, 0xFE]), ProtocolError::NotUtf8),
            (frame(0x80 | OP_CLOSE, &[3]), ProtocolError::BadClosePayload),
            (close(1005, ""), ProtocolError::BadCloseCode(1005)),
        ];
        for (bytes, error) in cases {
            let mut r = FrameReader::new(MAX_MESSAGE);
            r.push(&bytes);
            assert_eq!(drain(&mut r), Err(error), "{bytes:?}");
        }
        let mut r = FrameReader::new(MAX_MESSAGE);
        r.push(&frame(0x80 | OP_CLOSE, b""));
        assert_eq!(next(&mut r), Ok(Some(Got::Close(None))));
    }

    #[test]
    fn client_frames_are_masked() {
        let mask = [0x11, 0x22, 0x33, 0x44];
        assert_eq!(
            client_frame(OP_PONG, b"abcde", mask),
            vec![
                0x8A,
                0x85,
                0x11,
                0x22,
                0x33,
                0x44,
                b'a' ^ 0x11,
                b'b' ^ 0x22,
                b'c' ^ 0x33,
                b'd' ^ 0x44,
                b'e' ^ 0x11
            ]
        );
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (first, clear) = unmask(&client_frame(OP_TEXT, &payload, mask));
            assert_eq!((first, clear), (0x80 | OP_TEXT, payload), "length {len}");
        }
    }

    #[test]
    fn urls_and_handshake_responses() {
        let t = Target::parse("ws://127.0.0.1:9000/ws");
        assert_eq!(
            t,
            Ok(Target {
                address: "127.0.0.1:9000".into(),
                host: "127.0.0.1:9000".into(),
                path: "/ws".into()
            })
        );
        assert_eq!(
            Target::parse("ws://[::1]").map(|t| t.address),
            Ok("[::1]:80".into())
        );
        assert_eq!(
            Target::parse("ws://h?x=1").map(|t| t.path),
            Ok("/?x=1".into())
        );
        assert!(Target::parse("wss://h/ws").is_err());
        assert!(Target::parse("ws:///ws").is_err());

        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                    Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        assert_eq!(check_response(good.as_bytes(), key), Ok(()));
        let wrong_key = good.replace("s3pP", "AAAA");
        assert!(check_response(wrong_key.as_bytes(), key).is_err());
        let not_101 = good.replace("101 Switching Protocols", "400 Bad Request");
        assert!(check_response(not_101.as_bytes(), key).is_err());
        let no_upgrade = good.replace("Upgrade: websocket\r\n", "");
        assert!(check_response(no_upgrade.as_bytes(), key).is_err());
        assert!(check_response(&[0xFF, 0xFE], key).is_err());
    }

    /// Reads one client frame from the test server's side of a socket.
    async fn read_client_frame(socket: &mut TcpStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        assert!(socket.read_exact(&mut head).await.is_ok());
        let len = usize::from(head[1] & 0x7F);
        assert!(len < 126, "the test sends short frames");
        let mut rest = vec![0u8; 4 + len];
        assert!(socket.read_exact(&mut rest).await.is_ok());
        unmask(&[head.as_slice(), &rest].concat())
    }

    #[tokio::test]
    async fn a_connection_handshakes_answers_pings_and_closes() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("cannot listen on loopback");
        };
        let Ok(address) = listener.local_addr() else {
            panic!("no local address");
        };
        let server = tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                panic!("no connection");
            };
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                assert!(socket.read_exact(&mut byte).await.is_ok());
                request.push(byte[0]);
            }
            let request = String::from_utf8_lossy(&request).to_string();
            assert!(request.starts_with("GET /ws HTTP/1.1\r\n"), "{request}");
            assert!(
                request.contains("Sec-WebSocket-Version: 13\r\n"),
                "{request}"
            );
            let key = request
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .unwrap_or_default();
            // The response head and the first frames in one write.
            let mut reply = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            )
            .into_bytes();
            reply.extend(frame(0x80 | OP_PING, b"are you there"));
            reply.extend(text("first"));
            assert!(socket.write_all(&reply).await.is_ok());
            let subscribe = read_client_frame(&mut socket).await;
            let pong = read_client_frame(&mut socket).await;
            assert!(socket.write_all(&close(4008, "slow")).await.is_ok());
            let close_reply = read_client_frame(&mut socket).await;
            (subscribe, pong, close_reply)
        });

        let target = Target::parse(&format!("ws://{address}/ws"));
        let Ok(target) = target else {
            panic!("{target:?}");
        };
        let opened = Connection::open(&target).await;
        let Ok(mut conn) = opened else {
            panic!("handshake failed: {:?}", opened.err());
        };
        assert!(conn.send_text("subscribe").await.is_ok());
        assert_eq!(conn.next_text().await.ok(), Some("first"));
        let ended = conn.next_text().await.map(str::to_string);
        assert_eq!(
            ended.map_err(|e| e.to_string()),
            Err("closed 4008: slow".to_string())
        );
        let Ok((subscribe, pong, close_reply)) = server.await else {
            panic!("the test server failed");
        };
        assert_eq!(subscribe, (0x80 | OP_TEXT, b"subscribe".to_vec()));
        assert_eq!(pong, (0x80 | OP_PONG, b"are you there".to_vec()));
        assert_eq!(
            close_reply,
            (0x80 | OP_CLOSE, 4008u16.to_be_bytes().to_vec())
        );
    }
}
