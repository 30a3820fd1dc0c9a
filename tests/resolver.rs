//! `resolver` end to end: Postern's SMTP server looks the client up in a
//! tiny DNS responder started here (a UDP socket in a thread, answers built
//! with hickory-proto), and the auth server's recorded `Client-Host` and the
//! backend's recorded XCLIENT line show what it found. The cases follow
//! nginx-tests' mail_resolver.t: found and confirmed, not found, a name
//! that does not map back, a silent server, SERVFAIL, a spoofed answer,
//! and the cache.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How the responder answers the PTR for 127.0.0.1 and the A for its name.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// PTR a.example.net, A 127.0.0.1.
    Good,
    /// NXDOMAIN for the PTR.
    NoPtr,
    /// PTR a.example.net, A 10.0.0.1 only.
    Mismatch,
    /// Never answers.
    Silent,
    /// SERVFAIL for the PTR.
    ServFail,
    /// Each answer preceded by one with the wrong id naming evil.example.net.
    Spoofed,
    /// A PTR record with zero-length data (mail_resolver.t's "PTR empty").
    EmptyPtr,
}

/// The responder: its address, and how many queries it has received.
struct Dns {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn start_dns(mode: Mode) -> Dns {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let addr = socket.local_addr().unwrap();
    let queries = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (count, done) = (queries.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !done.load(Ordering::Relaxed) {
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if mode == Mode::Silent {
                continue;
            }
            if mode == Mode::Spoofed {
                let mut forged = answer(&query, mode, "evil.example.net.");
                forged.metadata.id = query.metadata.id ^ 0x5a5a;
                socket.send_to(&forged.to_vec().unwrap(), from).unwrap();
            }
            let mut bytes = answer(&query, mode, "a.example.net.").to_vec().unwrap();
            if mode == Mode::EmptyPtr {
                // One answer: the question's name, PTR, IN, TTL 3600, no data.
                bytes[7] = 1;
                bytes.extend_from_slice(&[0xc0, 0x0c, 0, 12, 0, 1, 0, 0, 0x0e, 0x10, 0, 0]);
            }
            socket.send_to(&bytes, from).unwrap();
        }
    });
    Dns { addr, queries, stop }
}

fn answer(query: &Message, mode: Mode, ptr_name: &str) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    let Some(q) = query.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply;
    };
    reply.add_query(q.clone());
    let name = q.name().clone();
    match (q.query_type(), name.to_ascii().as_str(), mode) {
        (RecordType::PTR, _, Mode::NoPtr) => reply.metadata.response_code = ResponseCode::NXDomain,
        (RecordType::PTR, _, Mode::ServFail) => reply.metadata.response_code = ResponseCode::ServFail,
        (RecordType::PTR, _, Mode::EmptyPtr) => {}
        (RecordType::PTR, "1.0.0.127.in-addr.arpa.", _) => {
            let target = Name::from_ascii(ptr_name).unwrap();
            reply.add_answer(Record::from_rdata(name, 3600, RData::PTR(PTR(target))));
        }
        (RecordType::A, "a.example.net.", Mode::Mismatch) => {
            reply.add_answer(Record::from_rdata(name, 3600, RData::A(A::new(10, 0, 0, 1))));
        }
        (RecordType::A, "a.example.net.", _) => {
            reply.add_answer(Record::from_rdata(name, 3600, RData::A(A::new(127, 0, 0, 1))));
        }
        _ => reply.metadata.response_code = ResponseCode::NXDomain,
    }
    reply
}

struct Stack {
    postern: Postern,
    dir: TempDir,
    _backend: Companion,
    _auth: Companion,
}

impl Stack {
    fn read(&self, name: &str) -> String {
        String::from_utf8_lossy(&read_file(&self.dir.path(name))).into_owned()
    }
}

/// An SMTP backend and auth server for bob:secret, Postern (one core, so
/// every session meets the same cache) in front with `resolver_lines`.
fn stack(resolver_lines: &str) -> Stack {
    let dir = TempDir::new("resolver");
    let wire = dir.path("backend-bytes").display().to_string();
    let backend = start_bench(&[
        "backend",
        "--protocol",
        "smtp",
        "--user",
        "bob:secret",
        "--record",
        &wire,
    ]);
    let route = format!("smtp={}", backend.addr);
    let requests = dir.path("auth-requests").display().to_string();
    let auth = start_bench(&[
        "auth",
        "--backend",
        &route,
        "--user",
        "bob:secret",
        "--record",
        &requests,
    ]);
    let body = format!("{}\n{resolver_lines}", auth_http(&auth));
    let postern = start_postern_protocol("smtp", "worker_processes 1;\nerror_log stderr info;", &body, &[]);
    Stack {
        postern,
        dir,
        _backend: backend,
        _auth: auth,
    }
}

