//! Reading IMAP commands: `tag SP name [SP args] CRLF`, where arguments are
//! atoms, quoted strings, literals (`{n}` synchronizing, `{n+}` not) and
//! parenthesized lists. A literal ends its line; the command continues on
//! the line that follows the literal's bytes.

use std::io::{self, BufRead, Write};

/// Size limits applied while reading.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line, CRLF included.
    pub max_line: usize,
    /// Largest literal.
    pub max_literal: u64,
}

pub const LIMITS: Limits = Limits {
    max_line: 64 * 1024,
    max_literal: 256 * 1024 * 1024,
};

/// Continuation request sent before reading a synchronizing literal.
pub const CONTINUE: &[u8] = b"+ go ahead\r\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    Atom(Vec<u8>),
    Quoted(Vec<u8>),
    Literal(Vec<u8>),
    List(Vec<Arg>),
}

impl Arg {
    /// The bytes of an atom, quoted string or literal (IMAP `astring`).
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(b) | Arg::Quoted(b) | Arg::Literal(b) => Some(b),
            Arg::List(_) => None,
        }
    }

    pub fn atom(&self) -> Option<&[u8]> {
        match self {
            Arg::Atom(b) => Some(b),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: Vec<u8>,
    /// Command name, upper-cased.
    pub name: String,
    pub args: Vec<Arg>,
}

#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    /// A line exceeded [`Limits::max_line`]; the stream cannot be resynced.
    LineTooLong,
    /// A literal exceeded [`Limits::max_literal`]. Its bytes were not read:
    /// harmless for a synchronizing literal, fatal otherwise.
    LiteralTooLarge {
        tag: Option<Vec<u8>>,
        synchronizing: bool,
    },
    /// The command is malformed; it has been consumed up to the end of the
    /// offending line.
    Syntax {
        tag: Option<Vec<u8>>,
        message: &'static str,
    },
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// Reads one command. Returns `Ok(None)` on a clean EOF between commands.
/// `out` receives continuation requests for synchronizing literals.
pub fn read_command<R: BufRead, W: Write>(
    input: &mut R,
    out: &mut W,
    limits: Limits,
) -> Result<Option<Command>, ReadError> {
    let Some(mut line) = read_line(input, limits.max_line)? else {
        return Ok(None);
    };
    let mut tokens = Tokens::default();
    loop {
        let (content, crlf) = match line.strip_suffix(b"\r\n") {
            Some(content) => (content, true),
            None => (line.strip_suffix(b"\n").unwrap_or(&line), false),
        };
        let end = tokens.feed(content).map_err(|message| syntax(tokens.tag(), message))?;
        if !crlf {
            return Err(syntax(tokens.tag(), "line must end with CRLF"));
        }
        let (len, synchronizing) = match end {
            LineEnd::Done => break,
            LineEnd::Literal { len, synchronizing } => (len, synchronizing),
        };
        if len > limits.max_literal {
            return Err(ReadError::LiteralTooLarge {
                tag: tokens.tag(),
                synchronizing,
            });
        }
        if synchronizing {
            out.write_all(CONTINUE)?;
            out.flush()?;
        }
        let mut data = vec![0u8; len as usize];
        input.read_exact(&mut data)?;
        tokens.push(Arg::Literal(data));
        line = read_line(input, limits.max_line)?.ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    }
    let tag = tokens.tag();
    let mut args = tokens
        .finish()
        .map_err(|message| syntax(tag.clone(), message))?
        .into_iter();
    let tag = match args.next() {
        Some(Arg::Atom(tag)) => tag,
        Some(_) => return Err(syntax(None, "invalid tag")),
        None => return Err(syntax(None, "empty command")),
    };
    let name = match args.next() {
        Some(Arg::Atom(name)) => String::from_utf8_lossy(&name).to_ascii_uppercase(),
        _ => return Err(syntax(Some(tag), "missing command")),
    };
    Ok(Some(Command {
        tag,
        name,
        args: args.collect(),
    }))
}

fn syntax(tag: Option<Vec<u8>>, message: &'static str) -> ReadError {
    ReadError::Syntax { tag, message }
}

/// Reads through the next LF. `Ok(None)` on EOF before any byte.
fn read_line<R: BufRead>(input: &mut R, max: usize) -> Result<Option<Vec<u8>>, ReadError> {
    let mut line = Vec::new();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Err(ReadError::LineTooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

enum LineEnd {
    Done,
    Literal { len: u64, synchronizing: bool },
}

/// Tokenizer state carried across the lines of one command.
struct Tokens {
    /// Open lists; the first entry is the top level.
    stack: Vec<Vec<Arg>>,
}

impl Default for Tokens {
    fn default() -> Tokens {
        Tokens {
            stack: vec![Vec::new()],
        }
    }
}

impl Tokens {
    fn push(&mut self, arg: Arg) {
        self.stack.last_mut().expect("tokenizer stack is never empty").push(arg);
    }

    /// The first top-level token if it is an atom.
    fn tag(&self) -> Option<Vec<u8>> {
        self.stack[0].first().and_then(Arg::atom).map(<[u8]>::to_vec)
    }

    fn finish(mut self) -> Result<Vec<Arg>, &'static str> {
        if self.stack.len() != 1 {
            return Err("unbalanced parenthesis");
        }
        Ok(self.stack.pop().unwrap_or_default())
    }

    /// Tokenizes one line (CRLF removed).
    fn feed(&mut self, line: &[u8]) -> Result<LineEnd, &'static str> {
        let mut i = 0;
        while i < line.len() {
            match line[i] {
                b' ' => i += 1,
                b'(' => {
                    self.stack.push(Vec::new());
                    i += 1;
                }
                b')' => {
                    if self.stack.len() < 2 {
                        return Err("unbalanced parenthesis");
                    }
                    let list = self.stack.pop().unwrap_or_default();
                    self.push(Arg::List(list));
                    i += 1;
                }
                b'"' => {
                    let (text, next) = quoted(line, i + 1)?;
                    self.push(Arg::Quoted(text));
                    i = next;
                }
                b'{' => {
                    let (len, synchronizing) = literal_marker(&line[i + 1..])?;
                    return Ok(LineEnd::Literal { len, synchronizing });
                }
                _ => {
                    let next = atom_end(line, i)?;
                    self.push(Arg::Atom(line[i..next].to_vec()));
                    i = next;
                }
            }
        }
        Ok(LineEnd::Done)
    }
}

/// Parses a quoted string whose opening quote precedes `start`; returns the
/// unescaped text and the index after the closing quote.
fn quoted(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let mut text = Vec::new();
    let mut i = start;
    while i < line.len() {
        match line[i] {
            b'"' => return Ok((text, i + 1)),
            b'\\' => match line.get(i + 1) {
                Some(&c @ (b'"' | b'\\')) => {
                    text.push(c);
                    i += 2;
                }
                _ => return Err("invalid escape in quoted string"),
            },
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    Err("unterminated quoted string")
}

/// Parses `n}` or `n+}` (the text after `{`), which must end the line.
fn literal_marker(rest: &[u8]) -> Result<(u64, bool), &'static str> {
    const BAD: &str = "invalid literal";
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(BAD);
    }
    let mut len: u64 = 0;
    for &d in &rest[..digits] {
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(u64::from(d - b'0')))
            .ok_or(BAD)?;
    }
    match &rest[digits..] {
        b"}" => Ok((len, true)),
        b"+}" => Ok((len, false)),
        _ => Err(BAD),
    }
}

/// End of the atom starting at `start`. Brackets may enclose spaces and
/// parentheses, as in `BODY[HEADER.FIELDS (FROM)]`.
fn atom_end(line: &[u8], start: usize) -> Result<usize, &'static str> {
    let mut depth = 0usize;
    let mut i = start;
    while i < line.len() {
        let c = line[i];
        if depth == 0 && matches!(c, b' ' | b'(' | b')' | b'"') {
            break;
        }
        if c < 0x20 || c == 0x7f {
            return Err("control character in atom");
        }
        match c {
            b'[' => depth += 1,
            b']' if depth > 0 => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err("unbalanced bracket");
    }
    Ok(i)
}

#[cfg(test)]
mod tests;
