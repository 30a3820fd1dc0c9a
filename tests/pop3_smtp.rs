//! POP3 and SMTP through Postern end to end: every auth method per
//! protocol, XCLIENT on the wire, smtp_auth none, greeting delay, 20 MB each
//! way, and the standard library's poplib and smtplib plus curl as clients.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use postern_bench::message::{dot_stuff, seeded_message};

const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::STANDARD;

struct Stack {
    backend: Companion,
    postern: Postern,
    dir: TempDir,
    _auth: Companion,
}

impl Stack {
    fn auth_requests(&self) -> String {
        String::from_utf8_lossy(&read_file(&self.dir.path("auth-requests"))).into_owned()
    }

    fn backend_bytes(&self) -> String {
        String::from_utf8_lossy(&read_file(&self.dir.path("backend-bytes"))).into_owned()
    }
}

/// A `protocol` backend and auth server for bob:secret, Postern in front.
fn stack(protocol: &str, size: usize, auth_extra: &[&str], main: &str, mail_extra: &str) -> Stack {
    let dir = TempDir::new(protocol);
    let record = dir.path("backend-bytes").display().to_string();
    let deliveries = dir.path("deliveries");
    std::fs::create_dir_all(&deliveries).unwrap();
    let deliveries = deliveries.display().to_string();
    let size_text = size.to_string();
    let mut args = vec![
        "backend",
        "--protocol",
        protocol,
        "--user",
        "bob:secret",
        "--messages",
        "2",
        "--msg-bytes",
        &size_text,
        "--record",
        &record,
    ];
    if protocol == "smtp" {
        args.extend(["--deliveries", deliveries.as_str()]);
    }
    let backend = start_bench(&args);
    let route = format!("{protocol}={}", backend.addr);
    let auth_record = dir.path("auth-requests").display().to_string();
    let mut auth_args = vec![
        "auth",
        "--backend",
        &route,
        "--user",
        "bob:secret",
        "--record",
        &auth_record,
    ];
    auth_args.extend_from_slice(auth_extra);
    let auth = start_bench(&auth_args);
    let body = format!("{}\n{mail_extra}", auth_http(&auth));
    let postern = start_postern_protocol(protocol, main, &body, &[]);
    Stack {
        backend,
        postern,
        dir,
        _auth: auth,
    }
}

fn pop3(extra: &str) -> Stack {
    stack("pop3", 3000, &[], "error_log stderr info;", extra)
}

fn smtp(auth_extra: &[&str], mail_extra: &str) -> Stack {
    stack("smtp", 100, auth_extra, "error_log stderr info;", mail_extra)
}

fn greeted(s: &Stack, greeting_start: &str) -> Client {
    let mut c = Client::connect(s.postern.addr);
    let line = c.line();
    assert!(line.starts_with(greeting_start), "{line}");
    c
}

// ---- POP3 ----

#[test]
fn pop3_user_pass_and_retr() {
    let s = pop3("");
    let mut c = greeted(&s, "+OK POP3 ready\r\n");
    c.expect(
        "CAPA\r\n",
        &[
            "+OK Capability list follows\r\n",
            "TOP\r\n",
            "USER\r\n",
            "UIDL\r\n",
            "SASL PLAIN LOGIN\r\n",
            ".\r\n",
        ],
    );
    c.expect("USER bob\r\n", &["+OK\r\n"]);
    c.expect("PASS secret\r\n", &["+OK logged in\r\n"]);
    c.send(b"RETR 1\r\n");
    assert_eq!(c.line(), "+OK 3000 octets\r\n");
    let stuffed = dot_stuff(&seeded_message(1, 3000));
    assert_eq!(c.exact(stuffed.len()), stuffed);
    assert_eq!(c.line(), ".\r\n");
    c.expect("QUIT\r\n", &["+OK bye\r\n"]);
    assert!(
        s.backend_bytes().starts_with("USER bob\r\nPASS secret\r\nRETR 1\r\n"),
        "{}",
        s.backend_bytes()
    );
}

