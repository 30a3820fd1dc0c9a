//! IMAP through Postern end to end: the real binary, the bench auth server
//! and backend, real sockets on loopback, exact bytes.

mod common;

use common::*;

const LOGIN_OK: &str = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

struct Stack {
    backend: Companion,
    auth: Companion,
    postern: Postern,
    record: TempDir,
}

/// Backend and auth server for `bob:secret`, Postern in front of them.
fn stack(messages: usize, size: usize, auth_extra: &[&str]) -> Stack {
    let record = TempDir::new("record");
    let record_file = record.path("requests");
    let backend = start_backend(&["bob:secret", "robert:other"], messages, size);
    let mut extra = vec!["--record", record_file.to_str().unwrap()];
    extra.extend_from_slice(auth_extra);
    let auth = start_auth(&["bob:secret", "b o%b:p\"w"], backend.addr, &extra);
    let postern = start_postern(&auth_http(&auth));
    Stack {
        backend,
        auth,
        postern,
        record,
    }
}

fn login_ok(tag: &str) -> String {
    format!("{tag} {LOGIN_OK}")
}

#[test]
fn login_forms_reach_the_backend() {
    let s = stack(1, 100, &[]);
    let forms: &[&[u8]] = &[
        b"a1 LOGIN bob secret\r\n",
        b"a1 LOGIN \"bob\" \"secret\"\r\n",
        b"a1 login {3}\r\nbob {6}\r\nsecret\r\n",
        b"a1 LOGIN {3+}\r\nbob {6+}\r\nsecret\r\n",
    ];
    for form in forms {
        let mut c = Client::imap(s.postern.addr);
        c.send(form);
        let mut reply = c.line();
        while reply == "+ OK\r\n" {
            reply = c.line();
        }
        assert_eq!(reply, login_ok("a1"), "form {:?}", String::from_utf8_lossy(form));
        // Now talking to the backend itself.
        c.expect("a2 NOOP\r\n", &["a2 OK NOOP completed\r\n"]);
        c.expect(
            "a3 LOGOUT\r\n",
            &["* BYE logging out\r\n", "a3 OK LOGOUT completed\r\n"],
        );
        assert_eq!(c.read_to_close(), b"");
    }
}

#[test]
fn authenticate_plain_reaches_the_backend() {
    let s = stack(1, 100, &[]);
    let mut c = Client::imap(s.postern.addr);
    // base64("\0bob\0secret")
    c.expect("t AUTHENTICATE PLAIN\r\n", &["+ \r\n"]);
    c.expect("AGJvYgBzZWNyZXQ=\r\n", &[&login_ok("t")]);
}

