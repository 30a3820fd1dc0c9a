//! The PROXY protocol end to end: HAProxy (Debian's package, started here on
//! loopback) in front of Postern with `send-proxy` and `send-proxy-v2`, a
//! client from 127.0.0.2 so that its address differs from HAProxy's
//! 127.0.0.1, the auth server recording what Postern tells it, and a tap
//! in front of the backend reading the header Postern sends it.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use postern_bench::certs::write_test_pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const LOGIN_OK: &str = "a1 OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

/// HAProxy's binary. scripts/test.sh installs it; a run without it fails
/// rather than passing without having tested anything.
fn require_haproxy() {
    let present = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        present,
        "haproxy is not installed: run scripts/test.sh, or apt-get install haproxy"
    );
}

/// HAProxy in TCP mode: one frontend per `(server option)`, each to `to`;
/// returns the process and each frontend's address.
fn start_haproxy(dir: &TempDir, to: SocketAddr, options: &[&str]) -> (Proc, Vec<SocketAddr>) {
    let mut conf = String::from(
        "global\n    maxconn 200\ndefaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n    \
         timeout server 30s\n",
    );
    let mut fronts = Vec::new();
    for (i, option) in options.iter().enumerate() {
        let port = free_port();
        fronts.push(SocketAddr::from(([127, 0, 0, 1], port)));
        conf.push_str(&format!(
            "frontend f{i}\n    bind 127.0.0.1:{port}\n    default_backend b{i}\nbackend b{i}\n    server s {to} {option}\n"
        ));
    }
    let path = dir.path("haproxy.cfg");
    std::fs::write(&path, conf).unwrap();
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&path);
    let proc = Proc::spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    for front in &fronts {
        while TcpStream::connect(front).is_err() {
            assert!(Instant::now() < deadline, "haproxy did not listen on {front}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    (proc, fronts)
}

/// Postern with one IMAP server whose `listen` has `listen_params` and
/// whose block adds `server_lines`.
fn start(dir: &TempDir, auth: &Companion, listen_params: &str, server_lines: &str) -> Postern {
    let port = free_port();
    let conf = format!(
        "worker_processes 2;\nerror_log stderr info;\nmail {{\n    auth_http {}/auth;\n    timeout 3s;\n    \
         server {{\n        listen 127.0.0.1:{port} {listen_params};\n        protocol imap;\n{server_lines}\n    }}\n}}\n",
        auth.addr
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

/// A TCP connection from 127.0.0.2 (any port) to `to`.
fn connect_from_2(to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

struct Stack {
    dir: TempDir,
    _backend: Companion,
    auth: Companion,
}

impl Stack {
    fn new(name: &str) -> Stack {
        let dir = TempDir::new(name);
        let backend = start_backend(&["bob:secret"], 1, 100);
        let record = dir.path("auth-requests").display().to_string();
        let auth = start_auth(&["bob:secret"], backend.addr, &["--record", &record]);
        Stack {
            dir,
            _backend: backend,
            auth,
        }
    }

    /// The last auth request's head.
    fn last_request(&self) -> String {
        let all = String::from_utf8_lossy(&read_file(&self.dir.path("auth-requests"))).into_owned();
        let start = all.rfind("GET ").expect("an auth request");
        all[start..].to_string()
    }
}

/// A whole IMAP session over `stream`: greeting, login, NOOP from the
/// backend, logout. Returns the local port the client used.
fn imap_session(stream: TcpStream) -> u16 {
    let port = stream.local_addr().unwrap().port();
    let mut c = Client::from_stream(stream);
    assert!(c.line().starts_with("* OK"), "greeting");
    c.expect("a1 LOGIN bob secret\r\n", &[LOGIN_OK]);
    c.expect("a2 NOOP\r\n", &["a2 OK NOOP completed\r\n"]);
    c.expect(
        "a3 LOGOUT\r\n",
        &["* BYE logging out\r\n", "a3 OK LOGOUT completed\r\n"],
    );
    port
}

fn header(request: &str, name: &str) -> Option<String> {
    request
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

#[test]
fn haproxy_v1_and_v2_give_the_real_client() {
    require_haproxy();
    let s = Stack::new("pp-haproxy");
    let postern = start(&s.dir, &s.auth, "proxy_protocol", "        set_real_ip_from 127.0.0.1;");
    let (_haproxy, fronts) = start_haproxy(&s.dir, postern.addr, &["send-proxy", "send-proxy-v2"]);
    for front in &fronts {
        let port = imap_session(connect_from_2(*front));
        let request = s.last_request();
        assert_eq!(header(&request, "Client-IP").as_deref(), Some("127.0.0.2"), "{request}");
        assert_eq!(header(&request, "Proxy-Protocol-Addr").as_deref(), Some("127.0.0.2"));
        assert_eq!(header(&request, "Proxy-Protocol-Port"), Some(port.to_string()));
        assert_eq!(
            header(&request, "Proxy-Protocol-Server-Addr").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            header(&request, "Proxy-Protocol-Server-Port"),
            Some(front.port().to_string())
        );
        // nginx's order: after Client-IP, before the headers of auth_http_header.
        assert!(request.find("Client-IP:") < request.find("Proxy-Protocol-Addr:"));
    }
    postern.proc.wait_for("real address from the PROXY protocol header");
}

#[test]
fn an_untrusted_balancer_keeps_its_own_address() {
    require_haproxy();
    let s = Stack::new("pp-untrusted");
    let postern = start(
        &s.dir,
        &s.auth,
        "proxy_protocol",
        "        set_real_ip_from 10.0.0.0/8;",
    );
    let (_haproxy, fronts) = start_haproxy(&s.dir, postern.addr, &["send-proxy-v2"]);
    imap_session(connect_from_2(fronts[0]));
    let request = s.last_request();
    assert_eq!(header(&request, "Client-IP").as_deref(), Some("127.0.0.1"), "{request}");
    // The header is passed on all the same, as nginx does.
    assert_eq!(header(&request, "Proxy-Protocol-Addr").as_deref(), Some("127.0.0.2"));
}

/// Without `proxy_protocol` on the listener there is no header, and no
/// Proxy-Protocol-* in the request.
#[test]
fn no_headers_without_proxy_protocol() {
    let s = Stack::new("pp-none");
    let postern = start(&s.dir, &s.auth, "", "");
    imap_session(TcpStream::connect(postern.addr).unwrap());
    let request = s.last_request();
    assert!(!request.contains("Proxy-Protocol"), "{request}");
}

/// The header and the first command in one segment, and a header in
/// pieces: nothing after the header is lost, nothing of it is read as a
/// command.
#[test]
fn bytes_after_the_header_belong_to_the_session() {
    let s = Stack::new("pp-surplus");
    let postern = start(
        &s.dir,
        &s.auth,
        "proxy_protocol",
        "        set_real_ip_from 127.0.0.0/8;",
    );
    let mut c = Client::connect(postern.addr);
    c.send(b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 143\r\na0 CAPABILITY\r\n");
    assert!(c.line().starts_with("* OK"));
    assert!(c.line().starts_with("* CAPABILITY"));
    assert_eq!(c.line(), "a0 OK completed\r\n");
    c.expect("a1 LOGIN bob secret\r\n", &[LOGIN_OK]);
    assert_eq!(header(&s.last_request(), "Client-IP").as_deref(), Some("198.51.100.7"));
    let mut c = Client::connect(postern.addr);
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2.extend_from_slice(&[203, 0, 113, 5, 127, 0, 0, 1, 0x30, 0x39, 0, 143]);
    for (i, byte) in v2.iter().enumerate() {
        c.send(&[*byte]);
        if i % 9 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(c.line().starts_with("* OK"));
    c.expect("a1 LOGIN bob secret\r\n", &[LOGIN_OK]);
    let request = s.last_request();
    assert_eq!(header(&request, "Client-IP").as_deref(), Some("203.0.113.5"));
    assert_eq!(header(&request, "Proxy-Protocol-Port").as_deref(), Some("12345"));
    // v2 LOCAL (a balancer's health check): the connection's own address.
    let mut c = Client::connect(postern.addr);
    c.send(b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00");
    assert!(c.line().starts_with("* OK"));
    c.expect("a1 LOGIN bob secret\r\n", &[LOGIN_OK]);
    let request = s.last_request();
    assert_eq!(header(&request, "Client-IP").as_deref(), Some("127.0.0.1"));
    assert!(!request.contains("Proxy-Protocol"), "{request}");
}

/// Anything but a header is closed without a greeting: garbage, an IMAP
/// command, a v1 line over 107 bytes, a header trickled past `timeout`.
#[test]
fn broken_headers_close_the_connection() {
    let s = Stack::new("pp-broken");
    let postern = start(&s.dir, &s.auth, "proxy_protocol", "");
    let cases: &[&[u8]] = &[
        b"a1 LOGIN bob secret\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
        &[b'P'; 300],
    ];
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100], b"\r\n"].concat();
    for case in cases.iter().copied().chain([long.as_slice()]) {
        let mut c = Client::connect(postern.addr);
        c.send(case);
        assert_eq!(c.read_to_close_lossy(), b"", "{:?}", String::from_utf8_lossy(case));
    }
    // Slowloris: a byte every 300 ms is never a header within 3 s.
    let started = Instant::now();
    let mut c = Client::connect(postern.addr);
    let mut trickle = c.stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for byte in b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 143" {
            if trickle.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    assert_eq!(c.read_to_close_lossy(), b"");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // A silent client: the same timeout.
    let mut c = Client::connect(postern.addr);
    assert_eq!(c.read_to_close_lossy(), b"");
    postern.proc.wait_for("not a PROXY protocol header");
    postern
        .proc
        .wait_for("timed out while sending the PROXY protocol header");
}

/// What the tap in front of the backend saw: the PROXY header each
/// connection opened with.
struct Tap {
    addr: SocketAddr,
    headers: mpsc::Receiver<Vec<u8>>,
}

/// A tap that reads a v1 or v2 header off each connection, reports it, and
/// then relays both ways to `backend`: the backend itself knows nothing of
/// the PROXY protocol.
fn tap(backend: SocketAddr) -> Tap {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, headers) = mpsc::channel();
    std::thread::spawn(move || {
        for mut front in listener.incoming().map_while(Result::ok) {
            front.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            let mut first = [0u8; 16];
            if front.read_exact(&mut first[..5]).is_err() {
                continue;
            }
            let header = if &first[..5] == b"PROXY" {
                let mut line = Vec::new();
                // Byte by byte: nothing past the line may be taken here.
                while !line.ends_with(b"\n") {
                    let mut b = [0u8; 1];
                    if front.read_exact(&mut b).is_err() {
                        break;
                    }
                    line.push(b[0]);
                }
                [&first[..5], &line].concat()
            } else {
                if front.read_exact(&mut first[5..]).is_err() {
                    continue;
                }
                let len = usize::from(u16::from_be_bytes([first[14], first[15]]));
                let mut rest = vec![0u8; len];
                let _ = front.read_exact(&mut rest);
                [&first[..], &rest].concat()
            };
            let _ = tx.send(header);
            let back = TcpStream::connect(backend).unwrap();
            let (mut f2, mut b2) = (front.try_clone().unwrap(), back.try_clone().unwrap());
            let (mut front, mut back) = (front, back);
            front.set_read_timeout(None).unwrap();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut f2, &mut b2);
                let _ = b2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut back, &mut front);
                let _ = front.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    Tap { addr, headers }
}

fn backend_stack(name: &str, server_lines: &str, listen_params: &str) -> (Stack, Tap, Postern) {
    let dir = TempDir::new(name);
    let backend = start_backend(&["bob:secret"], 1, 100);
    let tap = tap(backend.addr);
    let record = dir.path("auth-requests").display().to_string();
    let auth = start_auth(&["bob:secret"], tap.addr, &["--record", &record]);
    let s = Stack {
        dir,
        _backend: backend,
        auth,
    };
    let postern = start(&s.dir, &s.auth, listen_params, server_lines);
    (s, tap, postern)
}

#[test]
fn the_backend_gets_a_v1_header() {
    let (_s, tap, postern) = backend_stack("pp-backend-v1", "        proxy_protocol on;", "");
    let port = imap_session(TcpStream::connect(postern.addr).unwrap());
    let got = tap.headers.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("PROXY TCP4 127.0.0.1 127.0.0.1 {port} {}\r\n", postern.addr.port())
    );
}

/// HAProxy's client, made real by `set_real_ip_from`, is who the backend
/// is told of, in a v2 header.
#[test]
fn the_backend_gets_a_v2_header_with_the_real_client() {
    require_haproxy();
    let (s, tap, postern) = backend_stack(
        "pp-backend-v2",
        "        proxy_protocol v2;\n        set_real_ip_from 127.0.0.1;",
        "proxy_protocol",
    );
    let (_haproxy, fronts) = start_haproxy(&s.dir, postern.addr, &["send-proxy"]);
    let port = imap_session(connect_from_2(fronts[0]));
    let got = tap.headers.recv_timeout(IO_TIMEOUT).unwrap();
    let mut want = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    want.extend_from_slice(&[127, 0, 0, 2, 127, 0, 0, 1]);
    want.extend_from_slice(&port.to_be_bytes());
    want.extend_from_slice(&postern.addr.port().to_be_bytes());
    assert_eq!(got, want);
}

/// `listen ... ssl proxy_protocol` behind HAProxy in TCP mode: the header
/// comes before the ClientHello, which must reach rustls whole.
#[test]
fn tls_passes_through_haproxy() {
    require_haproxy();
    let s = Stack::new("pp-tls");
    let pki = write_test_pki(&s.dir.path("pki")).expect("test certificates");
    let lines = format!(
        "        ssl_certificate {};\n        ssl_certificate_key {};\n        set_real_ip_from 127.0.0.1;",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let postern = start(&s.dir, &s.auth, "ssl proxy_protocol", &lines);
    let (_haproxy, fronts) = start_haproxy(&s.dir, postern.addr, &["send-proxy", "send-proxy-v2"]);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&pki.ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    for front in &fronts {
        let tcp = connect_from_2(*front);
        tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let conn = rustls::ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap();
        let mut tls = BufReader::new(rustls::StreamOwned::new(conn, tcp));
        let mut line = String::new();
        tls.read_line(&mut line).unwrap();
        assert!(line.starts_with("* OK"), "{line}");
        tls.get_mut().write_all(b"a1 LOGIN bob secret\r\n").unwrap();
        line.clear();
        tls.read_line(&mut line).unwrap();
        assert_eq!(line, LOGIN_OK);
        let request = s.last_request();
        assert_eq!(header(&request, "Client-IP").as_deref(), Some("127.0.0.2"), "{request}");
        assert_eq!(header(&request, "Auth-SSL").as_deref(), Some("on"));
        assert_eq!(
            header(&request, "Proxy-Protocol-Server-Port"),
            Some(front.port().to_string())
        );
    }
}