#[test]
fn pop3_sasl_methods() {
    let s = stack(
        "pop3",
        100,
        &[],
        "error_log stderr info;",
        "    pop3_auth plain apop cram-md5;",
    );
    let mut c = Client::connect(s.postern.addr);
    let greeting = c.line();
    let salt = greeting
        .trim_end()
        .strip_prefix("+OK POP3 ready ")
        .expect("a salt in the greeting")
        .to_string();
    assert!(
        salt.starts_with('<') && salt.ends_with(">") && salt.contains('@'),
        "{salt}"
    );
    c.expect(
        "AUTH\r\n",
        &[
            "+OK methods supported:\r\n",
            "PLAIN\r\n",
            "LOGIN\r\n",
            "CRAM-MD5\r\n",
            ".\r\n",
        ],
    );
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0secret")),
        &["+OK logged in\r\n"],
    );
    // APOP: the auth server checks MD5(salt + secret) and sends the password
    // the backend needs.
    let mut c = Client::connect(s.postern.addr);
    let salt = c.line().trim_end().strip_prefix("+OK POP3 ready ").unwrap().to_string();
    let digest = postern_bench::digest::md5_hex(format!("{salt}secret").as_bytes());
    c.expect(&format!("APOP bob {digest}\r\n"), &["+OK logged in\r\n"]);
    let requests = s.auth_requests();
    assert!(
        requests.contains(&format!(
            "Auth-Method: apop\r\nAuth-User: bob\r\nAuth-Pass: {digest}\r\nAuth-Salt: {salt}\r\n"
        )),
        "{requests}"
    );
}

#[test]
fn pop3_wrong_password_with_and_without_auth_wait() {
    let s = pop3("");
    let mut c = greeted(&s, "+OK");
    c.expect("USER bob\r\n", &["+OK\r\n"]);
    c.expect("PASS wrong\r\n", &["-ERR Invalid login or password\r\n"]);
    assert_eq!(c.read_to_close(), b"");
    let s = stack("pop3", 100, &["--wait", "1"], "error_log stderr info;", "");
    let mut c = greeted(&s, "+OK");
    c.expect("USER bob\r\n", &["+OK\r\n"]);
    let asked = Instant::now();
    c.expect("PASS wrong\r\n", &["-ERR Invalid login or password\r\n"]);
    assert!(asked.elapsed() >= Duration::from_secs(1));
    c.expect("USER bob\r\n", &["+OK\r\n"]);
    c.expect("PASS secret\r\n", &["+OK logged in\r\n"]);
}

#[test]
fn pop3_twenty_megabyte_retr() {
    const SIZE: usize = 20 * 1024 * 1024;
    let s = stack("pop3", SIZE, &[], "error_log stderr info;", "");
    let mut c = greeted(&s, "+OK");
    c.send(b"USER bob\r\nPASS secret\r\n");
    assert_eq!(c.line(), "+OK\r\n");
    assert_eq!(c.line(), "+OK logged in\r\n");
    c.send(b"RETR 2\r\n");
    assert_eq!(c.line(), format!("+OK {SIZE} octets\r\n"));
    let stuffed = dot_stuff(&seeded_message(2, SIZE));
    assert!(c.exact(stuffed.len()) == stuffed, "RETR bytes differ");
    assert_eq!(c.line(), ".\r\n");
}

#[test]
fn poplib_session() {
    let s = pop3("");
    let script = format!(
        r#"
import poplib, sys
p = poplib.POP3("127.0.0.1", {port})
p.user("bob"); p.pass_("secret")
count, size = p.stat()
assert count == 2, count
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"\r\n".join(lines) + b"\r\n")
p.quit()
"#,
        port = s.postern.addr.port()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == seeded_message(1, 3000), "poplib got other bytes");
}

#[test]
fn curl_pop3() {
    let s = pop3("");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-u",
            "bob:secret",
            &format!("pop3://{}/1", s.postern.addr),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == seeded_message(1, 3000), "curl got other bytes");
}

// ---- SMTP ----

fn ehlo(c: &mut Client) -> Vec<String> {
    c.send(b"EHLO client.example\r\n");
    let mut lines = Vec::new();
    loop {
        let line = c.line();
        let last = line.as_bytes().get(3) == Some(&b' ');
        lines.push(line);
        if last {
            return lines;
        }
    }
}

