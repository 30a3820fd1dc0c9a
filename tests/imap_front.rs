//! The whole IMAP front end and auth_http protocol through the shipped
//! binary: SASL, WAIT, overrides, escaping, limits, concurrency, real clients.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

const LOGIN_OK: &str = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

fn ok(tag: &str) -> String {
    format!("{tag} {LOGIN_OK}")
}

/// Backend and auth server knowing `users`; Postern with `mail_extra`.
struct Stack {
    backend: Companion,
    auth: Companion,
    postern: Postern,
    dir: TempDir,
}

impl Stack {
    fn auth_requests(&self) -> String {
        String::from_utf8(read_file(&self.dir.path("auth-requests"))).unwrap()
    }

    fn backend_bytes(&self) -> Vec<u8> {
        read_file(&self.dir.path("backend-bytes"))
    }
}

fn stack_with(users: &[&str], auth_extra: &[&str], main: &str, mail_extra: &str) -> Stack {
    let dir = TempDir::new("front");
    let backend_record = dir.path("backend-bytes").display().to_string();
    let mut args = vec![
        "backend",
        "--record",
        &backend_record,
        "--messages",
        "2",
        "--msg-bytes",
        "500",
    ];
    for u in users {
        args.extend(["--user", u]);
    }
    let backend = start_bench(&args);
    let auth_record = dir.path("auth-requests").display().to_string();
    let mut extra = vec!["--record", auth_record.as_str()];
    extra.extend_from_slice(auth_extra);
    let auth = start_auth(users, backend.addr, &extra);
    let postern = start_postern_with(main, &format!("{}\n{mail_extra}", auth_http(&auth)));
    Stack {
        backend,
        auth,
        postern,
        dir,
    }
}

fn stack(auth_extra: &[&str]) -> Stack {
    stack_with(&["bob:secret"], auth_extra, "error_log stderr info;", "")
}

