//! Opening a WebSocket to an upstream: `ws://` or `wss://`.
//!
//! `wss://` uses rustls (ring provider, the same as the gateway's TLS) with the
//! system's CA bundle: the file named by `SSL_CERT_FILE`, else the first of
//! the usual distribution paths that exists. The bundle is read once, when the
//! feed is built, so a machine without one fails at start-up, not at the first
//! reconnect.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::WebSocketStream;

use super::MassiveError;

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket to the upstream.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Where CA bundles live on common systems (Debian/Ubuntu, Fedora/RHEL, Alpine, openSUSE).
const CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// A parsed upstream URL, ready to connect to.
#[derive(Clone)]
pub struct Upstream {
    url: String,
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream").field("url", &self.url).finish()
    }
}

impl Upstream {
    /// Checks `url` (`ws://` or `wss://`, with a host). `tls` builds the TLS
    /// client on first need and is shared between upstreams.
    pub fn parse(url: &str, tls: &mut Option<TlsConnector>) -> Result<Upstream, MassiveError> {
        let bad = |reason: &str| MassiveError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let uri: Uri =
            url.parse()
                .map_err(|e: tokio_tungstenite::tungstenite::http::uri::InvalidUri| {
                    bad(&e.to_string())
                })?;
        let secure = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(bad("the scheme must be ws:// or wss://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let tls = if secure {
            if tls.is_none() {
                *tls = Some(tls_connector()?);
            }
            tls.clone()
        } else {
            None
        };
        Ok(Upstream {
            url: url.to_string(),
            host,
            port,
            tls,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens TCP, TLS if `wss://`, and the WebSocket handshake.
    pub async fn connect(&self) -> Result<Socket, String> {
        let request = self
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        // Latency matters more than packet count for small action frames.
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = match &self.tls {
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("TLS server name: {e}"))?;
                Box::new(
                    tls.connect(name, tcp)
                        .await
                        .map_err(|e| format!("TLS handshake: {e}"))?,
                )
            }
            None => Box::new(tcp),
        };
        let (socket, _response) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("WebSocket handshake: {e}"))?;
        Ok(socket)
    }
}

/// A TLS client trusting the system's CA bundle.
fn tls_connector() -> Result<TlsConnector, MassiveError> {
    let path = ca_bundle_path().ok_or_else(|| {
        MassiveError::Tls(format!(
            "no CA bundle found: set SSL_CERT_FILE or install one at {}",
            CA_BUNDLES.join(", ")
        ))
    })?;
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .map_err(|e| MassiveError::Tls(format!("cannot read CA bundle {}: {e}", path.display())))?;
    let mut skipped = 0usize;
    for cert in certs {
        match cert
            .map_err(|e| e.to_string())
            .and_then(|c| roots.add(c).map_err(|e| e.to_string()))
        {
            Ok(()) => {}
            Err(_) => skipped += 1,
        }
    }
    if roots.is_empty() {
        return Err(MassiveError::Tls(format!(
            "CA bundle {} holds no usable certificate",
            path.display()
        )));
    }
    if skipped > 0 {
        tracing::debug!(bundle = %path.display(), skipped, "skipped unusable CA certificates");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MassiveError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn ca_bundle_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(p));
    }
    CA_BUNDLES
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ws_urls_and_refuses_others() {
        let mut tls = None;
        let u = Upstream::parse("ws://127.0.0.1:9000/options", &mut tls)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.host.as_str(), u.port, u.tls.is_none()),
            ("127.0.0.1", 9000, true)
        );
        let u = Upstream::parse("ws://[::1]/options", &mut tls).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((u.host.as_str(), u.port), ("::1", 80));
        for bad in [
            "http://example.com/",
            "socket.massive.com/options",
            "ws:///x",
            "",
        ] {
            assert!(Upstream::parse(bad, &mut tls).is_err(), "{bad}");
        }
        assert!(tls.is_none(), "no TLS client is built for ws://");
    }
}
