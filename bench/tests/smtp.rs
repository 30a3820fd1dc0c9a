//! The SMTP `backend` (`--protocol smtp`) over a real socket.

mod common;

use common::{LineClient, Server, TempDir, TempPath};
use postern_bench::backend::smtp::base64;
use postern_bench::message::{dot_encode, dot_stuff, seeded_message};

const GREETING: &str = "220 backend.postern.test ESMTP postern-bench\r\n";
const EHLO: &str = "250-backend.postern.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                    250-XCLIENT ADDR LOGIN NAME HELO PROTO\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 104857600\r\n";
const DATA: &str = "354 End data with <CR><LF>.<CR><LF>\r\n";
const XCLIENT: &[u8] = b"XCLIENT ADDR=192.0.2.7 LOGIN=alice NAME=[UNAVAILABLE] HELO=client.test PROTO=ESMTP\r\n";

/// A 1 MB message whose body has many lines starting with '.'.
fn big_message() -> Vec<u8> {
    let message = seeded_message(7, 1_000_000);
    assert!(message.ends_with(b"\r\n"));
    assert!(dot_stuff(&message).len() > message.len() + 100);
    message
}

fn smtp_server(record: &TempPath, deliveries: &TempDir) -> Server {
    Server::start(&[
        "backend",
        "--protocol",
        "smtp",
        "--user",
        "alice:pass word",
        "--record",
        record.as_str(),
        "--deliveries",
        deliveries.as_str(),
    ])
}

#[test]
fn xclient_ehlo_auth_mail_rcpt_data() {
    let record = TempPath::new("smtp-record");
    let deliveries = TempDir::new("smtp-deliveries");
    let server = smtp_server(&record, &deliveries);
    let message = big_message();
    let mut sent = Vec::new();
    let mut call = |c: &mut LineClient, bytes: &[u8], reply: &str| {
        c.call(bytes, reply);
        sent.extend_from_slice(bytes);
    };

    // The way nginx talks to Postfix: EHLO, XCLIENT, EHLO again, then mail.
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    call(&mut c, b"EHLO proxy.test\r\n", EHLO);
    call(&mut c, XCLIENT, GREETING);
    call(
        &mut c,
        b"MAIL FROM:<a@x.test>\r\n",
        "503 5.5.1 Error: send HELO/EHLO first\r\n",
    );
    call(&mut c, b"EHLO client.test\r\n", EHLO);
    call(
        &mut c,
        b"MAIL FROM:<a@x.test> BODY=8BITMIME SIZE=1000000\r\n",
        "250 2.1.0 Ok\r\n",
    );
    call(&mut c, b"RCPT TO:<reject-me@y.test>\r\n", "550 5.1.1 User unknown\r\n");
    call(&mut c, b"RCPT TO:<b@y.test>\r\n", "250 2.1.5 Ok\r\n");
    call(&mut c, b"DATA\r\n", DATA);
    call(&mut c, &dot_encode(&message), "250 2.0.0 Ok: queued as 1\r\n");
    // Written in full before the reply.
    let stored = std::fs::read(deliveries.0.join("1.eml")).unwrap();
    assert!(stored == message, "stored message differs from the one sent");
    call(&mut c, b"QUIT\r\n", "221 2.0.0 Bye\r\n");
    assert!(c.eof());

    // AUTH PLAIN, prompted and with an initial response, and AUTH LOGIN.
    let plain = |user: &str, pass: &str| base64::encode(format!("\0{user}\0{pass}").as_bytes());
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    call(&mut c, b"AUTH PLAIN\r\n", "503 5.5.1 Error: send HELO/EHLO first\r\n");
    call(&mut c, b"EHLO client.test\r\n", EHLO);
    call(
        &mut c,
        format!("AUTH PLAIN {}\r\n", plain("alice", "pass")).as_bytes(),
        "535 5.7.8 Authentication credentials invalid\r\n",
    );
    call(&mut c, b"AUTH PLAIN\r\n", "334 \r\n");
    call(
        &mut c,
        format!("{}\r\n", plain("alice", "pass word")).as_bytes(),
        "235 2.7.0 Authentication successful\r\n",
    );
    call(&mut c, b"MAIL FROM:<>\r\n", "250 2.1.0 Ok\r\n");
    call(&mut c, b"RCPT TO:<b@y.test>\r\n", "250 2.1.5 Ok\r\n");
    call(&mut c, b"DATA\r\n", DATA);
    call(&mut c, b"..leading dot\r\n.\r\n", "250 2.0.0 Ok: queued as 2\r\n");
    assert_eq!(std::fs::read(deliveries.0.join("2.eml")).unwrap(), b".leading dot\r\n");
    call(&mut c, b"QUIT\r\n", "221 2.0.0 Bye\r\n");

    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    call(&mut c, b"EHLO client.test\r\n", EHLO);
    call(&mut c, b"AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n");
    call(
        &mut c,
        format!("{}\r\n", base64::encode(b"alice")).as_bytes(),
        "334 UGFzc3dvcmQ6\r\n",
    );
    call(
        &mut c,
        format!("{}\r\n", base64::encode(b"pass word")).as_bytes(),
        "235 2.7.0 Authentication successful\r\n",
    );
    call(&mut c, b"QUIT\r\n", "221 2.0.0 Bye\r\n");

    // Every byte the clients sent, in order; the XCLIENT line exactly.
    let recorded = std::fs::read(&record.0).unwrap();
    assert!(recorded == sent, "record differs");
    assert!(recorded.windows(XCLIENT.len()).any(|w| w == XCLIENT));
}

