//! The IMAP `backend` subcommand over a real socket.

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use common::{Server, TempPath};
use postern_bench::message::seeded_message;

const SIZE: usize = 5000;

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends `bytes` and expects `reply` in return.
    fn call(&mut self, bytes: &[u8], reply: &str) {
        self.send(bytes);
        self.expect(reply);
    }

    fn line(&mut self) -> String {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        String::from_utf8(line).unwrap()
    }

    fn expect(&mut self, expected: &str) {
        for wanted in expected.split_inclusive('\n') {
            assert_eq!(self.line(), wanted);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).unwrap();
        buf
    }

    /// Reads `* n FETCH (UID n <item> {len}` CRLF, the literal and `)` CRLF.
    fn fetched(&mut self, n: usize, item: &str) -> Vec<u8> {
        let head = self.line();
        let prefix = format!("* {n} FETCH (UID {n} {item} {{");
        let len = head
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix("}\r\n"))
            .unwrap_or_else(|| panic!("unexpected FETCH line {head:?}"));
        let body = self.bytes(len.parse().unwrap());
        self.expect(")\r\n");
        body
    }

    fn eof(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap() == 0
    }
}

const GREETING: &str =
    "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR ID AUTH=OAUTHBEARER AUTH=XOAUTH2] postern-bench backend ready\r\n";
const LOGGED_IN: &str = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";

#[test]
fn login_select_fetch_append_logout() {
    let users = TempPath::new("users");
    std::fs::write(&users.0, "alice:secret\n").unwrap();
    let server = Server::start(&[
        "backend",
        "--users",
        users.as_str(),
        "--user",
        "bob:b",
        "--messages",
        "3",
        "--msg-bytes",
        &SIZE.to_string(),
    ]);
    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);

    c.send(b"a0 SELECT INBOX\r\n");
    c.expect("a0 BAD not authenticated\r\n");
    c.send(b"a1 LOGIN alice wrong\r\n");
    c.expect("a1 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n");
    c.send(b"a2 CAPABILITY\r\n");
    c.expect("* CAPABILITY IMAP4rev1 LITERAL+\r\na2 OK CAPABILITY completed\r\n");

    // LOGIN the way nginx does it: synchronizing literals.
    c.send(b"a3 LOGIN {5}\r\n");
    c.expect("+ go ahead\r\n");
    c.send(b"alice {6}\r\n");
    c.expect("+ go ahead\r\n");
    c.send(b"secret\r\n");
    c.expect(&format!("a3 {LOGGED_IN}"));

    c.send(b"a4 SELECT INBOX\r\n");
    c.expect(
        "* 3 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n\
         a4 OK [READ-WRITE] SELECT completed\r\n",
    );

    c.send(b"a5 FETCH 1 BODY[]\r\n");
    assert_eq!(c.fetched(1, "BODY[]"), seeded_message(1, SIZE));
    c.expect("a5 OK FETCH completed\r\n");

    c.send(b"a6 UID FETCH 2:* (BODY.PEEK[])\r\n");
    assert_eq!(c.fetched(2, "BODY[]"), seeded_message(2, SIZE));
    assert_eq!(c.fetched(3, "BODY[]"), seeded_message(3, SIZE));
    c.expect("a6 OK FETCH completed\r\n");

    // 1 MiB of every byte value, CR, LF and NUL included.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 256) as u8).collect();
    c.send(format!("a7 APPEND INBOX (\\Seen) {{{}+}}\r\n", big.len()).as_bytes());
    c.send(&big);
    c.send(b"\r\n");
    c.expect("a7 OK [APPENDUID 1 4] APPEND completed\r\n");

    c.send(format!("a8 APPEND INBOX {{{}}}\r\n", big.len()).as_bytes());
    c.expect("+ go ahead\r\n");
    c.send(&big[1..]);
    c.send(b"!\r\n");
    c.expect("a8 OK [APPENDUID 1 5] APPEND completed\r\n");

    c.send(b"a9 UID FETCH 4 RFC822\r\n");
    assert!(c.fetched(4, "RFC822") == big, "APPENDed message 4 differs");
    c.expect("a9 OK FETCH completed\r\n");
    c.send(b"b1 FETCH 5 BODY[]\r\n");
    let fifth = c.fetched(5, "BODY[]");
    assert!(fifth[..big.len() - 1] == big[1..] && fifth.ends_with(b"!"));
    c.expect("b1 OK FETCH completed\r\n");

    c.send(b"b2 FROB\r\n");
    c.expect("b2 BAD unknown command\r\n");
    c.send(b"b3 LOGOUT\r\n");
    c.expect("* BYE logging out\r\nb3 OK LOGOUT completed\r\n");
    assert!(c.eof());

    // Appends are private to their connection.
    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);
    c.send(b"c1 LOGIN bob b\r\nc2 EXAMINE INBOX\r\n");
    c.expect(&format!("c1 {LOGGED_IN}"));
    c.expect("* 3 EXISTS\r\n");
}

