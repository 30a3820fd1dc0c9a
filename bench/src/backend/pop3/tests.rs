use super::*;
use crate::message::{dot_encode, seeded_message};
use crate::users::Users;
use std::io::Cursor;

fn config(users: &[(&str, &str)]) -> Config {
    let mut table = Users::default();
    for (name, pass) in users {
        table.insert(name.as_bytes().to_vec(), pass.as_bytes().to_vec());
    }
    Config {
        users: table,
        mailbox: Mailbox::seeded(2, 300),
        ..Config::default()
    }
}

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
fn authorization_state() {
    expect(
        &config(&[("u", "p w")]),
        b"CAPA\r\nSTAT\r\nPASS p w\r\nUSER\r\nUSER u\r\nPASS p\r\nPASS p w\r\nuser u\r\nXYZZY\r\n\
          pass p w\r\nUSER u\r\nQUIT\r\nNOOP\r\n",
        b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n\
          -ERR not logged in\r\n\
          -ERR send USER first\r\n\
          -ERR USER expects a name\r\n\
          +OK send PASS\r\n\
          -ERR [AUTH] invalid credentials\r\n\
          -ERR send USER first\r\n\
          +OK send PASS\r\n\
          -ERR unknown command\r\n\
          +OK logged in\r\n\
          -ERR already logged in\r\n\
          +OK bye\r\n",
    );
}

#[test]
fn user_and_pass_take_raw_bytes() {
    let mut table = Users::default();
    table.insert(b" a\"\\\xff b".to_vec(), b" p:w \t".to_vec());
    table.insert(Vec::new(), Vec::new());
    let config = Config {
        users: table,
        ..config(&[])
    };
    let cases: [(&[u8], &[u8]); 6] = [
        (b"USER  a\"\\\xff b\r\nPASS  p:w \t\r\n", b"+OK logged in\r\n"),
        (
            b"USER  a\"\\\xff b\r\nPASS p:w \t\r\n",
            b"-ERR [AUTH] invalid credentials\r\n",
        ),
        (
            b"USER  a\"\\\xff b \r\nPASS  p:w \t\r\n",
            b"-ERR [AUTH] invalid credentials\r\n",
        ),
        (b"USER \r\nPASS \r\n", b"+OK logged in\r\n"),
        (b"USER \r\nPASS\r\n", b"-ERR PASS expects a password\r\n"),
        (b"USER a\rb\r\nPASS \r\n", b"-ERR send USER first\r\n"),
    ];
    for (input, reply) in cases {
        let got = transcript(&config, input);
        assert!(
            got.ends_with(reply),
            "{:?} -> {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&got)
        );
    }
    let got = transcript(&config, b"USER a\0b\r\n");
    assert!(got.ends_with(b"-ERR invalid user name\r\n"));
}

#[test]
fn transaction_state() {
    let m1 = seeded_message(1, 300);
    let m2 = seeded_message(2, 300);
    let mut expected = b"+OK send PASS\r\n+OK logged in\r\n\
        +OK 2 600\r\n\
        +OK 2 messages (600 octets)\r\n1 300\r\n2 300\r\n.\r\n\
        +OK 2 300\r\n\
        -ERR no such message\r\n\
        -ERR no such message\r\n\
        +OK\r\n1 1\r\n2 2\r\n.\r\n\
        +OK 1 1\r\n\
        +OK 300 octets\r\n"
        .to_vec();
    expected.extend_from_slice(&dot_encode(&m2));
    expected.extend_from_slice(b"+OK\r\n");
    expected.extend_from_slice(&dot_encode(&m1[..crate::message::header(1).len()]));
    expected.extend_from_slice(b"+OK\r\n");
    expected.extend_from_slice(&dot_encode(top(&m1, 2)));
    expected.extend_from_slice(
        b"+OK message 1 deleted\r\n\
          -ERR no such message\r\n\
          +OK 1 300\r\n\
          +OK 1 messages (300 octets)\r\n2 300\r\n.\r\n\
          +OK\r\n2 2\r\n.\r\n\
          -ERR no such message\r\n\
          +OK\r\n\
          +OK maildrop has 2 messages (600 octets)\r\n\
          +OK 300 octets\r\n",
    );
    expected.extend_from_slice(&dot_encode(&m1));
    expected.extend_from_slice(
        b"-ERR invalid arguments\r\n\
          -ERR invalid arguments\r\n\
          -ERR invalid arguments\r\n\
          -ERR invalid arguments\r\n\
          -ERR unknown command\r\n\
          -ERR unexpected arguments\r\n\
          +OK bye\r\n",
    );
    expect(
        &config(&[]),
        b"USER x\r\nPASS y\r\nSTAT\r\nLIST\r\nLIST 2\r\nLIST 3\r\nLIST 0\r\nUIDL\r\nUIDL 1\r\nRETR 2\r\n\
          TOP 1 0\r\ntop 1 2\r\nDELE 1\r\nDELE 1\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nNOOP\r\nRSET\r\nretr 1\r\n\
          RETR\r\nRETR x\r\nRETR 1 2\r\nLIST  1\r\nAPOP a b\r\nQUIT now\r\nQUIT\r\nSTAT\r\n",
        &expected,
    );
}

#[test]
fn retr_is_dot_stuffed() {
    let config = Config {
        mailbox: Mailbox::seeded(1, 100_000),
        ..config(&[])
    };
    let out = transcript(&config, b"USER a\r\nPASS b\r\nRETR 1\r\n");
    let message = seeded_message(1, 100_000);
    let mut expected = GREETING.to_vec();
    expected.extend_from_slice(b"+OK send PASS\r\n+OK logged in\r\n+OK 100000 octets\r\n");
    let stuffed = dot_encode(&message);
    assert!(
        stuffed.len() > message.len() + 3,
        "the message has lines starting with '.'"
    );
    expected.extend_from_slice(&stuffed);
    assert!(out == expected, "RETR differs");
}

#[test]
fn top_splits_header_and_body() {
    assert_eq!(top(b"a: b\r\n\r\nl1\r\nl2\r\nl3", 0), b"a: b\r\n\r\n");
    assert_eq!(top(b"a: b\r\n\r\nl1\r\nl2\r\nl3", 2), b"a: b\r\n\r\nl1\r\nl2\r\n");
    assert_eq!(top(b"a: b\r\n\r\nl1\r\nl2\r\nl3", 3), b"a: b\r\n\r\nl1\r\nl2\r\nl3");
    assert_eq!(top(b"a: b\r\n\r\nl1\r\n", 9), b"a: b\r\n\r\nl1\r\n");
    assert_eq!(top(b"no header end\r\n", 1), b"no header end\r\n");
    assert_eq!(top(b"\r\nbody\r\nmore\r\n", 1), b"\r\nbody\r\n");
}

#[test]
fn bad_lines() {
    let mut input = b"NOOP ".to_vec();
    input.resize(70_000, b'x');
    input.extend_from_slice(b"\r\nQUIT\r\n");
    expect(&config(&[]), &input, b"-ERR line too long\r\n");
    expect(
        &config(&[]),
        b"CAPA\nQUIT\r\n",
        b"-ERR line must end with CRLF\r\n+OK bye\r\n",
    );
}
