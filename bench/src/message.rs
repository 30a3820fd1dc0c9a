//! Deterministic test messages.
//!
//! Integration tests elsewhere in the workspace recompute the expected bytes
//! with [`seeded_message`], so the output must depend on nothing but the
//! arguments.

/// First byte of the body alphabet (`!`).
const FIRST: u8 = b'!';
/// Number of printable, non-space ASCII bytes (`!` ..= `~`).
const ALPHABET: usize = 94;
/// Shortest and longest body line, CRLF excluded.
const MIN_LINE: usize = 40;
const MAX_LINE: usize = 76;

/// The header block of message `index`, blank separator line included.
pub fn header(index: usize) -> Vec<u8> {
    format!("From: bench@postern.test\r\nTo: user@postern.test\r\nSubject: message {index}\r\n\r\n").into_bytes()
}

/// Message `index` (1-based), exactly `size` bytes long.
///
/// The body is made of CRLF-terminated lines of printable ASCII whose
/// lengths (40 to 76 characters) and contents depend on `index` and the line
/// number. Some lines start with `.`, which exercises dot-stuffing in
/// POP3/SMTP paths. When `size` is smaller than the header, the header is
/// truncated.
pub fn seeded_message(index: usize, size: usize) -> Vec<u8> {
    let mut out = header(index);
    if out.len() >= size {
        out.truncate(size);
        return out;
    }
    out.reserve_exact(size - out.len());
    let mut line = 0;
    while out.len() < size {
        let remaining = size - out.len();
        let mut width = line_width(index, line);
        if remaining == width + 3 {
            // Leave room for a final empty line rather than a lone byte.
            width -= 1;
        }
        if remaining >= width + 2 {
            push_line(&mut out, index, line, width);
            out.extend_from_slice(b"\r\n");
        } else if remaining >= 2 {
            push_line(&mut out, index, line, remaining - 2);
            out.extend_from_slice(b"\r\n");
        } else {
            push_line(&mut out, index, line, remaining);
        }
        line += 1;
    }
    out
}

fn line_width(index: usize, line: usize) -> usize {
    let spread = MAX_LINE - MIN_LINE + 1;
    MIN_LINE + index.wrapping_mul(31).wrapping_add(line.wrapping_mul(7)) % spread
}

fn push_line(out: &mut Vec<u8>, index: usize, line: usize, width: usize) {
    let start = index.wrapping_mul(13).wrapping_add(line.wrapping_mul(7));
    out.extend((0..width).map(|col| FIRST + (start.wrapping_add(col) % ALPHABET) as u8));
}

/// Dot-stuffs `data` as POP3 multi-line replies (RFC 1939) and SMTP DATA
/// (RFC 5321) require: every line that starts with `.` gets one more `.` in
/// front. A line starts at the beginning of `data` and after each CRLF; a
/// bare LF does not end a line. The terminating `.` CRLF is not added (see
/// [`dot_encode`]). [`dot_unstuff`] undoes it exactly.
pub fn dot_stuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 1);
    if data.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut start = 0;
    for at in memchr::memmem::find_iter(data, b"\r\n.") {
        out.extend_from_slice(&data[start..at + 2]);
        out.push(b'.');
        start = at + 2;
    }
    out.extend_from_slice(&data[start..]);
    out
}

/// Removes dot-stuffing: the first `.` of every line that starts with `.`
/// is dropped, lines being counted as in [`dot_stuff`]. `data` must not
/// include the terminating `.` CRLF line.
pub fn dot_unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut start = usize::from(data.first() == Some(&b'.'));
    for at in memchr::memmem::find_iter(data, b"\r\n.") {
        out.extend_from_slice(&data[start..at + 2]);
        start = at + 3;
    }
    out.extend_from_slice(&data[start..]);
    out
}

/// `data` as a complete multi-line block: [`dot_stuff`]ed, then CRLF if
/// `data` is not empty and does not already end with CRLF, then `.` CRLF.
/// This is exactly what the POP3 backend sends after `+OK` for RETR, and
/// what an SMTP client sends after `354`; the receiving side gets `data`
/// back with that CRLF appended if it was missing.
pub fn dot_encode(data: &[u8]) -> Vec<u8> {
    let mut out = dot_stuff(data);
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_round_trips() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"", b""),
            (b".", b".."),
            (b".a\r\n.\r\nb\r\n..c\r\n", b"..a\r\n..\r\nb\r\n...c\r\n"),
            (b"a\n.b\r.c\r\n", b"a\n.b\r.c\r\n"),
            (b"\r\n.", b"\r\n.."),
            (b"\r\n\r\n.\r\n", b"\r\n\r\n..\r\n"),
            (b"x.\r\n.", b"x.\r\n.."),
            (b"\r\n..\r\n.", b"\r\n...\r\n.."),
            (b"no dots", b"no dots"),
        ];
        for (plain, stuffed) in cases {
            assert_eq!(dot_stuff(plain), stuffed, "{:?}", String::from_utf8_lossy(plain));
            assert_eq!(dot_unstuff(stuffed), plain, "{:?}", String::from_utf8_lossy(stuffed));
        }
        // A receiver drops the first dot even when the sender forgot to stuff.
        assert_eq!(dot_unstuff(b".a\r\n.b"), b"a\r\nb");
        let msg = seeded_message(3, 200_000);
        let stuffed = dot_stuff(&msg);
        assert!(stuffed.len() > msg.len(), "the seeded body has lines starting with '.'");
        assert_eq!(dot_unstuff(&stuffed), msg);
        assert!(!stuffed.windows(5).any(|w| w == b"\r\n.\r\n"));
    }

    #[test]
    fn dot_encode_terminates() {
        assert_eq!(dot_encode(b""), b".\r\n");
        assert_eq!(dot_encode(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_encode(b".a"), b"..a\r\n.\r\n");
        assert_eq!(dot_encode(b"a\r"), b"a\r\r\n.\r\n");
    }

    #[test]
    fn exact_length_for_many_sizes() {
        for size in (0..400).chain([1023, 1024, 4096, 65_537, 1 << 20]) {
            for index in [1, 2, 9, 10, 123] {
                assert_eq!(seeded_message(index, size).len(), size, "index {index} size {size}");
            }
        }
    }

    #[test]
    fn deterministic() {
        assert_eq!(seeded_message(7, 10_000), seeded_message(7, 10_000));
        assert_eq!(seeded_message(1, 1024), seeded_message(1, 1024));
    }

    #[test]
    fn indexes_differ() {
        assert_ne!(seeded_message(1, 1024), seeded_message(2, 1024));
        let h1 = header(1).len();
        let h2 = header(2).len();
        assert_ne!(&seeded_message(1, 4096)[h1..], &seeded_message(2, 4096)[h2..]);
    }

    #[test]
    fn starts_with_headers_and_truncates() {
        let msg = seeded_message(5, 1024);
        let head = b"From: bench@postern.test\r\nTo: user@postern.test\r\nSubject: message 5\r\n\r\n";
        assert!(msg.starts_with(head));
        assert_eq!(seeded_message(5, 10), &head[..10]);
        assert_eq!(seeded_message(5, head.len()), head);
    }

    #[test]
    fn body_lines_are_short_printable_crlf() {
        let msg = seeded_message(4, 100_000);
        let body = &msg[header(4).len()..];
        assert!(body.ends_with(b"\r\n"));
        for line in body.split(|&b| b == b'\n') {
            let text = line.strip_suffix(b"\r").unwrap_or(line);
            assert!(text.len() <= MAX_LINE);
            assert!(text.iter().all(|b| (b'!'..=b'~').contains(b)));
        }
        assert!(!body.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    }
}
