//! Building from files, and real handshakes in memory (a rustls client
//! and server connection passing bytes, no sockets).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, ServerConnection, SignatureScheme};

use super::testutil::Pki;
use super::*;

const CERTS: &str = "ssl_certificate server-rsa.pem; ssl_certificate_key server-rsa.key; \
                     ssl_certificate server-ec.pem; ssl_certificate_key server-ec.key;";

fn server_tls(pki: &Pki, lines: &str) -> ServerTls {
    let server = pki
        .server(CERTS, &format!("listen 127.0.0.1:993 ssl; {lines}"))
        .unwrap_or_else(|e| panic!("{e}"));
    ServerTls::build(&server).unwrap().expect("TLS is on")
}

fn build_error(pki: &Pki, mail_lines: &str, server_lines: &str) -> String {
    let server = match pki.server(mail_lines, &format!("listen 127.0.0.1:993 ssl; {server_lines}")) {
        Ok(server) => server,
        Err(e) => return e.to_string(),
    };
    match ServerTls::build(&server) {
        Ok(_) => panic!("built"),
        Err(e) => e.to_string(),
    }
}

/// Accepts any server certificate, offering only `schemes` (all the
/// provider's when empty), so a test can steer the server's choice.
#[derive(Debug)]
struct Lenient(Vec<SignatureScheme>);

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        if self.0.is_empty() {
            algorithms().supported_schemes()
        } else {
            self.0.clone()
        }
    }
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

#[derive(Default)]
struct Client {
    alpn: Vec<&'static str>,
    schemes: Vec<SignatureScheme>,
    identity: Option<&'static str>,
    tls12_only: bool,
}