#[test]
fn smtp_auth_plain_then_mail_with_xclient_on_the_wire() {
    let s = smtp(&[], "");
    let mut c = greeted(&s, "220 ");
    assert_eq!(ehlo(&mut c).last().unwrap(), "250 AUTH PLAIN LOGIN\r\n");
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0secret")),
        &["235 2.0.0 OK\r\n"],
    );
    c.expect("MAIL FROM:<bob@example.com>\r\n", &["250 2.1.0 Ok\r\n"]);
    c.expect("RCPT TO:<alice@example.com>\r\n", &["250 2.1.5 Ok\r\n"]);
    c.expect("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>\r\n"]);
    c.expect("Subject: hi\r\n\r\n..dot\r\n.\r\n", &["250 2.0.0 Ok: queued as 1\r\n"]);
    c.expect("QUIT\r\n", &["221 2.0.0 Bye\r\n"]);
    assert_eq!(
        std::fs::read(s.dir.path("deliveries/1.eml")).unwrap(),
        b"Subject: hi\r\n\r\n.dot\r\n"
    );
    let wire = s.backend_bytes();
    let server_name = wire.lines().next().unwrap().strip_prefix("EHLO ").unwrap().to_string();
    assert!(
        wire.starts_with(&format!(
            "EHLO {server_name}\r\nXCLIENT ADDR=127.0.0.1 LOGIN=bob NAME=[UNAVAILABLE]\r\nEHLO client.example\r\nMAIL FROM:<bob@example.com>\r\n"
        )),
        "{wire}"
    );
    assert!(
        s.auth_requests().contains("Client-Host: [UNAVAILABLE]\r\n"),
        "{}",
        s.auth_requests()
    );
}

#[test]
fn xclient_login_is_xtext() {
    let dir = TempDir::new("xtext");
    let record = dir.path("wire").display().to_string();
    let user = "b+o=b\u{e9}";
    let entry = format!("{user}:pw");
    let backend = start_bench(&["backend", "--protocol", "smtp", "--record", &record]);
    let route = format!("smtp={}", backend.addr);
    let auth = start_bench(&["auth", "--backend", &route, "--user", &entry]);
    let postern = start_postern_protocol("smtp", "error_log stderr info;", &auth_http(&auth), &[]);
    let mut c = Client::connect(postern.addr);
    assert!(c.line().starts_with("220 "));
    c.send(b"EHLO c\r\n");
    while c.line().as_bytes().get(3) != Some(&b' ') {}
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode(format!("\0{user}\0pw"))),
        &["235 2.0.0 OK\r\n"],
    );
    let wire = String::from_utf8_lossy(&read_file(&dir.path("wire"))).into_owned();
    assert!(
        wire.contains("\r\nXCLIENT ADDR=127.0.0.1 LOGIN=b+2Bo+3Db+C3+A9 NAME=[UNAVAILABLE]\r\n"),
        "{wire}"
    );
}

#[test]
fn smtp_auth_none_sends_the_envelope_to_the_auth_server() {
    let s = smtp(&[], "    smtp_auth none;");
    let mut c = greeted(&s, "220 ");
    assert!(ehlo(&mut c).last().unwrap().starts_with("250 "));
    c.expect("MAIL FROM:<a@example.com>\r\n", &["250 2.0.0 OK\r\n"]);
    c.expect("RCPT TO:<b@example.com>\r\n", &["250 2.1.5 Ok\r\n"]);
    c.expect("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>\r\n"]);
    c.expect("body\r\n.\r\n", &["250 2.0.0 Ok: queued as 1\r\n"]);
    let requests = s.auth_requests();
    for header in [
        "Auth-Method: none\r\n",
        "Auth-Protocol: smtp\r\n",
        "Auth-SMTP-Helo: client.example\r\n",
        "Auth-SMTP-From: MAIL%20FROM:<a@example.com>\r\n",
        "Auth-SMTP-To: RCPT%20TO:<b@example.com>\r\n",
    ] {
        assert!(requests.contains(header), "no {header:?} in {requests}");
    }
}

#[test]
fn auth_error_code_reaches_the_smtp_client() {
    let s = smtp(&["--error-code", "454 4.7.0", "--error", "Temporary failure"], "");
    let mut c = greeted(&s, "220 ");
    ehlo(&mut c);
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0wrong")),
        &["454 4.7.0 Temporary failure\r\n"],
    );
    assert_eq!(c.read_to_close(), b"");
    let s = smtp(&[], "");
    let mut c = greeted(&s, "220 ");
    ehlo(&mut c);
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0wrong")),
        &["535 5.7.0 Invalid login or password\r\n"],
    );
}

