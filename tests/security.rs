//! Security properties through the shipped binary, on loopback with the bench
//! auth server and backends recording what they receive:
//!
//! - no password, and no base64 SASL payload carrying one, reaches Postern's
//!   log at its most verbose level, for every login flow of every protocol,
//!   succeeding and failing;
//! - CR, LF and NUL sent through every field a client controls never become
//!   an extra header of the auth request nor an extra command line to the
//!   backend;
//! - login attempts per session are bounded: invalid ones by `max_errors`,
//!   refused ones by the auth server (each retry waits `Auth-Wait`).
//!
//! Already covered elsewhere, not repeated here: an IMAP LOGIN user name
//! with CR/LF sent as a literal (`imap_front::hostile_user_name_is_escaped_and_exact`),
//! a refused login closing the session without Auth-Wait and one retry with
//! it (`imap_proxy::refused_login_*`, `pop3_smtp::pop3_wrong_password_*`,
//! `pop3_smtp::smtp_wrong_password_with_auth_wait_then_retry`), `max_errors`
//! for invalid IMAP commands (`imap_front::max_errors_from_the_config`).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use postern_bench::digest::{hmac_md5_hex, md5_hex};

const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::STANDARD;

const USER: &str = "leaker";
const PASS: &str = "Pw7-Secret_x9Q";
const WRONG: &str = "Wr0ng-Guess_k2Z";
const IMAP_OK: &str = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

/// Every header name Postern may send to the auth server.
const AUTH_HEADERS: &[&str] = &[
    "Host",
    "Auth-Method",
    "Auth-User",
    "Auth-Pass",
    "Auth-Salt",
    "Auth-Protocol",
    "Auth-Login-Attempt",
    "Client-IP",
    "Client-Host",
    "Client-Port",
    "Server-IP",
    "Server-Port",
    "Auth-ID",
    "Auth-SMTP-Helo",
    "Auth-SMTP-From",
    "Auth-SMTP-To",
    "Connection",
];

/// A `protocol` backend and auth server knowing `users`, recording what
/// they receive, and Postern in front logging at debug level.
struct Stack {
    postern: Postern,
    dir: TempDir,
    _backend: Companion,
    _auth: Companion,
}

impl Stack {
    fn auth_requests(&self) -> Vec<u8> {
        read_file(&self.dir.path("auth-requests"))
    }

    fn backend_bytes(&self) -> Vec<u8> {
        read_file(&self.dir.path("backend-bytes"))
    }

    /// Stops Postern (SIGTERM) and returns its whole log.
    fn stop(&mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.postern.proc.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.postern.proc.wait_exit();
        self.postern.proc.log()
    }
}

fn stack(protocol: &str, users: &[&str], auth_extra: &[&str], mail_extra: &str) -> Stack {
    let dir = TempDir::new(&format!("security-{protocol}"));
    let record = dir.path("backend-bytes").display().to_string();
    let mut args = vec!["backend", "--protocol", protocol, "--record", &record];
    for u in users {
        args.extend(["--user", u]);
    }
    let backend = start_bench(&args);
    let route = format!("{protocol}={}", backend.addr);
    let auth_record = dir.path("auth-requests").display().to_string();
    let mut auth_args = vec!["auth", "--backend", &route, "--record", &auth_record];
    for u in users {
        auth_args.extend(["--user", u]);
    }
    auth_args.extend_from_slice(auth_extra);
    let auth = start_bench(&auth_args);
    let body = format!("{}\n{mail_extra}", auth_http(&auth));
    let postern = start_postern_protocol(protocol, "error_log stderr debug;", &body, &["--log-level", "debug"]);
    Stack {
        postern,
        dir,
        _backend: backend,
        _auth: auth,
    }
}

fn user_entry() -> String {
    format!("{USER}:{PASS}")
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// The base64 text any encoding of `secret` must contain, whatever its
/// offset in the encoded blob: for each of the three alignments, the
/// characters that depend on the secret's bytes only.
fn base64_forms(secret: &[u8]) -> Vec<String> {
    (0..3)
        .map(|k| {
            let mut blob = vec![b'x'; k];
            blob.extend_from_slice(secret);
            let text = B64.encode(&blob);
            let (first, end) = (k * 8, (k + secret.len()) * 8);
            let chars: Vec<char> = text.chars().collect();
            (0..chars.len())
                .filter(|&i| 6 * i >= first && 6 * i + 6 <= end)
                .map(|i| chars[i])
                .collect()
        })
        .collect()
}

/// Reads one SMTP reply (all lines); returns its last line.
fn smtp_reply(c: &mut Client) -> String {
    loop {
        let line = c.line();
        if line.as_bytes().get(3) != Some(&b'-') {
            return line;
        }
    }
}

fn greeted(s: &Stack, start: &str) -> (Client, String) {
    let mut c = Client::connect(s.postern.addr);
    let greeting = c.line();
    assert!(greeting.starts_with(start), "{greeting:?}");
    (c, greeting)
}

/// The `<...>` salt at the end of a POP3 greeting.
fn pop3_salt(greeting: &str) -> String {
    greeting.trim_end().rsplit_once(' ').unwrap().1.to_string()
}

/// Decodes the base64 challenge after `prefix` in a continuation line.
fn challenge(line: &str, prefix: &str) -> String {
    let text = line
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?}"));
    String::from_utf8(B64.decode(text).unwrap()).unwrap()
}

