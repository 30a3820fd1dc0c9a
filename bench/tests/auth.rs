//! The `auth` subcommand over real sockets.

mod common;

use std::ffi::OsStr;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{start_fails, Server, TempPath};

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

const WAIT: &str = "HTTP/1.0 200 OK\r\nAuth-Status: WAIT\r\nAuth-Wait: 1\r\n\r\n";
const OK_1143: &str = "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\r\n";
const DENIED: &str = "HTTP/1.0 200 OK\r\nAuth-Status: Invalid login or password\r\n\r\n";

/// Asserts that nothing arrives on `stream` for a while and the connection
/// stays open.
fn assert_silent(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => panic!("server closed the connection"),
        Ok(_) => panic!("server sent {:?}", byte[0] as char),
        Err(e) => assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e}"),
    }
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
}

#[test]
fn wait_first_answers_the_first_requests_wait() {
    let record = TempPath::new("record");
    let server = Server::start(&[
        "auth",
        "--user",
        "alice:pw",
        "--backend",
        "imap=127.0.0.1:1143",
        "--wait-first",
        "3",
        "--record",
        record.as_str(),
    ]);
    let mut sent = Vec::new();
    let mut check = |req: Vec<u8>, expected: &str| {
        assert_eq!(text(&exchange(&server.addr, &req)), expected, "request {}", text(&req));
        sent.extend_from_slice(&req);
    };
    // Good, bad and malformed requests alike; each on its own connection.
    check(request("alice", "pw", "imap"), WAIT);
    check(request("alice", "wrong", "imap"), WAIT);
    check(b"not http at all\r\n\r\n".to_vec(), WAIT);
    check(request("alice", "pw", "imap"), OK_1143);
    check(request("alice", "wrong", "imap"), DENIED);
    check(b"not http at all\r\n\r\n".to_vec(), "HTTP/1.0 400 Bad Request\r\n\r\n");
    assert_eq!(text(&std::fs::read(&record.0).unwrap()), text(&sent));

    // Heads that never complete are not requests and do not count.
    let server = Server::start(&[
        "auth",
        "--user",
        "a:b",
        "--backend",
        "imap=127.0.0.1:1143",
        "--wait-first",
        "1",
    ]);
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"");
    assert_eq!(text(&exchange(&server.addr, &request("a", "b", "imap"))), WAIT);
    assert_eq!(text(&exchange(&server.addr, &request("a", "b", "imap"))), OK_1143);
}

#[test]
fn wait_first_counts_across_concurrent_connections() {
    let server = Server::start(&[
        "auth",
        "--user",
        "a:b",
        "--backend",
        "imap=127.0.0.1:1143",
        "--wait-first",
        "5",
    ]);
    let replies: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| text(&exchange(&server.addr, &request("a", "b", "imap")))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(replies.iter().filter(|r| *r == WAIT).count(), 5, "{replies:?}");
    assert_eq!(replies.iter().filter(|r| *r == OK_1143).count(), 11, "{replies:?}");
}

#[test]
fn override_adds_backend_credentials() {
    let server = Server::start(&[
        "auth",
        "--user",
        "alice:pw",
        "--user",
        "bob:b",
        "--user",
        "carol:c",
        "--backend",
        "imap=127.0.0.1:1143",
        "--override",
        "alice=stale:stale",
        "--override",
        "alice=real=1:p:w d",
        "--override",
        "carol=\"q\\%41:",
        "--override",
        "nobody=x:y",
    ]);
    assert_eq!(
        text(&exchange(&server.addr, &request("alice", "pw", "imap"))),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
         Auth-User: real=1\r\nAuth-Pass: p:w d\r\n\r\n"
    );
    // Sent verbatim: no escaping, and an empty password is still sent.
    assert_eq!(
        text(&exchange(&server.addr, &request("carol", "c", "imap"))),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
         Auth-User: \"q\\%41\r\nAuth-Pass: \r\n\r\n"
    );
    assert_eq!(text(&exchange(&server.addr, &request("bob", "b", "imap"))), OK_1143);
    assert_eq!(text(&exchange(&server.addr, &request("alice", "bad", "imap"))), DENIED);
    assert_eq!(text(&exchange(&server.addr, &request("nobody", "x", "imap"))), DENIED);

    let err = start_fails(&["auth", "--override", "alice:x=y"]);
    assert!(err.contains("NAME=USER:PASS"), "{err}");
    let err = start_fails(&["auth", "--override", "alice=u:p\r\nX-Injected: 1"]);
    assert!(err.contains("CR or LF"), "{err}");
}

