//! TLS end to end on loopback, with certificates made at test time: implicit
//! TLS and STARTTLS for IMAP, POP3 and SMTP with Python's ssl-wrapped
//! clients and `openssl s_client`, `starttls only`, the STARTTLS
//! command-injection case, client certificates and the Auth-SSL headers as
//! the auth server receives them, EXTERNAL, TLS to the backend and its
//! verification, bytes through the TLS relay, certificates on reload.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use postern_bench::certs::{write_test_pki, TestPki};
use postern_bench::message::seeded_message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Certificates, a backend and an auth server recording its requests, and
/// Postern in front with `server_lines` in its one server block.
struct Stack {
    pki: TestPki,
    dir: TempDir,
    postern: Postern,
    _backend: Companion,
    _auth: Companion,
}

/// Everything a stack is made of, defaults for an IMAPS server.
struct StackSpec<'a> {
    protocol: &'a str,
    /// After `listen 127.0.0.1:PORT` (e.g. " ssl").
    listen: &'a str,
    /// More lines in the server block.
    server: &'a str,
    /// Extra flags for the backend (TLS certificates).
    backend: &'a [&'a str],
    /// Extra flags for the auth server.
    auth: &'a [&'a str],
    size: usize,
    /// `worker_processes`: cores, each with its own session cache.
    workers: usize,
}

impl Default for StackSpec<'_> {
    fn default() -> Self {
        StackSpec {
            protocol: "imap",
            listen: " ssl",
            server: "",
            backend: &[],
            auth: &[],
            size: 500,
            workers: 2,
        }
    }
}

fn path_text(p: &Path) -> String {
    p.display().to_string()
}

fn stack(spec: StackSpec<'_>) -> Stack {
    let dir = TempDir::new(&format!("tls-{}", spec.protocol));
    let pki = write_test_pki(&dir.path("pki")).expect("test certificates");
    let size = spec.size.to_string();
    let mut args = vec![
        "backend",
        "--protocol",
        spec.protocol,
        "--user",
        "bob:secret",
        "--messages",
        "2",
        "--msg-bytes",
        &size,
    ];
    args.extend_from_slice(spec.backend);
    let backend = start_bench(&args);
    let route = format!("{}={}", spec.protocol, backend.addr);
    let record = path_text(&dir.path("auth-requests"));
    let mut auth_args = vec!["auth", "--backend", &route, "--user", "bob:secret", "--record", &record];
    auth_args.extend_from_slice(spec.auth);
    let auth = start_bench(&auth_args);
    let postern = start_tls_postern(&dir, &pki, &auth, &spec);
    Stack {
        pki,
        dir,
        postern,
        _backend: backend,
        _auth: auth,
    }
}

fn start_tls_postern(dir: &TempDir, pki: &TestPki, auth: &Companion, spec: &StackSpec<'_>) -> Postern {
    let port = free_port();
    let server = spec
        .server
        .replace("{ca}", &path_text(&pki.ca))
        .replace("{crl}", &path_text(&pki.crl));
    let conf = format!(
        "worker_processes {};\nerror_log stderr info;\nmail {{\n    auth_http {}/auth;\n    ssl_certificate {};\n    ssl_certificate_key {};\n    server {{\n        listen 127.0.0.1:{port}{};\n        protocol {};\n{server}\n    }}\n}}\n",
        spec.workers,
        auth.addr,
        path_text(&pki.server_cert),
        path_text(&pki.server_key),
        spec.listen,
        spec.protocol,
    );
    let path = dir.path("postern.conf");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new(postern_bin());
    cmd.arg("-c").arg(&path);
    let proc = Proc::spawn(cmd);
    proc.wait_for("started");
    Postern {
        proc,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        dir: TempDir::new("unused"),
    }
}

impl Stack {
    fn auth_requests(&self) -> String {
        String::from_utf8_lossy(&read_file(&self.dir.path("auth-requests"))).into_owned()
    }

    fn port(&self) -> u16 {
        self.postern.addr.port()
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("certificate file")
        .collect::<Result<_, _>>()
        .expect("certificates")
}

fn key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).expect("key")
}

/// A rustls client trusting `ca`, presenting `client` (cert, key) if given.
fn client_config(ca: &Path, client: Option<(&Path, &Path)>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, k)) => builder.with_client_auth_cert(certs(cert), key(k)).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A line client over TLS.
struct TlsClient {
    inner: BufReader<Tls>,
}