/// What each login flow sent that must stay out of the log.
#[derive(Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add(&mut self, s: impl Into<String>) -> String {
        let s = s.into();
        self.0.push(s.clone());
        s
    }
}

// ---- (a) nothing secret in the log ----

/// Runs every IMAP login flow once with the right password and once with a
/// wrong one; returns the payloads sent.
fn imap_flows(s: &Stack, secrets: &mut Secrets) {
    for (pass, good) in [(PASS, true), (WRONG, false)] {
        let ok_or_no = |tag: &str| {
            if good {
                format!("{tag} {IMAP_OK}")
            } else {
                format!("{tag} NO Invalid login or password\r\n")
            }
        };
        let finish = |c: &mut Client| {
            if good {
                c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
            }
            assert_eq!(c.read_to_close(), b"");
        };
        // LOGIN: atom, quoted, synchronizing literal, non-synchronizing literal.
        for form in [
            format!("a LOGIN {USER} {pass}\r\n"),
            format!("a LOGIN \"{USER}\" \"{pass}\"\r\n"),
            format!("a LOGIN {USER} {{{}+}}\r\n{pass}\r\n", pass.len()),
        ] {
            let mut c = Client::imap(s.postern.addr);
            c.expect(&form, &[&ok_or_no("a")]);
            finish(&mut c);
        }
        let mut c = Client::imap(s.postern.addr);
        c.expect(&format!("a LOGIN {{{}}}\r\n", USER.len()), &["+ OK\r\n"]);
        c.expect(&format!("{USER} {{{}}}\r\n", pass.len()), &["+ OK\r\n"]);
        c.expect(&format!("{pass}\r\n"), &[&ok_or_no("a")]);
        finish(&mut c);
        // AUTHENTICATE PLAIN with and without an initial response.
        let plain = secrets.add(b64(format!("\0{USER}\0{pass}")));
        let mut c = Client::imap(s.postern.addr);
        c.expect(&format!("b AUTHENTICATE PLAIN {plain}\r\n"), &[&ok_or_no("b")]);
        finish(&mut c);
        let mut c = Client::imap(s.postern.addr);
        c.expect("b AUTHENTICATE PLAIN\r\n", &["+ \r\n"]);
        c.expect(&format!("{plain}\r\n"), &[&ok_or_no("b")]);
        finish(&mut c);
        // With an authorization identity too.
        let authz = secrets.add(b64(format!("admin\0{USER}\0{pass}")));
        let mut c = Client::imap(s.postern.addr);
        c.expect(&format!("b AUTHENTICATE PLAIN {authz}\r\n"), &[&ok_or_no("b")]);
        finish(&mut c);
        // AUTHENTICATE LOGIN.
        let mut c = Client::imap(s.postern.addr);
        c.expect("c AUTHENTICATE LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
        c.expect(&format!("{}\r\n", b64(USER)), &["+ UGFzc3dvcmQ6\r\n"]);
        c.expect(&format!("{}\r\n", secrets.add(b64(pass))), &[&ok_or_no("c")]);
        finish(&mut c);
        // CRAM-MD5.
        let mut c = Client::imap(s.postern.addr);
        c.send(b"d AUTHENTICATE CRAM-MD5\r\n");
        let salt = challenge(&c.line(), "+ ");
        let digest = secrets.add(hmac_md5_hex(pass.as_bytes(), salt.as_bytes()));
        let answer = secrets.add(b64(format!("{USER} {digest}")));
        c.expect(&format!("{answer}\r\n"), &[&ok_or_no("d")]);
        finish(&mut c);
    }
}

fn pop3_flows(s: &Stack, secrets: &mut Secrets) {
    for (pass, good) in [(PASS, true), (WRONG, false)] {
        let ok_or_err = if good {
            "+OK logged in\r\n"
        } else {
            "-ERR Invalid login or password\r\n"
        };
        let finish = |c: &mut Client| {
            if good {
                c.expect("QUIT\r\n", &["+OK bye\r\n"]);
            }
            assert_eq!(c.read_to_close(), b"");
        };
        let (mut c, _) = greeted(s, "+OK POP3 ready <");
        c.expect(&format!("USER {USER}\r\n"), &["+OK\r\n"]);
        c.expect(&format!("PASS {pass}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let (mut c, greeting) = greeted(s, "+OK POP3 ready <");
        let digest = secrets.add(md5_hex(format!("{}{pass}", pop3_salt(&greeting)).as_bytes()));
        c.expect(&format!("APOP {USER} {digest}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let plain = secrets.add(b64(format!("\0{USER}\0{pass}")));
        let (mut c, _) = greeted(s, "+OK POP3 ready <");
        c.expect(&format!("AUTH PLAIN {plain}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let (mut c, _) = greeted(s, "+OK POP3 ready <");
        c.expect("AUTH PLAIN\r\n", &["+ \r\n"]);
        c.expect(&format!("{plain}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let (mut c, _) = greeted(s, "+OK POP3 ready <");
        c.expect("AUTH LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
        c.expect(&format!("{}\r\n", b64(USER)), &["+ UGFzc3dvcmQ6\r\n"]);
        c.expect(&format!("{}\r\n", secrets.add(b64(pass))), &[ok_or_err]);
        finish(&mut c);
        let (mut c, _) = greeted(s, "+OK POP3 ready <");
        c.send(b"AUTH CRAM-MD5\r\n");
        let salt = challenge(&c.line(), "+ ");
        let digest = secrets.add(hmac_md5_hex(pass.as_bytes(), salt.as_bytes()));
        let answer = secrets.add(b64(format!("{USER} {digest}")));
        c.expect(&format!("{answer}\r\n"), &[ok_or_err]);
        finish(&mut c);
    }
}

fn smtp_flows(s: &Stack, secrets: &mut Secrets) {
    for (pass, good) in [(PASS, true), (WRONG, false)] {
        let ok_or_err = if good {
            "235 2.0.0 OK\r\n"
        } else {
            "535 5.7.0 Invalid login or password\r\n"
        };
        let start = || {
            let (mut c, _) = greeted(s, "220 ");
            c.send(b"EHLO client.example\r\n");
            assert_eq!(smtp_reply(&mut c), "250 AUTH PLAIN LOGIN CRAM-MD5\r\n");
            c
        };
        let finish = |c: &mut Client| {
            if good {
                c.expect("QUIT\r\n", &["221 2.0.0 Bye\r\n"]);
            }
            assert_eq!(c.read_to_close(), b"");
        };
        let plain = secrets.add(b64(format!("\0{USER}\0{pass}")));
        let mut c = start();
        c.expect(&format!("AUTH PLAIN {plain}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let mut c = start();
        c.expect("AUTH PLAIN\r\n", &["334 \r\n"]);
        c.expect(&format!("{plain}\r\n"), &[ok_or_err]);
        finish(&mut c);
        let mut c = start();
        c.expect("AUTH LOGIN\r\n", &["334 VXNlcm5hbWU6\r\n"]);
        c.expect(&format!("{}\r\n", b64(USER)), &["334 UGFzc3dvcmQ6\r\n"]);
        c.expect(&format!("{}\r\n", secrets.add(b64(pass))), &[ok_or_err]);
        finish(&mut c);
        let mut c = start();
        c.expect(&format!("AUTH LOGIN {}\r\n", b64(USER)), &["334 UGFzc3dvcmQ6\r\n"]);
        c.expect(&format!("{}\r\n", secrets.add(b64(pass))), &[ok_or_err]);
        finish(&mut c);
        let mut c = start();
        c.send(b"AUTH CRAM-MD5\r\n");
        let salt = challenge(&c.line(), "334 ");
        let digest = secrets.add(hmac_md5_hex(pass.as_bytes(), salt.as_bytes()));
        let answer = secrets.add(b64(format!("{USER} {digest}")));
        c.expect(&format!("{answer}\r\n"), &[ok_or_err]);
        finish(&mut c);
    }
}

/// Every needle that must not be in the log: both passwords, their base64
/// forms at any alignment, and every payload and digest the flows sent.
fn assert_no_secret_in(log: &str, secrets: &Secrets) {
    let mut needles: Vec<String> = vec![PASS.into(), WRONG.into()];
    for pass in [PASS, WRONG] {
        needles.extend(base64_forms(pass.as_bytes()));
    }
    needles.extend(secrets.0.iter().cloned());
    for needle in &needles {
        assert!(needle.len() >= 8, "needle too short to be meaningful: {needle:?}");
        for line in log.lines() {
            assert!(!line.contains(needle.as_str()), "{needle:?} in the log line {line:?}");
        }
    }
}

/// `sessions` sessions were logged as `logged in`, `refused` as refused.
fn assert_sessions_logged(log: &str, logged_in: usize, refused: usize) {
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count(" logged in, client: "), logged_in, "{log}");
    assert_eq!(count("login refused by auth server"), refused, "{log}");
    assert!(count("login: \"leaker\"") >= logged_in + refused, "{log}");
}

#[test]
fn imap_logins_leave_no_secret_in_the_debug_log() {
    let mut s = stack("imap", &[&user_entry()], &[], "    imap_auth plain login cram-md5;");
    let mut secrets = Secrets::default();
    imap_flows(&s, &mut secrets);
    let log = s.stop();
    assert_sessions_logged(&log, 9, 9);
    assert_no_secret_in(&log, &secrets);
}

#[test]
fn pop3_logins_leave_no_secret_in_the_debug_log() {
    let mut s = stack("pop3", &[&user_entry()], &[], "    pop3_auth plain apop cram-md5;");
    let mut secrets = Secrets::default();
    pop3_flows(&s, &mut secrets);
    let log = s.stop();
    assert_sessions_logged(&log, 6, 6);
    assert_no_secret_in(&log, &secrets);
}

#[test]
fn smtp_logins_leave_no_secret_in_the_debug_log() {
    let mut s = stack("smtp", &[&user_entry()], &[], "    smtp_auth plain login cram-md5;");
    let mut secrets = Secrets::default();
    smtp_flows(&s, &mut secrets);
    let log = s.stop();
    assert_sessions_logged(&log, 5, 5);
    assert_no_secret_in(&log, &secrets);
}

#[test]
fn base64_forms_cover_every_alignment() {
    let forms = base64_forms(b"Pw7-Secret_x9Q");
    for prefix in ["", "a", "ab", "abc", "\0leaker\0"] {
        let blob = B64.encode(format!("{prefix}Pw7-Secret_x9Q"));
        assert!(
            forms.iter().any(|f| blob.contains(f.as_str())),
            "{prefix:?}: {blob} {forms:?}"
        );
    }
    assert!(forms.iter().all(|f| f.len() >= 16), "{forms:?}");
}

// ---- (b) CR, LF and NUL never make extra lines ----

/// Every recorded auth request head: the request line, then only known
/// header names, each once, values free of CR, LF, NUL and other controls.
fn assert_auth_heads_clean(raw: &[u8]) -> usize {
    let text = String::from_utf8_lossy(raw);
    let heads: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    assert!(!heads.is_empty(), "no auth request recorded");
    for head in &heads {
        let mut lines = head.split("\r\n");
        assert_eq!(lines.next(), Some("GET /auth HTTP/1.0"), "{head:?}");
        let mut seen = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .unwrap_or_else(|| panic!("not a header line {line:?} in {head:?}"));
            assert!(AUTH_HEADERS.contains(&name), "unknown header {line:?} in {head:?}");
            assert!(!seen.contains(&name), "{name} twice in {head:?}");
            seen.push(name);
            assert!(
                !value.bytes().any(|b| b < 0x20 || b == 0x7f),
                "control byte in {line:?} of {head:?}"
            );
        }
    }
    heads.len()
}

/// IMAP bytes as command lines: literal contents (`{n}` / `{n+}` at a line's
/// end) are skipped. Every command line must start with one of `allowed`.
fn assert_imap_lines(raw: &[u8], allowed: &[&str]) {
    let mut rest = raw;
    let mut continuing = false;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("unterminated line in {:?}", String::from_utf8_lossy(raw)));
        let line = &rest[..end];
        rest = &rest[end + 2..];
        let text = String::from_utf8_lossy(line);
        assert!(
            !line.contains(&b'\n') && !line.contains(&b'\r'),
            "bare CR/LF in {text:?}"
        );
        if !continuing {
            assert!(
                allowed.iter().any(|a| text.starts_with(a)),
                "unexpected command line {text:?} in {:?}",
                String::from_utf8_lossy(raw)
            );
        }
        continuing = false;
        if let Some(open) = text.strip_suffix('}').and_then(|t| t.rfind('{').map(|i| &t[i + 1..])) {
            let n: usize = open.trim_end_matches('+').parse().expect("literal size");
            rest = &rest[n..];
            continuing = true;
        }
    }
}

/// Line-based bytes (POP3, SMTP): CRLF lines only, each starting with one of
/// `allowed`, none holding a CR, LF or NUL.
fn assert_plain_lines(raw: &[u8], allowed: &[&str]) {
    let text = String::from_utf8_lossy(raw);
    assert!(text.is_empty() || text.ends_with("\r\n"), "{text:?}");
    for line in text.split_terminator("\r\n") {
        assert!(
            !line.contains(['\r', '\n', '\0']),
            "CR, LF or NUL inside {line:?} of {text:?}"
        );
        assert!(
            allowed.iter().any(|a| line.starts_with(a)),
            "unexpected line {line:?} in {text:?}"
        );
    }
}

/// A user the auth server and backend know whose name carries a header-like
/// line and a command (no `:`: the bench servers split NAME:PASS at the first).
const EVIL_USER: &str = "evil\r\nAuth-Status=OK\r\nz DELETE INBOX";
const EVIL_PASS: &str = "pw\r\nX-Injected: 2\r\nDELE 1\0";

#[test]
fn imap_fields_never_inject_headers_or_commands() {
    // The password is what the backend gets: only the user carries CR/LF here
    // (a NUL cannot be a --user argument); the password is the known one.
    let entry = format!("{EVIL_USER}:pass\r\nz EXPUNGE");
    let mut s = stack(
        "imap",
        &[&entry],
        &[],
        "    imap_auth plain login cram-md5;\n    imap_capabilities IMAP4rev1 ID;\n    max_errors 20;",
    );
    let good_pass = "pass\r\nz EXPUNGE";
    // LOGIN with the password as a literal; the user as a quoted string
    // cannot hold CR/LF, so it goes as a literal too (covered for the user
    // alone by imap_front::hostile_user_name_is_escaped_and_exact).
    let mut c = Client::imap(s.postern.addr);
    c.send(
        format!(
            "a LOGIN {{{}+}}\r\n{EVIL_USER} {{{}+}}\r\n{good_pass}\r\n",
            EVIL_USER.len(),
            good_pass.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.line(), format!("a {IMAP_OK}"));
    c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    // SASL PLAIN and LOGIN payloads carrying CR, LF and NUL.
    let plain = b64(format!("\0{EVIL_USER}\0{good_pass}"));
    let mut c = Client::imap(s.postern.addr);
    c.expect(&format!("b AUTHENTICATE PLAIN {plain}\r\n"), &[&format!("b {IMAP_OK}")]);
    c.expect("z LOGOUT\r\n", &["* BYE logging out\r\n", "z OK LOGOUT completed\r\n"]);
    let mut c = Client::imap(s.postern.addr);
    c.expect("c AUTHENTICATE LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
    c.expect(&format!("{}\r\n", b64(EVIL_USER)), &["+ UGFzc3dvcmQ6\r\n"]);
    c.expect(
        &format!("{}\r\n", b64(EVIL_PASS)),
        &["c NO Invalid login or password\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    // ID values with CR/LF (as literals) and NUL: answered, kept, not forwarded.
    let mut c = Client::imap(s.postern.addr);
    let value = "v\r\nAuth-Injected: 3\r\nz DELETE INBOX\0";
    c.send(format!("e ID (\"name\" {{{}+}}\r\n{value} \"os\" \"a\\\"b\")\r\n", value.len()).as_bytes());
    assert_eq!(c.line(), "* ID NIL\r\n");
    assert_eq!(c.line(), "e OK completed\r\n");
    // NUL and CR/LF in every part of a PLAIN blob (authzid, user, and a
    // password that holds a NUL itself, as nginx reads it): escaped, refused.
    let blob = b64(format!("x\r\nAuth-Injected: 1\0u\0ser\r\nAuth-Status: OK\0{EVIL_PASS}"));
    c.expect(
        &format!("d AUTHENTICATE PLAIN {blob}\r\n"),
        &["d NO Invalid login or password\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    let heads = assert_auth_heads_clean(&s.auth_requests());
    assert_eq!(heads, 4);
    let requests = String::from_utf8_lossy(&s.auth_requests()).into_owned();
    assert!(
        requests.contains(
            "\r\nAuth-User: u\r\nAuth-Pass: ser%0D%0AAuth-Status:%20OK%00pw%0D%0AX-Injected:%202%0D%0ADELE%201%00\r\n"
        ),
        "{requests}"
    );
    assert_imap_lines(&s.backend_bytes(), &["a LOGIN {", "b LOGIN {", "z LOGOUT"]);
    let log = s.stop();
    // The user name is escaped in the log: no line was split by its CR/LF.
    assert!(
        log.contains("login: \"evil\\x0D\\x0AAuth-Status=OK\\x0D\\x0Az DELETE INBOX\""),
        "{log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("Auth-Status=OK") && !line.starts_with("z DELETE"),
            "{line}"
        );
    }
}

#[test]
fn pop3_fields_never_inject_headers_or_commands() {
    // The auth server accepts this user, so Postern tries the backend, which
    // cannot be sent a user with CR/LF: the internal error, no extra line.
    let entry = format!("{EVIL_USER}:{PASS}");
    let s = stack(
        "pop3",
        &[&entry, &user_entry()],
        &[],
        "    pop3_auth plain apop cram-md5;\n    max_errors 20;",
    );
    let internal = "-ERR internal server error\r\n";
    let plain = b64(format!("\0{EVIL_USER}\0{PASS}"));
    let (mut c, _) = greeted(&s, "+OK");
    c.expect(&format!("AUTH PLAIN {plain}\r\n"), &[internal]);
    assert_eq!(c.read_to_close(), b"");
    let (mut c, _) = greeted(&s, "+OK");
    c.expect("AUTH LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
    c.expect(&format!("{}\r\n", b64(EVIL_USER)), &["+ UGFzc3dvcmQ6\r\n"]);
    c.expect(&format!("{}\r\n", b64(PASS)), &[internal]);
    assert_eq!(c.read_to_close(), b"");
    // A known user whose password carries CR/LF/NUL: refused by the auth
    // server (escaped on the way), never sent to the backend.
    let (mut c, _) = greeted(&s, "+OK");
    c.expect(
        &format!("AUTH PLAIN {}\r\n", b64(format!("\0{USER}\0{EVIL_PASS}"))),
        &["-ERR Invalid login or password\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    // USER and PASS: a bare LF ends the line (as nginx), so the rest is a
    // command of its own, and a bare CR inside a line is refused.
    let (mut c, _) = greeted(&s, "+OK");
    c.expect(
        &format!("USER {USER}\nDELE 1\r\n"),
        &["+OK\r\n", "-ERR invalid command\r\n"],
    );
    c.expect(&format!("PASS {PASS}\rDELE 1\r\n"), &["-ERR invalid command\r\n"]);
    // APOP with CR in the name.
    c.expect(
        "APOP a\rb 0123456789abcdef0123456789abcdef\r\n",
        &["-ERR invalid command\r\n"],
    );
    // A NUL inside an argument is taken (as nginx) and escaped for the auth server.
    c.expect(&format!("USER {USER}\0x\r\n"), &["+OK\r\n"]);
    c.expect(&format!("PASS {PASS}\r\n"), &["-ERR Invalid login or password\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    // A normal login still works and the backend sees exactly it.
    let (mut c, _) = greeted(&s, "+OK");
    c.expect(&format!("USER {USER}\r\n"), &["+OK\r\n"]);
    c.expect(&format!("PASS {PASS}\r\n"), &["+OK logged in\r\n"]);
    c.expect("QUIT\r\n", &["+OK bye\r\n"]);
    assert_auth_heads_clean(&s.auth_requests());
    let requests = String::from_utf8_lossy(&s.auth_requests()).into_owned();
    assert!(
        requests.contains("Auth-User: evil%0D%0AAuth-Status=OK%0D%0Az%20DELETE%20INBOX\r\n"),
        "{requests}"
    );
    assert!(
        requests.contains("Auth-Pass: pw%0D%0AX-Injected:%202%0D%0ADELE%201%00\r\n"),
        "{requests}"
    );
    assert!(requests.contains("Auth-User: leaker%00x\r\n"), "{requests}");
    assert_plain_lines(&s.backend_bytes(), &["USER leaker", "PASS Pw7-Secret_x9Q", "QUIT"]);
    assert_eq!(
        String::from_utf8_lossy(&s.backend_bytes()),
        format!("USER {USER}\r\nPASS {PASS}\r\nQUIT\r\n")
    );
}

#[test]
fn smtp_fields_never_inject_headers_or_commands() {
    let s = stack("smtp", &[&user_entry()], &[], "    smtp_auth none;\n    max_errors 20;");
    // HELO/EHLO, MAIL FROM and RCPT TO with a bare CR or a NUL inside are
    // refused; a bare LF ends the line, so what follows is a command of its own.
    let (mut c, _) = greeted(&s, "220 ");
    for (line, reply) in [
        ("EHLO a\rAuth-Injected: 1\r\n", "501 5.5.4 Invalid argument\r\n"),
        ("EHLO a\0b\r\n", "501 5.5.4 Invalid argument\r\n"),
        ("HELO a\nX-Injected: 1\r\n", "250 "),
    ] {
        c.send(line.as_bytes());
        let got = smtp_reply(&mut c);
        assert!(got.starts_with(reply), "{line:?}: {got:?}");
    }
    assert_eq!(c.line(), "500 5.5.1 Invalid command\r\n");
    c.expect("EHLO c\tt\x01l\x7f%.example\r\n", &[]);
    smtp_reply(&mut c);
    for line in ["MAIL FROM:<a@b>\rRCPT TO:<x@y>\r\n", "MAIL FROM:<a@b>\0\r\n"] {
        c.expect(line, &["501 5.5.4 Invalid argument\r\n"]);
    }
    c.expect("MAIL FROM:<a@b> X=\"\x01%\"\r\n", &["250 2.0.0 OK\r\n"]);
    c.expect("RCPT TO:<c@d>\rDATA\r\n", &["501 5.5.4 Invalid argument\r\n"]);
    c.send(b"RCPT TO:<c@d>\nRSET\r\n");
    assert_eq!(c.line(), "250 2.1.5 Ok\r\n");
    // The RSET after the bare LF reaches the backend as its own command,
    // which is what the client sent: two lines, not one line smuggled in another.
    assert_eq!(c.line(), "250 2.0.0 Ok\r\n");
    c.expect("QUIT\r\n", &["221 2.0.0 Bye\r\n"]);
    let heads = assert_auth_heads_clean(&s.auth_requests());
    assert_eq!(heads, 1);
    let requests = String::from_utf8_lossy(&s.auth_requests()).into_owned();
    for header in [
        "Auth-SMTP-Helo: c%09t%01l%7F%25.example\r\n",
        "Auth-SMTP-From: MAIL%20FROM:<a@b>%20X=\"%01%25\"\r\n",
        "Auth-SMTP-To: RCPT%20TO:<c@d>\r\n",
    ] {
        assert!(requests.contains(header), "no {header:?} in {requests}");
    }
    assert_plain_lines(
        &s.backend_bytes(),
        &[
            "EHLO ",
            "XCLIENT ",
            "MAIL FROM:<a@b> X=\"\x01%\"",
            "RCPT TO:<c@d>",
            "RSET",
            "QUIT",
        ],
    );
    let wire = String::from_utf8_lossy(&s.backend_bytes()).into_owned();
    assert!(wire.contains("\r\nEHLO c\tt\x01l\x7f%.example\r\n"), "{wire:?}");
}

#[test]
fn smtp_sasl_fields_never_inject_headers_or_commands() {
    let entry = format!("{EVIL_USER}:{PASS}");
    let s = stack("smtp", &[&entry], &[], "    smtp_auth plain login;");
    let (mut c, _) = greeted(&s, "220 ");
    c.send(b"EHLO client.example\r\n");
    smtp_reply(&mut c);
    c.expect(
        &format!("AUTH PLAIN {}\r\n", b64(format!("\0{EVIL_USER}\0{EVIL_PASS}"))),
        &["535 5.7.0 Invalid login or password\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    let (mut c, _) = greeted(&s, "220 ");
    c.send(b"EHLO client.example\r\n");
    smtp_reply(&mut c);
    c.expect("AUTH LOGIN\r\n", &["334 VXNlcm5hbWU6\r\n"]);
    c.expect(&format!("{}\r\n", b64(EVIL_USER)), &["334 UGFzc3dvcmQ6\r\n"]);
    c.expect(&format!("{}\r\n", b64(PASS)), &["235 2.0.0 OK\r\n"]);
    c.expect("QUIT\r\n", &["221 2.0.0 Bye\r\n"]);
    assert_eq!(assert_auth_heads_clean(&s.auth_requests()), 2);
    // XCLIENT LOGIN is xtext: the CR/LF of the name are +0D+0A.
    assert_plain_lines(&s.backend_bytes(), &["EHLO ", "XCLIENT ", "QUIT"]);
    let wire = String::from_utf8_lossy(&s.backend_bytes()).into_owned();
    assert!(
        wire.contains(
            "XCLIENT ADDR=127.0.0.1 LOGIN=evil+0D+0AAuth-Status+3DOK+0D+0Az+20DELETE+20INBOX NAME=[UNAVAILABLE]\r\n"
        ),
        "{wire:?}"
    );
}

// ---- (c) login attempts per session are bounded ----

/// `max_errors 3`: three malformed login attempts close the session with
/// the protocol's reply to the third; the auth server never hears of them.
#[test]
fn malformed_logins_are_bounded_by_max_errors() {
    let s = stack("imap", &[&user_entry()], &[], "    max_errors 3;");
    let mut c = Client::imap(s.postern.addr);
    c.expect("a AUTHENTICATE PLAIN !!!\r\n", &["a BAD invalid command\r\n"]);
    c.expect("b AUTHENTICATE PLAIN\r\n", &["+ \r\n"]);
    c.expect(&format!("{}\r\n", b64("no nul at all")), &["b BAD invalid command\r\n"]);
    c.send(b"c LOGIN onlyuser\r\n");
    assert_eq!(c.read_to_close(), b"c BAD invalid command\r\n");

    let s3 = stack("pop3", &[&user_entry()], &[], "    max_errors 3;");
    let (mut c, _) = greeted(&s3, "+OK");
    c.expect("AUTH PLAIN !!!\r\n", &["-ERR invalid command\r\n"]);
    c.expect("PASS before-user\r\n", &["-ERR invalid command\r\n"]);
    c.send(b"AUTH BOGUS\r\n");
    assert_eq!(c.read_to_close(), b"-ERR invalid command\r\n");

    let s4 = stack("smtp", &[&user_entry()], &[], "    max_errors 3;");
    let (mut c, _) = greeted(&s4, "220 ");
    c.send(b"EHLO c\r\n");
    smtp_reply(&mut c);
    c.expect("AUTH PLAIN !!!\r\n", &["501 5.5.4 Invalid argument\r\n"]);
    c.expect("AUTH LOGIN\r\n", &["334 VXNlcm5hbWU6\r\n"]);
    c.expect("%%%\r\n", &["501 5.5.4 Invalid argument\r\n"]);
    c.send(format!("AUTH PLAIN {}\r\n", b64("\0only-user")).as_bytes());
    assert_eq!(c.read_to_close(), b"501 5.5.4 Invalid argument\r\n");

    for stack in [&s, &s3, &s4] {
        assert!(
            stack.auth_requests().is_empty(),
            "a malformed login reached the auth server"
        );
        stack.postern.proc.wait_for("client sent too many invalid commands");
    }
}

/// Refused logins with Auth-Wait: every retry on the session waits the
/// whole delay before its answer (CRAM-MD5 and SASL PLAIN as well as LOGIN),
/// and each carries the next Auth-Login-Attempt, so the auth server can cut
/// the session off. As nginx, refused logins do not count against
/// `max_errors`: the third refusal below is answered, not closed.
#[test]
fn refused_logins_are_paced_by_auth_wait() {
    let s = stack(
        "imap",
        &[&user_entry()],
        &["--wait", "1"],
        "    max_errors 2;\n    imap_auth plain cram-md5;",
    );
    let mut c = Client::imap(s.postern.addr);
    let refused = |tag: &str| format!("{tag} NO Invalid login or password\r\n");
    let asked = Instant::now();
    c.expect(&format!("a LOGIN {USER} {WRONG}\r\n"), &[&refused("a")]);
    assert!(asked.elapsed() >= Duration::from_secs(1));
    let asked = Instant::now();
    c.expect(
        &format!("b AUTHENTICATE PLAIN {}\r\n", b64(format!("\0{USER}\0{WRONG}"))),
        &[&refused("b")],
    );
    assert!(asked.elapsed() >= Duration::from_secs(1));
    c.send(b"c AUTHENTICATE CRAM-MD5\r\n");
    let salt = challenge(&c.line(), "+ ");
    let asked = Instant::now();
    let answer = b64(format!("{USER} {}", hmac_md5_hex(WRONG.as_bytes(), salt.as_bytes())));
    c.expect(&format!("{answer}\r\n"), &[&refused("c")]);
    assert!(asked.elapsed() >= Duration::from_secs(1));
    c.expect(&format!("d LOGIN {USER} {PASS}\r\n"), &[&format!("d {IMAP_OK}")]);
    let requests = String::from_utf8_lossy(&s.auth_requests()).into_owned();
    for n in 1..=4 {
        assert!(
            requests.contains(&format!("Auth-Login-Attempt: {n}\r\n")),
            "attempt {n} missing: {requests}"
        );
    }
}

/// Without Auth-Wait the first refusal ends the session, also after a
/// challenge-response method.
#[test]
fn refused_sasl_login_without_auth_wait_closes() {
    let s = stack("pop3", &[&user_entry()], &[], "    pop3_auth plain apop cram-md5;");
    let (mut c, _) = greeted(&s, "+OK");
    c.send(b"AUTH CRAM-MD5\r\n");
    let salt = challenge(&c.line(), "+ ");
    let answer = b64(format!("{USER} {}", hmac_md5_hex(WRONG.as_bytes(), salt.as_bytes())));
    c.expect(&format!("{answer}\r\n"), &["-ERR Invalid login or password\r\n"]);
    assert_eq!(c.read_to_close(), b"");
}
