use super::*;
use crate::backend::{Mailbox, Queue};
use crate::message::{dot_encode, dot_stuff, seeded_message};
use crate::users::Users;
use std::io::{BufReader, Cursor, Read};

fn config(users: &[(&str, &str)]) -> Config {
    let mut table = Users::default();
    for (name, pass) in users {
        table.insert(name.as_bytes().to_vec(), pass.as_bytes().to_vec());
    }
    Config {
        users: table,
        mailbox: Mailbox::default(),
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

fn plain(authzid: &str, user: &str, pass: &str) -> String {
    base64::encode(format!("{authzid}\0{user}\0{pass}").as_bytes())
}

#[test]
fn greeting_ehlo_xclient() {
    let mut expected = b"503 5.5.1 Error: send HELO/EHLO first\r\n\
        501 5.5.4 Syntax: EHLO hostname\r\n"
        .to_vec();
    expected.extend_from_slice(EHLO_REPLY);
    expected.extend_from_slice(
        b"250 2.1.0 Ok\r\n\
          503 5.5.1 Error: MAIL transaction in progress\r\n\
          250 2.0.0 Ok\r\n\
          501 5.5.4 Syntax: XCLIENT attribute=value...\r\n\
          501 5.5.4 Bad XCLIENT attribute name: PORT\r\n\
          501 5.5.4 Syntax: XCLIENT attribute=value...\r\n\
          220 backend.postern.test ESMTP postern-bench\r\n\
          503 5.5.1 Error: send HELO/EHLO first\r\n\
          250 backend.postern.test\r\n\
          503 5.5.1 Error: already authenticated\r\n\
          250 2.0.0 Ok\r\n\
          502 5.5.2 Error: command not recognized\r\n\
          221 2.0.0 Bye\r\n",
    );
    expect(
        &config(&[("u", "p")]),
        b"MAIL FROM:<a@b>\r\nEHLO\r\nehlo client.test\r\nMAIL FROM:<a@b>\r\nXCLIENT ADDR=1.2.3.4\r\nRSET\r\n\
          XCLIENT\r\nXCLIENT PORT=25\r\nXCLIENT ADDR\r\n\
          XCLIENT ADDR=192.0.2.1 LOGIN=someone NAME=[UNAVAILABLE] HELO=c.test PROTO=ESMTP\r\n\
          MAIL FROM:<a@b>\r\nHELO client.test\r\nAUTH PLAIN AHUAcA==\r\nNOOP\r\nVRFY u\r\nQUIT\r\nNOOP\r\n",
        &expected,
    );
}

#[test]
fn auth_plain_and_login() {
    let ok = "235 2.7.0 Authentication successful\r\n";
    let bad = "535 5.7.8 Authentication credentials invalid\r\n";
    let user = "a b\"\\\u{e9}";
    let pass = "p:w d";
    let config = config(&[(user, pass)]);
    let b64 = |s: &str| base64::encode(s.as_bytes());
    let cases: Vec<(String, String)> = vec![
        (format!("AUTH PLAIN {}\r\n", plain("", user, pass)), ok.into()),
        (format!("AUTH PLAIN {}\r\n", plain(user, user, pass)), ok.into()),
        (
            format!("auth plain {}\r\n", plain("", user, pass).trim_end_matches('=')),
            ok.into(),
        ),
        (format!("AUTH PLAIN {}\r\n", plain("x", user, pass)), bad.into()),
        (format!("AUTH PLAIN {}\r\n", plain("", user, "p:w")), bad.into()),
        (
            format!("AUTH PLAIN\r\n{}\r\n", plain("", user, pass)),
            format!("334 \r\n{ok}"),
        ),
        (
            "AUTH PLAIN\r\n*\r\n".into(),
            "334 \r\n501 5.7.0 Authentication aborted\r\n".into(),
        ),
        ("AUTH PLAIN =\r\n".into(), bad.into()),
        (
            "AUTH PLAIN !!\r\n".into(),
            "501 5.5.2 Cannot decode response\r\n".into(),
        ),
        (format!("AUTH PLAIN {}\r\n", b64("a\0b")), bad.into()),
        (
            format!("AUTH LOGIN\r\n{}\r\n{}\r\n", b64(user), b64(pass)),
            format!("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n{ok}"),
        ),
        (
            format!("AUTH LOGIN {}\r\n{}\r\n", b64(user), b64(pass)),
            format!("334 UGFzc3dvcmQ6\r\n{ok}"),
        ),
        (
            format!("AUTH LOGIN {}\r\n{}\r\n", b64(user), b64("nope")),
            format!("334 UGFzc3dvcmQ6\r\n{bad}"),
        ),
        (
            format!("AUTH LOGIN\r\n{}\r\n*\r\n", b64(user)),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.7.0 Authentication aborted\r\n".into(),
        ),
        (
            "AUTH CRAM-MD5\r\n".into(),
            "504 5.5.4 Unrecognized authentication type\r\n".into(),
        ),
        ("AUTH\r\n".into(), "501 5.5.4 Syntax: AUTH mechanism\r\n".into()),
    ];
    for (auth, reply) in cases {
        let input = format!("EHLO c\r\n{auth}NOOP\r\n");
        let got = transcript(&config, input.as_bytes());
        let got = String::from_utf8_lossy(&got[GREETING.len() + EHLO_REPLY.len()..]).into_owned();
        assert_eq!(got, format!("{reply}250 2.0.0 Ok\r\n"), "{auth:?}");
    }
    // Authenticated once: a second AUTH is refused.
    let input = format!("EHLO c\r\nAUTH PLAIN {0}\r\nAUTH PLAIN {0}\r\n", plain("", user, pass));
    let got = transcript(&config, input.as_bytes());
    assert!(got.ends_with(format!("{ok}503 5.5.1 Error: already authenticated\r\n").as_bytes()));
}

#[test]
fn transaction_and_data() {
    let config = config(&[]);
    let mut input = b"HELO c\r\nRCPT TO:<x@y>\r\nDATA\r\nMAIL FROM:<>\r\nMAIL FROM:<a@b>\r\nDATA\r\n\
        RCPT TO:<bad>x\r\nRCPT TO: <REJECT@y>\r\nDATA\r\nRCPT to:<x@y>\r\nRCPT TO:<z@y> NOTIFY=NEVER\r\nDATA x\r\nDATA\r\n"
        .to_vec();
    input.extend_from_slice(&dot_encode(b".a\r\n..\r\n.\r\nb"));
    input.extend_from_slice(b"DATA\r\nmail FROM:<a@b> SIZE=104857601\r\nMAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\n");
    input.extend_from_slice(b"RCPT TO:<x@y>\r\nDATA\r\n.\r\nQUIT\r\n");
    expect(
        &config,
        &input,
        b"250 backend.postern.test\r\n\
          503 5.5.1 Error: need MAIL command\r\n\
          503 5.5.1 Error: need MAIL command\r\n\
          250 2.1.0 Ok\r\n\
          503 5.5.1 Error: nested MAIL command\r\n\
          503 5.5.1 Error: need RCPT command\r\n\
          501 5.5.4 Syntax: RCPT TO:<address>\r\n\
          550 5.1.1 User unknown\r\n\
          503 5.5.1 Error: need RCPT command\r\n\
          250 2.1.5 Ok\r\n\
          250 2.1.5 Ok\r\n\
          501 5.5.4 Syntax: DATA\r\n\
          354 End data with <CR><LF>.<CR><LF>\r\n\
          250 2.0.0 Ok: queued as 1\r\n\
          503 5.5.1 Error: need MAIL command\r\n\
          552 5.3.4 Message size exceeds fixed limit\r\n\
          250 2.1.0 Ok\r\n\
          250 2.1.5 Ok\r\n\
          354 End data with <CR><LF>.<CR><LF>\r\n\
          250 2.0.0 Ok: queued as 2\r\n\
          221 2.0.0 Bye\r\n",
    );
}

#[test]
fn read_data_unstuffs_byte_exact() {
    let read = |input: &[u8], capacity: usize| {
        let mut reader = BufReader::with_capacity(capacity, Cursor::new(input.to_vec()));
        let message = read_data(&mut reader, 1 << 30).unwrap();
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        (message.unwrap(), rest)
    };
    let mut messages: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\r\n".to_vec(),
        b".\r\n".to_vec(),
        b"..\r\n".to_vec(),
        b".\r.\r\n".to_vec(),
        b"a\r\r\n.\r\r\n".to_vec(),
        b"a\n.\r\n".to_vec(),
        b"\0\xff.\r\n.x\r\n".to_vec(),
        seeded_message(1, 20_000),
    ];
    messages.push(
        (0..5000u32)
            .map(|i| [b'.', b'\r', b'\n', b'x'][(i * 7 % 4) as usize])
            .collect(),
    );
    messages.last_mut().unwrap().extend_from_slice(b"\r\n");
    for message in &messages {
        let mut input = dot_stuff(message);
        input.extend_from_slice(b".\r\nNEXT\r\n");
        for capacity in [1, 2, 3, 7, 64, 1 << 16] {
            let (got, rest) = read(&input, capacity);
            assert!(
                got == *message,
                "{:?} at capacity {capacity}",
                String::from_utf8_lossy(message)
            );
            assert_eq!(rest, b"NEXT\r\n");
        }
    }
    // Not stuffed by the sender: the first dot of a line is dropped anyway.
    assert_eq!(read(b".x\r\n.\r\n", 3).0, b"x\r\n");
    // Only CRLF ends a line.
    assert_eq!(read(b"a\n.\n\r\n.\r\n", 3).0, b"a\n.\n\r\n");
    let mut reader = Cursor::new(b"a\r\n.\r".to_vec());
    assert_eq!(
        read_data(&mut reader, 100).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    let mut reader = Cursor::new(b"0123456789\r\n.\r\nQUIT\r\n".to_vec());
    assert_eq!(read_data(&mut reader, 11).unwrap(), None);
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "QUIT\r\n");
}

#[test]
fn deliveries_are_written_before_the_reply() {
    let dir = std::env::temp_dir().join(format!("postern-bench-smtp-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let config = Config {
        queue: Queue::new(Some(dir.clone())),
        ..config(&[])
    };
    let mut input = b"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    input.extend_from_slice(&dot_encode(b"one\r\n.two\r\n"));
    input.extend_from_slice(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\n");
    let out = transcript(&config, &input);
    assert!(out.ends_with(b"250 2.0.0 Ok: queued as 2\r\n"));
    assert_eq!(std::fs::read(dir.join("1.eml")).unwrap(), b"one\r\n.two\r\n");
    assert_eq!(std::fs::read(dir.join("2.eml")).unwrap(), b"");
    std::fs::remove_dir_all(&dir).unwrap();
    let out = transcript(&config, &input);
    assert!(out.ends_with(b"451 4.3.0 Error: queue file write error\r\n"));
}

#[test]
fn bad_lines() {
    let mut input = b"NOOP ".to_vec();
    input.resize(70_000, b'x');
    input.extend_from_slice(b"\r\nQUIT\r\n");
    expect(&config(&[]), &input, b"500 5.5.0 Error: line too long\r\n");
    expect(
        &config(&[]),
        b"NOOP\nQUIT\r\n",
        b"500 5.5.2 Error: bare <LF> received\r\n221 2.0.0 Bye\r\n",
    );
}