impl TlsClient {
    /// Runs the handshake on `tcp` (fresh, or after STARTTLS) to completion.
    fn over(tcp: TcpStream, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsClient> {
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock)?;
        }
        Ok(TlsClient {
            inner: BufReader::new(tls),
        })
    }

    fn connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> std::io::Result<TlsClient> {
        TlsClient::over(TcpStream::connect(addr).unwrap(), config)
    }

    fn send(&mut self, bytes: &[u8]) {
        let tls = self.inner.get_mut();
        tls.write_all(bytes).unwrap();
        tls.flush().unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.inner.read_line(&mut line).expect("read line");
        line
    }

    fn expect(&mut self, command: &str, reply: &[&str]) {
        self.send(command.as_bytes());
        for want in reply {
            assert_eq!(self.line(), *want, "reply to {command:?}");
        }
    }

    fn exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.inner.read_exact(&mut buf).unwrap();
        buf
    }

    fn conn(&self) -> &rustls::ClientConnection {
        &self.inner.get_ref().conn
    }
}

fn python(script: &str) {
    let out = Command::new("python3").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "python: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// Implicit TLS with the standard library's clients, as mail clients use it.

#[test]
fn imaps_with_imaplib() {
    let s = stack(StackSpec::default());
    python(&format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
m = imaplib.IMAP4_SSL("127.0.0.1", {port}, ssl_context=ctx)
assert "AUTH=PLAIN" in m.capabilities and "STARTTLS" not in m.capabilities, m.capabilities
typ, data = m.login("bob", "secret")
assert typ == "OK", (typ, data)
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"2", (typ, data)
typ, data = m.fetch("2", "(BODY[])")
assert data[0][1] == open("{message}", "rb").read()
m.logout()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
        message = write_message(&s.dir, 2, 500),
    ));
    let requests = s.auth_requests();
    assert!(requests.contains("Auth-SSL: on\r\n"), "{requests}");
    assert!(requests.contains("Auth-SSL-Protocol: TLSv1.3\r\n"), "{requests}");
    assert!(s.postern.proc.wait_for("session done").contains("(tls)"));
}

/// The seeded message `n` of `size` bytes in a file, for a script to compare.
fn write_message(dir: &TempDir, n: usize, size: usize) -> String {
    let path = dir.path(&format!("message-{n}"));
    std::fs::write(&path, seeded_message(n, size)).unwrap();
    path_text(&path)
}

#[test]
fn pop3s_with_poplib() {
    let s = stack(StackSpec {
        protocol: "pop3",
        ..StackSpec::default()
    });
    python(&format!(
        r#"
import poplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
p = poplib.POP3_SSL("127.0.0.1", {port}, context=ctx)
p.user("bob"); p.pass_("secret")
count, size = p.stat()
assert count == 2, count
resp, lines, octets = p.retr(1)
assert b"\r\n".join(lines) + b"\r\n" == open("{message}", "rb").read()
p.quit()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
        message = write_message(&s.dir, 1, 500),
    ));
    assert!(s.auth_requests().contains("Auth-SSL: on\r\n"));
}

#[test]
fn smtps_with_smtplib() {
    let s = stack(StackSpec {
        protocol: "smtp",
        ..StackSpec::default()
    });
    python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
c = smtplib.SMTP_SSL("127.0.0.1", {port}, context=ctx)
c.ehlo("client.example")
assert c.has_extn("auth") and not c.has_extn("starttls"), c.esmtp_features
c.login("bob", "secret")
c.sendmail("bob@example.com", ["alice@example.com"], "Subject: hi\r\n\r\nover TLS\r\n")
c.quit()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
    ));
    assert!(s.auth_requests().contains("Auth-SSL: on\r\n"));
}

// STARTTLS with the standard library's clients.

#[test]
fn imap_starttls_with_imaplib() {
    let s = stack(StackSpec {
        listen: "",
        server: "        starttls on;",
        ..StackSpec::default()
    });
    python(&format!(
        r#"
import imaplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
m = imaplib.IMAP4("127.0.0.1", {port})
assert "STARTTLS" in m.capabilities, m.capabilities
m.starttls(ssl_context=ctx)
assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities, m.capabilities
typ, data = m.login("bob", "secret")
assert typ == "OK", (typ, data)
m.logout()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
    ));
    assert!(s.auth_requests().contains("Auth-SSL: on\r\n"));
}

