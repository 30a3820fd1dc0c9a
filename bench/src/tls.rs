//! TLS for the companions, with rustls and the ring provider as Postern.
//!
//! The companions run one thread per connection and keep separate reader
//! and writer handles on a socket. A rustls session is a single state
//! machine, so both handles share it behind a mutex: [`Shared`]. A session
//! thread reads and writes in turn, never at once, so the lock is never
//! contended and a blocking read holding it stalls nobody.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme, StreamOwned};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

/// A server configuration for the certificate chain and key in PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("cannot read key {}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS server setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("TLS server setup with {}: {e}", cert.display()))?;
    Ok(Arc::new(config))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Only chains to the CA certificates in this PEM file.
    Ca(&'a Path),
    /// Any certificate (signatures over the handshake are still checked).
    Insecure,
}

/// A client configuration. Without `resume` every connection makes a full
/// handshake: a login benchmark then measures key exchange and certificate
/// checks, not a ticket lookup.
pub fn client_config(trust: Trust, resume: bool) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client setup: {e}"))?;
    let mut config = match trust {
        Trust::Ca(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth(),
    };
    config.resumption = if resume {
        Resumption::in_memory_sessions(1024)
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// The name a client checks the certificate against (and sends as SNI when
/// it is a DNS name): `name` if given, else the host of `addr` (`IP:PORT`).
pub fn server_name(name: Option<&str>, addr: &str) -> Result<ServerName<'static>, String> {
    let host = match name {
        Some(name) => name,
        None => match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        },
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    ServerName::try_from(host.to_string()).map_err(|e| format!("bad TLS server name {host:?}: {e}"))
}

/// Everything a client needs to start TLS on a connection.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// Accepts any server certificate: `--insecure`, for servers whose CA the
/// client does not have.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One TLS session shared by the reader and writer handles of a connection.
pub struct Shared<C, T: Read + Write>(Arc<Mutex<StreamOwned<C, T>>>);

impl<C, T: Read + Write> Clone for Shared<C, T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<C, T: Read + Write> std::fmt::Debug for Shared<C, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(TLS session)")
    }
}

impl<C, T: Read + Write> Shared<C, T> {
    pub fn new(stream: StreamOwned<C, T>) -> Self {
        Shared(Arc::new(Mutex::new(stream)))
    }

    /// The session; a poisoned lock only means another handle panicked
    /// mid-call, and the session is then as broken as the socket would be.
    pub fn lock(&self) -> MutexGuard<'_, StreamOwned<C, T>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<C, S, T> Read for Shared<C, T>
where
    C: std::ops::DerefMut + std::ops::Deref<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
    T: Read + Write,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.lock().read(buf)
    }
}

impl<C, S, T> Write for Shared<C, T>
where
    C: std::ops::DerefMut + std::ops::Deref<Target = rustls::ConnectionCommon<S>>,
    S: rustls::SideData,
    T: Read + Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.lock().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lock().flush()
    }
}

/// A client's connection: plain TCP or TLS over it.
#[derive(Debug)]
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Shared<ClientConnection, TcpStream>),
}

impl ClientStream {
    /// Another handle on the same connection.
    pub fn try_clone(&self) -> io::Result<ClientStream> {
        match self {
            ClientStream::Plain(s) => Ok(ClientStream::Plain(s.try_clone()?)),
            ClientStream::Tls(s) => Ok(ClientStream::Tls(s.clone())),
        }
    }

    /// Starts TLS as a client on `tcp` and completes the handshake, so that
    /// a failed handshake is reported as such rather than as a failed read.
    pub fn start_tls(tcp: TcpStream, tls: &ClientTls) -> Result<ClientStream, String> {
        let conn = ClientConnection::new(Arc::clone(&tls.config), tls.name.clone())
            .map_err(|e| format!("TLS client setup: {e}"))?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "TLS handshake: timed out".to_string(),
                io::ErrorKind::UnexpectedEof => "TLS handshake: connection closed by the server".to_string(),
                _ => format!("TLS handshake: {e}"),
            })?;
        }
        Ok(ClientStream::Tls(Shared::new(stream)))
    }

    /// What was negotiated, e.g. `TLSv1_3 TLS13_AES_256_GCM_SHA384 X25519`;
    /// `None` in plain text.
    pub fn describe(&self) -> Option<String> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => {
                let tls = s.lock();
                let conn = &tls.conn;
                let mut text = conn
                    .protocol_version()
                    .map_or_else(|| "?".to_string(), |v| format!("{v:?}"));
                if let Some(suite) = conn.negotiated_cipher_suite() {
                    text.push_str(&format!(" {:?}", suite.suite()));
                }
                if let Some(group) = conn.negotiated_key_exchange_group() {
                    text.push_str(&format!(" {:?}", group.name()));
                }
                Some(text)
            }
        }
    }

    /// True when the session was resumed from an earlier one.
    pub fn resumed(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(s) => s.lock().conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `addr` with the socket options the clients use.
pub fn connect_tcp(addr: &std::net::SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names() {
        assert_eq!(
            server_name(None, "127.0.0.1:993").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name(None, "[::1]:993").unwrap(),
            ServerName::IpAddress("::1".parse::<IpAddr>().unwrap().into())
        );
        assert_eq!(
            server_name(Some("localhost"), "127.0.0.1:993").unwrap(),
            ServerName::try_from("localhost").unwrap()
        );
        assert!(server_name(Some("bad name!"), "x:1").is_err());
    }
}
