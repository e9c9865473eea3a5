//! Outgoing WebSocket connections, `ws://` and `wss://`: one connector for
//! every client in flowtape (the Massive feed's upstream sockets, the TUI and
//! `flowtape tail`).
//!
//! - [`Endpoint`]: a `ws://` or `wss://` URL, checked once ([`UrlError`]):
//!   host, port (80/443 by default), path and whether it is TLS.
//! - [`TrustRoots`] and [`TlsClient`]: whom `wss://` trusts. Either the
//!   system's CA bundle (the file named by `SSL_CERT_FILE`, else the first of
//!   the usual distribution paths that exists) or a PEM file of its own (a
//!   private CA, or a gateway's self-signed certificate). The rustls client
//!   (ring provider, like the gateway's TLS) is built on the first `wss://`
//!   URL and shared by every connector made from the same [`TlsClient`], so a
//!   missing or unusable bundle fails when the connectors are made, not at
//!   the first reconnect, and a `ws://`-only setup never needs one.
//! - [`Connector`]: one endpoint, ready to [`connect`](Connector::connect)
//!   again and again: TCP (with `TCP_NODELAY`), TLS for `wss://`, then the
//!   WebSocket handshake with the caller's [`WebSocketConfig`], an optional
//!   `Authorization: Bearer` token and any extra headers. The token is marked
//!   sensitive and never appears in `Debug` output, errors or logs.
//!
//! A handshake the server answers with an HTTP status instead of `101` is
//! [`ConnectError::Http`], so callers can tell a rejected token (401/403)
//! from an unreachable server.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::http::{HeaderMap, StatusCode, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::WebSocketStream;

/// A byte stream a WebSocket runs over: plain TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket, over TCP or TLS.
pub type Socket = WebSocketStream<Box<dyn Io>>;

/// Where CA bundles live on common systems (Debian/Ubuntu, Fedora/RHEL, Alpine, openSUSE).
const CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Why a URL cannot be connected to. Each variant names the URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("{url:?} is not a URL: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url:?}: the scheme must be ws:// or wss://")]
    Scheme { url: String },
    #[error("{url:?} has no host")]
    NoHost { url: String },
    #[error("{url:?}: {host:?} cannot be checked against a TLS certificate: {reason}")]
    TlsHost {
        url: String,
        host: String,
        reason: String,
    },
}

/// Why the TLS client cannot be built from its trust roots.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no CA bundle found: set SSL_CERT_FILE or install one at {}", CA_BUNDLES.join(", "))]
    NoSystemBundle,
    #[error("cannot read CA bundle {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("CA bundle {path} holds no usable certificate")]
    NoCertificate { path: String },
    #[error("TLS client: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why a [`Connector`] cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("the token has characters an HTTP header cannot carry")]
    Token,
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect to {host}:{port}: {source}")]
    Tcp {
        host: String,
        port: u16,
        source: io::Error,
    },
    #[error("TLS handshake with {host}: {source}")]
    Tls { host: String, source: io::Error },
    /// The server answered the upgrade with this status instead of `101`.
    #[error("HTTP {status} at the WebSocket handshake")]
    Http { status: StatusCode },
    #[error("WebSocket handshake: {0}")]
    Handshake(tungstenite::Error),
}

/// A checked `ws://` or `wss://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
}

impl Endpoint {
    /// Checks `url`: the scheme must be `ws` or `wss`, and there must be a
    /// host. The port defaults to 80 (`ws`) or 443 (`wss`).
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let tls = match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("wss") => true,
            Some("ws") => false,
            _ => {
                return Err(UrlError::Scheme {
                    url: url.to_string(),
                })
            }
        };
        let uri: Uri =
            url.parse()
                .map_err(|e: tokio_tungstenite::tungstenite::http::uri::InvalidUri| {
                    UrlError::Malformed {
                        url: url.to_string(),
                        reason: e.to_string(),
                    }
                })?;
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .filter(|h| !h.is_empty())
            .ok_or_else(|| UrlError::NoHost {
                url: url.to_string(),
            })?
            .to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            url: url.to_string(),
            uri,
            host,
            port,
            tls,
        })
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The host name or IP address, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The path and query sent in the upgrade request (`/` if the URL has none).
    pub fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    /// Whether this is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// The certificates `wss://` connections trust.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustRoots {
    /// The system's CA bundle: `SSL_CERT_FILE`, else the distribution's.
    #[default]
    System,
    /// Only the certificates in this PEM file (a private CA, or a server's
    /// self-signed certificate).
    File(PathBuf),
}

