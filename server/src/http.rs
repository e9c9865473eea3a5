//! The little HTTP/1.1 flowtape's servers speak: read one bounded request
//! head, answer it and close. The gateway reads its WebSocket upgrades with
//! it too (`gateway::handshake`); the metrics server ([`crate::metrics`])
//! answers `/metrics` and `/healthz` with it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest request head accepted.
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("connection closed before a complete request head")]
    Eof,
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed request head")]
    Malformed,
    #[error("reading the request: {0}")]
    Io(#[from] std::io::Error),
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header lists `token` (case-insensitive).
    pub fn header_has(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }
}

/// Reads one request head; returns it with any bytes read past its end
/// (the start of the WebSocket stream, if the client pipelined frames).
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(Request, Vec<u8>), HeadError> {
    // Read straight into the heap buffer: a buffer inside this future would
    // stay resident in every connection's task.
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.reserve(1024);
        let searched_from = buf.len().saturating_sub(3);
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(HeadError::Eof);
        }
        if let Some(end) = find_head_end(&buf, searched_from) {
            let rest = buf.split_off(end);
            return Ok((parse_head(&buf)?, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| from + p + 4)
}

pub(crate) fn parse_head(head: &[u8]) -> Result<Request, HeadError> {
    if head.len() > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let text = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().ok_or(HeadError::Malformed)?.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':').ok_or(HeadError::Malformed)?;
        if k.is_empty() || k.contains(char::is_whitespace) {
            return Err(HeadError::Malformed);
        }
        headers.push((k.to_string(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
        headers,
    })
}

/// Writes a complete response with `Connection: close`.
pub(crate) async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &str,
    extra_headers: &[(&str, &str)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\
         Cache-Control: no-store\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Request {
        parse_head(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn heads_parse() {
        let r =
            req("GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n\r\n");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/metrics"));
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.header("HOST"), Some("h"));
        assert!(r.header_has("connection", "upgrade"));
        assert!(!r.header_has("connection", "close"));
    }

    #[test]
    fn malformed_heads_are_refused() {
        for bad in [
            "GET\r\n\r\n",
            "GET /x\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn read_head_keeps_pipelined_bytes_and_bounds_size() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n\x81\x05")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (r, rest) = read_head(&mut b).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.path, "/ws");
        assert_eq!(rest, b"\x81\x05");
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        a.write_all(long.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read_head(&mut b).await, Err(HeadError::TooLarge)));
    }
}
