//! A fake POP3 server (RFC 1939, with CAPA from RFC 2449): enough for a
//! proxy to log in with USER/PASS and for a client to list and retrieve the
//! seeded messages.

use std::io::{self, BufRead, Write};

use super::line::{self, Line, MAX_LINE};
use super::{Config, Mailbox};
use crate::net::Stream;

pub const GREETING: &[u8] = b"+OK postern-bench POP3 ready\r\n";
pub const CAPA: &[u8] = b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n";

/// Runs one client connection to completion.
pub fn serve_connection(config: &Config, stream: Stream) {
    super::serve_connection(config, stream, run);
}

/// Speaks POP3 over `input`/`output` until QUIT, EOF or a fatal error.
pub fn run<R: BufRead, W: Write>(config: &Config, input: &mut R, output: &mut W) -> io::Result<()> {
    let mut session = Session {
        config,
        user: None,
        logged_in: false,
        deleted: vec![false; config.mailbox.len()],
        mailbox: &config.mailbox,
    };
    output.write_all(GREETING)?;
    output.flush()?;
    loop {
        let flow = match line::read_line(input, MAX_LINE)? {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                output.write_all(b"-ERR line too long\r\n")?;
                Flow::Close
            }
            Line::BareLf(_) => {
                output.write_all(b"-ERR line must end with CRLF\r\n")?;
                Flow::Continue
            }
            Line::Crlf(command) => session.execute(&command, output)?,
        };
        output.flush()?;
        if flow == Flow::Close {
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session<'a> {
    config: &'a Config,
    /// The name from USER, waiting for PASS.
    user: Option<Vec<u8>>,
    logged_in: bool,
    mailbox: &'a Mailbox,
    /// Messages marked by DELE (index n - 1); RSET clears the marks.
    deleted: Vec<bool>,
}

const NO_SUCH_MESSAGE: &str = "-ERR no such message";

impl Session<'_> {
    fn execute<W: Write>(&mut self, command: &[u8], out: &mut W) -> io::Result<Flow> {
        let (verb, rest) = line::verb(command);
        let verb = verb.as_str();
        let reply: String = match verb {
            "CAPA" | "QUIT" if rest.is_some() => "-ERR unexpected arguments".into(),
            "CAPA" => {
                out.write_all(CAPA)?;
                return Ok(Flow::Continue);
            }
            "QUIT" => {
                out.write_all(b"+OK bye\r\n")?;
                return Ok(Flow::Close);
            }
            "USER" | "PASS" if self.logged_in => "-ERR already logged in".into(),
            "USER" => self.user(rest),
            "PASS" => self.pass(rest),
            "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "NOOP" | "RSET" if !self.logged_in => {
                "-ERR not logged in".into()
            }
            _ => match (verb, numbers(rest).as_deref()) {
                (_, None) if is_transaction(verb) => "-ERR invalid arguments".into(),
                ("STAT", Some([])) => {
                    let (count, total) = self.totals();
                    format!("+OK {count} {total}")
                }
                ("LIST", Some([])) => {
                    let (count, total) = self.totals();
                    writeln_crlf(out, &format!("+OK {count} messages ({total} octets)"))?;
                    for (n, message) in self.live() {
                        writeln_crlf(out, &format!("{n} {}", message.len()))?;
                    }
                    ".".into()
                }
                ("LIST", Some(&[n])) => match self.message(n) {
                    Some(message) => format!("+OK {n} {}", message.len()),
                    None => NO_SUCH_MESSAGE.into(),
                },
                ("UIDL", Some([])) => {
                    out.write_all(b"+OK\r\n")?;
                    for (n, _) in self.live() {
                        writeln_crlf(out, &format!("{n} {n}"))?;
                    }
                    ".".into()
                }
                ("UIDL", Some(&[n])) => match self.message(n) {
                    Some(_) => format!("+OK {n} {n}"),
                    None => NO_SUCH_MESSAGE.into(),
                },
                ("RETR", Some(&[n])) => match self.message(n) {
                    Some(message) => {
                        writeln_crlf(out, &format!("+OK {} octets", message.len()))?;
                        write_dot_encoded(out, message)?;
                        return Ok(Flow::Continue);
                    }
                    None => NO_SUCH_MESSAGE.into(),
                },
                ("TOP", Some(&[n, lines])) => match self.message(n) {
                    Some(message) => {
                        out.write_all(b"+OK\r\n")?;
                        write_dot_encoded(out, top(message, lines))?;
                        return Ok(Flow::Continue);
                    }
                    None => NO_SUCH_MESSAGE.into(),
                },
                ("DELE", Some(&[n])) => match self.message(n) {
                    Some(_) => {
                        self.deleted[n - 1] = true;
                        format!("+OK message {n} deleted")
                    }
                    None => NO_SUCH_MESSAGE.into(),
                },
                ("RSET", Some([])) => {
                    self.deleted.fill(false);
                    let (count, total) = self.totals();
                    format!("+OK maildrop has {count} messages ({total} octets)")
                }
                ("NOOP", Some([])) => "+OK".into(),
                _ if is_transaction(verb) => "-ERR invalid arguments".into(),
                _ => "-ERR unknown command".into(),
            },
        };
        writeln_crlf(out, &reply)?;
        Ok(Flow::Continue)
    }

    /// `USER name`: the name is every byte after `USER `.
    fn user(&mut self, rest: Option<&[u8]>) -> String {
        self.user = None;
        match rest {
            None => "-ERR USER expects a name".into(),
            Some(name) if name.contains(&0) || name.contains(&b'\r') => "-ERR invalid user name".into(),
            Some(name) => {
                self.user = Some(name.to_vec());
                "+OK send PASS".into()
            }
        }
    }

    /// `PASS password`: the password is every byte after `PASS `, spaces
    /// included. Whatever the outcome, the next attempt starts with USER.
    fn pass(&mut self, rest: Option<&[u8]>) -> String {
        let Some(pass) = rest else {
            return "-ERR PASS expects a password".into();
        };
        let Some(user) = self.user.take() else {
            return "-ERR send USER first".into();
        };
        if !self.config.login_ok(&user, pass) {
            return "-ERR [AUTH] invalid credentials".into();
        }
        self.logged_in = true;
        "+OK logged in".into()
    }

    /// Message `n` unless it does not exist or is marked deleted.
    fn message(&self, n: usize) -> Option<&[u8]> {
        if *self.deleted.get(n.checked_sub(1)?)? {
            return None;
        }
        self.mailbox.get(n)
    }

    /// Messages not marked deleted, with their numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &[u8])> {
        (1..=self.mailbox.len()).filter_map(|n| self.message(n).map(|m| (n, m)))
    }

    /// Number and total size of the messages not marked deleted.
    fn totals(&self) -> (usize, usize) {
        self.live()
            .fold((0, 0), |(count, total), (_, m)| (count + 1, total + m.len()))
    }
}