/// One login through Postern; returns how long the greeting took.
fn login(s: &Stack) -> Duration {
    let started = Instant::now();
    let mut c = Client::connect(s.postern.addr);
    let greeting = c.line();
    let waited = started.elapsed();
    assert!(greeting.starts_with("220 "), "{greeting}");
    c.send(b"EHLO client.example\r\n");
    while c.line().as_bytes().get(3) != Some(&b' ') {}
    let plain = base64::engine::general_purpose::STANDARD.encode("\0bob\0secret");
    c.expect(&format!("AUTH PLAIN {plain}\r\n"), &["235 2.0.0 OK\r\n"]);
    c.expect("QUIT\r\n", &["221 2.0.0 Bye\r\n"]);
    waited
}

/// Logs in once and checks both records name `host`.
fn check(s: &Stack, host: &str) -> Duration {
    let waited = login(s);
    let requests = s.read("auth-requests");
    assert!(requests.contains(&format!("\r\nClient-Host: {host}\r\n")), "{requests}");
    let wire = s.read("backend-bytes");
    assert!(
        wire.contains(&format!("\r\nXCLIENT ADDR=127.0.0.1 LOGIN=bob NAME={host}\r\n")),
        "{wire}"
    );
    waited
}

fn resolver(dns: &Dns, timeout: &str) -> String {
    format!("    resolver {} valid=30s;\n    resolver_timeout {timeout};", dns.addr)
}

#[test]
fn name_found_and_confirmed() {
    let dns = start_dns(Mode::Good);
    let s = stack(&resolver(&dns, "5s"));
    check(&s, "a.example.net");
    assert_eq!(dns.queries.load(Ordering::SeqCst), 2, "a PTR, then an A");
}

#[test]
fn ptr_not_found_is_unavailable() {
    let dns = start_dns(Mode::NoPtr);
    let s = stack(&resolver(&dns, "5s"));
    check(&s, "[UNAVAILABLE]");
    assert_eq!(
        dns.queries.load(Ordering::SeqCst),
        1,
        "no forward lookup without a name"
    );
}

#[test]
fn a_name_not_mapping_back_is_unavailable() {
    let dns = start_dns(Mode::Mismatch);
    let s = stack(&resolver(&dns, "5s"));
    check(&s, "[UNAVAILABLE]");
    assert!(
        s.postern
            .proc
            .log()
            .contains("\"a.example.net\" does not resolve back to 127.0.0.1"),
        "{}",
        s.postern.proc.log()
    );
}

#[test]
fn a_silent_server_is_tempunavail_after_resolver_timeout() {
    let dns = start_dns(Mode::Silent);
    let s = stack(&resolver(&dns, "1s"));
    let waited = check(&s, "[TEMPUNAVAIL]");
    assert!(waited >= Duration::from_millis(950), "the greeting waited {waited:?}");
    assert!(waited < Duration::from_secs(5), "the greeting waited {waited:?}");
    assert!(dns.queries.load(Ordering::SeqCst) >= 1);
}

#[test]
fn servfail_is_tempunavail() {
    let dns = start_dns(Mode::ServFail);
    let s = stack(&resolver(&dns, "5s"));
    let waited = check(&s, "[TEMPUNAVAIL]");
    assert!(waited < Duration::from_secs(2), "an answer, not a timeout: {waited:?}");
}

#[test]
fn an_empty_ptr_is_no_answer_and_times_out() {
    let dns = start_dns(Mode::EmptyPtr);
    let s = stack(&resolver(&dns, "1s"));
    let waited = check(&s, "[TEMPUNAVAIL]");
    assert!(waited >= Duration::from_millis(950), "the greeting waited {waited:?}");
}

#[test]
fn a_spoofed_answer_with_the_wrong_id_is_ignored() {
    let dns = start_dns(Mode::Spoofed);
    let s = stack(&resolver(&dns, "5s"));
    check(&s, "a.example.net");
}

#[test]
fn a_second_session_is_answered_from_the_cache() {
    let dns = start_dns(Mode::Good);
    let s = stack(&resolver(&dns, "5s"));
    check(&s, "a.example.net");
    check(&s, "a.example.net");
    assert_eq!(
        dns.queries.load(Ordering::SeqCst),
        2,
        "the second session asked nothing"
    );
    let requests = s.read("auth-requests");
    assert_eq!(
        requests.matches("Client-Host: a.example.net\r\n").count(),
        2,
        "{requests}"
    );
}

#[test]
fn a_dead_first_server_is_passed_over() {
    // Nothing answers on the first address; the second is asked in time.
    let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = start_dns(Mode::Good);
    let lines = format!(
        "    resolver {} {};\n    resolver_timeout 3s;",
        dead.local_addr().unwrap(),
        dns.addr
    );
    let s = stack(&lines);
    check(&s, "a.example.net");
    check(&s, "a.example.net");
}
