//! Line framing shared by every protocol machine: find the end of one line
//! with `memchr`, within a limit the caller sets.

/// The outcome of looking for one line at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A whole line: its bytes without the CRLF (or bare LF, which nginx also
    /// accepts), and how many input bytes it took including the terminator.
    Complete { line: &'a [u8], consumed: usize },
    /// No line end yet and still under the limit: read more.
    Partial,
    /// The limit was reached without a line end. The session cannot recover
    /// its framing, so callers end it.
    TooLong,
}

/// Finds the first line in `input`. `limit` bounds the line including its
/// terminator, so a line of exactly `limit` bytes with CRLF is accepted.
pub fn next_line(input: &[u8], limit: usize) -> Line<'_> {
    let window = &input[..input.len().min(limit)];
    match memchr::memchr(b'\n', window) {
        Some(lf) => {
            let end = if lf > 0 && window[lf - 1] == b'\r' { lf - 1 } else { lf };
            Line::Complete {
                line: &input[..end],
                consumed: lf + 1,
            }
        }
        None if input.len() >= limit => Line::TooLong,
        None => Line::Partial,
    }
}

/// The line loop every line-driven machine shares, front ends and backend
/// logins alike: hands each whole line of `input` (at most `limit` bytes) to
/// `on_line` while `more` holds; a line that never ends goes to `too_long`,
/// which must end the machine's reading. Returns the bytes consumed; the
/// rest is the caller's (a partial line, or what follows for the relay).
pub(crate) fn feed_lines<M>(
    machine: &mut M,
    input: &[u8],
    limit: usize,
    more: fn(&M) -> bool,
    on_line: fn(&mut M, &[u8]),
    too_long: fn(&mut M),
) -> usize {
    let too_long = |m: &mut M, _: &[u8]| too_long(m);
    feed_lines_sized(machine, input, |_, _| limit, more, on_line, too_long)
}

/// `feed_lines` for a machine whose limit depends on its state and on the
/// line's first bytes (a SASL line carrying an OAuth token): `limit` and
/// `too_long` see the unread input, starting with the line at hand.
pub(crate) fn feed_lines_sized<M>(
    machine: &mut M,
    input: &[u8],
    limit: impl Fn(&M, &[u8]) -> usize,
    more: fn(&M) -> bool,
    on_line: fn(&mut M, &[u8]),
    too_long: impl Fn(&mut M, &[u8]),
) -> usize {
    let mut used = 0;
    while more(machine) {
        let rest = &input[used..];
        match next_line(rest, limit(machine, rest)) {
            Line::Complete { line, consumed } => {
                used += consumed;
                on_line(machine, line);
            }
            Line::Partial => break,
            Line::TooLong => {
                too_long(machine, rest);
                break;
            }
        }
    }
    used
}

/// Renders bytes a client chose (user names, commands) for a log line: printable
/// ASCII as is, everything else as `\xNN`, so nothing a client sends can forge
/// a log line or smuggle terminal escapes.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let rows: &[(&[u8], usize, Line<'_>)] = &[
            (
                b"a NOOP\r\n",
                64,
                Line::Complete {
                    line: b"a NOOP",
                    consumed: 8,
                },
            ),
            (
                b"a NOOP\nb",
                64,
                Line::Complete {
                    line: b"a NOOP",
                    consumed: 7,
                },
            ),
            (b"\r\n", 64, Line::Complete { line: b"", consumed: 2 }),
            (b"a NOOP", 64, Line::Partial),
            (b"a NOOP\r", 64, Line::Partial),
            (
                b"abcd\r\n",
                6,
                Line::Complete {
                    line: b"abcd",
                    consumed: 6,
                },
            ),
            (b"abcde\r\n", 6, Line::TooLong),
            (b"abcdef", 6, Line::TooLong),
            (b"", 6, Line::Partial),
        ];
        for (input, limit, want) in rows {
            assert_eq!(&next_line(input, *limit), want, "input {:?}", input);
        }
    }

    #[test]
    fn printable_escapes_controls_and_quotes() {
        assert_eq!(printable(b"bob"), "bob");
        assert_eq!(printable(b"a\r\nb\"\\\x1b\xff"), "a\\x0D\\x0Ab\\x22\\x5C\\x1B\\xFF");
    }
}