fn is_transaction(verb: &str) -> bool {
    matches!(
        verb,
        "STAT" | "LIST" | "UIDL" | "RETR" | "TOP" | "DELE" | "NOOP" | "RSET"
    )
}

/// Space-separated decimal arguments; `None` if any is not a number.
fn numbers(rest: Option<&[u8]>) -> Option<Vec<usize>> {
    let Some(rest) = rest else {
        return Some(Vec::new());
    };
    rest.split(|&b| b == b' ')
        .map(|arg| {
            if arg.is_empty() || arg.len() > 18 || !arg.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(arg).ok()?.parse().ok()
        })
        .collect()
}

fn writeln_crlf<W: Write>(out: &mut W, text: &str) -> io::Result<()> {
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")
}

/// Writes [`crate::message::dot_encode`]`(data)` without building a copy.
fn write_dot_encoded<W: Write>(out: &mut W, data: &[u8]) -> io::Result<()> {
    if data.first() == Some(&b'.') {
        out.write_all(b".")?;
    }
    let mut start = 0;
    for at in memchr::memmem::find_iter(data, b"\r\n.") {
        out.write_all(&data[start..at + 2])?;
        out.write_all(b".")?;
        start = at + 2;
    }
    out.write_all(&data[start..])?;
    if !data.is_empty() && !data.ends_with(b"\r\n") {
        out.write_all(b"\r\n")?;
    }
    out.write_all(b".\r\n")
}

/// The header block of `message` (through the empty line that ends it) and
/// the first `lines` lines of its body. A message with no empty line is all
/// header.
pub fn top(message: &[u8], lines: usize) -> &[u8] {
    let header_end = if message.starts_with(b"\r\n") {
        2
    } else {
        match memchr::memmem::find(message, b"\r\n\r\n") {
            Some(at) => at + 4,
            None => return message,
        }
    };
    let body = &message[header_end..];
    let end = if lines == 0 {
        0
    } else {
        memchr::memmem::find_iter(body, b"\r\n")
            .nth(lines - 1)
            .map_or(body.len(), |at| at + 2)
    };
    &message[..header_end + end]
}

#[cfg(test)]
mod tests;
