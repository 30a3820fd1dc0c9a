//! The client side of a server block: `listen ... ssl` and `starttls`, with
//! the `ssl_*` directives, as one rustls `ServerConfig` per core.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::UnixTime;
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{
    CipherSuite, InconsistentKeys, ProtocolVersion, ServerConnection, SignatureAlgorithm, SignatureScheme,
    SupportedCipherSuite,
};

use super::cert_info::ClientCertFacts;
use super::client_verify::ClientVerifier;
use super::session_age::Expiring;
use super::{ciphers, files, kx};
use crate::config::{ConfigError, ServerConfig, SessionCache, TlsSettings, TlsVersion, VerifyClient};

/// What the auth request needs after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2` / `TLSv1.3` (nginx: `SSL_get_version`).
    pub protocol: &'static str,
    /// OpenSSL's name, as nginx sends it: `TLS_AES_256_GCM_SHA384`,
    /// `ECDHE-RSA-AES128-GCM-SHA256`...
    pub cipher: String,
    /// When `ssl_verify_client` is not off.
    pub client_cert: Option<ClientCertFacts>,
}

/// A server block's client-side TLS, built once from the configuration.
#[derive(Debug)]
pub struct ServerTls {
    /// Everything but the session cache, which `for_core` adds.
    base: rustls::ServerConfig,
    session_cache: SessionCache,
    /// `ssl_session_timeout`, for each core's cache.
    session_timeout: std::time::Duration,
    verifier: Option<Arc<ClientVerifier>>,
}

/// Picks, for each handshake, the first certificate (in the file's order)
/// the client can take: its key must sign with a scheme the client offers
/// and, when the handshake will be TLS 1.2, with a suite both sides have
/// (an ECDSA-only cipher list wants the ECDSA certificate, as OpenSSL picks
/// it). rustls resolves the certificate before the version is settled, so
/// TLS 1.3 is assumed when the client offers a TLS 1.3 suite the server
/// has, which is when rustls chooses it.
#[derive(Debug)]
struct ByKeyType {
    keys: Vec<Arc<CertifiedKey>>,
    tls13: Vec<CipherSuite>,
    tls12: Vec<(CipherSuite, &'static [SignatureScheme])>,
}

impl ByKeyType {
    fn new(keys: Vec<Arc<CertifiedKey>>, provider: &CryptoProvider, versions: &[TlsVersion]) -> ByKeyType {
        let mut tls13 = Vec::new();
        let mut tls12 = Vec::new();
        for suite in &provider.cipher_suites {
            match suite {
                SupportedCipherSuite::Tls13(s) if versions.contains(&TlsVersion::V1_3) => tls13.push(s.common.suite),
                SupportedCipherSuite::Tls12(s) if versions.contains(&TlsVersion::V1_2) => {
                    tls12.push((s.common.suite, s.sign))
                }
                _ => {}
            }
        }
        ByKeyType { keys, tls13, tls12 }
    }
}

/// The key type a scheme signs with (rustls keeps its own mapping private).
fn scheme_algorithm(scheme: SignatureScheme) -> Option<SignatureAlgorithm> {
    use SignatureScheme as S;
    Some(match scheme {
        S::RSA_PKCS1_SHA1
        | S::RSA_PKCS1_SHA256
        | S::RSA_PKCS1_SHA384
        | S::RSA_PKCS1_SHA512
        | S::RSA_PSS_SHA256
        | S::RSA_PSS_SHA384
        | S::RSA_PSS_SHA512 => SignatureAlgorithm::RSA,
        S::ECDSA_SHA1_Legacy | S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512 => {
            SignatureAlgorithm::ECDSA
        }
        S::ED25519 => SignatureAlgorithm::ED25519,
        S::ED448 => SignatureAlgorithm::ED448,
        _ => return None,
    })
}

impl ResolvesServerCert for ByKeyType {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let offered = hello.cipher_suites();
        let tls13 = offered.iter().any(|s| self.tls13.contains(s));
        let usable = |ck: &&Arc<CertifiedKey>| {
            let key_type = ck.key.algorithm();
            tls13
                || self.tls12.iter().any(|(suite, sign)| {
                    offered.contains(suite) && sign.iter().any(|s| scheme_algorithm(*s) == Some(key_type))
                })
        };
        let signs = |ck: &&Arc<CertifiedKey>| ck.key.choose_scheme(schemes).is_some();
        self.keys
            .iter()
            .filter(signs)
            .find(usable)
            .or_else(|| self.keys.iter().find(signs))
            .cloned()
    }
}

