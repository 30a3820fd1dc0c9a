//! The POP3 `backend` (`--protocol pop3`) over a real socket.

mod common;

use common::{start_fails, LineClient, Server, TempPath};
use postern_bench::message::{dot_encode, dot_stuff, header, seeded_message};

const SIZE: usize = 70_000;
const GREETING: &str = "+OK postern-bench POP3 ready\r\n";

/// Reads a multi-line block that must be exactly `dot_encode(expected)`.
fn expect_block(c: &mut LineClient, expected: &[u8]) {
    let block = dot_encode(expected);
    let got = c.bytes(block.len());
    assert!(got == block, "multi-line block differs");
}

#[test]
fn login_list_retrieve_delete_quit() {
    let record = TempPath::new("pop3-record");
    let server = Server::start(&[
        "backend",
        "--protocol",
        "pop3",
        "--user",
        "alice:se cret",
        "--messages",
        "3",
        "--msg-bytes",
        &SIZE.to_string(),
        "--record",
        record.as_str(),
    ]);
    let mut sent = Vec::new();
    let mut c = LineClient::connect(&server.addr);
    let mut call = |c: &mut LineClient, bytes: &[u8], reply: &str| {
        c.call(bytes, reply);
        sent.extend_from_slice(bytes);
    };
    c.expect(GREETING);
    call(&mut c, b"CAPA\r\n", "+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n");
    call(&mut c, b"STAT\r\n", "-ERR not logged in\r\n");
    call(&mut c, b"USER alice\r\n", "+OK send PASS\r\n");
    call(&mut c, b"PASS se\r\n", "-ERR [AUTH] invalid credentials\r\n");
    call(&mut c, b"USER alice\r\n", "+OK send PASS\r\n");
    call(&mut c, b"PASS se cret\r\n", "+OK logged in\r\n");
    call(&mut c, b"STAT\r\n", &format!("+OK 3 {}\r\n", 3 * SIZE));
    call(
        &mut c,
        b"LIST\r\n",
        &format!(
            "+OK 3 messages ({} octets)\r\n1 {SIZE}\r\n2 {SIZE}\r\n3 {SIZE}\r\n.\r\n",
            3 * SIZE
        ),
    );
    call(&mut c, b"UIDL\r\n", "+OK\r\n1 1\r\n2 2\r\n3 3\r\n.\r\n");

    for n in [2, 1, 3] {
        call(
            &mut c,
            format!("RETR {n}\r\n").as_bytes(),
            &format!("+OK {SIZE} octets\r\n"),
        );
        let message = seeded_message(n, SIZE);
        let mut stuffed = dot_stuff(&message);
        assert!(stuffed.len() > message.len(), "message {n} has lines starting with '.'");
        stuffed.extend_from_slice(b".\r\n");
        let got = c.bytes(stuffed.len());
        assert!(got == stuffed, "RETR {n} is not the dot-stuffed seeded message");
    }

    call(&mut c, b"TOP 1 0\r\n", "+OK\r\n");
    expect_block(&mut c, &header(1));
    call(&mut c, b"TOP 3 4\r\n", "+OK\r\n");
    let message = seeded_message(3, SIZE);
    let body = &message[header(3).len()..];
    let four_lines: usize = body.split_inclusive(|&b| b == b'\n').take(4).map(<[u8]>::len).sum();
    expect_block(&mut c, &message[..header(3).len() + four_lines]);

    call(&mut c, b"DELE 1\r\n", "+OK message 1 deleted\r\n");
    call(&mut c, b"RETR 1\r\n", "-ERR no such message\r\n");
    call(&mut c, b"STAT\r\n", &format!("+OK 2 {}\r\n", 2 * SIZE));
    call(
        &mut c,
        b"RSET\r\n",
        &format!("+OK maildrop has 3 messages ({} octets)\r\n", 3 * SIZE),
    );
    call(&mut c, b"NOOP\r\n", "+OK\r\n");
    call(&mut c, b"AUTH PLAIN\r\n", "-ERR unknown command\r\n");
    call(&mut c, b"QUIT\r\n", "+OK bye\r\n");
    assert!(c.eof());

    // Deletions are not kept: every connection starts with the seeded mailbox.
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    call(
        &mut c,
        b"USER alice\r\nPASS se cret\r\nSTAT\r\n",
        "+OK send PASS\r\n+OK logged in\r\n",
    );
    c.expect(&format!("+OK 3 {}\r\n", 3 * SIZE));
    let recorded = std::fs::read(&record.0).unwrap();
    assert!(
        recorded == sent,
        "record differs:\n{}",
        String::from_utf8_lossy(&recorded)
    );
}

#[test]
fn pipelined_without_users() {
    let server = Server::start(&["backend", "--protocol", "pop3", "--messages", "2", "--msg-bytes", "500"]);
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    // Any name and password, both with odd bytes, in one write with the rest.
    c.send(b"USER a\"b\\c \xff\r\nPASS  any thing \r\nLIST 2\r\nRETR 1\r\nQUIT\r\nNOOP\r\n");
    c.expect("+OK send PASS\r\n+OK logged in\r\n+OK 2 500\r\n+OK 500 octets\r\n");
    expect_block(&mut c, &seeded_message(1, 500));
    c.expect("+OK bye\r\n");
    assert!(c.eof());
}

#[test]
fn deliveries_need_smtp() {
    let err = start_fails(&["backend", "--protocol", "pop3", "--deliveries", "/tmp/x"]);
    assert!(err.contains("--deliveries needs --protocol smtp"), "{err}");
}
