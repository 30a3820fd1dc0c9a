//! Reading CRLF-terminated command lines for the line-based protocols
//! (POP3 and SMTP).

use std::io::{self, BufRead};

/// Longest command line, CRLF included.
pub const MAX_LINE: usize = 64 * 1024;

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line that ended in CRLF; the CRLF is removed.
    Crlf(Vec<u8>),
    /// A line that ended in a bare LF (the LF is removed).
    BareLf(Vec<u8>),
    /// Longer than [`MAX_LINE`]: the stream cannot be resynchronized.
    TooLong,
    /// EOF before the first byte of a line.
    Eof,
}

/// Reads through the next LF, at most `max` bytes. EOF in the middle of a
/// line is an [`io::ErrorKind::UnexpectedEof`] error.
pub fn read_line<R: BufRead>(input: &mut R, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(Line::Eof);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(at) => (at + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > max {
            return Ok(Line::TooLong);
        }
        line.extend_from_slice(&buf[..take]);
        input.consume(take);
        if done {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
                return Ok(Line::Crlf(line));
            }
            return Ok(Line::BareLf(line));
        }
    }
}

/// Splits a command line into its verb, upper-cased, and the rest after
/// the first space (`None` when there is no space).
pub fn verb(line: &[u8]) -> (String, Option<&[u8]>) {
    let (name, rest) = match memchr::memchr(b' ', line) {
        Some(at) => (&line[..at], Some(&line[at + 1..])),
        None => (line, None),
    };
    (String::from_utf8_lossy(name).to_ascii_uppercase(), rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    #[test]
    fn lines_and_limits() {
        let mut input = BufReader::with_capacity(4, Cursor::new(b"ab\r\ncd\n\r\nxyzzy\r\n0123456789\r\nend".to_vec()));
        assert_eq!(read_line(&mut input, 12).unwrap(), Line::Crlf(b"ab".to_vec()));
        assert_eq!(read_line(&mut input, 12).unwrap(), Line::BareLf(b"cd".to_vec()));
        assert_eq!(read_line(&mut input, 12).unwrap(), Line::Crlf(Vec::new()));
        assert_eq!(read_line(&mut input, 7).unwrap(), Line::Crlf(b"xyzzy".to_vec()));
        assert_eq!(read_line(&mut input, 11).unwrap(), Line::TooLong);
        let mut input = Cursor::new(b"end".to_vec());
        assert_eq!(
            read_line(&mut input, 12).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(read_line(&mut Cursor::new(Vec::new()), 12).unwrap(), Line::Eof);
    }

    #[test]
    fn verbs() {
        assert_eq!(verb(b"user a b"), ("USER".to_string(), Some(&b"a b"[..])));
        assert_eq!(verb(b"quit"), ("QUIT".to_string(), None));
        assert_eq!(verb(b"PASS "), ("PASS".to_string(), Some(&b""[..])));
        assert_eq!(verb(b""), (String::new(), None));
    }
}
