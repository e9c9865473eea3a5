//! The WebSocket side of a gateway request (read with [`crate::http`]): is it
//! an upgrade, which token does it carry, and the `101 Switching Protocols`
//! answer.

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::http::Request;

/// The `Sec-WebSocket-Key` of a valid WebSocket upgrade request, or why it is not one.
pub(super) fn websocket_key(request: &Request) -> Result<&str, &'static str> {
    if request.method != "GET" {
        return Err("a WebSocket upgrade must be a GET");
    }
    if !request.header_has("upgrade", "websocket") || !request.header_has("connection", "upgrade") {
        return Err("this endpoint speaks WebSocket only (Upgrade: websocket)");
    }
    if request.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err("unsupported WebSocket version (need 13)");
    }
    request
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or("missing Sec-WebSocket-Key")
}

/// The client's token: `Authorization: Bearer …` first, then `?token=`.
pub(super) fn token(request: &Request) -> Option<String> {
    if let Some(auth) = request.header("authorization") {
        let auth = auth.trim();
        if auth.len() > 7 && auth[..7].eq_ignore_ascii_case("bearer ") {
            return Some(auth[7..].trim().to_string());
        }
    }
    let query = request.query.as_deref()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token").then(|| percent_decode(v)).flatten()
    })
}

/// Decodes `%XX` escapes and `+` (as a space) in a query value; `None` if an
/// escape is malformed or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Writes the `101 Switching Protocols` answer to a WebSocket upgrade.
pub(super) async fn switch_protocols<S: AsyncWrite + Unpin>(
    stream: &mut S,
    key: &str,
) -> std::io::Result<()> {
    let accept = derive_accept_key(key.as_bytes());
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_head;

    fn req(text: &str) -> Request {
        parse_head(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn upgrades_and_tokens_are_recognised() {
        let r = req("GET /ws?x=1&token=a%2Bb%20c HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\
                     Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: abc==\r\n\r\n");
        assert_eq!(websocket_key(&r), Ok("abc=="));
        assert_eq!(token(&r).as_deref(), Some("a+b c"));
        let bearer = req("GET /ws?token=q HTTP/1.1\r\nAuthorization: bearer  tok\r\n\r\n");
        assert_eq!(
            token(&bearer).as_deref(),
            Some("tok"),
            "the header wins over the query"
        );
        assert!(websocket_key(&req("GET /healthz HTTP/1.1\r\n\r\n")).is_err());
        assert_eq!(token(&req("GET /ws?token=%zz HTTP/1.1\r\n\r\n")), None);
    }
}