#[test]
fn pre_login_commands() {
    let s = stack(1, 100, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect(
        "c1 CAPABILITY\r\n",
        &[
            "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n",
            "c1 OK completed\r\n",
        ],
    );
    c.expect("c2 NOOP\r\n", &["c2 OK completed\r\n"]);
    c.expect("c3 SELECT INBOX\r\n", &["c3 BAD invalid command\r\n"]);
    c.expect("c4 LOGOUT\r\n", &["* BYE\r\n", "c4 OK completed\r\n"]);
    assert_eq!(c.read_to_close(), b"");
}

#[test]
fn refused_login_closes() {
    let s = stack(1, 100, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob wrong\r\n", &["a NO Invalid login or password\r\n"]);
    assert_eq!(c.read_to_close(), b"");
}

#[test]
fn refused_login_with_auth_wait_allows_a_retry() {
    let s = stack(1, 100, &["--wait", "1"]);
    let mut c = Client::imap(s.postern.addr);
    let asked = std::time::Instant::now();
    c.expect("a LOGIN bob wrong\r\n", &["a NO Invalid login or password\r\n"]);
    // Auth-Wait delays the answer; a fast refusal would let bots guess faster.
    assert!(
        asked.elapsed() >= std::time::Duration::from_secs(1),
        "answered before Auth-Wait"
    );
    c.expect("b LOGIN bob secret\r\n", &[&login_ok("b")]);
    let requests = String::from_utf8(read_file(&s.record.path("requests"))).unwrap();
    assert!(requests.contains("Auth-Login-Attempt: 1\r\n"), "{requests}");
    assert!(requests.contains("Auth-Login-Attempt: 2\r\n"), "{requests}");
}

/// `imap_id_forward on`: the backend is told the client's ID (the pairs that
/// can travel as quoted strings) with the login; the client sees none of the
/// backend's answer to it.
#[test]
fn client_id_is_forwarded_to_the_backend() {
    let dir = TempDir::new("backend-record");
    let seen = dir.path("backend");
    let backend = start_bench(&["backend", "--user", "bob:secret", "--record", seen.to_str().unwrap()]);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    let postern = start_postern(&format!("{}\n    imap_id_forward on;", auth_http(&auth)));
    let mut c = Client::imap(postern.addr);
    // "os" comes as a literal holding CR LF and a command: never forwarded.
    c.send(b"a ID (\"name\" \"Thunderbird\" \"version\" \"115.3\" \"os\" {17}\r\n");
    assert_eq!(c.line(), "+ OK\r\n");
    c.expect(
        "x\r\nz DELETE INBOX \"vendor\" \"a \\\"b\\\"\")\r\n",
        &["* ID NIL\r\n", "a OK completed\r\n"],
    );
    c.expect("b LOGIN bob secret\r\n", &[&login_ok("b")]);
    c.expect("c NOOP\r\n", &["c OK NOOP completed\r\n"]);
    let seen = String::from_utf8(read_file(&seen)).unwrap();
    assert_eq!(
        seen,
        "postern-id ID (\"name\" \"Thunderbird\" \"version\" \"115.3\" \"vendor\" \"a \\\"b\\\"\")\r\n\
         b LOGIN \"bob\" \"secret\"\r\nc NOOP\r\n"
    );
}

#[test]
fn auth_request_is_escaped_and_in_order() {
    let s = stack(1, 100, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN \"b o%b\" \"p\\\"w\"\r\n", &[]);
    // The auth server accepts "b o%b", routing to the backend, which does not
    // know that user: the backend's refusal is hidden behind the internal error.
    assert_eq!(c.line(), "* BAD internal server error\r\n");
    let requests = String::from_utf8(read_file(&s.record.path("requests"))).unwrap();
    assert_eq!(
        requests,
        format!(
            "GET /auth HTTP/1.0\r\nHost: 127.0.0.1\r\nAuth-Method: plain\r\nAuth-User: b%20o%25b\r\n\
             Auth-Pass: p\"w\r\nAuth-Protocol: imap\r\nAuth-Login-Attempt: 1\r\nClient-IP: 127.0.0.1\r\n\
             Client-Port: {}\r\nServer-IP: 127.0.0.1\r\nServer-Port: {}\r\n\r\n",
            c.stream.local_addr().unwrap().port(),
            s.postern.addr.port()
        )
    );
}

#[test]
fn auth_server_down_is_internal_error() {
    let backend = start_backend(&["bob:secret"], 1, 100);
    let _ = backend.addr;
    let (_refusing, auth_addr) = refusing_addr();
    let postern = start_postern(&format!("    auth_http {auth_addr}/auth;"));
    let mut c = Client::imap(postern.addr);
    c.expect("a LOGIN bob secret\r\n", &["* BAD internal server error\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    postern.proc.wait_for("auth http server connect failed");
}

#[test]
fn backend_down_is_internal_error() {
    let (_refusing, dead) = refusing_addr();
    let auth = start_auth(&["bob:secret"], dead, &[]);
    let postern = start_postern(&auth_http(&auth));
    let mut c = Client::imap(postern.addr);
    c.expect("a LOGIN bob secret\r\n", &["* BAD internal server error\r\n"]);
    assert_eq!(c.read_to_close(), b"");
}

#[test]
fn backend_error_message_passed_when_configured() {
    let backend = start_backend(&["bob:secret"], 1, 100);
    // The auth server lets "robert" in, the backend does not know him.
    let auth = start_auth(&["robert:pw"], backend.addr, &[]);
    let postern = start_postern(&format!("{}\n    proxy_pass_error_message on;", auth_http(&auth)));
    let mut c = Client::imap(postern.addr);
    c.expect(
        "x LOGIN robert pw\r\n",
        &["x NO [AUTHENTICATIONFAILED] Invalid credentials\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
}

#[test]
fn pipelined_commands_behind_login_reach_the_backend() {
    let s = stack(2, 300, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.send(b"a CAPABILITY\r\nb LOGIN bob secret\r\nc SELECT INBOX\r\nd NOOP\r\n");
    for want in [
        "* CAPABILITY IMAP4 IMAP4rev1 UIDPLUS AUTH=PLAIN\r\n",
        "a OK completed\r\n",
        &login_ok("b"),
        "* 2 EXISTS\r\n",
    ] {
        assert_eq!(c.line(), want);
    }
    let mut line = c.line();
    while !line.starts_with("c ") {
        line = c.line();
    }
    assert_eq!(line, "c OK [READ-WRITE] SELECT completed\r\n");
    assert_eq!(c.line(), "d OK NOOP completed\r\n");
}

fn select(c: &mut Client, tag: &str) {
    c.send(format!("{tag} SELECT INBOX\r\n").as_bytes());
    loop {
        let line = c.line();
        assert!(!line.is_empty(), "connection closed during SELECT");
        if line.starts_with(tag) {
            assert!(line.contains("OK"), "{line}");
            return;
        }
    }
}

/// 20 MB each way through the relay, byte-exact: a FETCH of a seeded message
/// and an APPEND fetched back.
#[test]
fn twenty_megabytes_each_way() {
    const SIZE: usize = 20 * 1024 * 1024;
    let s = stack(1, SIZE, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob secret\r\n", &[&login_ok("a")]);
    // What the relay carries starts after the login.
    let (sent_before, received_before) = (c.sent, c.received);
    select(&mut c, "b");
    let fetched = c.fetch("c", 1);
    assert_eq!(fetched.len(), SIZE);
    assert!(
        fetched == postern_bench::message::seeded_message(1, SIZE),
        "FETCH bytes differ"
    );

    let upload: Vec<u8> = (0..SIZE).map(|i| (i * 7 + i / 251) as u8).collect();
    c.send(format!("d APPEND INBOX {{{SIZE}}}\r\n").as_bytes());
    assert!(c.line().starts_with("+ "));
    c.send(&upload);
    c.send(b"\r\n");
    assert_eq!(c.line(), "d OK [APPENDUID 1 2] APPEND completed\r\n");
    let back = c.fetch("e", 2);
    assert!(back == upload, "APPEND bytes differ after the round trip");
    c.expect("f LOGOUT\r\n", &["* BYE logging out\r\n", "f OK LOGOUT completed\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    // One info line per session, with both byte counts and no password.
    let line = s.postern.proc.wait_for("session done");
    assert!(line.contains("login: \"bob\""), "{line}");
    assert!(line.contains("(splice)"), "the default relay is splice: {line}");
    // And the bulk really went through pipes, not through user space: all
    // but the first burst of each transfer (the copy buffer, 16 KiB) and the
    // small commands.
    let spliced: u64 = line
        .split(", ")
        .find_map(|part| part.strip_suffix(" spliced"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no spliced count in {line}"));
    assert!(
        spliced > 2 * (SIZE as u64) * 9 / 10,
        "only {spliced} bytes spliced: {line}"
    );
    assert!(line.contains(&format!("upstream: {}", s.backend.addr)), "{line}");
    let up = format!("client->backend {} bytes", c.sent - sent_before);
    let down = format!("backend->client {} bytes", c.received - received_before);
    assert!(line.contains(&up), "{line}: expected {up}");
    assert!(line.contains(&down), "{line}: expected {down}");
    assert!(!s.postern.proc.log().contains("secret"), "a password reached the log");
    let _ = &s.auth;
}

#[test]
fn client_half_close_ends_cleanly() {
    let s = stack(1, 100, &[]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("a LOGIN bob secret\r\n", &[&login_ok("a")]);
    c.send(b"b LOGOUT\r\n");
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(c.read_to_close(), b"* BYE logging out\r\nb OK LOGOUT completed\r\n");
}

#[test]
fn curl_fetches_a_message_through_postern() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is required (scripts/test.sh installs it)");
    }
    let backend = start_backend(&["bob:secret"], 2, 3000);
    let auth = start_auth(&["bob:secret"], backend.addr, &[]);
    // curl uses only the SASL mechanisms the server advertises.
    let postern = start_postern(&format!("{}\n    imap_auth plain login;", auth_http(&auth)));
    for login_options in [None, Some("AUTH=LOGIN")] {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sS", "--max-time", "20", "-u", "bob:secret"]);
        if let Some(o) = login_options {
            cmd.args(["--login-options", o]);
        }
        let out = cmd
            .arg(format!("imap://{}/INBOX;MAILINDEX=2", postern.addr))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == postern_bench::message::seeded_message(2, 3000),
            "curl got other bytes"
        );
    }
}
