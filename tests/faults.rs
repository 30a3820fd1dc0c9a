//! Faults on every side of a session, and the limits against bots: an auth
//! server or backend that resets, hangs, trickles or floods; clients that
//! vanish or trickle; fd exhaustion; a burst past `--max-conns`. Each case
//! checks the client's exact reply, that another session still works, that
//! Postern's fds come back to where they were and that nothing panicked.
//! (Auth server refusing, timing out, oversized and cut-off replies, and a
//! backend refusing connections are in `imap_front.rs` and `imap_proxy.rs`.)

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

const INTERNAL: &str = "* BAD internal server error\r\n";
const LOGIN_OK: &str = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

fn assert_no_panic(postern: &Postern) {
    let log = postern.proc.log();
    assert!(!log.contains("panicked"), "Postern panicked:\n{log}");
}

/// Postern on one core (so one warm-up session reaches every core).
fn one_core(mail_body: &str) -> Postern {
    start_postern_with("worker_processes 1;\nerror_log stderr info;", mail_body)
}

/// A first relayed session: a core makes some things at its first session
/// (io_uring rings, a pipe), so fds are counted from after one.
fn warm_up(postern: &Postern) {
    let mut c = healthy_login(postern.addr, "w");
    c.send(b"s SELECT INBOX\r\n");
    while !c.line().starts_with("s OK") {}
}

/// A real login through the bench auth server and backend still works.
fn healthy_login(addr: SocketAddr, tag: &str) -> Client {
    let mut c = Client::imap(addr);
    c.expect(&format!("{tag} LOGIN bob secret\r\n"), &[&format!("{tag} {LOGIN_OK}")]);
    c
}

/// What a fake peer does with one connection.
type Behaviour = Box<dyn FnOnce(TcpStream) + Send>;

/// A fake server that gives its connections `behaviours` in turn.
fn scripted(behaviours: Vec<Behaviour>) -> SocketAddr {
    let queue = Arc::new(Mutex::new(VecDeque::from(behaviours)));
    fake_server(move |stream| {
        let next = queue.lock().unwrap().pop_front();
        if let Some(behave) = next {
            behave(stream);
        }
    })
}

/// An auth server reply, given after reading the request head.
fn auth_reply(reply: &'static [u8]) -> Behaviour {
    Box::new(move |mut s| {
        read_until(&mut s, b"\r\n\r\n");
        let _ = s.write_all(reply);
    })
}

