use super::*;
use std::io::Cursor;

fn atom(s: &str) -> Arg {
    Arg::Atom(s.as_bytes().to_vec())
}

fn quoted(s: &str) -> Arg {
    Arg::Quoted(s.as_bytes().to_vec())
}

fn literal(s: &[u8]) -> Arg {
    Arg::Literal(s.to_vec())
}

/// Reads one command from `input`; returns it and what was written back.
fn read_one(input: &[u8]) -> (Result<Option<Command>, ReadError>, Vec<u8>) {
    read_with(input, LIMITS)
}

fn read_with(input: &[u8], limits: Limits) -> (Result<Option<Command>, ReadError>, Vec<u8>) {
    let mut reader = Cursor::new(input.to_vec());
    let mut out = Vec::new();
    let result = read_command(&mut reader, &mut out, limits);
    (result, out)
}

fn parsed(input: &[u8]) -> Command {
    read_one(input).0.unwrap().unwrap()
}

fn command(tag: &str, name: &str, args: Vec<Arg>) -> Command {
    Command {
        tag: tag.as_bytes().to_vec(),
        name: name.into(),
        args,
    }
}

fn syntax_error(input: &[u8]) -> (Option<Vec<u8>>, &'static str) {
    match read_one(input).0 {
        Err(ReadError::Syntax { tag, message }) => (tag, message),
        other => panic!("expected syntax error, got {other:?}"),
    }
}

#[test]
fn atoms() {
    assert_eq!(parsed(b"a1 noop\r\n"), command("a1", "NOOP", vec![]));
    assert_eq!(
        parsed(b"t SELECT INBOX\r\n"),
        command("t", "SELECT", vec![atom("INBOX")])
    );
    assert_eq!(
        parsed(b"t UID fetch 1:* BODY.PEEK[]\r\n"),
        command("t", "UID", vec![atom("fetch"), atom("1:*"), atom("BODY.PEEK[]")])
    );
}

#[test]
fn lists_and_brackets() {
    assert_eq!(
        parsed(b"t FETCH 1 (UID BODY[HEADER.FIELDS (FROM TO)] (x))\r\n"),
        command(
            "t",
            "FETCH",
            vec![
                atom("1"),
                Arg::List(vec![
                    atom("UID"),
                    atom("BODY[HEADER.FIELDS (FROM TO)]"),
                    Arg::List(vec![atom("x")]),
                ]),
            ]
        )
    );
    assert_eq!(
        parsed(b"t APPEND box (\\Seen) \"x\"\r\n").args,
        vec![atom("box"), Arg::List(vec![atom("\\Seen")]), quoted("x")]
    );
    assert_eq!(parsed(b"t X ()\r\n").args, vec![Arg::List(vec![])]);
}

#[test]
fn quoted_strings_with_escapes() {
    assert_eq!(
        parsed(b"a LOGIN \"us\\\"er\" \"p\\\\ss word\"\r\n"),
        command("a", "LOGIN", vec![quoted("us\"er"), quoted("p\\ss word")])
    );
    assert_eq!(
        parsed(b"a LOGIN \"\" \"{3}\"\r\n").args,
        vec![quoted(""), quoted("{3}")]
    );
}

#[test]
fn synchronizing_literals_split_across_lines() {
    let (result, out) = read_one(b"a LOGIN {4}\r\nuser {6}\r\nsecret\r\n");
    assert_eq!(
        result.unwrap().unwrap(),
        command("a", "LOGIN", vec![literal(b"user"), literal(b"secret")])
    );
    assert_eq!(out, b"+ go ahead\r\n+ go ahead\r\n");
}

#[test]
fn non_synchronizing_literals() {
    let (result, out) = read_one(b"a LOGIN {4+}\r\nuser \"pw\"\r\n");
    assert_eq!(
        result.unwrap().unwrap(),
        command("a", "LOGIN", vec![literal(b"user"), quoted("pw")])
    );
    assert!(out.is_empty());
}

