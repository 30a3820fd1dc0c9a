//! `ssl_verify_client` and `ssl_verify_depth` over rustls's webpki
//! verifier.
//!
//! - `on`: a certificate is required and must verify.
//! - `optional`: asked for; when sent it must verify.
//! - `optional_no_ca`: asked for; any certificate is let through the
//!   handshake (its signature over the handshake still checked) and the
//!   real result is found after it by running the same verification again
//!   ([`ClientVerifier::result`]), for Auth-SSL-Verify.
//!
//! `ssl_verify_depth` is approximated: OpenSSL counts the certificates of
//! the chain it builds; rustls does not expose that chain, so the
//! intermediates the client sends are counted instead (those identical to
//! a trusted certificate left out), and more than `depth - 1` is refused.
//! A client sending unneeded intermediates can thus be refused where
//! OpenSSL would build a shorter chain. Depth 0 is taken as 1 (OpenSSL's 0
//! wants a self-signed, directly trusted client certificate, which webpki
//! does not accept at all).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::config::VerifyClient;

/// Why a chain failed `ssl_verify_depth`, told apart from webpki's errors.
#[derive(Debug)]
struct ChainTooLong;

impl std::fmt::Display for ChainTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate chain too long")
    }
}

impl std::error::Error for ChainTooLong {}

#[derive(Debug)]
pub(crate) struct ClientVerifier {
    /// webpki over the trusted certificates; `None` only for
    /// `optional_no_ca` without any (every certificate then fails to verify,
    /// and the result says so).
    inner: Option<Arc<dyn ClientCertVerifier>>,
    mode: VerifyClient,
    /// Intermediates a chain may have.
    max_intermediates: usize,
    /// The trusted certificates, so that one sent by the client is not
    /// counted as an intermediate.
    anchors: Vec<CertificateDer<'static>>,
    /// Sent to the client as acceptable CAs: `ssl_client_certificate`'s
    /// subjects only, as nginx (not `ssl_trusted_certificate`'s).
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientVerifier {
    pub(crate) fn new(
        inner: Option<Arc<dyn ClientCertVerifier>>,
        mode: VerifyClient,
        depth: u32,
        anchors: Vec<CertificateDer<'static>>,
        hints: Vec<DistinguishedName>,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> ClientVerifier {
        let max_intermediates = usize::try_from(depth.max(1) - 1).unwrap_or(usize::MAX);
        ClientVerifier {
            inner,
            mode,
            max_intermediates,
            anchors,
            hints,
            algorithms,
        }
    }

    pub(crate) fn mode(&self) -> VerifyClient {
        self.mode
    }

    /// The verification itself: depth, then webpki (chain, validity, CRLs).
    pub(crate) fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        let counted = intermediates
            .iter()
            .filter(|c| !self.anchors.iter().any(|a| a.as_ref() == c.as_ref()))
            .count();
        if counted > self.max_intermediates {
            return Err(Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                Arc::new(ChainTooLong),
            ))));
        }
        match &self.inner {
            Some(inner) => inner.verify_client_cert(end_entity, intermediates, now).map(drop),
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    /// Auth-SSL-Verify for a certificate the handshake let through:
    /// `SUCCESS` or `FAILED:<reason>` in OpenSSL's words.
    pub(crate) fn result(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> String {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return "NONE".to_string();
        };
        match self.check(end_entity, intermediates, now) {
            Ok(()) => "SUCCESS".to_string(),
            Err(err) => format!("FAILED:{}", reason(&err)),
        }
    }
}

/// OpenSSL's `X509_verify_cert_error_string` for the errors webpki has.
fn reason(err: &Error) -> String {
    let Error::InvalidCertificate(err) = err else {
        return err.to_string();
    };
    match err {
        CertificateError::UnknownIssuer => "unable to get local issuer certificate".to_string(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate has expired".to_string(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not yet valid".to_string()
        }
        CertificateError::Revoked => "certificate revoked".to_string(),
        CertificateError::UnknownRevocationStatus => "unable to get certificate CRL".to_string(),
        CertificateError::ExpiredRevocationList | CertificateError::ExpiredRevocationListContext { .. } => {
            "CRL has expired".to_string()
        }
        CertificateError::BadSignature => "certificate signature failure".to_string(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "unsupported certificate purpose".to_string()
        }
        CertificateError::Other(other) if other.0.is::<ChainTooLong>() => "certificate chain too long".to_string(),
        other => format!("{other:?}"),
    }
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == VerifyClient::On
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if self.mode != VerifyClient::OptionalNoCa {
            self.check(end_entity, intermediates, now)?;
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