#[test]
fn auth_server_resets_and_malformed_headers_give_internal_error() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let good = start_auth(&["bob:secret"], backend.addr, &[]);
    let cases: Vec<(&str, Behaviour)> = vec![
        (
            "reset mid-reply",
            Box::new(|mut s: TcpStream| {
                read_until(&mut s, b"\r\n\r\n");
                s.write_all(b"HTTP/1.0 200 OK\r\nAuth-Sta").unwrap();
                reset(s);
            }),
        ),
        (
            "reset before any reply",
            Box::new(|mut s: TcpStream| {
                read_until(&mut s, b"\r\n\r\n");
                reset(s);
            }),
        ),
        (
            "port out of range",
            auth_reply(b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: 127.0.0.1\r\nAuth-Port: 99999\r\n\r\n"),
        ),
        (
            "server not an address",
            auth_reply(b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\nAuth-Server: mail.example\r\nAuth-Port: 143\r\n\r\n"),
        ),
        (
            "header without a colon",
            auth_reply(b"HTTP/1.0 200 OK\r\nAuth-Status OK\r\n\r\n"),
        ),
        ("binary junk", auth_reply(b"\x00\xff\x01HTTP\r\n\r\n")),
        ("bare LF line endings and no status", auth_reply(b"HTTP/1.0 200 OK\nAuth-Wait: x\n\n")),
        (
            "one endless header line",
            Box::new(|mut s: TcpStream| {
                read_until(&mut s, b"\r\n\r\n");
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nX-Pad: ");
                let junk = [b'a'; 4096];
                while s.write_all(&junk).is_ok() {}
            }),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let bad = scripted(cases.into_iter().map(|(_, b)| b).collect());
    // Two server blocks would need two ports; one Postern per auth server
    // is simpler: the bad one here, the good one checked after each case.
    let postern = start_postern(&format!("    auth_http {bad}/auth;\n    auth_http_timeout 5s;"));
    let healthy = start_postern(&auth_http(&good));
    let fds = fd_count(postern.proc.pid());
    for (i, name) in names.iter().enumerate() {
        let mut c = Client::imap(postern.addr);
        c.send(b"a LOGIN bob secret\r\n");
        let answer = String::from_utf8(c.read_to_close_lossy()).unwrap();
        assert_eq!(answer, INTERNAL, "case {name}");
        postern.proc.wait_for_count("while in http auth state", i + 1);
        drop(healthy_login(healthy.addr, "h"));
    }
    wait_fds_settle(postern.proc.pid(), fds);
    assert_no_panic(&postern);
    assert_no_panic(&healthy);
}

/// A fake IMAP backend's login: greeting, then the LOGIN line answered OK
/// with its tag. Returns the stream for the relay.
fn fake_imap_login(mut s: TcpStream) -> TcpStream {
    s.write_all(b"* OK fake ready\r\n").unwrap();
    let line = read_until(&mut s, b"\r\n");
    let tag = String::from_utf8_lossy(&line).split(' ').next().unwrap().to_string();
    s.write_all(format!("{tag} OK done\r\n").as_bytes()).unwrap();
    s
}

#[test]
fn backend_faults_give_internal_error_within_timeout() {
    let good_backend = start_backend(&["bob:secret"], 1, 10);
    let good_auth = start_auth(&["bob:secret"], good_backend.addr, &[]);
    let (tx, relay_reset) = std::sync::mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let cases: Vec<(&str, Behaviour)> = vec![
        // Holds the socket open and says nothing.
        (
            "hangs at the greeting",
            Box::new(|s: TcpStream| {
                let _ = read_until(&mut { s }, b"never");
            }),
        ),
        (
            "trickles its greeting a byte every 300 ms",
            Box::new(|mut s: TcpStream| {
                for b in b"* OK a very slow greeting that never ends".iter().cycle() {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            }),
        ),
        (
            "resets mid-login",
            Box::new(|mut s: TcpStream| {
                s.write_all(b"* OK fake ready\r\n").unwrap();
                read_until(&mut s, b"\r\n");
                reset(s);
            }),
        ),
        (
            "sends a never-ending line",
            Box::new(|mut s: TcpStream| {
                let _ = s.write_all(b"* OK ");
                let junk = [b'x'; 4096];
                while s.write_all(&junk).is_ok() {}
            }),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(n, _)| *n).collect();
    let mut behaviours: Vec<Behaviour> = cases.into_iter().map(|(_, b)| b).collect();
    behaviours.push(Box::new(move |s: TcpStream| {
        let mut s = fake_imap_login(s);
        read_until(&mut s, b"\r\n");
        reset(s);
        tx.lock().unwrap().send(()).unwrap();
    }));
    let fake = scripted(behaviours);
    let auth = start_auth(&["bob:secret"], fake, &[]);
    let postern = start_postern(&format!("{}\n    timeout 2s;", auth_http(&auth)));
    let healthy = start_postern(&auth_http(&good_auth));
    let fds = fd_count(postern.proc.pid());
    for name in &names {
        let mut c = Client::imap(postern.addr);
        let asked = Instant::now();
        c.send(b"a LOGIN bob secret\r\n");
        let answer = String::from_utf8(c.read_to_close_lossy()).unwrap();
        assert_eq!(answer, INTERNAL, "case {name}");
        // `timeout` bounds the whole login, whatever the backend does.
        assert!(asked.elapsed() < Duration::from_secs(5), "case {name}: {:?}", asked.elapsed());
        drop(healthy_login(healthy.addr, "h"));
    }
    // Reset mid-relay: the client sees its session end, nothing else.
    let mut c = Client::imap(postern.addr);
    c.expect("a LOGIN bob secret\r\n", &["a OK done\r\n"]);
    c.send(b"b NOOP\r\n");
    relay_reset.recv_timeout(IO_TIMEOUT).unwrap();
    assert_eq!(c.read_to_close_lossy(), b"");
    postern.proc.wait_for("session done");
    drop(healthy_login(healthy.addr, "h"));
    wait_fds_settle(postern.proc.pid(), fds);
    let log = postern.proc.log();
    assert!(log.contains("timed out during login"), "{log}");
    assert_no_panic(&postern);
}

/// Clients that reset while their login waits on the auth server, while
/// Postern logs in to the backend, and while relayed: their sessions end,
/// their fds close, and the others go on.
#[test]
fn client_resets_at_every_stage() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let slow_auth = start_auth(&["bob:secret"], backend.addr, &["--delay-ms", "500"]);
    let hanging_backend = fake_server(|s| {
        let _ = read_until(&mut { s }, b"never");
    });
    let to_hang = start_auth(&["bob:secret"], hanging_backend, &[]);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let slow = one_core(&auth_http(&slow_auth));
    let hung = one_core(&format!("{}\n    timeout 2s;", auth_http(&to_hang)));
    let postern = one_core(&auth_http(&auth));
    // Each core makes some things at its first session (a splice pipe for
    // its pool, glommio's own): count from after a first session.
    warm_up(&slow);
    warm_up(&postern);
    let before: Vec<usize> = [&slow, &hung, &postern].iter().map(|p| fd_count(p.proc.pid())).collect();

    // During auth.
    let mut c = Client::imap(slow.addr);
    c.send(b"a LOGIN bob secret\r\n");
    reset_client(c);
    // During the backend login.
    let mut c = Client::imap(hung.addr);
    c.send(b"a LOGIN bob secret\r\n");
    reset_client(c);
    // During the relay, with a command in flight.
    let mut c = healthy_login(postern.addr, "a");
    c.send(b"b SELECT INBOX\r\n");
    reset_client(c);

    drop(healthy_login(slow.addr, "h"));
    drop(healthy_login(postern.addr, "h"));
    // Behind the hung backend no login can work; the proxy still greets.
    drop(Client::imap(hung.addr));
    for (p, fds) in [&slow, &hung, &postern].iter().zip(before) {
        wait_fds_settle(p.proc.pid(), fds);
        assert_no_panic(p);
    }
}

/// A client trickling a command a byte at a time is cut off at `timeout`
/// from the command's first byte; one sending whole commands slowly is not.
#[test]
fn slowloris_is_bounded_by_timeout() {
    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let postern = one_core(&format!("{}\n    timeout 2s;", auth_http(&auth)));
    warm_up(&postern);
    let fds = fd_count(postern.proc.pid());
    let mut slow = Client::imap(postern.addr);
    let started = Instant::now();
    let mut sent = 0;
    for b in b"a LOGIN bob secret-but-very-slowly\r\n" {
        if slow.stream.write_all(&[*b]).is_err() {
            break;
        }
        sent += 1;
        // Each byte well inside `timeout`: a per-read limit never fires.
        let mut probe = [0u8; 64];
        slow.stream.set_read_timeout(Some(Duration::from_millis(400))).unwrap();
        match slow.stream.read(&mut probe) {
            Ok(0) => break,
            Ok(n) => panic!("unexpected reply {:?}", String::from_utf8_lossy(&probe[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    let took = started.elapsed();
    assert!(sent < 30, "the whole command went through ({sent} bytes)");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "cut off after {took:?}"
    );
    // Whole commands with pauses between them, each inside `timeout`.
    let mut c = Client::imap(postern.addr);
    c.send(b"n NO");
    std::thread::sleep(Duration::from_millis(1200));
    c.expect("OP\r\n", &["n OK completed\r\n"]);
    std::thread::sleep(Duration::from_millis(1200));
    c.expect("m LOGIN bob secret\r\n", &[&format!("m {LOGIN_OK}")]);
    drop(c);
    postern.proc.wait_for("client timed out");
    wait_fds_settle(postern.proc.pid(), fds);
    assert_no_panic(&postern);
}