#[test]
fn pop3_stls_with_poplib() {
    let s = stack(StackSpec {
        protocol: "pop3",
        listen: "",
        server: "        starttls on;",
        ..StackSpec::default()
    });
    python(&format!(
        r#"
import poplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
p = poplib.POP3("127.0.0.1", {port})
assert "STLS" in p.capa(), p.capa()
p.stls(context=ctx)
p.user("bob"); p.pass_("secret")
assert p.stat()[0] == 2
p.quit()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
    ));
    assert!(s.auth_requests().contains("Auth-SSL: on\r\n"));
}

#[test]
fn smtp_starttls_with_smtplib() {
    let s = stack(StackSpec {
        protocol: "smtp",
        listen: "",
        server: "        starttls on;",
        ..StackSpec::default()
    });
    python(&format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{ca}")
c = smtplib.SMTP("127.0.0.1", {port})
c.ehlo("client.example")
assert c.has_extn("starttls"), c.esmtp_features
c.starttls(context=ctx)
c.ehlo("client.example")
assert not c.has_extn("starttls"), c.esmtp_features
c.login("bob", "secret")
c.sendmail("bob@example.com", ["alice@example.com"], "Subject: hi\r\n\r\nafter STARTTLS\r\n")
c.quit()
"#,
        ca = path_text(&s.pki.ca),
        port = s.port(),
    ));
    assert!(s.auth_requests().contains("Auth-SSL: on\r\n"));
}