#[test]
fn pipelined_transactions() {
    let record = TempPath::new("smtp-pipelined-record");
    let deliveries = TempDir::new("smtp-pipelined");
    let server = smtp_server(&record, &deliveries);
    let message = big_message();

    // MAIL, RCPT and DATA in one write; the message after the 354.
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    c.call(b"EHLO client.test\r\n", EHLO);
    c.send(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nRCPT TO:<reject@y.test>\r\nDATA\r\n");
    c.expect("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 User unknown\r\n");
    c.expect(DATA);
    c.send(&dot_encode(&message));
    c.expect("250 2.0.0 Ok: queued as 1\r\n");
    assert!(std::fs::read(deliveries.0.join("1.eml")).unwrap() == message);

    // Two whole transactions, messages and QUIT included, in one write.
    let mut batch = b"RSET\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n".to_vec();
    batch.extend_from_slice(&dot_encode(b".\r\n..\r\nsecond"));
    batch.extend_from_slice(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<reject@y.test>\r\nDATA\r\nNOOP\r\n");
    batch.extend_from_slice(b"MAIL FROM:<a@x.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n");
    // Cut mid-line: dot_encode adds the missing CRLF, which is then stored.
    let cut = &message[..500_001];
    assert!(!cut.ends_with(b"\r\n"));
    batch.extend_from_slice(&dot_encode(cut));
    batch.extend_from_slice(b"QUIT\r\nNOOP\r\n");
    c.send(&batch);
    c.expect(&format!(
        "250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n{DATA}250 2.0.0 Ok: queued as 2\r\n\
         250 2.1.0 Ok\r\n550 5.1.1 User unknown\r\n503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n\
         503 5.5.1 Error: nested MAIL command\r\n250 2.1.5 Ok\r\n{DATA}"
    ));
    // The third DATA went through after the nested MAIL was refused, since
    // the second transaction's MAIL still stands.
    c.expect("250 2.0.0 Ok: queued as 3\r\n221 2.0.0 Bye\r\n");
    assert!(c.eof());
    assert_eq!(
        std::fs::read(deliveries.0.join("2.eml")).unwrap(),
        b".\r\n..\r\nsecond\r\n"
    );
    let mut third = cut.to_vec();
    third.extend_from_slice(b"\r\n");
    assert!(std::fs::read(deliveries.0.join("3.eml")).unwrap() == third);

    // The numbering is per server process, across connections.
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    c.send(b"HELO c\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n.\r\nQUIT\r\n");
    c.expect(&format!(
        "250 backend.postern.test\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n{DATA}250 2.0.0 Ok: queued as 4\r\n221 2.0.0 Bye\r\n"
    ));
    assert_eq!(std::fs::read(deliveries.0.join("4.eml")).unwrap(), b"");
    let names: Vec<_> = std::fs::read_dir(&deliveries.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn without_deliveries_messages_are_only_counted() {
    let server = Server::start(&["backend", "--protocol", "smtp"]);
    let mut c = LineClient::connect(&server.addr);
    c.expect(GREETING);
    // With no users, any credentials are accepted.
    let auth = base64::encode(b"\0anyone\0anything");
    c.send(format!("EHLO c\r\nAUTH PLAIN {auth}\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n").as_bytes());
    c.expect(EHLO);
    c.expect(&format!(
        "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n{DATA}"
    ));
    c.call(b"x\r\n.\r\n", "250 2.0.0 Ok: queued as 1\r\n");
}
