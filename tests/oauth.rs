//! OAuth 2.0 bearer tokens through Postern end to end: OAUTHBEARER and
//! XOAUTH2 from curl (`--oauth2-bearer`) over IMAP, POP3 and SMTP and from
//! Python's imaplib, the error challenge exchange, the token bound, and the
//! token passed on to a backend that checks it. The bench auth server
//! takes a token for a password: `--user bob:TOKEN`.

mod common;

use std::process::Command;

use base64::Engine as _;
use common::*;
use postern_bench::message::seeded_message;

const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Longer than a client buffer (4k), as real tokens are: the line carrying
/// it must pass anyway, bounded by `oauth_max_token_size`.
fn token() -> String {
    let mut token = String::from("ya29.");
    while token.len() < 6000 {
        token.push_str("a0-_.~+/Z9");
    }
    token
}

struct Stack {
    postern: Postern,
    dir: TempDir,
    _backend: Companion,
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

/// A `protocol` backend knowing `backend_user`, the auth server knowing
/// `bob:TOKEN` (plus `auth_extra`), Postern with `mail_extra`.
fn stack(protocol: &str, backend_user: &str, auth_extra: &[&str], mail_extra: &str) -> Stack {
    let dir = TempDir::new(&format!("oauth-{protocol}"));
    let record = dir.path("backend-bytes").display().to_string();
    let deliveries = dir.path("deliveries");
    std::fs::create_dir_all(&deliveries).unwrap();
    let deliveries = deliveries.display().to_string();
    let mut args = vec![
        "backend",
        "--protocol",
        protocol,
        "--user",
        backend_user,
        "--messages",
        "2",
        "--msg-bytes",
        "3000",
        "--record",
        &record,
    ];
    if protocol == "smtp" {
        args.extend(["--deliveries", deliveries.as_str()]);
    }
    let backend = start_bench(&args);
    let route = format!("{protocol}={}", backend.addr);
    let auth_record = dir.path("auth-requests").display().to_string();
    let user = format!("bob:{}", token());
    let mut auth_args = vec!["auth", "--backend", &route, "--user", &user, "--record", &auth_record];
    auth_args.extend_from_slice(auth_extra);
    let auth = start_bench(&auth_args);
    let body = format!("{}\n{mail_extra}", auth_http(&auth));
    let postern = start_postern_protocol(protocol, "error_log stderr info;", &body, &[]);
    Stack {
        postern,
        dir,
        _backend: backend,
        _auth: auth,
    }
}

/// The backend takes a password; the auth server gives it for the token.
fn password_stack(protocol: &str, mail_extra: &str) -> Stack {
    stack(protocol, "bob:secret", &["--override", "bob=bob:secret"], mail_extra)
}

fn curl(args: &[&str]) -> Vec<u8> {
    let token = token();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-u", "bob:", "--oauth2-bearer", &token])
        .args(args)
        .output()
        .expect("curl is required (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// curl picks OAUTHBEARER when it is advertised, else XOAUTH2.
#[test]
fn curl_imap_oauthbearer_and_xoauth2() {
    for method in ["oauthbearer", "xoauth2"] {
        let s = password_stack("imap", &format!("imap_auth {method};"));
        let url = format!("imap://{}/INBOX;MAILINDEX=2", s.postern.addr);
        assert!(curl(&[&url]) == seeded_message(2, 3000), "curl got other bytes");
        let requests = s.auth_requests();
        let head = format!("Auth-Method: {method}\r\nAuth-User: bob\r\nAuth-Pass: {}\r\n", token());
        assert!(
            requests.contains(&head),
            "{method}: {}",
            &requests[..200.min(requests.len())]
        );
        // The backend got a password login, never the token.
        let wire = s.backend_bytes();
        assert!(wire.contains("LOGIN \"bob\" \"secret\""), "{wire}");
        assert!(!wire.contains(&token()), "token on the backend wire");
    }
}

#[test]
fn curl_pop3_and_smtp() {
    let s = password_stack("pop3", "pop3_auth xoauth2;");
    let url = format!("pop3://{}/1", s.postern.addr);
    assert!(curl(&[&url]) == seeded_message(1, 3000), "curl got other bytes");
    assert!(s.auth_requests().contains("Auth-Method: xoauth2\r\n"));

    let s = password_stack("smtp", "smtp_auth oauthbearer;");
    let mail = s.dir.path("mail.eml");
    std::fs::write(&mail, "Subject: hi\r\n\r\nbody\r\n").unwrap();
    let mail = mail.display().to_string();
    let url = format!("smtp://{}", s.postern.addr);
    curl(&[
        &url,
        "--mail-from",
        "bob@example.com",
        "--mail-rcpt",
        "alice@example.com",
        "--upload-file",
        &mail,
    ]);
    assert!(s
        .auth_requests()
        .contains("Auth-Method: oauthbearer\r\nAuth-User: bob\r\n"));
    assert_eq!(
        std::fs::read(s.dir.path("deliveries/1.eml")).unwrap(),
        b"Subject: hi\r\n\r\nbody\r\n"
    );
    assert!(s.backend_bytes().contains(" LOGIN=bob "), "{}", s.backend_bytes());
}

#[test]
fn python_imaplib_xoauth2() {
    let s = password_stack("imap", "imap_auth xoauth2;");
    let script = format!(
        "import imaplib\n\
         m = imaplib.IMAP4('127.0.0.1', {port})\n\
         typ, data = m.authenticate('XOAUTH2', lambda _: b'user=bob\\x01auth=Bearer {token}\\x01\\x01')\n\
         print(typ)\n\
         m.select('INBOX')\n\
         typ, data = m.fetch('1', '(BODY[])')\n\
         import sys; sys.stdout.buffer.write(data[0][1])\n",
        port = s.postern.addr.port(),
        token = token()
    );
    let out = Command::new("python3").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut want = b"OK\n".to_vec();
    want.extend_from_slice(&seeded_message(1, 3000));
    assert!(out.stdout == want, "{}", String::from_utf8_lossy(&out.stdout));
}

/// RFC 7628 3.2.3 on the wire: the auth server's JSON as the challenge, the
/// client's dummy response, then the refusal.
#[test]
fn failure_exchange() {
    let json = r#"{"status":"invalid_token","scope":"mail"}"#;
    let s = stack(
        "imap",
        "bob:secret",
        &["--error-sasl", json, "--error", "Invalid token"],
        "imap_auth oauthbearer;",
    );
    let mut c = Client::imap(s.postern.addr);
    let ir = B64.encode("n,a=bob,\x01auth=Bearer wrong\x01\x01");
    c.expect(
        &format!("a AUTHENTICATE OAUTHBEARER {ir}\r\n"),
        &[&format!("+ {}\r\n", B64.encode(json))],
    );
    c.expect("AQ==\r\n", &["a NO Invalid token\r\n"]);
    assert_eq!(c.read_to_close(), b"");

    // Without Auth-Error-SASL, Postern's default challenge; SMTP's 334.
    let s = stack("smtp", "bob:secret", &[], "smtp_auth xoauth2;");
    let mut c = Client::connect(s.postern.addr);
    assert!(c.line().starts_with("220 "));
    c.send(b"EHLO c\r\n");
    while c.line().as_bytes().get(3) != Some(&b' ') {}
    let ir = B64.encode("user=bob\x01auth=Bearer wrong\x01\x01");
    let challenge = B64.encode(r#"{"status":"invalid_token","schemes":"bearer","scope":""}"#);
    c.expect(&format!("AUTH XOAUTH2 {ir}\r\n"), &[&format!("334 {challenge}\r\n")]);
    c.expect("\r\n", &["535 5.7.0 Invalid login or password\r\n"]);
}

#[test]
fn oversize_token_is_refused() {
    let s = password_stack("imap", "imap_auth xoauth2;\n    oauth_max_token_size 1k;");
    let mut c = Client::imap(s.postern.addr);
    // A whole line under the line bound, its token over 1k.
    let line = format!(
        "a AUTHENTICATE XOAUTH2 {}\r\n",
        B64.encode(format!("user=bob\x01auth=Bearer {}\x01\x01", &token()[..2000]))
    );
    c.send(line.as_bytes());
    assert_eq!(c.line(), "a BAD token too long\r\n");
    assert_eq!(c.read_to_close_lossy(), b"");
    // A line past the bound is refused before its end arrives.
    let mut c = Client::imap(s.postern.addr);
    let mut line = b"b AUTHENTICATE XOAUTH2 ".to_vec();
    // 4096 + 4 * ceil((1024 + 4096) / 3) = 10924 bytes is the bound; all
    // of this is read (three reads), so the close sends no reset.
    line.resize(12 * 1024, b'A');
    c.send(&line);
    assert_eq!(c.line(), "b BAD token too long\r\n");
    assert_eq!(c.read_to_close_lossy(), b"");
}

/// `Auth-Method: xoauth2` in the auth server's reply: the token goes on to
/// the backend, which checks it (the bench backend takes it as bob's
/// password), with SASL-IR as its greeting allows.
#[test]
fn token_passed_through_to_the_backend() {
    let backend_user = format!("bob:{}", token());
    let s = stack(
        "imap",
        &backend_user,
        &["--ok-header", "Auth-Method: xoauth2"],
        "imap_auth oauthbearer;",
    );
    let mut c = Client::imap(s.postern.addr);
    let ir = B64.encode(format!("n,a=bob,\x01auth=Bearer {}\x01\x01", token()));
    c.expect(
        &format!("a AUTHENTICATE OAUTHBEARER {ir}\r\n"),
        &["a OK [CAPABILITY IMAP4rev1 LITERAL+] AUTHENTICATE completed\r\n"],
    );
    c.expect("b NOOP\r\n", &["b OK NOOP completed\r\n"]);
    let sent = B64.encode(format!("user=bob\x01auth=Bearer {}\x01\x01", token()));
    assert!(s
        .backend_bytes()
        .starts_with(&format!("a AUTHENTICATE XOAUTH2 {sent}\r\n")));
    // The token is never logged.
    c.expect("c LOGOUT\r\n", &["* BYE logging out\r\n", "c OK LOGOUT completed\r\n"]);
    drop(c);
    s.postern.proc.wait_for("session done");
    assert!(!s.postern.proc.log().contains(&token()[..40]));
}