/// `openssl s_client` as a second, independent TLS client: STARTTLS the way
/// OpenSSL does it for IMAP, then a login relayed to the backend.
#[test]
fn openssl_s_client_starttls_imap() {
    let s = stack(StackSpec {
        listen: "",
        server: "        starttls on;",
        ..StackSpec::default()
    });
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-starttls",
            "imap",
            "-verify_return_error",
            "-CAfile",
        ])
        .arg(&s.pki.ca)
        .args(["-connect", &s.postern.addr.to_string(), "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"a LOGIN bob secret\r\n").unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("a OK"), "{line:?}");
    stdin.write_all(b"b LOGOUT\r\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("b OK"), "{rest:?}");
    let _ = child.wait();
}

#[test]
fn openssl_s_client_pop3s() {
    let s = stack(StackSpec {
        protocol: "pop3",
        ..StackSpec::default()
    });
    let out = Command::new("openssl")
        .args(["s_client", "-quiet", "-verify_return_error", "-CAfile"])
        .arg(&s.pki.ca)
        .args(["-connect", &s.postern.addr.to_string(), "-servername", "localhost"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"USER bob\r\nPASS secret\r\nSTAT\r\nQUIT\r\n")?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("+OK"), "{text:?}");
    assert!(text.contains("+OK 2 "), "{text:?}");
}

// starttls only, and the command pipelined behind STARTTLS.

#[test]
fn starttls_only_refuses_plaintext_login() {
    let s = stack(StackSpec {
        listen: "",
        server: "        starttls only;",
        ..StackSpec::default()
    });
    let mut c = Client::imap(s.postern.addr);
    c.send(b"a CAPABILITY\r\n");
    let caps = c.line();
    assert!(
        caps.contains(" STARTTLS LOGINDISABLED") && !caps.contains("AUTH="),
        "{caps}"
    );
    assert_eq!(c.line(), "a OK completed\r\n");
    c.send(b"b LOGIN bob secret\r\n");
    let refused = c.line();
    assert!(refused.starts_with("b BAD") || refused.starts_with("b NO"), "{refused}");
    // After STARTTLS the same login goes through.
    c.send(b"c STARTTLS\r\n");
    assert!(c.line().starts_with("c OK"));
    let config = client_config(&s.pki.ca, None, &[]);
    let mut tls = TlsClient::over(c.stream.try_clone().unwrap(), config).unwrap();
    tls.send(b"d LOGIN bob secret\r\n");
    assert!(tls.line().starts_with("d OK"));
    assert_eq!(s.auth_requests().matches("Auth-User: bob").count(), 1);
}

/// CVE-2011-0411's class: a command sent in plaintext behind STARTTLS, in
/// the same packet, must never run inside the TLS session.
#[test]
fn command_pipelined_behind_starttls_is_discarded() {
    for (protocol, starttls, login, probe) in [
        ("imap", "a STARTTLS\r\n", "b LOGIN bob secret\r\n", "c NOOP\r\n"),
        ("pop3", "STLS\r\n", "USER bob\r\nPASS secret\r\n", "NOOP\r\n"),
        ("smtp", "STARTTLS\r\n", "AUTH PLAIN AGJvYgBzZWNyZXQ=\r\n", "NOOP\r\n"),
    ] {
        let s = stack(StackSpec {
            protocol,
            listen: "",
            server: "        starttls on;",
            ..StackSpec::default()
        });
        let mut c = Client::connect(s.postern.addr);
        let greeting = c.line();
        assert!(!greeting.is_empty());
        if protocol == "smtp" {
            c.send(b"EHLO x\r\n");
            while c.line().starts_with("250-") {}
        }
        c.send(format!("{starttls}{login}").as_bytes());
        let ok = c.line();
        assert!(
            ok.starts_with("a OK") || ok.starts_with("+OK") || ok.starts_with("220"),
            "{protocol}: {ok}"
        );
        let config = client_config(&s.pki.ca, None, &[]);
        let mut tls = TlsClient::over(c.stream.try_clone().unwrap(), config).unwrap();
        tls.send(probe.as_bytes());
        let answer = tls.line();
        let noop_ok = match protocol {
            "imap" => answer == "c OK completed\r\n",
            "pop3" => answer.starts_with("+OK"),
            _ => answer.starts_with("250"),
        };
        assert!(noop_ok, "{protocol}: the first answer inside TLS is {answer:?}");
        assert_eq!(
            s.auth_requests(),
            "",
            "{protocol}: the pipelined login reached the auth server"
        );
    }
}

/// A client offering only another protocol in ALPN is refused, as nginx.
#[test]
fn alpn_other_protocol_refused() {
    let s = stack(StackSpec::default());
    assert!(TlsClient::connect(s.postern.addr, client_config(&s.pki.ca, None, &[b"pop3"])).is_err());
    let mut ok = TlsClient::connect(s.postern.addr, client_config(&s.pki.ca, None, &[b"imap"])).unwrap();
    assert_eq!(ok.conn().alpn_protocol(), Some(&b"imap"[..]));
    assert!(ok.line().starts_with("* OK"));
}

// Client certificates.

/// `openssl x509 -fingerprint -sha1`, as nginx's $ssl_client_fingerprint
/// writes it (lowercase hex, no colons): computed apart from Postern.
fn sha1_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit_once('=').unwrap().1.replace(':', "").to_lowercase()
}

/// `openssl x509 -subject|-issuer -nameopt RFC2253`: nginx's
/// $ssl_client_s_dn / $ssl_client_i_dn form, computed apart from Postern.
fn openssl_name(cert: &Path, which: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", which, "-nameopt", "RFC2253", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().split_once('=').unwrap().1.to_string()
}

fn openssl_serial(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

#[test]
fn client_certificate_headers_reach_the_auth_server() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client on;\n        ssl_client_certificate {ca};\n        auth_http_pass_client_cert on;",
        ..StackSpec::default()
    });
    let config = client_config(&s.pki.ca, Some((&s.pki.client_cert, &s.pki.client_key)), &[]);
    let mut c = TlsClient::connect(s.postern.addr, config).unwrap();
    assert!(c.line().starts_with("* OK"));
    c.send(b"a LOGIN bob secret\r\n");
    assert!(c.line().starts_with("a OK"));
    let requests = s.auth_requests();
    for want in [
        "Auth-SSL: on\r\n".to_string(),
        "Auth-SSL-Verify: SUCCESS\r\n".to_string(),
        format!("Auth-SSL-Subject: {}\r\n", openssl_name(&s.pki.client_cert, "-subject")),
        format!("Auth-SSL-Issuer: {}\r\n", openssl_name(&s.pki.client_cert, "-issuer")),
        format!("Auth-SSL-Serial: {}\r\n", openssl_serial(&s.pki.client_cert)),
        format!("Auth-SSL-Fingerprint: {}\r\n", sha1_fingerprint(&s.pki.client_cert)),
        "Auth-SSL-Cert: -----BEGIN%20CERTIFICATE-----%0A".to_string(),
    ] {
        assert!(requests.contains(&want), "no {want:?} in {requests}");
    }
    // Nothing a certificate holds may start a header of its own.
    let cert_line = requests.lines().find(|l| l.starts_with("Auth-SSL-Cert: ")).unwrap();
    assert!(cert_line.ends_with("-----END%20CERTIFICATE-----%0A"), "{cert_line}");
}