impl ServerTls {
    /// None when the server has no `listen ... ssl` and `starttls off`.
    /// Loads and checks every file; errors name the file and what is wrong,
    /// at the directive that named it.
    pub fn build(server: &ServerConfig) -> Result<Option<ServerTls>, ConfigError> {
        if !super::wanted(server) {
            return Ok(None);
        }
        let ssl = &server.ssl;
        let selection = ciphers::select(&ssl.ciphers);
        if ssl.protocols.contains(&TlsVersion::V1_2) && selection.suites.is_empty() {
            return Err(ConfigError::at(
                format!(
                    "\"ssl_ciphers\" \"{}\" leaves no cipher suite rustls offers for TLSv1.2",
                    ssl.ciphers
                ),
                server.location.clone(),
            ));
        }
        let groups = kx::groups(&ssl.ecdh_curve)
            .map_err(|why| ConfigError::at(format!("{why} in \"ssl_ecdh_curve\""), server.location.clone()))?;
        let provider = super::provider(Some(&selection.suites), groups);

        let resolver = Arc::new(ByKeyType::new(
            certified_keys(ssl, &provider, &server.location)?,
            &provider,
            &ssl.protocols,
        ));
        let verifier = client_verifier(ssl, &provider, &server.location)?;
        let versions = versions(&ssl.protocols);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|err| ConfigError::at(format!("TLS configuration refused: {err}"), server.location.clone()))?;
        let mut config = match &verifier {
            Some(v) => builder.with_client_cert_verifier(v.clone()),
            None => builder.with_no_client_auth(),
        }
        .with_cert_resolver(resolver);

        // ALPN as nginx's mail module: only the server's protocol; a client
        // offering ALPN without it is refused (no_application_protocol).
        config.alpn_protocols = vec![server.protocol.name().as_bytes().to_vec()];
        config.ignore_client_order = ssl.prefer_server_ciphers;
        if ssl.session_tickets {
            // One ticketer for every core, so a ticket from one core is good
            // on all. Its keys rotate on rustls's own schedule (6 hours per
            // key); each ticket also carries its expiry, ssl_session_timeout
            // after it was issued.
            let keys = rustls::crypto::ring::Ticketer::new().map_err(|err| {
                ConfigError::at(
                    format!("cannot make session ticket keys: {err}"),
                    server.location.clone(),
                )
            })?;
            config.ticketer = Arc::new(Expiring::new(keys, ssl.session_timeout));
        }
        let cached = matches!(ssl.session_cache, SessionCache::Sessions(n) if n > 0);
        if !ssl.session_tickets && !cached {
            // Nothing could resume: do not send TLS 1.3 tickets at all.
            config.send_tls13_tickets = 0;
        }
        Ok(Some(ServerTls {
            base: config,
            session_cache: ssl.session_cache.clone(),
            session_timeout: ssl.session_timeout,
            verifier,
        }))
    }

    /// The rustls config one core uses: certificates, keys and the ticketer
    /// shared (read-only), its own session cache (`ssl_session_cache`'s
    /// sessions split over `cores`). Cached sessions expire
    /// `ssl_session_timeout` after they were stored, and are dropped oldest
    /// first when the cache is full.
    pub fn for_core(&self, cores: usize) -> Arc<rustls::ServerConfig> {
        let mut config = self.base.clone();
        // The keys must be able to leave rustls for the kernel.
        config.enable_secret_extraction = super::ktls::kernel().is_some();
        config.session_storage = match self.session_cache {
            SessionCache::Sessions(n) if n > 0 => Arc::new(Expiring::new(
                ServerSessionMemoryCache::new((n / cores.max(1)).max(1)),
                self.session_timeout,
            )),
            _ => Arc::new(NoServerSessionStorage {}),
        };
        Arc::new(config)
    }

    /// What the auth request needs after the handshake.
    pub fn facts(&self, conn: &ServerConnection, pass_client_cert: bool) -> TlsFacts {
        let protocol = match conn.protocol_version() {
            Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher = conn
            .negotiated_cipher_suite()
            .map(|s| ciphers::openssl_name(s.suite()))
            .unwrap_or_default();
        let client_cert = self.verifier.as_ref().map(|verifier| match conn.peer_certificates() {
            Some(chain @ [end_entity, ..]) => {
                // The handshake verified it in every mode but optional_no_ca,
                // whose real result is found here.
                let verify = match verifier.mode() {
                    VerifyClient::OptionalNoCa => verifier.result(chain, UnixTime::now()),
                    _ => "SUCCESS".to_string(),
                };
                ClientCertFacts::of(end_entity.as_ref(), verify, pass_client_cert)
            }
            _ => ClientCertFacts::none(),
        });
        TlsFacts {
            protocol,
            cipher,
            client_cert,
        }
    }
}