#[test]
fn reply_file_is_sent_verbatim() {
    let record = TempPath::new("record");
    let reply = TempPath::new("reply");
    // No blank line, a bare LF, a NUL and bytes that are not UTF-8.
    let canned = b"HTTP/1.0 200 OK\r\nAuth-Status: OK\nAuth-Server: \x00\xff\xfe\r\n".to_vec();
    std::fs::write(&reply.0, &canned).unwrap();
    let server = Server::start(&[
        "auth",
        "--user",
        "a:b",
        "--backend",
        "imap=127.0.0.1:1143",
        "--wait-first",
        "1",
        "--reply-file",
        reply.as_str(),
        "--record",
        record.as_str(),
    ]);
    // The file is read once, at start.
    std::fs::write(&reply.0, b"changed").unwrap();
    let good = request("a", "b", "imap");
    assert_eq!(text(&exchange(&server.addr, &good)), WAIT);
    assert!(exchange(&server.addr, &good) == canned);
    assert!(exchange(&server.addr, b"garbage\r\n\r\n") == canned);

    // Nothing is sent before the head is complete.
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\nAuth-User: x\r\n").unwrap();
    assert_silent(&mut stream);
    stream.write_all(b"\r\n").unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert!(got == canned);

    let mut sent = good.clone();
    sent.extend_from_slice(&good);
    sent.extend_from_slice(b"garbage\r\n\r\nGET / HTTP/1.0\r\nAuth-User: x\r\n\r\n");
    assert_eq!(text(&std::fs::read(&record.0).unwrap()), text(&sent));
}

#[test]
fn reply_file_oversized_and_empty() {
    let reply = TempPath::new("reply");
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    std::fs::write(&reply.0, &big).unwrap();
    let server = Server::start(&["auth", "--reply-file", reply.as_str()]);
    assert!(
        exchange(&server.addr, &request("a", "b", "imap")) == big,
        "3 MiB reply differs"
    );

    let empty = TempPath::new("empty");
    std::fs::write(&empty.0, b"").unwrap();
    let server = Server::start(&["auth", "--reply-file", empty.as_str()]);
    assert_eq!(exchange(&server.addr, &request("a", "b", "imap")), b"");

    let err = start_fails(&["auth", "--reply-file", "/nonexistent/reply"]);
    assert!(err.contains("/nonexistent/reply"), "{err}");
    let err = start_fails(&["auth", "--reply-file", empty.as_str(), "--hang"]);
    assert!(err.contains("--hang"), "{err}");
}

#[test]
fn hang_keeps_the_connection_until_the_peer_closes() {
    let record = TempPath::new("record");
    let server = Server::start(&[
        "auth",
        "--user",
        "a:b",
        "--backend",
        "imap=127.0.0.1:1143",
        "--wait-first",
        "1",
        "--hang",
        "--record",
        record.as_str(),
    ]);
    let good = request("a", "b", "imap");
    assert_eq!(text(&exchange(&server.addr, &good)), WAIT);

    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.write_all(&good).unwrap();
    assert_silent(&mut stream);
    // Later bytes are read and dropped, neither answered nor recorded.
    stream.write_all(&good).unwrap();
    assert_silent(&mut stream);
    // Once we close our side, the server closes its side without a word.
    stream.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"");

    let mut sent = good.clone();
    sent.extend_from_slice(&good);
    assert_eq!(text(&std::fs::read(&record.0).unwrap()), text(&sent));
}