#[test]
fn greeting_delay_rejects_an_early_talker() {
    let s = smtp(&[], "    smtp_greeting_delay 1s;");
    let mut early = Client::connect(s.postern.addr);
    early.send(b"EHLO spammer\r\n");
    assert_eq!(
        early.read_to_close(),
        b"503 5.5.0 Improper use of SMTP command pipelining\r\n"
    );
    // Timed from before the connect: the delay starts at accept, after it.
    let connecting = Instant::now();
    let mut patient = Client::connect(s.postern.addr);
    assert!(patient.line().starts_with("220 "));
    assert!(connecting.elapsed() >= Duration::from_secs(1));
}

#[test]
fn smtp_pipelining_in_order() {
    let s = smtp(&[], "");
    let mut c = greeted(&s, "220 ");
    c.send(
        format!(
            "EHLO c\r\nNOOP\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n",
            B64.encode("\0bob\0secret")
        )
        .as_bytes(),
    );
    let mut line = c.line();
    while line.starts_with("250-") {
        line = c.line();
    }
    assert_eq!(line, "250 AUTH PLAIN LOGIN\r\n");
    for want in [
        "250 2.0.0 OK\r\n",
        "235 2.0.0 OK\r\n",
        "250 2.1.0 Ok\r\n",
        "250 2.1.5 Ok\r\n",
        "354 End data with <CR><LF>.<CR><LF>\r\n",
    ] {
        assert_eq!(c.line(), want);
    }
}

#[test]
fn smtp_twenty_megabyte_data() {
    const SIZE: usize = 20 * 1024 * 1024;
    let s = smtp(&[], "");
    let mut c = greeted(&s, "220 ");
    ehlo(&mut c);
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0secret")),
        &["235 2.0.0 OK\r\n"],
    );
    c.expect("MAIL FROM:<a@b>\r\n", &["250 2.1.0 Ok\r\n"]);
    c.expect("RCPT TO:<c@d>\r\n", &["250 2.1.5 Ok\r\n"]);
    c.expect("DATA\r\n", &["354 End data with <CR><LF>.<CR><LF>\r\n"]);
    let message = seeded_message(1, SIZE);
    c.send(&dot_stuff(&message));
    c.expect(".\r\n", &["250 2.0.0 Ok: queued as 1\r\n"]);
    assert!(
        std::fs::read(s.dir.path("deliveries/1.eml")).unwrap() == message,
        "delivered bytes differ"
    );
}

#[test]
fn smtplib_and_curl_send_mail() {
    let s = smtp(&[], "");
    let script = format!(
        r#"
import smtplib
s = smtplib.SMTP("127.0.0.1", {port})
s.ehlo("py.example")
s.login("bob", "secret")
s.sendmail("bob@example.com", ["alice@example.com"], "Subject: smtplib\r\n\r\nhello\r\n")
s.quit()
"#,
        port = s.postern.addr.port()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(s.dir.path("deliveries/1.eml")).unwrap(),
        b"Subject: smtplib\r\n\r\nhello\r\n"
    );

    let mail = s.dir.path("mail.txt");
    std::fs::write(&mail, "Subject: curl\r\n\r\nvia curl\r\n").unwrap();
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-u",
            "bob:secret",
            "--mail-from",
            "bob@example.com",
            "--mail-rcpt",
            "alice@example.com",
            "--upload-file",
        ])
        .arg(&mail)
        .arg(format!("smtp://{}", s.postern.addr))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(s.dir.path("deliveries/2.eml")).unwrap(),
        b"Subject: curl\r\n\r\nvia curl\r\n"
    );
    let _ = &s.backend;
}

/// The challenge line's base64 salt, decoded.
fn salt_of(challenge: &str, prefix: &str) -> String {
    let b64 = challenge
        .trim_end()
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{challenge:?}"));
    String::from_utf8(B64.decode(b64).unwrap()).unwrap()
}

fn cram_answer(salt: &str) -> String {
    let digest = postern_bench::digest::hmac_md5_hex(b"secret", salt.as_bytes());
    format!("{}\r\n", B64.encode(format!("bob {digest}")))
}