fn client_config(pki: &Pki, client: &Client) -> Arc<ClientConfig> {
    let versions: &[&rustls::SupportedProtocolVersion] = if client.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Lenient(client.schemes.clone())));
    let mut config = match client.identity {
        Some(name) => {
            let (certs, key) = pki.identity(name);
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = client.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// Moves bytes both ways until neither side is handshaking; the first
/// error either side reports.
fn drive(client: &mut ClientConnection, server: &mut ServerConnection) -> Result<(), rustls::Error> {
    for _ in 0..32 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            server.read_tls(&mut &buf[..]).unwrap();
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            client.read_tls(&mut &buf[..]).unwrap();
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() && !server.wants_write() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn connect(pki: &Pki, tls: &ServerTls, client: &Client) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    connect_with(client_config(pki, client), tls.for_core(2))
}

fn connect_with(
    client: Arc<ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<(ClientConnection, ServerConnection), rustls::Error> {
    let name = ServerName::try_from("mail.example.test").unwrap();
    let mut c = ClientConnection::new(client, name).unwrap();
    let mut s = ServerConnection::new(server).unwrap();
    drive(&mut c, &mut s)?;
    Ok((c, s))
}

fn sha1_hex(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn builds_from_good_files() {
    let pki = Pki::new("good");
    let tls = server_tls(&pki, "");
    let config = tls.for_core(2);
    assert_eq!(config.alpn_protocols, vec![b"imap".to_vec()]);
    assert!(config.ticketer.enabled());
    assert!(!config.ignore_client_order);
}

#[test]
fn off_without_ssl_or_starttls() {
    let pki = Pki::new("off");
    let server = pki.server("", "listen 127.0.0.1:143;").unwrap();
    assert!(ServerTls::build(&server).unwrap().is_none());
    let server = pki.server(CERTS, "listen 127.0.0.1:143; starttls on;").unwrap();
    assert!(ServerTls::build(&server).unwrap().is_some());
}

#[test]
fn bad_files_are_refused_by_name() {
    let pki = Pki::new("bad");
    let dir = pki.dir.display().to_string();
    let conf = pki.conf().display().to_string();
    let rows: &[(&str, String)] = &[
        (
            "ssl_certificate server-rsa.pem; ssl_certificate_key server-ec.key;",
            format!("certificate \"{dir}/server-rsa.pem\" does not match key \"{dir}/server-ec.key\" in {conf}:3"),
        ),
        (
            "ssl_certificate missing.pem; ssl_certificate_key server-ec.key;",
            format!(
                "cannot load certificate \"{dir}/missing.pem\": No such file or directory (os error 2) in {conf}:3"
            ),
        ),
        (
            "ssl_certificate garbage.pem; ssl_certificate_key server-ec.key;",
            format!("cannot load certificate \"{dir}/garbage.pem\": no PEM certificate in the file in {conf}:3"),
        ),
        (
            "ssl_certificate server-ec.pem; ssl_certificate_key garbage.pem;",
            format!("cannot load certificate key \"{dir}/garbage.pem\": no PEM private key in the file in {conf}:3"),
        ),
        (
            "ssl_certificate server-ec.pem; ssl_certificate_key encrypted.key;",
            format!(
                "cannot load certificate key \"{dir}/encrypted.key\": encrypted private keys are not supported: \
                 decrypt the key in {conf}:3"
            ),
        ),
        (
            "ssl_certificate server-ec.pem; ssl_certificate_key server-ec.key; ssl_verify_client on; \
             ssl_client_certificate garbage.pem;",
            format!("cannot load client certificate \"{dir}/garbage.pem\": no PEM certificate in the file in {conf}:3"),
        ),
        (
            "ssl_certificate server-ec.pem; ssl_certificate_key server-ec.key; ssl_verify_client on; \
             ssl_client_certificate ca.pem; ssl_crl garbage.pem;",
            format!("cannot load CRL \"{dir}/garbage.pem\": no PEM CRL in the file in {conf}:3"),
        ),
    ];
    for (lines, want) in rows {
        assert_eq!(&build_error(&pki, lines, ""), want, "{lines}");
    }
}

#[test]
fn alpn_as_nginx() {
    let pki = Pki::new("alpn");
    let tls = server_tls(&pki, "");
    let (c, _) = connect(&pki, &tls, &Client::default()).unwrap();
    assert_eq!(c.alpn_protocol(), None);
    let imap = Client {
        alpn: vec!["h2", "imap"],
        ..Client::default()
    };
    let (c, _) = connect(&pki, &tls, &imap).unwrap();
    assert_eq!(c.alpn_protocol(), Some(&b"imap"[..]));
    let pop3 = Client {
        alpn: vec!["pop3"],
        ..Client::default()
    };
    assert_eq!(
        connect(&pki, &tls, &pop3).err(),
        Some(rustls::Error::NoApplicationProtocol)
    );
}

#[test]
fn negotiated_suite_honours_ssl_ciphers() {
    let pki = Pki::new("ciphers");
    let tls = server_tls(
        &pki,
        "ssl_protocols TLSv1.2; ssl_ciphers ECDHE-ECDSA-CHACHA20-POLY1305;",
    );
    let (_, s) = connect(&pki, &tls, &Client::default()).unwrap();
    let facts = tls.facts(&s, false);
    assert_eq!(facts.protocol, "TLSv1.2");
    assert_eq!(facts.cipher, "ECDHE-ECDSA-CHACHA20-POLY1305");
    assert_eq!(facts.client_cert, None);

    let tls = server_tls(&pki, "ssl_ciphers HIGH:!aECDSA:!CHACHA20:!AES256;");
    let client = Client {
        tls12_only: true,
        ..Client::default()
    };
    let (c, s) = connect(&pki, &tls, &client).unwrap();
    assert_eq!(tls.facts(&s, false).cipher, "ECDHE-RSA-AES128-GCM-SHA256");
    // Only the RSA suite is left, so the RSA certificate is sent.
    assert_eq!(
        c.peer_certificates().unwrap()[0].as_ref(),
        pki.server_rsa.cert.der().as_ref()
    );

    let tls = server_tls(&pki, "");
    let (_, s) = connect(&pki, &tls, &Client::default()).unwrap();
    let facts = tls.facts(&s, false);
    assert_eq!(facts.protocol, "TLSv1.3");
    assert!(facts.cipher.starts_with("TLS_"), "{}", facts.cipher);
}

#[test]
fn certificate_chosen_by_the_client_signature_schemes() {
    let pki = Pki::new("select");
    let tls = server_tls(&pki, "");
    let rsa_only = Client {
        schemes: vec![SignatureScheme::RSA_PSS_SHA256, SignatureScheme::RSA_PKCS1_SHA256],
        ..Client::default()
    };
    let (c, _) = connect(&pki, &tls, &rsa_only).unwrap();
    assert_eq!(
        c.peer_certificates().unwrap()[0].as_ref(),
        pki.server_rsa.cert.der().as_ref()
    );
    let ecdsa_only = Client {
        schemes: vec![SignatureScheme::ECDSA_NISTP256_SHA256],
        ..Client::default()
    };
    let (c, _) = connect(&pki, &tls, &ecdsa_only).unwrap();
    assert_eq!(
        c.peer_certificates().unwrap()[0].as_ref(),
        pki.server_ec.cert.der().as_ref()
    );
    // Both supported: the first configured pair.
    let (c, _) = connect(&pki, &tls, &Client::default()).unwrap();
    assert_eq!(
        c.peer_certificates().unwrap()[0].as_ref(),
        pki.server_rsa.cert.der().as_ref()
    );
}

fn with_identity(name: &'static str) -> Client {
    Client {
        identity: Some(name),
        ..Client::default()
    }
}

#[test]
fn client_certificate_facts() {
    let pki = Pki::new("facts");
    let tls = server_tls(&pki, "ssl_verify_client on; ssl_client_certificate ca.pem;");
    let (_, s) = connect(&pki, &tls, &with_identity("client")).unwrap();
    let facts = tls.facts(&s, true).client_cert.expect("asked for");
    assert_eq!(facts.verify, "SUCCESS");
    assert_eq!(facts.subject, "CN=alice,O=Example\\, Inc,C=NO");
    assert_eq!(facts.issuer, "CN=Postern Test CA,O=Postern");
    assert_eq!(facts.serial, "C07AD56B");
    assert_eq!(facts.fingerprint, sha1_hex(pki.client.cert.der()));
    assert_eq!(
        facts.pem.as_deref().map(|p| p.replace("\r\n", "\n")),
        Some(pki.client.cert.pem().replace("\r\n", "\n"))
    );
    assert_eq!(tls.facts(&s, false).client_cert.unwrap().pem, None);
}

#[test]
fn verify_modes() {
    let pki = Pki::new("verify");
    let on = server_tls(
        &pki,
        "ssl_verify_client on; ssl_client_certificate ca.pem; ssl_crl crl.pem;",
    );
    assert!(connect(&pki, &on, &Client::default()).is_err(), "no certificate");
    assert!(connect(&pki, &on, &with_identity("stranger")).is_err(), "unknown CA");
    assert!(connect(&pki, &on, &with_identity("revoked")).is_err(), "revoked");
    assert!(connect(&pki, &on, &with_identity("deep")).is_err(), "depth 1");
    assert!(connect(&pki, &on, &with_identity("client")).is_ok());

    let deeper = server_tls(
        &pki,
        "ssl_verify_client on; ssl_trusted_certificate ca.pem; ssl_verify_depth 2;",
    );
    let (_, s) = connect(&pki, &deeper, &with_identity("deep")).unwrap();
    assert_eq!(deeper.facts(&s, false).client_cert.unwrap().verify, "SUCCESS");

    let optional = server_tls(&pki, "ssl_verify_client optional; ssl_client_certificate ca.pem;");
    let (_, s) = connect(&pki, &optional, &Client::default()).unwrap();
    assert_eq!(optional.facts(&s, false).client_cert, Some(ClientCertFacts::none()));
    assert!(connect(&pki, &optional, &with_identity("stranger")).is_err());

    let no_ca = server_tls(
        &pki,
        "ssl_verify_client optional_no_ca; ssl_client_certificate ca.pem; ssl_crl crl.pem;",
    );
    let verify = |identity: &'static str| {
        let (_, s) = connect(&pki, &no_ca, &with_identity(identity)).unwrap();
        no_ca.facts(&s, false).client_cert.unwrap().verify
    };
    assert_eq!(verify("client"), "SUCCESS");
    assert_eq!(verify("stranger"), "FAILED:unable to get local issuer certificate");
    assert_eq!(verify("revoked"), "FAILED:certificate revoked");
    assert_eq!(verify("deep"), "FAILED:certificate chain too long");

    // Without any CA, optional_no_ca still asks and reports.
    let bare = server_tls(&pki, "ssl_verify_client optional_no_ca;");
    let (_, s) = connect(&pki, &bare, &with_identity("client")).unwrap();
    let facts = bare.facts(&s, false).client_cert.unwrap();
    assert_eq!(facts.verify, "FAILED:unable to get local issuer certificate");
    assert_eq!(facts.subject, "CN=alice,O=Example\\, Inc,C=NO");

    let off = server_tls(&pki, "");
    let (_, s) = connect(&pki, &off, &with_identity("client")).unwrap();
    assert_eq!(off.facts(&s, true).client_cert, None);
}

fn backend_connect(pki: &Pki, backend: &BackendTls) -> Result<(), rustls::Error> {
    let tls = server_tls(pki, "");
    let addr: std::net::SocketAddr = "127.0.0.1:993".parse().unwrap();
    let mut c = ClientConnection::new(backend.config(), backend.server_name(addr)).unwrap();
    let mut s = ServerConnection::new(tls.for_core(1)).unwrap();
    drive(&mut c, &mut s)
}

fn backend(pki: &Pki, lines: &str) -> BackendTls {
    let server = pki.server("", &format!("listen 127.0.0.1:143; {lines}")).unwrap();
    BackendTls::build(&server).unwrap()
}

#[test]
fn backend_verification() {
    let pki = Pki::new("backend");
    let verify = "proxy_ssl on; proxy_ssl_verify on;";
    let good = backend(
        &pki,
        &format!("{verify} proxy_ssl_trusted_certificate ca.pem; proxy_ssl_name mail.example.test;"),
    );
    assert_eq!(backend_connect(&pki, &good), Ok(()));
    // By default the name is the backend's address, which the certificate has.
    let by_ip = backend(&pki, &format!("{verify} proxy_ssl_trusted_certificate ca.pem;"));
    assert_eq!(
        by_ip.server_name("127.0.0.1:993".parse().unwrap()),
        ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into())
    );
    assert_eq!(backend_connect(&pki, &by_ip), Ok(()));

    let wrong_name = backend(
        &pki,
        &format!("{verify} proxy_ssl_trusted_certificate ca.pem; proxy_ssl_name other.example.test;"),
    );
    assert!(matches!(
        backend_connect(&pki, &wrong_name),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForName
        )) | Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. }
        ))
    ));
    let unknown_ca = backend(&pki, &format!("{verify} proxy_ssl_trusted_certificate other-ca.pem;"));
    assert_eq!(
        backend_connect(&pki, &unknown_ca),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer
        ))
    );
    let lenient = backend(&pki, "proxy_ssl_name whatever.example;");
    assert_eq!(backend_connect(&pki, &lenient), Ok(()));
}

