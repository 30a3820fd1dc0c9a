//! IMAP command syntax (RFC 3501 section 9), as much as the commands before
//! login need: a tag, a name, and arguments that are atoms, quoted strings,
//! literals and parenthesised lists. Parsed one line at a time, so a command
//! with literals is assembled across lines by the caller.

/// The longest tag nginx accepts; tags are echoed into backend commands, so
/// they are also kept to a safe alphabet (`valid_tag`).
const MAX_TAG: usize = 32;

/// Longest literal length written in a command, in digits: anything longer
/// is over every buffer limit anyway.
const MAX_LITERAL_DIGITS: usize = 10;

/// One argument token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(Vec<u8>),
    /// A quoted string or a literal: IMAP gives both the same meaning.
    Str(Vec<u8>),
    Open,
    Close,
}

impl Arg {
    /// The value of an `astring` (atom or string), as LOGIN takes.
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(v) | Arg::Str(v) => Some(v),
            Arg::Open | Arg::Close => None,
        }
    }
}

/// How a line of a command ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEnd {
    /// The command is complete.
    Complete,
    /// The line ended with `{n}` or `{n+}`: `n` bytes follow, then the rest
    /// of the command on the next line.
    Literal { len: usize, synchronizing: bool },
}

/// The line is not valid IMAP.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid;

/// The first line of a command.
#[derive(Debug, PartialEq, Eq)]
pub struct FirstLine {
    pub tag: Vec<u8>,
    pub name: Vec<u8>,
    pub args: Vec<Arg>,
    pub end: LineEnd,
}

/// Parses `tag SP name [args]`. On failure, the tag if it was valid, so the
/// BAD reply can carry it.
pub fn parse_first_line(line: &[u8]) -> Result<FirstLine, Option<Vec<u8>>> {
    let tag_end = memchr::memchr(b' ', line).ok_or(None)?;
    let tag = &line[..tag_end];
    if !valid_tag(tag) {
        return Err(None);
    }
    let rest = &line[tag_end + 1..];
    let name_end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() || !name.iter().all(u8::is_ascii_alphabetic) {
        return Err(Some(tag.to_vec()));
    }
    let mut args = Vec::new();
    match parse_args(&rest[name_end..], &mut args) {
        Ok(end) => Ok(FirstLine {
            tag: tag.to_vec(),
            name: name.to_vec(),
            args,
            end,
        }),
        Err(Invalid) => Err(Some(tag.to_vec())),
    }
}

/// A tag Postern answers: 1 to 32 of `[A-Za-z0-9._-]`, as nginx.
pub(super) fn valid_tag(tag: &[u8]) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Parses ` arg arg ...` to the end of a line (the rest of a first line, or
/// a line that continues a command after a literal). Tokens are separated by
/// spaces, except just inside parentheses: `("a" "b")`. A literal
/// announcement must end the line.
pub fn parse_args(mut s: &[u8], args: &mut Vec<Arg>) -> Result<LineEnd, Invalid> {
    // What comes before `s` ends a token, so a separator is due first.
    let mut need_space = true;
    loop {
        let spaces = s.iter().position(|&b| b != b' ').unwrap_or(s.len());
        s = &s[spaces..];
        let Some(&first) = s.first() else {
            return Ok(LineEnd::Complete);
        };
        if first == b')' {
            args.push(Arg::Close);
            s = &s[1..];
            need_space = true;
            continue;
        }
        if need_space && spaces == 0 {
            // `"a""b"` is not two strings.
            return Err(Invalid);
        }
        need_space = true;
        match first {
            b'(' => {
                args.push(Arg::Open);
                s = &s[1..];
                need_space = false;
            }
            b'"' => {
                let (value, rest) = parse_quoted(&s[1..])?;
                args.push(Arg::Str(value));
                s = rest;
            }
            b'{' => return parse_literal(&s[1..]),
            _ => {
                let end = s.iter().position(|&b| b == b' ' || b == b')').unwrap_or(s.len());
                let atom = &s[..end];
                if atom
                    .iter()
                    .any(|&b| b < 0x20 || b == 0x7f || matches!(b, b'"' | b'{' | b'('))
                {
                    return Err(Invalid);
                }
                args.push(Arg::Atom(atom.to_vec()));
                s = &s[end..];
            }
        }
    }
}

/// After the opening quote: the string up to the closing one, with `\"` and
/// `\\` the only escapes (RFC 3501 quoted).
fn parse_quoted(s: &[u8]) -> Result<(Vec<u8>, &[u8]), Invalid> {
    let mut value = Vec::new();
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'"' => return Ok((value, &s[i + 1..])),
            b'\\' => match s.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    value.push(c);
                    i += 2;
                }
                _ => return Err(Invalid),
            },
            0 => return Err(Invalid),
            c => {
                value.push(c);
                i += 1;
            }
        }
    }
    Err(Invalid)
}