#[test]
fn verify_client_on_refuses_a_client_without_certificate() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client on;\n        ssl_client_certificate {ca};",
        ..StackSpec::default()
    });
    let refused = TlsClient::connect(s.postern.addr, client_config(&s.pki.ca, None, &[])).and_then(|mut c| {
        // TLS 1.3 reports the refusal with the first read.
        let mut byte = [0u8; 1];
        c.inner.read(&mut byte).map(|_| c)
    });
    assert!(refused.is_err(), "a client without a certificate was served");
    assert_eq!(s.auth_requests(), "");
}

#[test]
fn verify_client_optional_lets_a_client_without_certificate_in() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client optional;\n        ssl_client_certificate {ca};",
        ..StackSpec::default()
    });
    let mut c = TlsClient::connect(s.postern.addr, client_config(&s.pki.ca, None, &[])).unwrap();
    assert!(c.line().starts_with("* OK"));
    c.send(b"a LOGIN bob secret\r\n");
    assert!(c.line().starts_with("a OK"));
    assert!(
        s.auth_requests().contains("Auth-SSL-Verify: NONE\r\n"),
        "{}",
        s.auth_requests()
    );
}

#[test]
fn verify_client_optional_no_ca_reports_an_unknown_issuer() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client optional_no_ca;\n        ssl_client_certificate {ca};",
        ..StackSpec::default()
    });
    // A certificate from another CA: served, and the auth server told.
    let config = client_config(
        &s.pki.ca,
        Some((&s.pki.other_server_cert, &s.pki.other_server_key)),
        &[],
    );
    let mut c = TlsClient::connect(s.postern.addr, config).unwrap();
    assert!(c.line().starts_with("* OK"));
    c.send(b"a LOGIN bob secret\r\n");
    assert!(c.line().starts_with("a OK"));
    let requests = s.auth_requests();
    assert!(requests.contains("Auth-SSL-Verify: FAILED:"), "{requests}");
}

/// EXTERNAL: the client certificate vouches for the user; the auth server
/// sees the user, an empty password and the certificate's headers, and
/// answers the password the backend login needs (Auth-Pass).
#[test]
fn external_with_a_client_certificate() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client on;\n        ssl_client_certificate {ca};\n        imap_auth external;",
        ..StackSpec::default()
    });
    let config = client_config(&s.pki.ca, Some((&s.pki.client_cert, &s.pki.client_key)), &[]);
    let mut c = TlsClient::connect(s.postern.addr, config).unwrap();
    assert!(c.line().starts_with("* OK"));
    c.send(b"a CAPABILITY\r\n");
    assert!(c.line().contains("AUTH=EXTERNAL"));
    assert_eq!(c.line(), "a OK completed\r\n");
    // "bob", base64.
    c.send(b"b AUTHENTICATE EXTERNAL Ym9i\r\n");
    assert_eq!(c.line(), "b OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n");
    let requests = s.auth_requests();
    assert!(requests.contains("Auth-Method: external\r\n"), "{requests}");
    assert!(requests.contains("Auth-User: bob\r\n"), "{requests}");
    let subject = format!("Auth-SSL-Subject: {}\r\n", openssl_name(&s.pki.client_cert, "-subject"));
    assert!(requests.contains(&subject), "{requests}");
}

// TLS to the backend.