impl TrustRoots {
    /// The PEM file these roots are read from.
    fn bundle(&self) -> Result<PathBuf, TlsError> {
        match self {
            TrustRoots::File(path) => Ok(path.clone()),
            TrustRoots::System => {
                if let Some(p) = std::env::var_os("SSL_CERT_FILE") {
                    return Ok(PathBuf::from(p));
                }
                CA_BUNDLES
                    .iter()
                    .map(Path::new)
                    .find(|p| p.is_file())
                    .map(Path::to_path_buf)
                    .ok_or(TlsError::NoSystemBundle)
            }
        }
    }

    /// Reads the bundle and builds a rustls client on the ring provider.
    fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let path = self.bundle()?;
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(&path).map_err(|e| TlsError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut roots = RootCertStore::empty();
        let mut skipped = 0usize;
        for cert in certs {
            let added = cert
                .map_err(|e| e.to_string())
                .and_then(|c| roots.add(c).map_err(|e| e.to_string()));
            if added.is_err() {
                skipped += 1;
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoCertificate { path: shown });
        }
        if skipped > 0 {
            tracing::debug!(bundle = %shown, skipped, "skipped unusable CA certificates");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// Trust roots and the TLS client built from them on the first `wss://`
/// endpoint; every [`Connector`] made from it shares that one client.
#[derive(Clone)]
pub struct TlsClient {
    roots: TrustRoots,
    built: Option<TlsConnector>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("roots", &self.roots)
            .field("built", &self.built.is_some())
            .finish()
    }
}

impl TlsClient {
    /// Nothing is read until a `wss://` connector is made.
    pub fn new(roots: TrustRoots) -> TlsClient {
        TlsClient { roots, built: None }
    }

    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    fn connector(&mut self) -> Result<TlsConnector, TlsError> {
        if let Some(c) = &self.built {
            return Ok(c.clone());
        }
        let connector = TlsConnector::from(Arc::new(self.roots.client_config()?));
        self.built = Some(connector.clone());
        Ok(connector)
    }
}

/// The TLS half of a `wss://` connector.
#[derive(Clone)]
struct Secure {
    connector: TlsConnector,
    name: ServerName<'static>,
}

/// One endpoint, ready to connect to any number of times. `Debug` shows the
/// URL, never the token.
#[derive(Clone)]
pub struct Connector {
    endpoint: Endpoint,
    tls: Option<Secure>,
    bearer: Option<HeaderValue>,
    config: WebSocketConfig,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("url", &self.endpoint.url)
            .field("bearer", &self.bearer.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Checks `url` and, for `wss://`, gets the TLS client from `tls`
    /// (building it if this is the first). No token; the default
    /// [`WebSocketConfig`].
    pub fn new(url: &str, tls: &mut TlsClient) -> Result<Connector, SetupError> {
        let endpoint = Endpoint::parse(url)?;
        let secure = if endpoint.tls {
            let name =
                ServerName::try_from(endpoint.host.clone()).map_err(|e| UrlError::TlsHost {
                    url: endpoint.url.clone(),
                    host: endpoint.host.clone(),
                    reason: e.to_string(),
                })?;
            Some(Secure {
                connector: tls.connector()?,
                name,
            })
        } else {
            None
        };
        Ok(Connector {
            endpoint,
            tls: secure,
            bearer: None,
            config: WebSocketConfig::default(),
        })
    }

    /// Sends `Authorization: Bearer <token>` with every handshake.
    pub fn with_bearer(mut self, token: &str) -> Result<Connector, SetupError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| SetupError::Token)?;
        value.set_sensitive(true);
        self.bearer = Some(value);
        Ok(self)
    }

    /// Frame and message limits, buffer sizes.
    pub fn with_config(mut self, config: WebSocketConfig) -> Connector {
        self.config = config;
        self
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }

    /// Opens TCP, then TLS for `wss://`, then the WebSocket handshake with
    /// the token (if any) and `extra_headers`. No timeout of its own: callers
    /// bound it as they need.
    pub async fn connect(&self, extra_headers: &HeaderMap) -> Result<Socket, ConnectError> {
        let mut request = self
            .endpoint
            .uri
            .clone()
            .into_client_request()
            .map_err(ConnectError::Handshake)?;
        let headers = request.headers_mut();
        for (name, value) in extra_headers {
            headers.insert(name, value.clone());
        }
        if let Some(bearer) = &self.bearer {
            headers.insert(AUTHORIZATION, bearer.clone());
        }
        let host = self.endpoint.host.as_str();
        let port = self.endpoint.port;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|source| ConnectError::Tcp {
                host: host.to_string(),
                port,
                source,
            })?;
        // Latency matters more than packet count for small frames.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let stream: Box<dyn Io> = match &self.tls {
            Some(secure) => Box::new(
                secure
                    .connector
                    .connect(secure.name.clone(), tcp)
                    .await
                    .map_err(|source| ConnectError::Tls {
                        host: host.to_string(),
                        source,
                    })?,
            ),
            None => Box::new(tcp),
        };
        match tokio_tungstenite::client_async_with_config(request, stream, Some(self.config)).await
        {
            Ok((socket, _response)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => Err(ConnectError::Http {
                status: response.status(),
            }),
            Err(e) => Err(ConnectError::Handshake(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T, E: fmt::Display>(r: Result<T, E>) -> T {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_ws_and_wss_urls_with_default_ports() {
        let e = ok(Endpoint::parse("ws://127.0.0.1:9000/options?x=1"));
        assert_eq!(
            (e.host(), e.port(), e.path(), e.is_tls()),
            ("127.0.0.1", 9000, "/options?x=1", false)
        );
        let e = ok(Endpoint::parse("ws://[::1]/options"));
        assert_eq!((e.host(), e.port()), ("::1", 80));
        let e = ok(Endpoint::parse("wss://flow.example.com"));
        assert_eq!(
            (e.host(), e.port(), e.path(), e.is_tls()),
            ("flow.example.com", 443, "/", true)
        );
    }

    #[test]
    fn refuses_other_schemes_and_missing_hosts_with_typed_errors() {
        let err = |url: &str| {
            Endpoint::parse(url)
                .err()
                .unwrap_or_else(|| panic!("accepted {url:?}"))
        };
        assert!(matches!(
            err("http://example.com/"),
            UrlError::Scheme { .. }
        ));
        assert!(matches!(
            err("socket.massive.com/options"),
            UrlError::Scheme { .. }
        ));
        assert!(matches!(
            err("ws:///x"),
            UrlError::Malformed { .. } | UrlError::NoHost { .. }
        ));
        assert!(matches!(err(""), UrlError::Scheme { .. }));
        assert!(matches!(err("ws://bad host/"), UrlError::Malformed { .. }));
        assert!(err("https://x/").to_string().contains("ws:// or wss://"));
    }

    #[test]
    fn the_ca_file_is_read_only_for_wss() {
        let dir = ok(tempfile::tempdir());
        let missing = dir.path().join("nope.pem");
        let mut tls = TlsClient::new(TrustRoots::File(missing.clone()));
        assert!(Connector::new("ws://127.0.0.1:1/ws", &mut tls).is_ok());
        match Connector::new("wss://127.0.0.1:1/ws", &mut tls) {
            Err(SetupError::Tls(TlsError::Read { path, .. })) => {
                assert_eq!(path, missing.display().to_string())
            }
            other => panic!("expected a CA read error, got {other:?}"),
        }
        let empty = dir.path().join("empty.pem");
        ok(std::fs::write(&empty, "not a certificate\n"));
        let mut tls = TlsClient::new(TrustRoots::File(empty));
        assert!(matches!(
            Connector::new("wss://localhost/ws", &mut tls),
            Err(SetupError::Tls(TlsError::NoCertificate { .. }))
        ));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let mut tls = TlsClient::new(TrustRoots::System);
        let c = ok(ok(Connector::new("ws://127.0.0.1:1/ws", &mut tls)).with_bearer("sekrit-token"));
        let shown = format!("{c:?}");
        assert!(!shown.contains("sekrit"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("ws://127.0.0.1:1/ws"),
            "{shown}"
        );
        let bad = ok(Connector::new("ws://127.0.0.1:1/ws", &mut tls)).with_bearer("line\nbreak");
        assert!(matches!(bad, Err(SetupError::Token)));
    }

    #[tokio::test]
    async fn an_unreachable_port_is_a_tcp_error() {
        let addr = {
            let l = ok(tokio::net::TcpListener::bind("127.0.0.1:0").await);
            ok(l.local_addr())
        };
        let mut tls = TlsClient::new(TrustRoots::System);
        let c = ok(Connector::new(&format!("ws://{addr}/ws"), &mut tls));
        match c.connect(&HeaderMap::new()).await {
            Err(ConnectError::Tcp { port, .. }) => assert_eq!(port, addr.port()),
            other => panic!("expected a TCP error, got {:?}", other.map(|_| ())),
        }
    }
}