/// After the `{`: `n}` or `n+}`, and nothing after it on the line.
fn parse_literal(s: &[u8]) -> Result<LineEnd, Invalid> {
    let close = s.strip_suffix(b"}").ok_or(Invalid)?;
    let (digits, synchronizing) = match close.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (close, true),
    };
    if digits.is_empty() || digits.len() > MAX_LITERAL_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Invalid);
    }
    let len = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or(Invalid)?;
    Ok(LineEnd::Literal { len, synchronizing })
}

/// `value` as an IMAP quoted string: `"` and `\` escaped (RFC 3501
/// `quoted`; the caller keeps CR, LF and NUL out).
pub fn push_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// One ID parameter pair (RFC 2971): the quoted field, then the quoted
/// value or NIL.
pub fn push_id_pair(out: &mut Vec<u8>, field: &[u8], value: Option<&[u8]>) {
    push_quoted(out, field);
    out.push(b' ');
    match value {
        Some(value) => push_quoted(out, value),
        None => out.extend_from_slice(b"NIL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> Arg {
        Arg::Atom(s.as_bytes().to_vec())
    }

    fn string(s: &str) -> Arg {
        Arg::Str(s.as_bytes().to_vec())
    }

    type Parsed = Result<(Vec<Arg>, LineEnd), Invalid>;

    #[test]
    fn argument_rows() {
        let rows: Vec<(&str, Parsed)> = vec![
            ("", Ok((vec![], LineEnd::Complete))),
            (" a b", Ok((vec![atom("a"), atom("b")], LineEnd::Complete))),
            ("  a  ", Ok((vec![atom("a")], LineEnd::Complete))),
            (
                " \"a b\" \"\"",
                Ok((vec![string("a b"), string("")], LineEnd::Complete)),
            ),
            (" \"q\\\"\\\\\"", Ok((vec![string("q\"\\")], LineEnd::Complete))),
            (" NIL", Ok((vec![atom("NIL")], LineEnd::Complete))),
            (
                " (\"name\" \"x\" \"os\" NIL)",
                Ok((
                    vec![
                        Arg::Open,
                        string("name"),
                        string("x"),
                        string("os"),
                        atom("NIL"),
                        Arg::Close,
                    ],
                    LineEnd::Complete,
                )),
            ),
            (" ()", Ok((vec![Arg::Open, Arg::Close], LineEnd::Complete))),
            (
                " a {5}",
                Ok((
                    vec![atom("a")],
                    LineEnd::Literal {
                        len: 5,
                        synchronizing: true,
                    },
                )),
            ),
            (
                " {0+}",
                Ok((
                    vec![],
                    LineEnd::Literal {
                        len: 0,
                        synchronizing: false,
                    },
                )),
            ),
            (
                " (\"name\" {3}",
                Ok((
                    vec![Arg::Open, string("name")],
                    LineEnd::Literal {
                        len: 3,
                        synchronizing: true,
                    },
                )),
            ),
            ("a", Err(Invalid)),
            (" \"a\"\"b\"", Err(Invalid)),
            (" \"a\"b", Err(Invalid)),
            (" (a)b", Err(Invalid)),
            (" \"a", Err(Invalid)),
            (" \"a\\b\"", Err(Invalid)),
            (" {5} x", Err(Invalid)),
            (" {}", Err(Invalid)),
            (" {12345678901}", Err(Invalid)),
            (" {-1}", Err(Invalid)),
            (" a\"b", Err(Invalid)),
            (" a\x01", Err(Invalid)),
        ];
        for (input, want) in rows {
            let mut args = Vec::new();
            let got = parse_args(input.as_bytes(), &mut args).map(|end| (args, end));
            assert_eq!(got, want, "input {input:?}");
        }
    }

    #[test]
    fn continuation_after_a_literal() {
        let mut args = vec![Arg::Open, string("name"), string("lit")];
        assert_eq!(parse_args(b" \"version\" \"1\")", &mut args), Ok(LineEnd::Complete));
        assert_eq!(args.len(), 6);
        assert_eq!(args[5], Arg::Close);
        let mut args = vec![Arg::Open, string("lit")];
        assert_eq!(parse_args(b")", &mut args), Ok(LineEnd::Complete));
    }

    #[test]
    fn first_lines() {
        let line = parse_first_line(b"a1 LOGIN bob pw").unwrap();
        assert_eq!(line.tag, b"a1");
        assert_eq!(line.name, b"LOGIN");
        assert_eq!(line.args, vec![atom("bob"), atom("pw")]);
        assert_eq!(parse_first_line(b"a1 NOOP").unwrap().args, vec![]);
        assert_eq!(parse_first_line(b"NOOP"), Err(None));
        assert_eq!(parse_first_line(b"a+b NOOP"), Err(None));
        assert_eq!(parse_first_line(&[b'a'; 33]), Err(None));
        assert_eq!(parse_first_line(b"a N00P"), Err(Some(b"a".to_vec())));
        assert_eq!(parse_first_line(b"a LOGIN \"x"), Err(Some(b"a".to_vec())));
        assert_eq!(parse_first_line(b"a "), Err(Some(b"a".to_vec())));
    }
}