#[test]
fn backend_over_tls_verified() {
    let dir = TempDir::new("backend-pki");
    let pki = write_test_pki(&dir.0).unwrap();
    let (cert, key) = (path_text(&pki.server_cert), path_text(&pki.server_key));
    let server = format!(
        "        proxy_ssl on;\n        proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate {};\n        proxy_ssl_name localhost;",
        path_text(&pki.ca)
    );
    let s = stack(StackSpec {
        listen: "",
        server: &server,
        backend: &["--tls-cert", &cert, "--tls-key", &key],
        size: 3_000_000,
        ..StackSpec::default()
    });
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.expect("b SELECT INBOX\r\n", &["* 2 EXISTS\r\n"]);
    while !c.line().starts_with("b OK") {}
    assert!(
        c.fetch("c", 2) == seeded_message(2, 3_000_000),
        "bytes differ over the TLS backend"
    );
    drop(c);
    assert!(s.postern.proc.wait_for("session done").contains("(tls)"));
}

#[test]
fn backend_with_a_wrong_name_is_refused() {
    let dir = TempDir::new("backend-pki");
    let pki = write_test_pki(&dir.0).unwrap();
    let (cert, key) = (path_text(&pki.wrong_name_cert), path_text(&pki.wrong_name_key));
    let server = format!(
        "        proxy_ssl on;\n        proxy_ssl_verify on;\n        proxy_ssl_trusted_certificate {};\n        proxy_ssl_name localhost;",
        path_text(&pki.ca)
    );
    let s = stack(StackSpec {
        listen: "",
        server: &server,
        backend: &["--tls-cert", &cert, "--tls-key", &key],
        ..StackSpec::default()
    });
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob secret\r\n", &["* BAD internal server error\r\n"]);
    assert!(s.postern.proc.wait_for("TLS handshake with backend").contains("failed"));
}

// Bytes through the TLS relay.

#[test]
fn twenty_megabytes_byte_exact_through_tls() {
    const SIZE: usize = 20 * 1024 * 1024;
    let s = stack(StackSpec {
        size: SIZE,
        ..StackSpec::default()
    });
    let mut c = TlsClient::connect(s.postern.addr, client_config(&s.pki.ca, None, &[])).unwrap();
    assert!(c.line().starts_with("* OK"));
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.expect("b SELECT INBOX\r\n", &["* 2 EXISTS\r\n"]);
    while !c.line().starts_with("b OK") {}
    c.send(b"c FETCH 1 BODY[]\r\n");
    let head = c.line();
    assert!(head.ends_with(&format!("{{{SIZE}}}\r\n")), "{head}");
    assert!(c.exact(SIZE) == seeded_message(1, SIZE), "bytes differ");
    assert_eq!(c.line(), ")\r\n");
    assert_eq!(c.line(), "c OK FETCH completed\r\n");
    c.expect("d LOGOUT\r\n", &["* BYE logging out\r\n"]);
}

/// `Auth-SSL-Backend: on` (Postern's own): the auth server turns TLS to the
/// backend on for this login although `proxy_ssl` is off.
#[test]
fn auth_server_turns_backend_tls_on() {
    let dir = TempDir::new("backend-pki");
    let pki = write_test_pki(&dir.0).unwrap();
    let (cert, key) = (path_text(&pki.server_cert), path_text(&pki.server_key));
    let s = stack(StackSpec {
        listen: "",
        backend: &["--tls-cert", &cert, "--tls-key", &key],
        auth: &["--ok-header", "Auth-SSL-Backend: on"],
        ..StackSpec::default()
    });
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    c.expect("b LOGOUT\r\n", &["* BYE logging out\r\n"]);
    assert!(s.postern.proc.wait_for("session done").contains("(tls)"));
}