/// Every SASL method of every protocol it belongs to, end to end: the auth
/// server checks CRAM-MD5 digests against the salt Postern made and sends
/// the password the backend needs.
#[test]
fn every_auth_method_per_protocol() {
    let imap = stack(
        "imap",
        10,
        &[],
        "error_log stderr info;",
        "    imap_auth plain login cram-md5 external;",
    );
    let imap_ok = |tag: &str| format!("{tag} OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n");
    let mut c = greeted(&imap, "* OK");
    c.send(b"a AUTHENTICATE CRAM-MD5\r\n");
    let salt = salt_of(&c.line(), "+ ");
    c.expect(&cram_answer(&salt), &[&imap_ok("a")]);
    let mut c = greeted(&imap, "* OK");
    c.expect("b AUTHENTICATE EXTERNAL Ym9i\r\n", &[&imap_ok("b")]);
    assert!(imap
        .auth_requests()
        .contains("Auth-Method: cram-md5\r\nAuth-User: bob\r\n"));
    assert!(imap
        .auth_requests()
        .contains("Auth-Method: external\r\nAuth-User: bob\r\nAuth-Pass: \r\n"));

    let pop3 = stack(
        "pop3",
        10,
        &[],
        "error_log stderr info;",
        "    pop3_auth plain apop cram-md5 external;",
    );
    let mut c = greeted(&pop3, "+OK POP3 ready <");
    c.expect("AUTH LOGIN\r\n", &["+ VXNlcm5hbWU6\r\n"]);
    c.expect("Ym9i\r\n", &["+ UGFzc3dvcmQ6\r\n"]);
    c.expect("c2VjcmV0\r\n", &["+OK logged in\r\n"]);
    let mut c = greeted(&pop3, "+OK POP3 ready <");
    c.send(b"AUTH CRAM-MD5\r\n");
    let salt = salt_of(&c.line(), "+ ");
    c.expect(&cram_answer(&salt), &["+OK logged in\r\n"]);
    let mut c = greeted(&pop3, "+OK POP3 ready <");
    c.expect("AUTH EXTERNAL Ym9i\r\n", &["+OK logged in\r\n"]);

    let smtp = stack(
        "smtp",
        10,
        &[],
        "error_log stderr info;",
        "    smtp_auth plain login cram-md5 external;",
    );
    let mut c = greeted(&smtp, "220 ");
    assert_eq!(
        ehlo(&mut c).last().unwrap(),
        "250 AUTH PLAIN LOGIN CRAM-MD5 EXTERNAL\r\n"
    );
    c.expect("AUTH LOGIN\r\n", &["334 VXNlcm5hbWU6\r\n"]);
    c.expect("Ym9i\r\n", &["334 UGFzc3dvcmQ6\r\n"]);
    c.expect("c2VjcmV0\r\n", &["235 2.0.0 OK\r\n"]);
    let mut c = greeted(&smtp, "220 ");
    ehlo(&mut c);
    c.send(b"AUTH CRAM-MD5\r\n");
    let salt = salt_of(&c.line(), "334 ");
    c.expect(&cram_answer(&salt), &["235 2.0.0 OK\r\n"]);
    let mut c = greeted(&smtp, "220 ");
    ehlo(&mut c);
    c.expect("AUTH EXTERNAL Ym9i\r\n", &["235 2.0.0 OK\r\n"]);
}

/// After APOP the auth server must send Auth-Pass (the digest is no password
/// for the backend); without it the client gets the internal error.
#[test]
fn digest_login_without_auth_pass_is_internal_error() {
    let s = stack(
        "pop3",
        10,
        &["--no-backend-pass"],
        "error_log stderr info;",
        "    pop3_auth plain apop;",
    );
    let mut c = Client::connect(s.postern.addr);
    let salt = c.line().trim_end().strip_prefix("+OK POP3 ready ").unwrap().to_string();
    let digest = postern_bench::digest::md5_hex(format!("{salt}secret").as_bytes());
    c.expect(&format!("APOP bob {digest}\r\n"), &["-ERR internal server error\r\n"]);
    assert_eq!(c.read_to_close(), b"");
}

#[test]
fn smtp_wrong_password_with_auth_wait_then_retry() {
    let s = smtp(&["--wait", "1"], "");
    let mut c = greeted(&s, "220 ");
    ehlo(&mut c);
    let asked = Instant::now();
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0wrong")),
        &["535 5.7.0 Invalid login or password\r\n"],
    );
    assert!(asked.elapsed() >= Duration::from_secs(1));
    c.expect(
        &format!("AUTH PLAIN {}\r\n", B64.encode("\0bob\0secret")),
        &["235 2.0.0 OK\r\n"],
    );
}
