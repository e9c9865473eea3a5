//! TLS for `wss://`: a rustls server config (ring provider) from PEM files.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Certificate chain and private key, PEM files (`--tls-cert`, `--tls-key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("TLS key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsConfig {
    /// Reads the files and builds the acceptor.
    pub(crate) fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let cert_err = |reason: String| TlsError::Cert {
            path: self.cert.display().to_string(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|e| cert_err(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(cert_err("no certificate in the file".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::Key {
            path: self.key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
        let missing = TlsConfig {
            cert: dir.path().join("nope.pem"),
            key: empty.clone(),
        };
        assert!(matches!(missing.acceptor(), Err(TlsError::Cert { .. })));
        let no_cert = TlsConfig {
            cert: empty.clone(),
            key: empty,
        };
        match no_cert.acceptor() {
            Err(TlsError::Cert { reason, .. }) => {
                assert!(reason.contains("no certificate"), "{reason}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an empty certificate file was accepted"),
        }
    }
}
