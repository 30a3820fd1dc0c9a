//! The `auth` subcommand over real sockets.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Server, TempPath};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `request` and returns everything received until the server closes.
fn exchange(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut reply = Vec::new();
    if let Some(path) = addr.strip_prefix("unix:") {
        let mut stream = UnixStream::connect(path).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(request).unwrap();
        stream.read_to_end(&mut reply).unwrap();
    } else {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(request).unwrap();
        stream.read_to_end(&mut reply).unwrap();
    }
    reply
}

/// A request as nginx sends it.
fn request(user: &str, pass: &str, protocol: &str) -> Vec<u8> {
    format!(
        "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: plain\r\nAuth-User: {user}\r\n\
         Auth-Pass: {pass}\r\nAuth-Protocol: {protocol}\r\nAuth-Login-Attempt: 1\r\n\
         Client-IP: 127.0.0.1\r\nClient-Host: [UNAVAILABLE]\r\n\r\n"
    )
    .into_bytes()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn replies_and_record() {
    let record = TempPath::new("record");
    let users = TempPath::new("users");
    std::fs::write(&users.0, "# test users\ncarol:c:a:r:o:l\n\n").unwrap();
    let server = Server::start(&[
        "auth",
        "--user",
        "alice:s3cret",
        "--user",
        "bob:p@ss word",
        "--users",
        users.as_str(),
        "--backend",
        "imap=127.0.0.1:1143",
        "--backend",
        "smtp=10.1.2.3:2525",
        "--wait",
        "2",
        "--record",
        record.as_str(),
    ]);
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);

    let mut sent = Vec::new();
    let mut check = |req: Vec<u8>, expected: &str| {
        assert_eq!(text(&exchange(&server.addr, &req)), expected, "request {}", text(&req));
        sent.extend_from_slice(&req);
    };
    check(
        request("alice", "s3cret", "imap"),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n",
    );
    check(
        request("bob", "p%40ss%20word", "smtp"),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 10.1.2.3\r\nAuth-Port: 2525\r\n\r\n",
    );
    check(
        request("carol", "c%3aa%3Ar:o:l", "imap"),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n",
    );
    check(
        request("alice", "wrong", "imap"),
        "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 2\r\n\r\n",
    );
    check(
        request("nobody", "s3cret", "imap"),
        "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\nAuth-Wait: 2\r\n\r\n",
    );
    check(
        request("alice", "s3cret", "pop3"),
        "HTTP/1.0 200 OK\r\nAuth-Status: Temporary server problem, try again later\r\n\
         Auth-Error-Code: 451 4.3.0\r\nAuth-Wait: 3\r\n\r\n",
    );
    check(b"not http at all\r\n\r\n".to_vec(), "HTTP/1.0 400 Bad Request\r\n\r\n");

    // Every reply is sent after its request was recorded.
    assert_eq!(text(&std::fs::read(&record.0).unwrap()), text(&sent));
}

#[test]
fn custom_error_without_wait_over_unix_socket() {
    let socket = TempPath::new("auth.sock");
    // A stale socket file from an earlier run must not prevent binding.
    drop(std::os::unix::net::UnixListener::bind(&socket.0).unwrap());
    assert!(socket.0.exists());
    let listen = format!("unix:{}", socket.as_str());
    let server = Server::start(&[
        "auth",
        "--listen",
        &listen,
        "--user",
        "alice:pw",
        "--backend",
        "pop3=[::1]:110",
        "--error",
        "Go away",
    ]);
    assert_eq!(server.addr, listen);
    assert_eq!(
        text(&exchange(&server.addr, &request("alice", "bad", "pop3"))),
        "HTTP/1.0 200 OK\r\nAuth-Status: Go away\r\n\r\n"
    );
    assert_eq!(
        text(&exchange(&server.addr, &request("alice", "pw", "pop3"))),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: ::1\r\nAuth-Port: 110\r\n\r\n"
    );
}

#[test]
fn delay_and_oversized_heads() {
    let server = Server::start(&["auth", "--user", "a:b", "--delay-ms", "200"]);
    let start = Instant::now();
    let reply = exchange(&server.addr, &request("a", "b", "imap"));
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(text(&reply).starts_with("HTTP/1.0 200 OK\r\nAuth-Status: Temporary"));

    // A head over 16 KiB gets no reply: the connection is just closed.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut big = b"GET / HTTP/1.0\r\nX: ".to_vec();
    big.resize(20 * 1024, b'x');
    let _ = stream.write_all(&big);
    let mut reply = Vec::new();
    match stream.read_to_end(&mut reply) {
        Ok(_) => assert!(reply.is_empty(), "{}", text(&reply)),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}