fn versions(protocols: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    protocols
        .iter()
        .map(|v| match v {
            TlsVersion::V1_2 => &rustls::version::TLS12,
            TlsVersion::V1_3 => &rustls::version::TLS13,
        })
        .collect()
}

/// Each `ssl_certificate` with its `ssl_certificate_key`, checked to match.
fn certified_keys(
    ssl: &TlsSettings,
    provider: &CryptoProvider,
    server: &crate::config::Location,
) -> Result<Vec<Arc<CertifiedKey>>, ConfigError> {
    if ssl.certificates.is_empty() || ssl.certificates.len() != ssl.certificate_keys.len() {
        // The configuration's checks make this unreachable from a file.
        return Err(ConfigError::at(
            "\"ssl_certificate\" and \"ssl_certificate_key\" do not pair up",
            server.clone(),
        ));
    }
    let mut keys = Vec::with_capacity(ssl.certificates.len());
    for ((cert_path, cert_at), (key_path, key_at)) in ssl.certificates.iter().zip(&ssl.certificate_keys) {
        let chain = files::certificates(cert_path, "certificate", cert_at)?;
        let key = files::private_key(key_path, key_at)?;
        let key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|err| files::cannot_load("certificate key", key_path, &err.to_string(), key_at))?;
        let certified = CertifiedKey::new(chain, key);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                return Err(ConfigError::at(
                    format!(
                        "certificate \"{}\" does not match key \"{}\"",
                        cert_path.display(),
                        key_path.display()
                    ),
                    key_at.clone(),
                ));
            }
            Err(err) => return Err(files::cannot_load("certificate", cert_path, &err.to_string(), cert_at)),
        }
        keys.push(Arc::new(certified));
    }
    Ok(keys)
}

/// `None` for `ssl_verify_client off`.
fn client_verifier(
    ssl: &TlsSettings,
    provider: &Arc<CryptoProvider>,
    server: &crate::config::Location,
) -> Result<Option<Arc<ClientVerifier>>, ConfigError> {
    if ssl.verify_client == VerifyClient::Off {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    let mut anchors = Vec::new();
    let mut hints = Vec::new();
    if let Some((path, at)) = &ssl.client_certificate {
        let store = files::roots(path, "client certificate", at)?;
        hints = store.subjects();
        anchors.extend(files::certificates(path, "client certificate", at)?);
        roots.roots.extend(store.roots);
    }
    if let Some((path, at)) = &ssl.trusted_certificate {
        let store = files::roots(path, "trusted certificate", at)?;
        anchors.extend(files::certificates(path, "trusted certificate", at)?);
        roots.roots.extend(store.roots);
    }
    let inner = if roots.is_empty() {
        None
    } else {
        let mut builder =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
        if let Some((path, at)) = &ssl.crl {
            builder = builder.with_crls(files::crls(path, at)?);
        }
        let built = builder
            .build()
            .map_err(|err| ConfigError::at(format!("cannot verify client certificates: {err}"), server.clone()))?;
        Some(built)
    };
    Ok(Some(Arc::new(ClientVerifier::new(
        inner,
        ssl.verify_client,
        ssl.verify_depth,
        anchors,
        hints,
        provider.signature_verification_algorithms,
    ))))
}
