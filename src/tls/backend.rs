//! TLS to the backend (`proxy_ssl*`, Postern's own: nginx's mail module
//! talks to backends in plaintext only).

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

use super::files;
use crate::config::{ConfigError, ServerConfig};

/// The client config for backend connections of one server block.
#[derive(Debug, Clone)]
pub struct BackendTls {
    config: Arc<rustls::ClientConfig>,
    /// `proxy_ssl_name`; else the backend's address.
    name: Option<ServerName<'static>>,
}

impl BackendTls {
    /// Always built: the auth server may turn TLS on per user
    /// (Auth-SSL-Backend: on) even with `proxy_ssl off`.
    ///
    /// `proxy_ssl_verify on`: the backend's chain must verify against
    /// `proxy_ssl_trusted_certificate` (the system's roots are not read)
    /// and its certificate must be for the name. Off: any certificate is
    /// accepted, though the handshake's signatures are still checked.
    pub fn build(server: &ServerConfig) -> Result<BackendTls, ConfigError> {
        let proxy = &server.proxy_ssl;
        let provider = super::provider(None, None);
        let verifier: Arc<dyn ServerCertVerifier> = if proxy.verify {
            let Some((path, at)) = &proxy.trusted_certificate else {
                return Err(ConfigError::at(
                    "no proxy_ssl_trusted_certificate for proxy_ssl_verify",
                    server.location.clone(),
                ));
            };
            let roots = files::roots(path, "proxy trusted certificate", at)?;
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|err| ConfigError::at(format!("cannot verify backend certificates: {err}"), at.clone()))?
        } else {
            Arc::new(AcceptAnyCertificate(provider.signature_verification_algorithms))
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|err| ConfigError::at(format!("TLS configuration refused: {err}"), server.location.clone()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        // The keys must be able to leave rustls for the kernel.
        let mut config = config;
        config.enable_secret_extraction = super::ktls::kernel().is_some();
        let name = match &proxy.name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                ConfigError::at(
                    format!("invalid value \"{name}\" in \"proxy_ssl_name\" directive"),
                    server.location.clone(),
                )
            })?),
            None => None,
        };
        Ok(BackendTls {
            config: Arc::new(config),
            name,
        })
    }

    /// Shared by every core. Its session-resumption cache is rustls's
    /// default in-memory one (behind a lock), touched once per backend
    /// handshake, never while relaying.
    pub fn config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// The SNI/verification name for a backend at `addr`: `proxy_ssl_name`,
    /// else the address itself (rustls then sends no SNI, and with
    /// verification the certificate must name the IP address).
    pub fn server_name(&self, addr: SocketAddr) -> ServerName<'static> {
        match &self.name {
            Some(name) => name.clone(),
            None => ServerName::IpAddress(addr.ip().into()),
        }
    }
}

/// `proxy_ssl_verify off`: any certificate, for any name, is accepted, but
/// the signatures proving the backend holds its key are still checked with
/// the provider's algorithms.
#[derive(Debug)]
/// `proxy_ssl_verify off`: any certificate, its signatures still checked.
pub(super) struct AcceptAnyCertificate(pub(super) WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
