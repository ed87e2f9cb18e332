//! `hspq serve --tls-cert FILE --tls-key FILE`: TLS for every connection. With a certificate
//! the server refuses clients that do not ask for TLS (PostgreSQL's `hostssl`), and SCRAM binds
//! the login to the certificate (SCRAM-SHA-256-PLUS), so a man in the middle cannot relay it.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;

use super::ServeError;
pub use crate::config::Tls;

fn start(why: String) -> ServeError {
    ServeError::Start(why)
}

impl Tls {
    /// Reads a PEM certificate (chain) and its PEM private key; an error names the file and
    /// what is wrong with it.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, ServeError> {
        let cert_pem = std::fs::read(cert).map_err(|e| {
            start(format!(
                "cannot read the TLS certificate {}: {e}",
                cert.display()
            ))
        })?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| start(format!("{} is not a PEM certificate: {e}", cert.display())))?;
        if chain.is_empty() {
            return Err(start(format!(
                "{} holds no certificate (want PEM: -----BEGIN CERTIFICATE-----)",
                cert.display()
            )));
        }
        let key_pem = std::fs::read(key)
            .map_err(|e| start(format!("cannot read the TLS key {}: {e}", key.display())))?;
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            start(format!(
                "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                key.display()
            ))
        })?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| start(format!("cannot set up TLS: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                start(format!(
                    "the TLS key {} does not fit the certificate {}: {e}",
                    key.display(),
                    cert.display()
                ))
            })?;
        config.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(Tls {
            acceptor: pgwire::tokio::TlsAcceptor::from(Arc::new(config)),
            cert_pem: Arc::new(cert_pem),
        })
    }
}

/// A startup handler that turns away clients not on TLS when TLS is `required`, then lets
/// `inner` log them in.
pub struct Gate<H> {
    pub inner: H,
    pub required: bool,
}

#[async_trait]
impl<H: StartupHandler> StartupHandler for Gate<H> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if self.required && !client.is_secure() {
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".to_owned(),
                "28000".to_owned(),
                "hspq serve requires TLS: connect with sslmode=require (or verify-full with the \
                 server's certificate as sslrootcert)"
                    .to_owned(),
            ))));
        }
        self.inner.on_startup(client, message).await
    }
}