/// SIGHUP with other certificates: new connections get them, a TLS session
/// in flight goes on with its own; a certificate that does not load fails
/// the reload and the running ones stay.
#[test]
fn reload_swaps_certificates_and_keeps_sessions() {
    let s = stack(StackSpec::default());
    let config = client_config(&s.pki.ca, None, &[]);
    let mut before = TlsClient::connect(s.postern.addr, config.clone()).unwrap();
    assert!(before.line().starts_with("* OK"));
    before.expect(
        "a LOGIN bob secret\r\n",
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n"],
    );
    let ecdsa = certs(&s.pki.server_cert)[0].clone();
    assert_eq!(before.conn().peer_certificates().unwrap()[0], ecdsa);

    let conf = s.dir.path("postern.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    let swapped = text
        .replace(&path_text(&s.pki.server_cert), &path_text(&s.pki.server_rsa_cert))
        .replace(&path_text(&s.pki.server_key), &path_text(&s.pki.server_rsa_key));
    std::fs::write(&conf, &swapped).unwrap();
    let hup = |pid: u32| {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    };
    hup(s.postern.proc.pid());
    s.postern.proc.wait_for_count(": reconfigured, 1 listener(s)", 2);
    let mut after = TlsClient::connect(s.postern.addr, config.clone()).unwrap();
    assert!(after.line().starts_with("* OK"));
    let rsa = certs(&s.pki.server_rsa_cert)[0].clone();
    assert_eq!(after.conn().peer_certificates().unwrap()[0], rsa);
    // The session from before the reload still relays.
    before.expect("b NOOP\r\n", &["b OK NOOP completed\r\n"]);

    // A key that does not match its certificate: the reload is refused.
    std::fs::write(
        &conf,
        swapped.replace(&path_text(&s.pki.server_rsa_key), &path_text(&s.pki.server_key)),
    )
    .unwrap();
    hup(s.postern.proc.pid());
    s.postern.proc.wait_for("reload failed");
    let mut still = TlsClient::connect(s.postern.addr, config).unwrap();
    assert!(still.line().starts_with("* OK"));
    assert_eq!(still.conn().peer_certificates().unwrap()[0], rsa);
}

/// `ssl_crl`: a certificate the CA revoked is refused in the handshake;
/// one it did not revoke is served.
#[test]
fn revoked_client_certificate_refused() {
    let s = stack(StackSpec {
        server: "        ssl_verify_client on;\n        ssl_client_certificate {ca};\n        ssl_crl {crl};",
        ..StackSpec::default()
    });
    let revoked = client_config(&s.pki.ca, Some((&s.pki.revoked_cert, &s.pki.revoked_key)), &[]);
    let refused = TlsClient::connect(s.postern.addr, revoked).and_then(|mut c| {
        let mut byte = [0u8; 1];
        c.inner.read(&mut byte).map(|_| c)
    });
    assert!(refused.is_err(), "a revoked certificate was served");
    let good = client_config(&s.pki.ca, Some((&s.pki.client_cert, &s.pki.client_key)), &[]);
    let mut c = TlsClient::connect(s.postern.addr, good).unwrap();
    assert!(c.line().starts_with("* OK"));
}

/// A client that connects to a TLS port and never starts the handshake is
/// closed after `timeout`, like one that never sends a command.
#[test]
fn silent_client_on_a_tls_port_times_out() {
    let s = stack(StackSpec {
        server: "        timeout 1s;",
        ..StackSpec::default()
    });
    // Timed from before the connect: the timeout starts at accept, after it.
    let started = std::time::Instant::now();
    let mut c = Client::connect(s.postern.addr);
    assert_eq!(c.read_to_close(), b"");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert!(s.postern.proc.wait_for("TLS handshake").contains("timed out"));
}

/// `ssl_session_timeout`: a session resumes within it and not after, both
/// by ticket and from the session cache (TLS 1.3 stateful tickets, which
/// rustls announces with its own lifetime, so only Postern's cache can
/// refuse them).
#[test]
fn sessions_resume_until_ssl_session_timeout() {
    for server in [
        "        ssl_session_timeout 1s;",
        "        ssl_session_timeout 1s;\n        ssl_session_tickets off;\n        ssl_session_cache shared:T:1m;",
    ] {
        // One core: the session cache is per core, and a second connection
        // could land on the other one.
        let s = stack(StackSpec {
            server,
            workers: 1,
            ..StackSpec::default()
        });
        let config = client_config(&s.pki.ca, None, &[]);
        let session = |config: &Arc<rustls::ClientConfig>| {
            let mut c = TlsClient::connect(s.postern.addr, config.clone()).unwrap();
            // The greeting comes after the tickets: reading it stores them.
            assert!(c.line().starts_with("* OK"));
            c.conn().handshake_kind()
        };
        assert_eq!(session(&config), Some(rustls::HandshakeKind::Full), "{server}");
        assert_eq!(session(&config), Some(rustls::HandshakeKind::Resumed), "{server}");
        // Time itself is what is tested: the session must outlive 1 s.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        assert_eq!(session(&config), Some(rustls::HandshakeKind::Full), "{server}");
    }
}