#[test]
fn without_users_every_login_succeeds() {
    let server = Server::start(&["backend", "--messages", "0"]);
    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);
    c.send(b"x LOGIN \"any one\" {3+}\r\npw!\r\ny SELECT INBOX\r\nz FETCH 1:* BODY[]\r\n");
    c.expect(&format!("x {LOGGED_IN}"));
    c.expect("* 0 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n");
    c.expect("y OK [READ-WRITE] SELECT completed\r\n");
    c.expect("z BAD invalid message sequence number\r\n");
    c.send(b"w UID FETCH 1:* BODY[]\r\n");
    c.expect("w OK FETCH completed\r\n");
}

#[test]
fn user_names_with_any_bytes() {
    let server = Server::start(&[
        OsStr::new("backend"),
        OsStr::new("--user"),
        OsStr::new("a\r\nb %\"\\:p w"),
        OsStr::new("--user"),
        OsStr::from_bytes(b"q\"\\\xff:{1}"),
    ]);
    let no = "NO [AUTHENTICATIONFAILED] Invalid credentials\r\n";
    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);
    // Off by one byte: LF where the user has CR LF.
    c.call(b"t1 LOGIN {7}\r\n", "+ go ahead\r\n");
    c.call(b"a\nb %\"\\ {3}\r\n", "+ go ahead\r\n");
    c.call(b"p w\r\n", &format!("t1 {no}"));
    // A literal is compared byte for byte, with no unescaping.
    c.call(b"t2 LOGIN {9+}\r\na\r\nb %\"\\\\ \"p w\"\r\n", &format!("t2 {no}"));
    c.call(b"t3 LOGIN {8}\r\n", "+ go ahead\r\n");
    c.call(b"a\r\nb %\"\\ {3}\r\n", "+ go ahead\r\n");
    c.call(b"p w\r\n", &format!("t3 {LOGGED_IN}"));

    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);
    // Quoted strings unescape \" and \\; 8-bit bytes pass through.
    c.call(b"u1 LOGIN \"q\\\"\\\\\xff\" \"{2}\"\r\n", &format!("u1 {no}"));
    c.call(b"u2 LOGIN \"q\\\"\\\\\xff\" \"{1}\"\r\n", &format!("u2 {LOGGED_IN}"));
    let mut c = Client::connect(&server.addr);
    c.expect(GREETING);
    c.call(
        b"v1 LOGIN {4+}\r\nq\"\\\xff {3+}\r\n{1}\r\n",
        &format!("v1 {LOGGED_IN}"),
    );
}

#[test]
fn record_appends_every_byte_from_every_client() {
    let record = TempPath::new("record");
    std::fs::write(&record.0, b"earlier run\n").unwrap();
    let server = Server::start(&[
        "backend",
        "--messages",
        "1",
        "--msg-bytes",
        "100",
        "--record",
        record.as_str(),
    ]);
    let mut expected = b"earlier run\n".to_vec();
    let mut a = Client::connect(&server.addr);
    let mut b = Client::connect(&server.addr);
    a.expect(GREETING);
    b.expect(GREETING);
    // Every reply is written after its bytes were read, and so recorded.
    let mut step = |c: &mut Client, bytes: &[u8], reply: &str| {
        c.call(bytes, reply);
        expected.extend_from_slice(bytes);
    };
    step(&mut a, b"a1 LOGIN {4}\r\n", "+ go ahead\r\n");
    step(&mut b, b"b1 NOOP\r\n", "b1 OK NOOP completed\r\n");
    step(&mut a, b"u\r\n\xff {1}\r\n", "+ go ahead\r\n");
    step(&mut a, b"\0\r\n", &format!("a1 {LOGGED_IN}"));
    step(&mut b, b"b2 FROB \"\\\\\"\r\n", "b2 BAD unknown command\r\n");
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let mut append = b"a2 APPEND INBOX {70000+}\r\n".to_vec();
    append.extend_from_slice(&binary);
    append.extend_from_slice(b"\r\n");
    step(&mut a, &append, "a2 OK [APPENDUID 1 2] APPEND completed\r\n");
    step(
        &mut b,
        b"b3 LOGOUT\r\n",
        "* BYE logging out\r\nb3 OK LOGOUT completed\r\n",
    );
    assert!(b.eof());
    step(&mut a, b"a3 bad\n", "a3 BAD line must end with CRLF\r\n");
    let recorded = std::fs::read(&record.0).unwrap();
    assert!(
        recorded == expected,
        "record differs:\n{}",
        String::from_utf8_lossy(&recorded)
    );
}