/// Tickets, the per-core cache, or neither: whether a second connection
/// from the same client resumes, in each TLS version.
#[test]
fn session_resumption() {
    use rustls::HandshakeKind::{Full, Resumed};
    let pki = Pki::new("resume");
    let rows: &[(&str, bool, rustls::HandshakeKind)] = &[
        ("", false, Resumed),
        ("", true, Resumed),
        ("ssl_session_tickets off;", false, Full),
        ("ssl_session_tickets off;", true, Full),
        (
            "ssl_session_tickets off; ssl_session_cache builtin:100;",
            false,
            Resumed,
        ),
        (
            "ssl_session_tickets off; ssl_session_cache shared:SSL:1m;",
            true,
            Resumed,
        ),
        ("ssl_session_tickets off; ssl_session_cache off;", true, Full),
    ];
    for &(lines, tls12_only, want) in rows {
        let tls = server_tls(&pki, lines);
        let server = tls.for_core(2);
        let client = client_config(
            &pki,
            &Client {
                tls12_only,
                ..Client::default()
            },
        );
        let (mut c, _) = connect_with(client.clone(), server.clone()).unwrap();
        // TLS 1.3 tickets arrive after the handshake: let the client read them.
        c.process_new_packets().unwrap();
        let (_, s) = connect_with(client, server).unwrap();
        assert_eq!(s.handshake_kind(), Some(want), "{lines} tls12_only={tls12_only}");
    }
}

#[test]
fn ktls_probe_does_not_fail() {
    // Either answer is right; the machines here have no kernel TLS.
    let _ = ktls_available();
}
