//! The feed's upstream sockets, through the shared [`crate::wsclient`].
//!
//! An [`Upstream`] is a [`Connector`] for one Massive URL (`ws://` or
//! `wss://`, trusting the system's CA bundle), with the default WebSocket
//! limits and no token at the handshake: the API key travels in the `auth`
//! action instead. Connect errors become the breaker's reason text.

use tokio_tungstenite::tungstenite::http::HeaderMap;

use crate::wsclient::{Connector, TlsClient};

pub use crate::wsclient::Socket;

use super::MassiveError;

/// A checked upstream URL, ready to connect to.
#[derive(Clone, Debug)]
pub struct Upstream {
    connector: Connector,
}

impl Upstream {
    /// Checks `url`. For `wss://`, `tls` builds its client on first need;
    /// upstreams made from the same `tls` share it.
    pub fn parse(url: &str, tls: &mut TlsClient) -> Result<Upstream, MassiveError> {
        Ok(Upstream {
            connector: Connector::new(url, tls)?,
        })
    }

    pub fn url(&self) -> &str {
        self.connector.url()
    }

    /// Opens TCP, TLS if `wss://`, and the WebSocket handshake.
    pub async fn connect(&self) -> Result<Socket, String> {
        self.connector
            .connect(&HeaderMap::new())
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsclient::{SetupError, TrustRoots};

    #[test]
    fn parses_ws_urls_and_refuses_others() {
        let mut tls = TlsClient::new(TrustRoots::System);
        let u = Upstream::parse("ws://127.0.0.1:9000/options", &mut tls)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.url(), "ws://127.0.0.1:9000/options");
        for bad in [
            "http://example.com/",
            "socket.massive.com/options",
            "ws:///x",
            "",
        ] {
            assert!(
                matches!(
                    Upstream::parse(bad, &mut tls),
                    Err(MassiveError::Upstream(SetupError::Url(_)))
                ),
                "{bad}"
            );
        }
    }
}
