use super::*;
use crate::backend::Protocol;
use crate::message::seeded_message;
use crate::users::Users;
use std::io::Cursor;

fn config(users: &[(&str, &str)]) -> Config {
    let mut table = Users::default();
    for (name, pass) in users {
        table.insert(name.as_bytes().to_vec(), pass.as_bytes().to_vec());
    }
    Config {
        protocol: Protocol::Imap,
        users: table,
        mailbox: Mailbox::seeded(2, 100),
        ..Config::default()
    }
}

/// Runs a whole scripted session and returns everything the server wrote.
fn transcript(config: &Config, input: &[u8]) -> Vec<u8> {
    let mut reader = Cursor::new(input.to_vec());
    let mut out = Vec::new();
    run(config, &mut reader, &mut out).unwrap();
    out
}

fn expect(config: &Config, input: &[u8], expected: &[u8]) {
    let mut full = GREETING.to_vec();
    full.extend_from_slice(expected);
    let got = transcript(config, input);
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&full),
        "input: {}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn not_authenticated_state() {
    expect(
        &config(&[("u", "p")]),
        b"a CAPABILITY\r\nb NOOP\r\nc SELECT INBOX\r\nd FETCH 1 BODY[]\r\ne LOGIN u wrong\r\n\
          f XYZZY\r\ng LOGOUT\r\nh NOOP\r\n",
        b"* CAPABILITY IMAP4rev1 LITERAL+\r\na OK CAPABILITY completed\r\n\
          b OK NOOP completed\r\n\
          c BAD not authenticated\r\n\
          d BAD not authenticated\r\n\
          e NO [AUTHENTICATIONFAILED] Invalid credentials\r\n\
          f BAD unknown command\r\n\
          * BYE logging out\r\ng OK LOGOUT completed\r\n",
    );
}

#[test]
fn id_is_answered_with_the_servers_own() {
    expect(
        &config(&[("u", "p")]),
        b"a ID (\"name\" \"x\")\r\nb ID NIL\r\nc ID\r\n",
        b"* ID (\"name\" \"postern-bench\")\r\na OK ID completed\r\n\
          * ID (\"name\" \"postern-bench\")\r\nb OK ID completed\r\n\
          c BAD unknown command\r\n",
    );
}

#[test]
fn login_select_fetch() {
    let msg = seeded_message(2, 100);
    let mut expected = b"+ go ahead\r\n+ go ahead\r\n\
        a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n\
        b BAD already authenticated\r\n\
        c BAD no mailbox selected\r\n\
        * 2 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n\
        d OK [READ-WRITE] SELECT completed\r\n\
        * 2 FETCH (UID 2 BODY[] {100}\r\n"
        .to_vec();
    expected.extend_from_slice(&msg);
    expected.extend_from_slice(b")\r\ne OK FETCH completed\r\nf BAD invalid message sequence number\r\n");
    expected.extend_from_slice(b"g OK FETCH completed\r\n");
    expected.extend_from_slice(b"* 2 FETCH (UID 2 RFC822.SIZE 100)\r\nh OK FETCH completed\r\n");
    expect(
        &config(&[("user", "secret")]),
        b"a LOGIN {4}\r\nuser {6}\r\nsecret\r\nb LOGIN user secret\r\nc FETCH 1 BODY[]\r\n\
          d SELECT INBOX\r\ne FETCH 2 BODY.PEEK[]\r\nf FETCH 3 RFC822\r\n\
          g UID FETCH 3 RFC822\r\nh UID FETCH 2:* (UID RFC822.SIZE)\r\n",
        &expected,
    );
}

#[test]
fn append_then_fetch() {
    let input = b"a LOGIN any \"thing\"\r\nb APPEND INBOX (\\Seen) \"01-Jan-2024 00:00:00 +0000\" {5+}\r\n\
        x\r\ny)\r\nc APPEND INBOX {0}\r\n\r\nd EXAMINE INBOX\r\ne FETCH 3:* RFC822\r\nf APPEND INBOX\r\n";
    expect(
        &config(&[]),
        input,
        b"a OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n\
          b OK [APPENDUID 1 3] APPEND completed\r\n\
          + go ahead\r\n\
          c OK [APPENDUID 1 4] APPEND completed\r\n\
          * 4 EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n* OK [UIDVALIDITY 1] ok\r\n\
          d OK [READ-ONLY] EXAMINE completed\r\n\
          * 3 FETCH (UID 3 RFC822 {5}\r\nx\r\ny))\r\n\
          * 4 FETCH (UID 4 RFC822 {0}\r\n)\r\n\
          e OK FETCH completed\r\n\
          f BAD APPEND expects a mailbox, optional flags and date, and a literal\r\n",
    );
}

#[test]
fn syntax_errors_keep_the_session_alive() {
    expect(
        &config(&[]),
        b"a LOGIN \"x\r\n\r\nb NOOP\r\n",
        b"a BAD unterminated quoted string\r\n* BAD empty command\r\nb OK NOOP completed\r\n",
    );
}

#[test]
fn oversized_line_closes() {
    let mut input = b"a NOOP ".to_vec();
    input.resize(70_000, b'x');
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    expect(&config(&[]), &input, b"* BYE line too long\r\n");
}

#[test]
fn login_compares_raw_bytes() {
    let mut table = Users::default();
    table.insert(b"a\r\nb %\"\\\xff".to_vec(), b"p w".to_vec());
    table.insert(b"q\"\\".to_vec(), b"{1}".to_vec());
    let config = Config {
        users: table,
        ..config(&[])
    };
    let ok = "OK [CAPABILITY IMAP4rev1 LITERAL+] LOGIN completed\r\n";
    let no = "NO [AUTHENTICATIONFAILED] Invalid credentials\r\n";
    let cases: [(&[u8], &str); 8] = [
        // Literals carry the name byte for byte: CR, LF, quote, backslash, 8-bit.
        (b"t LOGIN {9}\r\na\r\nb %\"\\\xff {3}\r\np w\r\n", ok),
        (b"t LOGIN {9+}\r\na\r\nb %\"\\\xff \"p w\"\r\n", ok),
        // One byte off: LF only, or a trailing CR.
        (b"t LOGIN {8+}\r\na\nb %\"\\\xff \"p w\"\r\n", no),
        (b"t LOGIN {9+}\r\na\r\nb %\"\\\xff {4+}\r\np w\r\r\n", no),
        // The literal is not unescaped.
        (b"t LOGIN {10+}\r\na\r\nb %\"\\\\\xff \"p w\"\r\n", no),
        // Quoted strings are.
        (b"t LOGIN \"q\\\"\\\\\" \"{1}\"\r\n", ok),
        (b"t LOGIN {3+}\r\nq\"\\ {3+}\r\n{1}\r\n", ok),
        (b"t LOGIN \"q\\\"\\\\\" \"{2}\"\r\n", no),
    ];
    for (login, reply) in cases {
        let mut input = login.to_vec();
        input.extend_from_slice(b"u LOGOUT\r\n");
        let got = transcript(&config, &input);
        let got = String::from_utf8_lossy(&got[GREETING.len()..]);
        let got = got.trim_start_matches("+ go ahead\r\n");
        assert!(
            got.starts_with(&format!("t {reply}")),
            "{:?} -> {got:?}",
            String::from_utf8_lossy(login)
        );
    }
}