#[test]
fn user_names_with_any_bytes() {
    let server = Server::start(&[
        OsStr::new("auth"),
        OsStr::new("--user"),
        OsStr::new("a\r\nb %\"\\:p w"),
        OsStr::new("--user"),
        OsStr::from_bytes(b"\xff\xfe\x01:\x80"),
        OsStr::new("--backend"),
        OsStr::new("imap=127.0.0.1:1143"),
        OsStr::new("--override"),
        OsStr::from_bytes(b"\xff\xfe\x01=\xc3\xa9\":\\\xff"),
    ]);
    assert_eq!(
        text(&exchange(&server.addr, &request("a%0D%0Ab%20%25\"\\", "p%20w", "imap"))),
        OK_1143
    );
    assert_eq!(
        text(&exchange(
            &server.addr,
            &request("a%0d%0ab%20%25%22%5C", "p%20w", "imap")
        )),
        OK_1143
    );
    assert_eq!(
        text(&exchange(&server.addr, &request("a%0Ab%20%25\"\\", "p%20w", "imap"))),
        DENIED
    );
    assert_eq!(
        text(&exchange(&server.addr, &request("a%0D%0Ab%20%25\"\\", "p w", "imap"))),
        OK_1143
    );
    assert_eq!(
        text(&exchange(&server.addr, &request("a%0D%0Ab%20%25\"\\", "p%20W", "imap"))),
        DENIED
    );
    let mut expected = b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
        Auth-User: \xc3\xa9\"\r\nAuth-Pass: \\\xff\r\n\r\n"
        .to_vec();
    assert!(exchange(&server.addr, &request("%FF%fe%01", "%80", "imap")) == expected);
    expected.clear();
    expected.extend_from_slice(DENIED.as_bytes());
    assert!(exchange(&server.addr, &request("%FF%fe%01", "%81", "imap")) == expected);
}

/// A request as nginx sends it for `Auth-Method: METHOD`, with an optional
/// `Auth-Salt` header.
fn method_request(method: &str, user: &str, pass: &str, salt: Option<&str>, protocol: &str) -> Vec<u8> {
    let salt = salt.map_or(String::new(), |s| format!("Auth-Salt: {s}\r\n"));
    format!(
        "GET /auth HTTP/1.0\r\nHost: localhost\r\nAuth-Method: {method}\r\nAuth-User: {user}\r\n\
         Auth-Pass: {pass}\r\n{salt}Auth-Protocol: {protocol}\r\nAuth-Login-Attempt: 1\r\n\
         Client-IP: 127.0.0.1\r\nClient-Host: [UNAVAILABLE]\r\n\r\n"
    )
    .into_bytes()
}

// RFC 1939's APOP and RFC 2195's CRAM-MD5 examples.
const APOP_SALT: &str = "<1896.697170952@dbc.mtview.ca.us>";
const APOP_DIGEST: &str = "c4c9334bac560ecc979e58001b3e22fb";
const CRAM_SALT: &str = "<1896.697170952@postoffice.reston.mci.net>";
const CRAM_DIGEST: &str = "b913a602c7eda7a495b4e6e7334d3890";

