//! FETCH: sequence sets, data items and response writing.

use std::collections::BTreeSet;
use std::io::{self, Write};

use super::command::Arg;

/// A supported FETCH data item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Uid,
    Flags,
    Rfc822Size,
    /// `BODY[]` or `BODY.PEEK[]`; answered as `BODY[]`.
    Body,
    Rfc822,
}

/// Parses one item atom or a parenthesized list of them.
pub fn parse_items(arg: &Arg) -> Option<Vec<Item>> {
    let items = match arg {
        Arg::Atom(atom) => vec![parse_item(atom)?],
        Arg::List(list) if !list.is_empty() => list
            .iter()
            .map(|a| a.atom().and_then(parse_item))
            .collect::<Option<Vec<_>>>()?,
        _ => return None,
    };
    Some(items)
}

fn parse_item(atom: &[u8]) -> Option<Item> {
    let item = match atom.to_ascii_uppercase().as_slice() {
        b"UID" => Item::Uid,
        b"FLAGS" => Item::Flags,
        b"RFC822.SIZE" => Item::Rfc822Size,
        b"BODY[]" | b"BODY.PEEK[]" => Item::Body,
        b"RFC822" => Item::Rfc822,
        _ => return None,
    };
    Some(item)
}

/// Resolves a sequence set such as `1`, `2:4`, `3:*`, `*` or `1,5:6`
/// against a mailbox of `count` messages, giving sorted message numbers.
///
/// For message sequence numbers every number must exist. For UIDs (`uid`
/// true) numbers that do not exist are skipped, and `n:*` always includes
/// the last message, as RFC 3501 requires.
pub fn resolve_set(spec: &[u8], count: usize, uid: bool) -> Result<Vec<usize>, &'static str> {
    let mut numbers = BTreeSet::new();
    for part in spec.split(|&b| b == b',') {
        let (first, last) = match memchr::memchr(b':', part) {
            Some(colon) => (&part[..colon], &part[colon + 1..]),
            None => (part, part),
        };
        let first = number(first, count).ok_or("invalid sequence set")?;
        let last = number(last, count).ok_or("invalid sequence set")?;
        let (low, high) = (first.min(last), first.max(last));
        if uid {
            numbers.extend(low.max(1)..=high.min(count));
        } else if low == 0 || high > count {
            return Err("invalid message sequence number");
        } else {
            numbers.extend(low..=high);
        }
    }
    Ok(numbers.into_iter().collect())
}

/// A non-zero number or `*` (the last message, 0 when the mailbox is
/// empty). Numbers beyond `usize` saturate: they cannot exist anyway.
fn number(text: &[u8], count: usize) -> Option<usize> {
    if text == b"*" {
        return Some(count);
    }
    if text.is_empty() || text[0] == b'0' || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0usize, |n, &d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

/// Writes `* n FETCH (UID n ...)` for message `n`. UID always comes first;
/// the other items follow in request order.
pub fn write_response<W: Write>(out: &mut W, n: usize, message: &[u8], items: &[Item]) -> io::Result<()> {
    write!(out, "* {n} FETCH (UID {n}")?;
    for item in items {
        match item {
            Item::Uid => {}
            Item::Flags => out.write_all(b" FLAGS ()")?,
            Item::Rfc822Size => write!(out, " RFC822.SIZE {}", message.len())?,
            Item::Body | Item::Rfc822 => {
                let name = if *item == Item::Body { "BODY[]" } else { "RFC822" };
                write!(out, " {name} {{{}}}\r\n", message.len())?;
                out.write_all(message)?;
            }
        }
    }
    out.write_all(b")\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers() {
        assert_eq!(resolve_set(b"1", 3, false), Ok(vec![1]));
        assert_eq!(resolve_set(b"*", 3, false), Ok(vec![3]));
        assert_eq!(resolve_set(b"1:*", 3, false), Ok(vec![1, 2, 3]));
        assert_eq!(resolve_set(b"3:2", 3, false), Ok(vec![2, 3]));
        assert_eq!(resolve_set(b"3,1,1:2", 3, false), Ok(vec![1, 2, 3]));
        assert_eq!(resolve_set(b"4", 3, false), Err("invalid message sequence number"));
        assert_eq!(resolve_set(b"*", 0, false), Err("invalid message sequence number"));
        for bad in [&b""[..], b"0", b"01", b"a", b"1:", b":1", b"1,", b"1:2:3", b"-1"] {
            assert_eq!(resolve_set(bad, 3, false), Err("invalid sequence set"), "{bad:?}");
        }
    }

    #[test]
    fn uids() {
        assert_eq!(resolve_set(b"4", 3, true), Ok(vec![]));
        assert_eq!(resolve_set(b"2:99", 3, true), Ok(vec![2, 3]));
        assert_eq!(resolve_set(b"7:*", 3, true), Ok(vec![3]));
        assert_eq!(resolve_set(b"1:*", 0, true), Ok(vec![]));
        assert_eq!(resolve_set(b"99999999999999999999999", 3, true), Ok(vec![]));
    }

    #[test]
    fn items() {
        let atom = |s: &str| Arg::Atom(s.as_bytes().to_vec());
        assert_eq!(parse_items(&atom("body.peek[]")), Some(vec![Item::Body]));
        assert_eq!(
            parse_items(&Arg::List(vec![atom("UID"), atom("RFC822"), atom("RFC822.SIZE")])),
            Some(vec![Item::Uid, Item::Rfc822, Item::Rfc822Size])
        );
        assert_eq!(parse_items(&atom("BODY[TEXT]")), None);
        assert_eq!(parse_items(&Arg::List(vec![])), None);
        assert_eq!(parse_items(&Arg::Quoted(b"UID".to_vec())), None);
    }

    #[test]
    fn response_bytes() {
        let mut out = Vec::new();
        write_response(&mut out, 2, b"hi\r\n", &[Item::Body]).unwrap();
        assert_eq!(out, b"* 2 FETCH (UID 2 BODY[] {4}\r\nhi\r\n)\r\n");
        out.clear();
        write_response(
            &mut out,
            1,
            b"x",
            &[Item::Flags, Item::Uid, Item::Rfc822Size, Item::Rfc822],
        )
        .unwrap();
        assert_eq!(out, b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 1 RFC822 {1}\r\nx)\r\n");
    }
}