#[test]
fn literal_bytes_are_opaque() {
    let (result, out) = read_one(b"a APPEND INBOX (\\Seen {10+}\r\n\r\n)\"{1}\r\n\x00 x)\r\n");
    assert_eq!(
        result.unwrap().unwrap().args,
        vec![
            atom("INBOX"),
            Arg::List(vec![atom("\\Seen"), literal(b"\r\n)\"{1}\r\n\x00"), atom("x")]),
        ]
    );
    assert!(out.is_empty());
    assert_eq!(parsed(b"a APPEND b {0}\r\n\r\n").args, vec![atom("b"), literal(b"")]);
}

#[test]
fn consecutive_commands_and_eof() {
    let mut reader = Cursor::new(b"a NOOP\r\nb LOGIN {1}\r\nx y\r\n".to_vec());
    let mut out = Vec::new();
    let first = read_command(&mut reader, &mut out, LIMITS).unwrap().unwrap();
    assert_eq!(first, command("a", "NOOP", vec![]));
    let second = read_command(&mut reader, &mut out, LIMITS).unwrap().unwrap();
    assert_eq!(second, command("b", "LOGIN", vec![literal(b"x"), atom("y")]));
    assert!(read_command(&mut reader, &mut out, LIMITS).unwrap().is_none());
}

#[test]
fn eof_inside_a_command() {
    for input in [&b"a NOOP"[..], b"a LOGIN {5}\r\nab", b"a LOGIN {2}\r\nab"] {
        match read_one(input).0 {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
            other => panic!("{input:?}: {other:?}"),
        }
    }
}

#[test]
fn syntax_errors() {
    assert_eq!(syntax_error(b"\r\n"), (None, "empty command"));
    assert_eq!(syntax_error(b"a\r\n"), (Some(b"a".to_vec()), "missing command"));
    assert_eq!(syntax_error(b"\"a\" NOOP\r\n"), (None, "invalid tag"));
    assert_eq!(
        syntax_error(b"a NOOP\n"),
        (Some(b"a".to_vec()), "line must end with CRLF")
    );
    assert_eq!(
        syntax_error(b"a LOGIN \"x\r\n"),
        (Some(b"a".to_vec()), "unterminated quoted string")
    );
    assert_eq!(
        syntax_error(b"a LOGIN \"\\x\"\r\n"),
        (Some(b"a".to_vec()), "invalid escape in quoted string")
    );
    assert_eq!(syntax_error(b"a X (b\r\n").1, "unbalanced parenthesis");
    assert_eq!(syntax_error(b"a X b)\r\n").1, "unbalanced parenthesis");
    assert_eq!(syntax_error(b"a X BODY[\r\n").1, "unbalanced bracket");
    assert_eq!(syntax_error(b"a X {3} y\r\n").1, "invalid literal");
    assert_eq!(syntax_error(b"a X {}\r\n").1, "invalid literal");
    assert_eq!(syntax_error(b"a X {99999999999999999999999}\r\n").1, "invalid literal");
    assert_eq!(syntax_error(b"a X b\x01c\r\n").1, "control character in atom");
}

#[test]
fn line_limit() {
    let limits = Limits {
        max_line: 16,
        max_literal: 100,
    };
    assert!(read_with(b"a NOOP 1234567\r\n", limits).0.unwrap().is_some());
    assert!(matches!(
        read_with(b"a NOOP 12345678\r\n", limits).0,
        Err(ReadError::LineTooLong)
    ));
    // The limit applies per line, not to the whole command.
    let (result, _) = read_with(b"a X 123456 {3}\r\nabc 12345678901\r\n", limits);
    assert_eq!(result.unwrap().unwrap().args.len(), 3);
}

#[test]
fn literal_limit() {
    let limits = Limits {
        max_line: 100,
        max_literal: 4,
    };
    assert!(read_with(b"a X {4}\r\nabcd\r\n", limits).0.unwrap().is_some());
    let (result, out) = read_with(b"a X {5}\r\nabcde\r\n", limits);
    match result {
        Err(ReadError::LiteralTooLarge { tag, synchronizing }) => {
            assert_eq!(tag.as_deref(), Some(&b"a"[..]));
            assert!(synchronizing);
        }
        other => panic!("{other:?}"),
    }
    assert!(out.is_empty(), "no continuation for a refused literal");
    assert!(matches!(
        read_with(b"a X {5+}\r\nabcde\r\n", limits).0,
        Err(ReadError::LiteralTooLarge {
            synchronizing: false,
            ..
        })
    ));
}