fn challenge_server(extra: &[&str]) -> Server {
    let mut args = vec![
        "auth",
        "--user",
        "tim:tanstaaf",
        "--user",
        "tim2:tanstaaftanstaaf",
        "--user",
        "ext:p:w %",
        "--backend",
        "pop3=127.0.0.1:1110",
        "--backend",
        "imap=127.0.0.1:1143",
        "--backend",
        "smtp=127.0.0.1:2525",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn apop_and_cram_md5_send_the_backend_password() {
    let server = challenge_server(&[]);
    let ok = |port: u16, pass: &str| {
        format!(
            "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: {port}\r\n\
             Auth-Pass: {pass}\r\n\r\n"
        )
    };
    let apop = method_request("apop", "tim", APOP_DIGEST, Some(APOP_SALT), "pop3");
    assert_eq!(text(&exchange(&server.addr, &apop)), ok(1110, "tanstaaf"));
    // The digest is compared without regard to case; the salt is percent-decoded.
    let upper = APOP_DIGEST.to_uppercase();
    let apop = method_request(
        "apop",
        "tim",
        &upper,
        Some("%3C1896.697170952@dbc.mtview.ca.us%3E"),
        "pop3",
    );
    assert_eq!(text(&exchange(&server.addr, &apop)), ok(1110, "tanstaaf"));
    for bad in [
        method_request("apop", "tim", APOP_DIGEST, Some(CRAM_SALT), "pop3"),
        method_request("apop", "tim", "tanstaaf", Some(APOP_SALT), "pop3"),
        method_request("apop", "tim2", APOP_DIGEST, Some(APOP_SALT), "pop3"),
    ] {
        assert_eq!(text(&exchange(&server.addr, &bad)), DENIED, "{}", text(&bad));
    }

    let cram = method_request("cram-md5", "tim2", CRAM_DIGEST, Some(CRAM_SALT), "imap");
    assert_eq!(text(&exchange(&server.addr, &cram)), ok(1143, "tanstaaftanstaaf"));
    let cram = method_request("CRAM-MD5", "tim2", CRAM_DIGEST, Some(CRAM_SALT), "smtp");
    assert_eq!(text(&exchange(&server.addr, &cram)), ok(2525, "tanstaaftanstaaf"));
    for bad in [
        method_request("cram-md5", "tim2", CRAM_DIGEST, Some(APOP_SALT), "imap"),
        method_request("cram-md5", "tim", CRAM_DIGEST, Some(CRAM_SALT), "imap"),
        method_request("cram-md5", "tim2", "tanstaaftanstaaf", None, "imap"),
    ] {
        assert_eq!(text(&exchange(&server.addr, &bad)), DENIED, "{}", text(&bad));
    }
}

#[test]
fn no_backend_pass_leaves_the_password_out() {
    let server = challenge_server(&["--no-backend-pass", "--override", "tim=u:p"]);
    let cram = method_request("cram-md5", "tim2", CRAM_DIGEST, Some(CRAM_SALT), "imap");
    assert_eq!(text(&exchange(&server.addr, &cram)), OK_1143);
    let external = method_request("external", "ext", "", None, "imap");
    assert_eq!(text(&exchange(&server.addr, &external)), OK_1143);
    // Overrides are still sent.
    let apop = method_request("apop", "tim", APOP_DIGEST, Some(APOP_SALT), "imap");
    assert_eq!(
        text(&exchange(&server.addr, &apop)),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
         Auth-User: u\r\nAuth-Pass: p\r\n\r\n"
    );
}

#[test]
fn external_and_none() {
    let server = challenge_server(&["--override", "tim=u:p"]);
    let external = method_request("external", "ext", "", None, "imap");
    assert_eq!(
        text(&exchange(&server.addr, &external)),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
         Auth-Pass: p:w %\r\n\r\n"
    );
    let external = method_request("external", "nobody", "", None, "imap");
    assert_eq!(text(&exchange(&server.addr, &external)), DENIED);
    // An override replaces the password instead of adding a second one.
    let external = method_request("external", "tim", "", None, "imap");
    assert_eq!(
        text(&exchange(&server.addr, &external)),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 1143\r\n\
         Auth-User: u\r\nAuth-Pass: p\r\n\r\n"
    );

    // smtp_auth none: no credentials, no check, routed by protocol.
    let none = method_request("none", "", "", None, "smtp");
    assert_eq!(
        text(&exchange(&server.addr, &none)),
        "HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 2525\r\n\r\n"
    );
    let none = method_request("none", "nobody", "x", None, "imap");
    assert_eq!(text(&exchange(&server.addr, &none)), OK_1143);

    let unknown = method_request("login", "ext", "p:w %25", None, "imap");
    assert_eq!(
        text(&exchange(&server.addr, &unknown)),
        "HTTP/1.0 400 Bad Request\r\n\r\n"
    );
}

#[test]
fn error_code_is_added_to_failures() {
    let server = challenge_server(&["--error-code", "454 4.7.0", "--wait", "4", "--error", "No"]);
    let denied = "HTTP/1.0 200 OK\r\nAuth-Status: No\r\nAuth-Error-Code: 454 4.7.0\r\nAuth-Wait: 4\r\n\r\n";
    for bad in [
        request("ext", "wrong", "smtp"),
        method_request("apop", "tim", "00", Some(APOP_SALT), "pop3"),
        method_request("external", "nobody", "", None, "smtp"),
    ] {
        assert_eq!(text(&exchange(&server.addr, &bad)), denied, "{}", text(&bad));
    }
    // Good logins and missing backends are unchanged.
    assert_eq!(
        text(&exchange(&server.addr, &request("ext", "p:w%20%25", "imap"))),
        OK_1143
    );
    let server = Server::start(&["auth", "--user", "a:b", "--error-code", "454 4.7.0"]);
    assert!(text(&exchange(&server.addr, &request("a", "b", "imap"))).contains("Auth-Error-Code: 451 4.3.0\r\n"));

    let err = start_fails(&["auth", "--error-code", "454\r\nX: 1"]);
    assert!(err.contains("CR or LF"), "{err}");
}