#[test]
fn authenticate_login_and_plain_with_initial_response() {
    let s = stack(&[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("a AUTHENTICATE LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
    c.expect("Ym9i\r\n", &["+ UGFzc3dvcmQ6\r\n"]);
    c.expect("c2VjcmV0\r\n", &[&ok("a")]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("b AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=\r\n", &[&ok("b")]);
}

#[test]
fn wait_status_repeats_the_same_request() {
    let s = stack(&["--wait-first", "1"]);
    let mut c = Client::imap(s.postern.addr);
    let asked = Instant::now();
    c.expect("a LOGIN bob secret\r\n", &[&ok("a")]);
    assert!(
        asked.elapsed() >= Duration::from_secs(1),
        "WAIT's Auth-Wait was not honoured"
    );
    let requests = s.auth_requests();
    let (first, second) = requests.split_at(requests.len() / 2);
    assert_eq!(first, second, "the retry must be the same request");
    assert!(first.contains("Auth-Login-Attempt: 1\r\n"));
}

#[test]
fn auth_wait_does_not_block_the_core() {
    // One core: a session waiting out Auth-Wait must not stop another.
    let s = stack_with(
        &["bob:secret"],
        &["--wait", "2"],
        "worker_processes 1;\nerror_log stderr info;",
        "",
    );
    let mut waiting = Client::imap(s.postern.addr);
    waiting.send(b"a LOGIN bob wrong\r\n");
    let started = Instant::now();
    let mut other = Client::imap(s.postern.addr);
    other.expect("b LOGIN bob secret\r\n", &[&ok("b")]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the second login waited for the first"
    );
    assert_eq!(waiting.line(), "a NO Invalid login or password\r\n");
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[test]
fn overrides_reach_the_backend() {
    let s = stack_with(
        &["bob:secret", "robert:other"],
        &["--override", "bob=robert:other"],
        "error_log stderr info;",
        "",
    );
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob secret\r\n", &[&ok("a")]);
    let backend = String::from_utf8(s.backend_bytes()).unwrap();
    // Plain text goes in one write, as quoted strings.
    assert_eq!(backend, "a LOGIN \"robert\" \"other\"\r\n");
}

/// A user name with CR, LF, `%`, `"` and `\`: escaped in the auth request,
/// exact bytes in the backend's literal (non-synchronizing: the bench
/// backend's greeting advertises LITERAL+).
#[test]
fn hostile_user_name_is_escaped_and_exact() {
    let user = "a\r\nb %\"\\";
    let entry = format!("{user}:p w");
    let s = stack_with(&[&entry], &[], "error_log stderr info;", "");
    let mut c = Client::imap(s.postern.addr);
    c.send(format!("t LOGIN {{{}}}\r\n", user.len()).as_bytes());
    assert_eq!(c.line(), "+ OK\r\n");
    c.send(format!("{user} \"p w\"\r\n").as_bytes());
    assert_eq!(c.line(), ok("t"));
    let requests = s.auth_requests();
    assert!(
        requests.contains("\r\nAuth-User: a%0D%0Ab%20%25\"\\\r\nAuth-Pass: p%20w\r\n"),
        "{requests:?}"
    );
    assert_eq!(
        s.backend_bytes(),
        format!("t LOGIN {{{}+}}\r\n{user} {{3+}}\r\np w\r\n", user.len()).into_bytes()
    );
    // The log escapes it: no raw CR/LF from a client in a log line.
    let log = s.postern.proc.wait_for("logged in");
    assert!(log.contains("login: \"a\\x0D\\x0Ab %\\x22\\x5C\""), "{log}");
}

fn logged_in(addr: SocketAddr, tag: &str) -> Client {
    let mut c = Client::imap(addr);
    c.expect(&format!("{tag} LOGIN bob secret\r\n"), &[&ok(tag)]);
    c
}

#[test]
fn overlong_line_and_garbage_close_only_that_session() {
    let s = stack(&[]);
    let mut relayed = logged_in(s.postern.addr, "r");
    let mut waiting = Client::imap(s.postern.addr);

    // Exactly imap_client_buffer (4k) with no line end: all of it is read,
    // so the close is clean and the reply arrives.
    let mut long = Client::imap(s.postern.addr);
    let mut line = b"x LOGIN ".to_vec();
    line.resize(4096, b'a');
    long.send(&line);
    assert_eq!(long.read_to_close(), b"* BAD invalid command\r\n");
    assert!(s.postern.proc.wait_for("client sent too").contains("too long command"));

    // 1 MB of binary noise: Postern closes long before reading it all, so
    // the client may see a reset; only the end of the session is certain.
    let mut garbage = Client::imap(s.postern.addr);
    let noise: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = std::io::Write::write_all(&mut garbage.stream, &noise);
    let _ = garbage.read_to_close_lossy();
    s.postern.proc.wait_for("client sent too");

    relayed.expect("r2 NOOP\r\n", &["r2 OK NOOP completed\r\n"]);
    waiting.expect("w LOGIN bob secret\r\n", &[&ok("w")]);
    // nginx's test harness fails on any alert: nothing a client sends may
    // log at [alert] or above.
    let log = s.postern.proc.log();
    for level in ["[alert]", "[crit]", "[emerg]"] {
        assert!(!log.contains(level), "{level} caused by a client:\n{log}");
    }
}

#[test]
fn max_errors_from_the_config() {
    let s = stack_with(&["bob:secret"], &[], "error_log stderr info;", "    max_errors 2;");
    let mut c = Client::imap(s.postern.addr);
    c.expect("a FOO\r\n", &["a BAD invalid command\r\n"]);
    c.send(b"b BAR\r\n");
    assert_eq!(c.read_to_close(), b"b BAD invalid command\r\n");
    s.postern.proc.wait_for("client sent too many invalid commands");
}

#[test]
fn id_before_login_is_answered() {
    let s = stack_with(
        &["bob:secret"],
        &[],
        "error_log stderr info;",
        "    imap_capabilities IMAP4rev1 ID;",
    );
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "a CAPABILITY\r\n",
        &["* CAPABILITY IMAP4rev1 ID AUTH=PLAIN\r\n", "a OK completed\r\n"],
    );
    c.expect(
        "b ID (\"name\" \"Thunderbird\" \"version\" \"115.3\")\r\n",
        &["* ID NIL\r\n", "b OK completed\r\n"],
    );
    c.expect("c LOGIN bob secret\r\n", &[&ok("c")]);
}

#[test]
fn auth_http_header_is_sent() {
    let s = stack_with(
        &["bob:secret"],
        &[],
        "error_log stderr info;",
        "    auth_http_header X-Auth-Key \"secret key\";\n    auth_http_header X-Node n1;",
    );
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob secret\r\n", &[&ok("a")]);
    // The operator's headers come last, after the connection details.
    let tail = format!(
        "Server-IP: 127.0.0.1\r\nServer-Port: {}\r\nX-Auth-Key: secret key\r\nX-Node: n1\r\n\r\n",
        s.postern.addr.port()
    );
    assert!(s.auth_requests().ends_with(&tail), "{}", s.auth_requests());
}

fn bad_auth_reply(reply: &[u8], extra_mail: &str) -> String {
    let dir = TempDir::new("reply");
    let file = dir.path("reply");
    std::fs::write(&file, reply).unwrap();
    let backend = start_backend(&["bob:secret"], 1, 10);
    let file_arg = file.display().to_string();
    let auth = start_auth(&["bob:secret"], backend.addr, &["--reply-file", &file_arg]);
    let postern = start_postern(&format!("{}\n{extra_mail}", auth_http(&auth)));
    let mut c = Client::imap(postern.addr);
    c.send(b"a LOGIN bob secret\r\n");
    let answer = String::from_utf8(c.read_to_close()).unwrap();
    let _ = postern.proc.wait_for("while in http auth state");
    answer
}

#[test]
fn malformed_oversize_and_silent_auth_servers_give_internal_error() {
    let internal = "* BAD internal server error\r\n";
    assert_eq!(bad_auth_reply(b"not http at all\r\n\r\n", ""), internal);
    assert_eq!(
        bad_auth_reply(b"HTTP/1.0 200 OK\r\nAuth-Status: OK\r\n\r\n", ""),
        internal
    );
    let mut huge = b"HTTP/1.0 200 OK\r\nX-Pad: ".to_vec();
    huge.resize(10_000, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    assert_eq!(bad_auth_reply(&huge, ""), internal);
    // A cut-off reply (the server closes mid-header).
    assert_eq!(bad_auth_reply(b"HTTP/1.0 200 OK\r\nAuth-Sta", ""), internal);

    let backend = start_backend(&["bob:secret"], 1, 10);
    let auth = start_auth(&["bob:secret"], backend.addr, &["--hang"]);
    let postern = start_postern(&format!("{}\n    auth_http_timeout 1s;", auth_http(&auth)));
    let mut c = Client::imap(postern.addr);
    let asked = Instant::now();
    c.send(b"a LOGIN bob secret\r\n");
    assert_eq!(c.read_to_close(), internal.as_bytes());
    assert!(asked.elapsed() >= Duration::from_secs(1));
    postern.proc.wait_for("auth http server timed out");
}

#[test]
fn two_hundred_concurrent_sessions_over_two_cores() {
    let s = stack(&[]);
    let mut clients: Vec<Client> = (0..200).map(|_| Client::imap(s.postern.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.send(format!("l{i} LOGIN bob secret\r\n").as_bytes());
    }
    for (i, c) in clients.iter_mut().enumerate() {
        assert_eq!(c.line(), ok(&format!("l{i}")));
    }
    for (i, c) in clients.iter_mut().enumerate() {
        c.expect(&format!("n{i} NOOP\r\n"), &[&format!("n{i} OK NOOP completed\r\n")]);
    }
    drop(clients);
    // nginx's log line names the thread: both cores took connections.
    s.postern.proc.wait_for_count(" connected to ", 200);
    let log = s.postern.proc.log();
    let threads: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains(" connected to "))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(log.matches(" connected to ").count(), 200, "{log}");
    assert_eq!(threads.len(), 2, "connections on threads {threads:?}");
    let _ = (&s.auth, &s.backend);
}

#[test]
fn python_imaplib_session() {
    let s = stack(&[]);
    let script = format!(
        r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", {port})
assert "AUTH=PLAIN" in m.capabilities, m.capabilities
typ, data = m.login("bob", "secret")
assert typ == "OK", (typ, data)
typ, data = m.select("INBOX")
assert typ == "OK" and data[0] == b"2", (typ, data)
typ, data = m.fetch("2", "(BODY[])")
assert typ == "OK", typ
sys.stdout.buffer.write(data[0][1])
m.logout()
"#,
        port = s.postern.addr.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.stdout == postern_bench::message::seeded_message(2, 500),
        "imaplib fetched other bytes"
    );
}

/// `auth_http_keepalive` (Postern's own): logins reuse one connection to the
/// auth server per core; without it, each login opens one, as nginx.
#[test]
fn auth_http_keepalive_reuses_the_connection() {
    for (keepalive, connections) in [(true, 1), (false, 3)] {
        let backend = start_backend(&["bob:secret"], 1, 10);
        let auth = start_auth(&["bob:secret"], backend.addr, &["--log-connections"]);
        let extra = if keepalive { "    auth_http_keepalive 4;" } else { "" };
        let postern = start_postern_with(
            "worker_processes 1;\nerror_log stderr info;",
            &format!("{}\n{extra}", auth_http(&auth)),
        );
        for i in 0..3 {
            let mut c = Client::imap(postern.addr);
            c.expect(&format!("a{i} LOGIN bob secret\r\n"), &[&ok(&format!("a{i}"))]);
            c.expect(
                &format!("b{i} LOGOUT\r\n"),
                &["* BYE logging out\r\n", &format!("b{i} OK LOGOUT completed\r\n")],
            );
        }
        // A wrong password on the kept connection is answered the same way.
        let mut c = Client::imap(postern.addr);
        c.expect("x LOGIN bob wrong\r\n", &["x NO Invalid login or password\r\n"]);
        drop(c);
        // The auth server's stderr is read by another thread: wait for the
        // line that must come, then check that no further one came.
        let expected = if keepalive { connections } else { connections + 1 };
        auth.proc
            .wait_for(&format!("postern-bench auth: connection {expected}"));
        let extra_line = format!("postern-bench auth: connection {}", expected + 1);
        assert!(
            !auth.proc.log().contains(&extra_line),
            "keepalive {keepalive}: {}",
            auth.proc.log()
        );
    }
}

/// What a Thunderbird-style client says in ID before logging in reaches the
/// auth server as `Auth-ID`, with Client-Port, Server-IP and Server-Port,
/// and `auth_http_header` values with variables filled in (all Postern's
/// own); a CR/LF in an ID value stays inside the escaped header.
#[test]
fn id_and_connection_details_reach_the_auth_server() {
    let s = stack_with(
        &["bob:secret"],
        &[],
        "error_log stderr info;",
        "    auth_http_header X-Who \"$remote_addr:$remote_port to $server_addr:$server_port ($protocol)\";",
    );
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "a ID (\"name\" \"Thunderbird\" \"version\" \"115.3.1\" \"os\" \"Linux\" \"vendor\" {7}\r\n",
        &["+ OK\r\n"],
    );
    c.expect("Mo\r\nzil)\r\n", &["* ID NIL\r\n", "a OK completed\r\n"]);
    c.expect("b LOGIN bob secret\r\n", &[&ok("b")]);
    let port = c.stream.local_addr().unwrap().port();
    let requests = s.auth_requests();
    for want in [
        format!("Client-Port: {port}\r\n"),
        "Server-IP: 127.0.0.1\r\n".to_string(),
        format!("Server-Port: {}\r\n", s.postern.addr.port()),
        "Auth-ID: (\"name\"%20\"Thunderbird\"%20\"version\"%20\"115.3.1\"%20\"os\"%20\"Linux\"%20\"vendor\"%20\"Mo%0D%0Azil\")\r\n".to_string(),
        format!("X-Who: 127.0.0.1:{port} to {} (imap)\r\n", s.postern.addr),
    ] {
        assert!(requests.contains(&want), "no {want:?} in {requests}");
    }
}

/// `auth_fail_limit 2 per 1m`: after the auth server refused an address
/// twice, its next login, even with the right password, gets the temporary
/// failure from Postern and the auth server is not asked.
#[test]
fn auth_fail_limit_answers_without_the_auth_server() {
    let s = stack_with(
        &["bob:secret"],
        &[],
        "error_log stderr info;\nworker_processes 1;",
        "    auth_fail_limit 2 per 1m;",
    );
    for tag in ["a", "b"] {
        let mut c = Client::imap(s.postern.addr);
        c.expect(
            &format!("{tag} LOGIN bob wrong\r\n"),
            &[&format!("{tag} NO Invalid login or password\r\n")],
        );
    }
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "c LOGIN bob secret\r\n",
        &["c NO [UNAVAILABLE] Too many failed logins, try again later\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    assert_eq!(s.auth_requests().matches("GET ").count(), 2);
    s.postern.proc.wait_for("auth_fail_limit reached");
}
